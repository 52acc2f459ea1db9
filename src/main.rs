//! The `fieldcast` command: `serve` runs the server; `watch` plays a session with the
//! built-in WHEP client; `check` verifies the GStreamer installation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use fieldcast::config::{ServeArgs, Settings};
use fieldcast::egress::client::{self, PlayOptions};

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
    /// Play a session over WHEP and report frames, packets and sizes.
    Watch {
        /// WHEP endpoint, e.g. http://127.0.0.1:8080/whep/SESSION_ID
        url: String,
        /// Seconds to play.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Write every 30th decoded frame as PPM into this directory.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Write the received video as an H.264 elementary stream to this file.
        #[arg(long)]
        h264: Option<PathBuf>,
    },
    /// Check that every GStreamer element the pipelines need is installed.
    Check,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIELDCAST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
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
        Command::Watch {
            url,
            seconds,
            dump,
            h264,
        } => {
            let options = PlayOptions {
                duration: Duration::from_secs(seconds),
                dump_dir: dump,
                h264_file: h264,
                ..Default::default()
            };
            client::play(&url, &options).map(|report| {
                println!(
                    "connected after {:?}; first frame after {:?}; video {} frames ({} packets, {} keyframes, {} B slices); \
                     decoded {} frames{}; audio {} packets",
                    report.connected_after,
                    report.first_frame_after,
                    report.video_frames,
                    report.video_packets,
                    report.keyframes,
                    report.b_slices,
                    report.decoded.len(),
                    report.decoded.last().map(|f| format!(" at {}x{}", f.width, f.height)).unwrap_or_default(),
                    report.audio_packets,
                );
            }).map_err(anyhow::Error::from)
        }
        Command::Check => fieldcast::media::init()
            .map_err(anyhow::Error::from)
            .map(|()| println!("GStreamer: all elements present")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}
