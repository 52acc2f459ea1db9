//! Transcode cost per studio: decode + overlays + encode of a 720p30 publisher, Fieldcast
//! against ffmpeg doing the equivalent (card and counter overlay, libx264 veryfast
//! zerolatency at the same bitrate, Opus, RTP), at 1 and 4 concurrent studios, side by side
//! in one run.
//!
//! Both read the same input: a 20 s 720p30 H.264 (x264 veryfast, 3 Mb/s, 2 s keyframes) +
//! AAC file made at the start, looped in real time. Fieldcast gets it over RTMP from
//! `ffmpeg -re -stream_loop -1 -c copy` publishers (their CPU is theirs, not counted), each
//! into a show with a pinned product card, counters and a countdown, with no viewer. The
//! ffmpeg studios read the file themselves and send RTP to sockets this process holds.
//!
//! With `FIELDCAST_BASELINE_BIN=/path/to/another/fieldcast`, it also compares this build with
//! that one, alternating, on studios nobody watches (what a feature costs unused).
//!
//! Run: `cargo bench --bench transcode` (or `make bench`); `-- --quick` for shorter windows.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod harness;
mod peers;

use harness::Server;
use peers::Peer;

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// The publisher's recording, made once.
fn input_file(dir: &Path) -> PathBuf {
    let path = dir.join("input-720p30.flv");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-g", "60",
        ])
        .args([
            "-b:v", "3000k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
        ])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the input file");
    path
}

/// ffmpeg reading `input` in real time, over and over (decoding with slice threads, when it
/// decodes).
fn looped(input: &Path) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
        ])
        .args(["-thread_type", "slice", "-i"])
        .arg(input);
    command
}

/// CPU cores per studio and RSS per studio (MiB).
struct Cost {
    cores_per_studio: f64,
    mib_per_studio: f64,
}

fn window_usage(usage: &dyn Fn() -> (f64, u64), window: Duration) -> (f64, u64) {
    let (c0, _) = usage();
    std::thread::sleep(window);
    let (c1, rss) = usage();
    ((c1 - c0) / window.as_secs_f64(), rss)
}

fn fieldcast(studios: usize, input: &Path, dir: &Path, window: Duration) -> Cost {
    let server = Server::start(&dir.join("fieldcast"), &[]);
    std::thread::sleep(Duration::from_secs(1));
    let (_, rss_empty) = server.usage();
    let publishers: Vec<Peer> = (0..studios)
        .map(|i| {
            let (_, key) = server.show(&format!("Studio {i}"));
            let mut command = looped(input);
            command
                .args(["-c", "copy", "-f", "flv"])
                .arg(server.publish_url(&key));
            Peer::spawn(
                "ffmpeg publisher",
                &mut command,
                &dir.join(format!("pub-{i}.log")),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    let (cores, rss) = window_usage(&|| server.usage(), window);
    drop(publishers);
    Cost {
        cores_per_studio: cores / studios as f64,
        mib_per_studio: rss.saturating_sub(rss_empty) as f64 / 1024.0 / studios as f64,
    }
}

fn ffmpeg(studios: usize, input: &Path, card: &Path, dir: &Path, window: Duration) -> Cost {
    // RTP goes to sockets held (and never read) here: the kernel drops what overflows.
    let sinks: Vec<UdpSocket> = (0..studios * 2)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("RTP sink"))
        .collect();
    let mut peers: Vec<Peer> = (0..studios)
        .map(|i| {
            let mut command = looped(input);
            peers::overlay_and_encode(
                &mut command,
                card,
                sinks[2 * i].local_addr().expect("addr"),
                sinks[2 * i + 1].local_addr().expect("addr"),
            );
            Peer::spawn(
                "ffmpeg studio",
                &mut command,
                &dir.join(format!("ffmpeg-{i}.log")),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    for peer in peers.iter_mut() {
        peer.check_running();
    }
    let usage = || {
        peers.iter().fold((0.0, 0), |(c, r), p| {
            let (pc, pr) = p.usage();
            (c + pc, r + pr)
        })
    };
    let (cores, rss) = window_usage(&usage, window);
    Cost {
        cores_per_studio: cores / studios as f64,
        mib_per_studio: rss as f64 / 1024.0 / studios as f64,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let window = Duration::from_secs(if quick { 6 } else { 15 });
    let dir = bench_dir("bench-transcode");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let input = input_file(&dir);
    let card = peers::card_png(&dir);
    println!(
        "transcode cost per studio: 720p30 H.264 + AAC in, card + counters burnt in, 720p30 H.264 2.5 Mb/s + Opus out as RTP"
    );
    println!();
    println!(
        "| studios | Fieldcast CPU per studio | ffmpeg CPU per studio | ratio | Fieldcast memory per studio | ffmpeg memory per studio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for studios in [1, 4] {
        let ours = fieldcast(studios, &input, &dir, window);
        let theirs = ffmpeg(studios, &input, &card, &dir, window);
        println!(
            "| {studios} | {:.2} cores | {:.2} cores | {:.2}× | {:.0} MiB | {:.0} MiB |",
            ours.cores_per_studio,
            theirs.cores_per_studio,
            ours.cores_per_studio / theirs.cores_per_studio,
            ours.mib_per_studio,
            theirs.mib_per_studio,
        );
    }
    println!();
    println!(
        "(Fieldcast: the server process's CPU over {} s with the studios live and no viewer, divided by the studios; its publishers run in their own processes. ffmpeg: the studios' processes summed. 4 studios take most of this machine's 2 cores on either side.)",
        window.as_secs()
    );
    // The cost of what a build added while nobody uses it (HLS: its valves closed, its AAC
    // encoder idle): this build against another, alternating, the same studios and input.
    if let Some(baseline) = std::env::var_os("FIELDCAST_BASELINE_BIN") {
        let studios = 2;
        println!();
        println!(
            "this build against FIELDCAST_BASELINE_BIN={} ({studios} studios, no viewer, nobody asking for HLS; alternating):",
            baseline.to_string_lossy()
        );
        println!();
        println!("| round | this build, CPU per studio | baseline, CPU per studio | ratio |");
        println!("|---:|---:|---:|---:|");
        let mut ratios = Vec::new();
        for round in 1..=3 {
            // SAFETY: the benchmark is single-threaded here; the variable is read by
            // Server::start on this thread only.
            unsafe { std::env::remove_var("FIELDCAST_BENCH_BIN") };
            let ours = fieldcast(studios, &input, &dir, window);
            unsafe { std::env::set_var("FIELDCAST_BENCH_BIN", &baseline) };
            let theirs = fieldcast(studios, &input, &dir, window);
            unsafe { std::env::remove_var("FIELDCAST_BENCH_BIN") };
            let ratio = ours.cores_per_studio / theirs.cores_per_studio;
            ratios.push(ratio);
            println!(
                "| {round} | {:.3} cores | {:.3} cores | {ratio:.3}× |",
                ours.cores_per_studio, theirs.cores_per_studio
            );
        }
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        println!();
        println!("mean ratio {mean:.3}× (1.000 is no difference)");
    }
}
