//! What the show's afterlife costs while it is live (issue #26): studio CPU and server-added
//! latency for one show (the time-coded zerolatency publisher, a pinned card and a running
//! sale, one WebRTC viewer) with nothing after it, with recording on, and with two restreams
//! (two keys on one nginx-rtmp), each on a fresh server, side by side in one run. The on-screen
//! record is written in all three (it is always on).
//!
//! Run: `cargo bench --bench after_show` (or `make bench`); `-- --quick` for 15 s per run
//! instead of 45 s.

use std::path::PathBuf;
use std::time::Duration;

use fieldcast_engine::histogram::{parse_buckets, quantile};
use fieldcast_probe::whep::{PlayOptions, play};
use gstreamer as gst;
use serde_json::json;

mod harness;
mod peers;
mod stamped;

use harness::Server;
use peers::NginxRtmp;
use stamped::{Publisher, PublisherKind};

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Nothing,
    Recording,
    TwoRestreams,
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Config::Nothing => "nothing after the show",
            Config::Recording => "recording",
            Config::TwoRestreams => "two restreams (nginx-rtmp)",
        }
    }
}

struct Row {
    cpu_cores: f64,
    p50_ms: f64,
    p99_ms: f64,
    frames: u64,
    viewer_frames: usize,
    recorded_bytes: u64,
    restreamed_bytes: u64,
}

fn bench_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn measure(config: Config, seconds: Duration, nginx: &NginxRtmp) -> Row {
    let server = Server::start(&bench_dir("bench-after-show"), &[]);
    let (id, key) = server.show("After the show");
    // `show` puts it on air, recording: off air and on again without, where asked.
    if config != Config::Recording {
        server.api(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some(json!({"record": false, "state": "idle"})),
        );
        server.api(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some(json!({"state": "live"})),
        );
    }
    if config == Config::TwoRestreams {
        for n in 0..2 {
            server.api(
                "POST",
                &format!("/api/v1/sessions/{id}/restreams"),
                Some(json!({"url": format!("rtmp://127.0.0.1:{}/live", nginx.port), "key": format!("bench{n}")})),
            );
        }
    }
    let publisher = Publisher::start(&server.publish_url(&key), PublisherKind::ZeroLatency);
    let url = format!("http://{}/whep/{id}", server.http);
    let viewer = std::thread::spawn(move || {
        play(
            &url,
            &PlayOptions {
                duration: seconds + Duration::from_secs(8),
                ..Default::default()
            },
        )
    });
    // Warm: the encoders, HLS and the pushes running.
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_before, _) = server.usage();
    std::thread::sleep(seconds);
    let (cpu_after, _) = server.usage();
    let metrics = server.metrics();
    let buckets = parse_buckets(&metrics, "fieldcast_server_latency_seconds");
    let viewer_frames = viewer
        .join()
        .ok()
        .and_then(|r| r.ok())
        .map(|r| r.video_frames as usize)
        .unwrap_or(0);
    drop(publisher);
    let sum = |prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    if config == Config::TwoRestreams {
        let states = server.api("GET", &format!("/api/v1/sessions/{id}/restreams"), None);
        println!("  restreams after the run: {}", states["restreams"]);
    }
    Row {
        cpu_cores: (cpu_after - cpu_before) / seconds.as_secs_f64(),
        p50_ms: quantile(&buckets, 0.5).unwrap_or(f64::NAN) * 1e3,
        p99_ms: quantile(&buckets, 0.99).unwrap_or(f64::NAN) * 1e3,
        frames: buckets.last().map(|b| b.1).unwrap_or(0),
        viewer_frames,
        recorded_bytes: sum("fieldcast_recording_bytes_written_total"),
        restreamed_bytes: sum("fieldcast_restream_bytes_total"),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    gst::init().expect("GStreamer");
    let seconds = Duration::from_secs(if quick { 15 } else { 45 });
    let nginx = NginxRtmp::start(&bench_dir("bench-after-show-nginx"));
    println!(
        "after the show: one show (zerolatency publisher 1280×720, card and sale, one WebRTC viewer), server CPU over {} s after 5 s of warm-up, and server-added latency (`fieldcast_server_latency_seconds`)",
        seconds.as_secs()
    );
    println!();
    println!(
        "| configuration | server CPU | × nothing | server-added p50 | p99 | frames | viewer frames | written / pushed |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut base = None;
    for config in [Config::Nothing, Config::Recording, Config::TwoRestreams] {
        let row = measure(config, seconds, &nginx);
        let base_cpu = *base.get_or_insert(row.cpu_cores);
        let moved = match config {
            Config::Nothing => "–".to_string(),
            Config::Recording => format!("{:.1} MB written", row.recorded_bytes as f64 / 1e6),
            Config::TwoRestreams => {
                format!("{:.1} MB pushed", row.restreamed_bytes as f64 / 1e6)
            }
        };
        println!(
            "| {} | {:.3} cores | {:.2}× | {:.1} ms | {:.1} ms | {} | {} | {moved} |",
            config.label(),
            row.cpu_cores,
            row.cpu_cores / base_cpu,
            row.p50_ms,
            row.p99_ms,
            row.frames,
            row.viewer_frames,
        );
    }
}
