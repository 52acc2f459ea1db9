//! Glass-to-glass latency: a publisher burns the wall-clock time into every frame it makes
//! (crates/engine/src/media/time_code.rs) and pushes RTMP; a WebRTC viewer decodes the output and reads
//! the time back. Fieldcast against the hand-built chain nginx-rtmp → ffmpeg (card and
//! counter overlay, libx264 zerolatency, Opus, RTP) → Janus streaming plugin, with the same
//! publisher and the same probe, one after the other in one run; twice: a zerolatency
//! publisher (what the servers add) and OBS-like settings (x264 veryfast with B-frames and
//! lookahead, 2 s keyframes). Also reports the publisher's own share (frame made → encoded
//! frame out of its encoder) and Fieldcast's server-added latency from its `/metrics`
//! histogram.
//!
//! Run: `cargo bench --bench latency` (or `make bench`); `-- --quick` for 10 s per run
//! instead of 60 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fieldcast_engine::histogram::{parse_buckets, quantile};
use fieldcast_engine::media::time_code;
use fieldcast_probe::whep::{PlayOptions, Signalling, Whep, play_via};
use gstreamer as gst;

mod harness;
mod peers;
mod stamped;

use harness::{Server, quantile_of};
use peers::{Janus, NginxRtmp, Peer};
use stamped::{Publisher, PublisherKind};

struct Run {
    samples: Vec<f64>,
    frames: usize,
    encoder_ms: Vec<f64>,
    sent_ms: Vec<f64>,
}

impl Run {
    fn new(samples: Vec<f64>, frames: usize, publisher: &Publisher) -> Run {
        Run {
            samples,
            frames,
            encoder_ms: std::mem::take(&mut *publisher.encoder_ms.lock().unwrap()),
            sent_ms: std::mem::take(&mut *publisher.sent_ms.lock().unwrap()),
        }
    }
}

fn watch(signalling: &dyn Signalling, seconds: Duration) -> (Vec<f64>, usize) {
    let options = PlayOptions {
        duration: seconds,
        decode: true,
        time_code: Some(time_code::ORIGIN_720P),
        ..Default::default()
    };
    match play_via(signalling, &options) {
        Ok(report) => (
            report
                .time_code_latency_ms
                .iter()
                .map(|&ms| ms as f64)
                .collect(),
            report.decoded.len(),
        ),
        Err(e) => {
            eprintln!("  viewer failed: {e}");
            (Vec::new(), 0)
        }
    }
}

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Fieldcast: publisher → Fieldcast (a show: card, counters, countdown) → viewer. Also
/// returns the server-added latency (p50, p99, frames) from `/metrics`.
fn fieldcast(kind: PublisherKind, seconds: Duration) -> (Run, (f64, f64, u64)) {
    let server = Server::start(&bench_dir("bench-latency"), &[]);
    let (id, key) = server.show("Latency probe");
    let publisher = Publisher::start(&server.publish_url(&key), kind);
    std::thread::sleep(Duration::from_secs(3));
    let whep = Whep {
        url: format!("http://{}/whep/{id}", server.http),
    };
    let (samples, frames) = watch(&whep, seconds);
    let buckets = parse_buckets(&server.metrics(), "fieldcast_server_latency_seconds");
    let server_added = (
        quantile(&buckets, 0.5).unwrap_or(f64::NAN) * 1e3,
        quantile(&buckets, 0.99).unwrap_or(f64::NAN) * 1e3,
        buckets.last().map(|b| b.1).unwrap_or(0),
    );
    (Run::new(samples, frames, &publisher), server_added)
}

/// ffmpeg between nginx-rtmp and Janus: pull RTMP without buffering, overlay the card and a
/// counter, encode as the studio does, RTP to the Janus mountpoint.
fn ffmpeg_chain(input: &str, card: &Path, janus: &Janus, log: &Path) -> Peer {
    let (video, audio) = janus.rtp_targets();
    let mut command = Command::new("ffmpeg");
    command
        .args(["-nostdin", "-loglevel", "warning"])
        .args([
            "-fflags",
            "nobuffer",
            "-flags",
            "low_delay",
            "-thread_type",
            "slice",
        ])
        .args(["-i", input]);
    peers::overlay_and_encode(&mut command, card, video, audio);
    Peer::spawn("ffmpeg (overlay + encode)", &mut command, log)
}

/// The chain: publisher → nginx-rtmp → ffmpeg → Janus → viewer.
fn chain(kind: PublisherKind, seconds: Duration) -> Run {
    let dir = bench_dir("bench-chain");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("chain dir");
    let nginx = NginxRtmp::start(&dir.join("nginx"));
    let janus = Janus::start(&dir.join("janus"));
    let card = peers::card_png(&dir);
    let url = nginx.url("probe");
    let publisher = Publisher::start(&url, kind);
    std::thread::sleep(Duration::from_secs(1));
    let mut ffmpeg = ffmpeg_chain(&url, &card, &janus, &dir.join("ffmpeg.log"));
    std::thread::sleep(Duration::from_secs(4));
    ffmpeg.check_running();
    let (samples, frames) = watch(&janus.viewer(), seconds);
    ffmpeg.check_running();
    let run = Run::new(samples, frames, &publisher);
    drop(nginx);
    run
}

fn row(name: &str, run: &mut Run) -> (f64, f64) {
    let p50 = quantile_of(&mut run.samples, 0.5);
    let p95 = quantile_of(&mut run.samples, 0.95);
    let p99 = quantile_of(&mut run.samples, 0.99);
    let encoder = quantile_of(&mut run.encoder_ms, 0.5);
    let sent = quantile_of(&mut run.sent_ms, 0.5);
    println!(
        "| {name} | {} of {} | {p50:.0} ms | {p95:.0} ms | {p99:.0} ms | {encoder:.0} ms | {sent:.0} ms |",
        run.samples.len(),
        run.frames,
    );
    (p50, p99)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    gst::init().expect("GStreamer");
    let seconds = Duration::from_secs(if quick { 10 } else { 60 });
    println!(
        "glass-to-glass latency: time code burnt in at the publisher, read back from the viewer's decoded frames ({} s per run)",
        seconds.as_secs()
    );
    let mut server_rows = Vec::new();
    for kind in [PublisherKind::ZeroLatency, PublisherKind::ObsLike] {
        println!();
        println!("{}:", kind.label());
        println!();
        println!(
            "| chain | frames read (of decoded) | p50 | p95 | p99 | of which publisher's encoder (p50) | publisher's encoder + FLV mux (p50) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let (mut ours, server_added) = fieldcast(kind, seconds);
        let (f50, f99) = row("Fieldcast", &mut ours);
        let mut theirs = chain(kind, seconds);
        let (c50, c99) = row("nginx-rtmp → ffmpeg → Janus", &mut theirs);
        println!();
        println!(
            "Fieldcast / chain: p50 {:.2}×, p99 {:.2}×",
            f50 / c50,
            f99 / c99
        );
        server_rows.push((kind, server_added));
    }
    println!();
    println!(
        "server-added latency (Fieldcast, `fieldcast_server_latency_seconds` on /metrics: RTMP video message in → first RTP packet of its frame out):"
    );
    println!();
    println!("| publisher | frames | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for (kind, (p50, p99, n)) in server_rows {
        println!("| {} | {n} | {p50:.1} ms | {p99:.1} ms |", kind.label());
    }
}
