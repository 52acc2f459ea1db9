//! The `fieldcast` command: `serve` runs the server; `check` verifies the GStreamer
//! installation; `healthcheck` asks a running server whether it is up. The player and the
//! load generators are `fieldcast-probe`'s (`crates/probe`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use fieldcast::config::{ServeArgs, Settings};

#[derive(Parser)]
#[command(
    name = "fieldcast",
    version,
    about = "Live-commerce media server: RTMP in, WebRTC (WHEP) out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of `Serve`'s settings costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        args: ServeArgs,
        /// Create (once) and put on air a demo session fed by a built-in test pattern.
        #[arg(long, env = "FIELDCAST_DEMO")]
        demo: bool,
    },
    /// Check that every GStreamer element the pipelines need is installed.
    Check,
    /// Ask a running server's `/healthz` (for container health checks: the image has no
    /// curl). Exits 0 when it answers "ok" within 3 s.
    Healthcheck {
        #[command(flatten)]
        args: ServeArgs,
    },
}

/// Logs to stderr: `FIELDCAST_LOG` filters (default `info,str0m=warn`); colours only on a
/// terminal (and never with `NO_COLOR`); `FIELDCAST_LOG_FORMAT=json` writes one JSON object a
/// line for log shippers.
fn init_logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIELDCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("FIELDCAST_LOG_FORMAT").unwrap_or_default();
    if format == "json" {
        logs.json().flatten_event(true).init();
        return;
    }
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    logs.with_ansi(colour).init();
    if !format.is_empty() && format != "text" {
        tracing::warn!(format, "FIELDCAST_LOG_FORMAT is text or json; writing text");
    }
}

fn main() -> ExitCode {
    init_logs();
    fieldcast::server::install_tls_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { args, demo } => match Settings::load(&args) {
            Ok(settings) => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(fieldcast::server::serve(settings, demo))),
            Err(e) => Err(e.into()),
        },
        Command::Check => fieldcast_engine::media::init()
            .map_err(anyhow::Error::from)
            .map(|()| println!("GStreamer: all elements present")),
        Command::Healthcheck { args } => Settings::load(&args)
            .map_err(anyhow::Error::from)
            .and_then(|settings| healthcheck(settings.http)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `GET /healthz` on the server's own HTTP address (loopback when it binds every interface).
fn healthcheck(mut http: std::net::SocketAddr) -> anyhow::Result<()> {
    if http.ip().is_unspecified() {
        http.set_ip(match http {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3)))
        .build()
        .into();
    let url = format!("http://{http}/healthz");
    let body = agent
        .get(&url)
        .call()
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?
        .into_body()
        .read_to_string()?;
    anyhow::ensure!(body.trim() == "ok", "{url} answered {body:?}");
    println!("{url}: ok");
    Ok(())
}
