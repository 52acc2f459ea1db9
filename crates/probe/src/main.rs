//! `fieldcast-probe`: what tests, benchmarks and operators point at a running Fieldcast to see
//! what a viewer gets. `watch` plays a session over WHEP with a real decoder; `swarm` joins
//! many WHEP viewers on one thread; `hls-swarm` plays Low-Latency HLS with many clients. None
//! of this is in the server binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use fieldcast_engine::process::raise_fd_limit;
use fieldcast_probe::swarm;
use fieldcast_probe::whep::{self as client, PlayOptions};

#[derive(Parser)]
#[command(
    name = "fieldcast-probe",
    version,
    about = "Viewers and load for a running Fieldcast: a WHEP player, a WHEP swarm, an LL-HLS swarm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// Write one JSON line per decoded frame to this file: `{"at_ms", "width", "height"}`
        /// (milliseconds since the offer), for tests that follow the picture over time.
        #[arg(long)]
        frames: Option<PathBuf>,
    },
    /// Load-test a session: many WHEP viewers on one thread (no decoding), joining at a
    /// steady rate; reports what they received.
    Swarm {
        /// WHEP endpoint, e.g. http://127.0.0.1:8080/whep/SESSION_ID
        url: String,
        #[arg(long, default_value_t = 100)]
        viewers: usize,
        /// Milliseconds between two viewers joining.
        #[arg(long, default_value_t = 20)]
        join_interval_ms: u64,
        /// Seconds everyone watches after the last viewer joined.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Load-test a session's Low-Latency HLS: many clients on one thread doing blocking
    /// playlist reloads and fetching every part (no decoding); reports late parts.
    HlsSwarm {
        /// Low-latency playlist, e.g. http://127.0.0.1:8080/hls/SESSION_ID/ll.m3u8
        url: String,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Seconds over which the clients join.
        #[arg(long, default_value_t = 10)]
        ramp_seconds: u64,
        /// Seconds every client plays after the last joined (the measured window).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Source addresses to use in turn, `FIRST+COUNT` (e.g. 127.0.0.2+200).
        #[arg(long)]
        sources: Option<String>,
        /// A process whose CPU time over the measured window is reported per client (the
        /// server's pid).
        #[arg(long)]
        pid: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Watch {
            url,
            seconds,
            dump,
            h264,
            frames,
        } => {
            let options = PlayOptions {
                duration: Duration::from_secs(seconds),
                dump_dir: dump,
                h264_file: h264,
                ..Default::default()
            };
            client::play(&url, &options).map_err(anyhow::Error::from).and_then(|report| {
                if let Some(path) = &frames {
                    let lines: String = report
                        .decoded
                        .iter()
                        .map(|f| {
                            format!(
                                "{{\"at_ms\":{},\"width\":{},\"height\":{}}}\n",
                                f.at.as_millis(),
                                f.width,
                                f.height
                            )
                        })
                        .collect();
                    std::fs::write(path, lines)?;
                }
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
                Ok(())
            })
        }
        Command::Swarm {
            url,
            viewers,
            join_interval_ms,
            seconds,
        } => {
            raise_fd_limit();
            let options = swarm::SwarmOptions {
                viewers,
                join_interval: Duration::from_millis(join_interval_ms),
                watch: Duration::from_secs(seconds),
                progress: Default::default(),
            };
            let report = swarm::run(&client::Whep { url }, &options);
            let played = report
                .viewers
                .iter()
                .filter(|v| v.first_frame_after.is_some())
                .count();
            let sorted = |f: fn(&swarm::ViewerStats) -> Option<Duration>| {
                let mut v: Vec<Duration> = report.viewers.iter().filter_map(f).collect();
                v.sort();
                v
            };
            let at = |v: &[Duration], p: f64| {
                v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
                    .copied()
                    .unwrap_or_default()
            };
            let ttff = sorted(|v| v.first_frame_after);
            let connected = sorted(|v| v.connected_after);
            println!(
                "{played} of {viewers} viewers played (all joined after {:.1} s); {} with gaps ({} frames after a gap); \
                 {} frames, {} keyframes, {} video and {} audio packets in all; \
                 connected (ICE + DTLS) p50 {:?}, p95 {:?}; first frame p50 {:?}, p95 {:?}",
                report.all_joined_after.as_secs_f64(),
                report.viewers.iter().filter(|v| v.gaps > 0).count(),
                report.viewers.iter().map(|v| v.gaps).sum::<u64>(),
                report.viewers.iter().map(|v| v.frames).sum::<u64>(),
                report.viewers.iter().map(|v| v.keyframes).sum::<u64>(),
                report.viewers.iter().map(|v| v.video_packets).sum::<u64>(),
                report.viewers.iter().map(|v| v.audio_packets).sum::<u64>(),
                at(&connected, 0.5),
                at(&connected, 0.95),
                at(&ttff, 0.5),
                at(&ttff, 0.95),
            );
            if let Some(error) = report.viewers.iter().find_map(|v| v.error.as_ref()) {
                eprintln!("first error: {error}");
            }
            if played == viewers {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{} viewers did not play", viewers - played))
            }
        }
        Command::HlsSwarm {
            url,
            clients,
            ramp_seconds,
            seconds,
            sources,
            pid,
        } => hls_swarm(url, clients, ramp_seconds, seconds, sources, pid),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldcast-probe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn hls_swarm(
    url: String,
    clients: usize,
    ramp_seconds: u64,
    seconds: u64,
    sources: Option<String>,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    use fieldcast_probe::hls_load as load;
    raise_fd_limit();
    let options = load::LoadOptions {
        url,
        clients,
        ramp: Duration::from_secs(ramp_seconds),
        play: Duration::from_secs(seconds),
        sources: sources
            .as_deref()
            .map(load::parse_sources)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .unwrap_or_default(),
    };
    // The server's CPU over the measured window: sampled by a thread at its two ends.
    let cpu = pid.map(|pid| {
        let ramp = options.ramp;
        let play = options.play;
        std::thread::spawn(move || {
            std::thread::sleep(ramp);
            let before = load::cpu_seconds(pid);
            std::thread::sleep(play);
            Some(load::cpu_seconds(pid)? - before?)
        })
    });
    let report = load::run(&options).map_err(anyhow::Error::msg)?;
    let cpu = cpu.and_then(|t| t.join().ok().flatten());
    let window = report.window.as_secs_f64().max(1e-9);
    println!(
        "{} of {} clients played; {} parts fetched, {} late (more than a part target after the first client: {:.2} %), \
         {} times a client fell behind the window; part arrival spread p50 {:?}, p99 {:?}; {} playlists; \
         {:.0} Mbit/s; {} errors{}",
        report.playing,
        report.clients,
        report.parts_fetched,
        report.parts_late,
        100.0 * report.parts_late as f64 / report.parts_fetched.max(1) as f64,
        report.fell_behind,
        report.spread_p50,
        report.spread_p99,
        report.playlists,
        report.bytes as f64 * 8.0 / window / 1e6,
        report.errors,
        report
            .first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
    );
    if let Some(cpu) = cpu {
        println!(
            "server CPU {:.1} % of a core over {:.0} s: {:.3} % of a core per client",
            100.0 * cpu / window,
            window,
            100.0 * cpu / window / report.clients.max(1) as f64
        );
    }
    if report.playing == report.clients {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} clients did not play",
            report.clients - report.playing
        ))
    }
}
