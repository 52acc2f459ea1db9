//! Glass-to-glass latency: a publisher burns the wall-clock time into every frame it makes
//! (src/media/time_code.rs) and pushes RTMP; a WebRTC viewer decodes the output and reads
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldcast::egress::client::{PlayOptions, Signalling, Whep, play_via};
use fieldcast::histogram::{parse_buckets, quantile};
use fieldcast::media::time_code;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video::prelude::*;

mod harness;
mod peers;

use harness::Server;
use peers::{Janus, NginxRtmp, Peer};

#[derive(Clone, Copy, PartialEq)]
enum PublisherKind {
    ZeroLatency,
    ObsLike,
}

impl PublisherKind {
    fn label(self) -> &'static str {
        match self {
            PublisherKind::ZeroLatency => "x264 zerolatency publisher",
            PublisherKind::ObsLike => "OBS-like publisher (veryfast, B-frames, lookahead)",
        }
    }
    fn encoder(self) -> &'static str {
        match self {
            PublisherKind::ZeroLatency => {
                "x264enc tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max=60"
            }
            // OBS's x264 defaults: veryfast, 2 s keyframes, B-frames, no tune; x264's own
            // lookahead and frame threads stay on.
            PublisherKind::ObsLike => {
                "x264enc speed-preset=veryfast bitrate=2500 key-int-max=60 bframes=2 b-adapt=true"
            }
        }
    }
}

/// The stamped publisher: a moving test picture, the time code written into each frame just
/// before the encoder, FLV over RTMP by GStreamer's rtmp2sink.
struct Publisher {
    pipeline: gst::Pipeline,
    /// Frame made → its encoded frame out of the encoder, in ms.
    encoder_ms: Arc<Mutex<Vec<f64>>>,
    /// Frame made → its FLV tag out of the muxer to rtmp2sink (audio interleaving included).
    sent_ms: Arc<Mutex<Vec<f64>>>,
}

/// The running time of a buffer's timestamp (DTS when `dts` and it has one) on `pad`.
fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef, dts: bool) -> Option<u64> {
    let ts = if dts {
        buffer.dts().or(buffer.pts())
    } else {
        buffer.pts()
    }?;
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(ts).map(|t| t.nseconds())
}

/// Adds a buffer probe on `element`'s src pad.
fn on_buffers(
    pipeline: &gst::Pipeline,
    element: &str,
    f: impl Fn(&gst::Pad, &mut gst::Buffer) + Send + Sync + 'static,
) {
    let pad = pipeline
        .by_name(element)
        .and_then(|e| e.static_pad("src"))
        .unwrap_or_else(|| panic!("no {element} src pad"));
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            f(pad, buffer);
        }
        gst::PadProbeReturn::Ok
    });
}

impl Publisher {
    fn start(url: &str, kind: PublisherKind) -> Publisher {
        let description = format!(
            "videotestsrc is-live=true pattern=ball motion=sweep \
             ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
             ! identity name=stamp ! {} ! video/x-h264,profile=main ! h264parse \
             ! identity name=encoded ! flvmux name=mux streamable=true \
             ! identity name=sent ! rtmp2sink location={url} \
             audiotestsrc is-live=true wave=sine freq=440 volume=0.1 \
             ! audioconvert ! audioresample ! avenc_aac ! aacparse ! mux.",
            kind.encoder()
        );
        let pipeline = gst::parse::launch(&description)
            .expect("publisher pipeline")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        // Running time of the picture → when it was made; then encoded DTS → when made.
        let made: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let encoded: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let encoder_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
        let sent_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
        let made_in = made.clone();
        on_buffers(&pipeline, "stamp", move |pad, buffer| {
            let Some(info) = pad
                .current_caps()
                .and_then(|c| gstreamer_video::VideoInfo::from_caps(&c).ok())
            else {
                return;
            };
            let buffer = buffer.make_mut();
            if let Some(rt) = running_time(pad, buffer, false) {
                made_in.lock().unwrap().insert(rt, Instant::now());
            }
            if let Ok(mut frame) =
                gstreamer_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info)
            {
                let stride = frame.plane_stride()[0] as usize;
                if let Ok(y) = frame.plane_data_mut(0) {
                    time_code::write(y, stride, time_code::ORIGIN_720P, time_code::now_ms());
                }
            }
        });
        let (encoded_in, out) = (encoded.clone(), encoder_ms.clone());
        on_buffers(&pipeline, "encoded", move |pad, buffer| {
            let made_at =
                running_time(pad, buffer, false).and_then(|rt| made.lock().unwrap().remove(&rt));
            if let (Some(at), Some(dts)) = (made_at, running_time(pad, buffer, true)) {
                out.lock().unwrap().push(at.elapsed().as_secs_f64() * 1e3);
                encoded_in.lock().unwrap().insert(dts, at);
            }
        });
        let out = sent_ms.clone();
        on_buffers(&pipeline, "sent", move |pad, buffer| {
            if let Some(at) =
                running_time(pad, buffer, true).and_then(|rt| encoded.lock().unwrap().remove(&rt))
            {
                out.lock().unwrap().push(at.elapsed().as_secs_f64() * 1e3);
            }
        });
        pipeline
            .set_state(gst::State::Playing)
            .expect("publisher playing");
        Publisher {
            pipeline,
            encoder_ms,
            sent_ms,
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

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

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
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
    let p50 = percentile(&mut run.samples, 0.5);
    let p95 = percentile(&mut run.samples, 0.95);
    let p99 = percentile(&mut run.samples, 0.99);
    let encoder = percentile(&mut run.encoder_ms, 0.5);
    let sent = percentile(&mut run.sent_ms, 0.5);
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
