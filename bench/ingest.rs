//! What each way in costs: the server's CPU for one studio fed by each input (RTMP H.264,
//! WHIP H.264, WHIP VP8, SRT H.264, HEVC and AV1 over Enhanced RTMP), and glass-to-glass
//! latency of WHIP-in beside RTMP-in, in one run.
//!
//! Every input is a live 1280×720 30 fps encode by its publisher, in a process or thread of
//! its own (its CPU is not counted): RTMP from GStreamer (x264 zerolatency, the latency
//! benchmark's stamped publisher), WHIP from aiortc (its libx264 or libvpx, a sliding gradient
//! with the same time code), SRT from ffmpeg (libx264 veryfast, testsrc2), HEVC and AV1 from
//! fieldcast-probe's E-RTMP publisher (x265enc, av1enc realtime, a scrolling test picture).
//! Each input gets a fresh server and one show (card, counters, countdown) with no viewer
//! while its CPU is measured; then, for the stamped inputs, one WHEP viewer reads the time
//! code for the latency. The inputs' bitrates and frame rates differ (each encoder's own
//! rate control; av1enc may not keep 30 fps on two cores): the table shows what arrived.
//!
//! Run: `cargo bench --bench ingest` (or `make bench`); `-- --quick` for shorter windows.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod harness;
mod stamped;

use fieldcast_engine::media::time_code;
use fieldcast_probe::rtmp_publish::{EnhancedCodec, EnhancedPublish, publish};
use fieldcast_probe::whep::{PlayOptions, play};
use harness::Server;
use stamped::{Publisher, PublisherKind};

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A publisher of one input, stopped when dropped.
enum Feed {
    Stamped(#[allow(dead_code)] Publisher),
    Process(Child),
    Thread(#[allow(dead_code)] std::thread::JoinHandle<()>),
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Feed::Process(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Input {
    RtmpH264,
    WhipH264,
    WhipVp8,
    SrtH264,
    Hevc,
    Av1,
}

impl Input {
    fn label(self) -> &'static str {
        match self {
            Input::RtmpH264 => "RTMP H.264 (GStreamer x264 zerolatency)",
            Input::WhipH264 => "WHIP H.264 (aiortc)",
            Input::WhipVp8 => "WHIP VP8 (aiortc)",
            Input::SrtH264 => "SRT H.264 + AAC (ffmpeg)",
            Input::Hevc => "E-RTMP HEVC (x265enc)",
            Input::Av1 => "E-RTMP AV1 (av1enc realtime)",
        }
    }

    fn stamped(self) -> bool {
        matches!(self, Input::RtmpH264 | Input::WhipH264 | Input::WhipVp8)
    }

    fn start(self, server: &Server, id: &str, key: &str, seconds: u64) -> Feed {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        match self {
            Input::RtmpH264 => Feed::Stamped(Publisher::start(
                &server.publish_url(key),
                PublisherKind::ZeroLatency,
            )),
            Input::WhipH264 | Input::WhipVp8 => {
                let codec = if self == Input::WhipH264 {
                    "H264"
                } else {
                    "VP8"
                };
                let mut child = Command::new(root.join("target/aiortc/bin/python"))
                    .arg(root.join("tests/whip/publish.py"))
                    .arg(format!("http://{}/whip/{id}", server.http))
                    .args([
                        key,
                        codec,
                        &seconds.to_string(),
                        "--size",
                        "1280x720",
                        "--moving",
                    ])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("aiortc (scripts/deps.sh bench installs it into target/aiortc)");
                let mut first = String::new();
                let stdout = child.stdout.take().expect("stdout");
                let mut lines = std::io::BufReader::new(stdout);
                lines.read_line(&mut first).expect("aiortc's first line");
                assert!(first.contains("connected"), "aiortc: {first}");
                std::thread::spawn(move || for _ in lines.lines() {});
                Feed::Process(child)
            }
            Input::SrtH264 => {
                let srt = server.srt.expect("this build has SRT");
                let child = Command::new("ffmpeg")
                    .args(["-nostdin", "-loglevel", "error", "-re"])
                    .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
                    .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                    .args([
                        "-c:v",
                        "libx264",
                        "-preset",
                        "veryfast",
                        "-tune",
                        "zerolatency",
                    ])
                    .args([
                        "-b:v", "2500k", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    ])
                    .args(["-f", "mpegts", &format!("srt://{srt}?streamid={key}")])
                    .spawn()
                    .expect("ffmpeg");
                Feed::Process(child)
            }
            Input::Hevc | Input::Av1 => {
                let codec = if self == Input::Hevc {
                    EnhancedCodec::Hevc
                } else {
                    EnhancedCodec::Av1
                };
                let rtmp = server.rtmp;
                let key = key.to_string();
                let options = EnhancedPublish {
                    width: 1280,
                    height: 720,
                    fps: 30,
                    pattern: "smpte",
                    kbps: 2000,
                    ..EnhancedPublish::new(codec, Duration::from_secs(seconds))
                };
                // Its server is stopped as soon as the window is measured: only an end
                // before that is news.
                let measuring = std::time::Instant::now() + Duration::from_secs(seconds - 2);
                Feed::Thread(std::thread::spawn(move || {
                    if let Err(e) = publish(rtmp, &key, &options)
                        && std::time::Instant::now() < measuring
                    {
                        eprintln!("E-RTMP publisher: {e}");
                    }
                }))
            }
        }
    }
}

struct Row {
    cores: f64,
    fps: f64,
    kbps: f64,
    latency: Option<(f64, f64, usize)>,
}

fn measure(input: Input, window: Duration, watch: Duration) -> Row {
    let dir = bench_dir("bench-ingest");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let server = Server::start(&dir, &[]);
    let (id, key) = server.show("Ingest cost");
    // Long enough for the measurement and the viewer; the server outlives every publisher.
    let seconds = if input.stamped() {
        (window + watch).as_secs() + 15
    } else {
        window.as_secs() + 6
    };
    let _feed = input.start(&server, &id, &key, seconds);
    std::thread::sleep(Duration::from_secs(5));
    let (c0, _) = server.usage();
    std::thread::sleep(window);
    let (c1, _) = server.usage();
    let ingest = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
    let latency = input.stamped().then(|| {
        let report = play(
            &format!("http://{}/whep/{id}", server.http),
            &PlayOptions {
                duration: watch,
                decode: true,
                time_code: Some(time_code::ORIGIN_720P),
                ..Default::default()
            },
        );
        let mut ms: Vec<f64> = report
            .map(|r| r.time_code_latency_ms.iter().map(|&v| v as f64).collect())
            .unwrap_or_default();
        let n = ms.len();
        (
            harness::quantile_of(&mut ms, 0.5),
            harness::quantile_of(&mut ms, 0.95),
            n,
        )
    });
    Row {
        cores: (c1 - c0) / window.as_secs_f64(),
        fps: ingest["video"]["fps"].as_f64().unwrap_or(f64::NAN),
        kbps: ingest["bitrate_kbps"].as_f64().unwrap_or(f64::NAN),
        latency,
    }
}

fn main() {
    gstreamer::init().expect("GStreamer");
    let quick = std::env::args().any(|a| a == "--quick");
    let window = Duration::from_secs(if quick { 6 } else { 15 });
    let watch = Duration::from_secs(if quick { 8 } else { 20 });
    println!(
        "ingest cost per studio: one 1280×720 30 fps input, a show with card, counters and countdown, no viewer while measured"
    );
    println!();
    println!(
        "| input | server CPU | ratio to RTMP H.264 | arrived: fps, kb/s | glass-to-glass p50 / p95 (frames read) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut rtmp_cores = f64::NAN;
    for input in [
        Input::RtmpH264,
        Input::WhipH264,
        Input::WhipVp8,
        Input::SrtH264,
        Input::Hevc,
        Input::Av1,
    ] {
        let row = measure(input, window, watch);
        if input == Input::RtmpH264 {
            rtmp_cores = row.cores;
        }
        let latency = match row.latency {
            Some((p50, p95, n)) if n > 0 => format!("{p50:.0} / {p95:.0} ms ({n})"),
            Some(_) => "no time code read".into(),
            None => "–".into(),
        };
        let fps = if row.fps.is_nan() {
            "–".to_string()
        } else {
            format!("{:.0}", row.fps)
        };
        println!(
            "| {} | {:.2} cores | {:.2}× | {fps}, {:.0} | {latency} |",
            input.label(),
            row.cores,
            row.cores / rtmp_cores,
            row.kbps,
        );
    }
    println!();
    println!(
        "(Server CPU over {} s per input, fresh server each; fps from the publisher's timestamps where the input is parsed (not SRT's transport stream), kb/s over the last 5 s. Latency: a WHEP viewer reading the time code the publisher wrote into each frame, {} s.)",
        window.as_secs(),
        watch.as_secs()
    );
}
