//! The `fieldcast` command: `serve` runs the server; `check` verifies the GStreamer
//! installation; `healthcheck` asks a running server whether it is up; `audit` verifies or
//! exports a session's on-screen record. The player and the
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
    /// A session's on-screen record: what the video showed, and when.
    Audit {
        #[command(subcommand)]
        command: Audit,
    },
}

#[derive(Subcommand)]
enum Audit {
    /// Checks the record's hash chain. Exits 0 when it is intact; otherwise names the first
    /// entry that breaks it and exits 1.
    Verify {
        /// The server's data directory (its database).
        #[arg(long, default_value = "./data")]
        data: std::path::PathBuf,
        /// Check a JSON Lines export (from `audit export`) instead of the database.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        session_id: String,
    },
    /// Writes the record as JSON Lines to stdout, one entry a line, in order.
    Export {
        #[arg(long, default_value = "./data")]
        data: std::path::PathBuf,
        session_id: String,
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
        Command::Audit { command } => audit(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn audit(command: Audit) -> anyhow::Result<()> {
    use fieldcast::record::onscreen::{Verifier, export_line, parse_line};
    use fieldcast::store::onscreen::each;
    let open = |data: &std::path::Path| {
        let path = data.join("fieldcast.db");
        anyhow::ensure!(path.exists(), "no database at {}", path.display());
        Ok(fieldcast::store::connect(&path)?)
    };
    match command {
        Audit::Verify {
            data,
            file: None,
            session_id,
        } => {
            let conn = open(&data)?;
            match fieldcast::record::onscreen::verify(&conn, &session_id)? {
                Ok(0) => anyhow::bail!("session {session_id} has no on-screen record"),
                Ok(n) => println!("session {session_id}: {n} entries, the chain is intact"),
                Err(broken) => anyhow::bail!("session {session_id}: {broken}"),
            }
        }
        Audit::Verify {
            file: Some(file),
            session_id,
            ..
        } => {
            use std::io::BufRead;
            let reader = std::io::BufReader::new(
                std::fs::File::open(&file)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
            );
            let mut verifier = Verifier::new(&session_id);
            for (i, line) in reader.lines().enumerate() {
                let line = line?;
                let row = parse_line(&line)
                    .map_err(|e| anyhow::anyhow!("{} line {}: {e}", file.display(), i + 1))?;
                verifier.check(&row).map_err(|broken| {
                    anyhow::anyhow!("{} line {}: {broken}", file.display(), i + 1)
                })?;
            }
            anyhow::ensure!(
                verifier.checked() > 0,
                "{} holds no entries",
                file.display()
            );
            println!(
                "session {session_id}: {} entries, the chain is intact",
                verifier.checked()
            );
        }
        Audit::Export { data, session_id } => {
            use std::io::Write;
            let conn = open(&data)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut failed = None;
            each(&conn, &session_id, |row| {
                match writeln!(out, "{}", export_line(&row)) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            out.flush()?;
        }
    }
    Ok(())
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
