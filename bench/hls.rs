//! HLS and Low-Latency HLS, side by side in one run:
//!
//! 1. What a shorter keyframe interval costs: x264 as the studio runs it (veryfast,
//!    zerolatency, constrained baseline), constant quality, 1 s against 2 s keyframes, on two
//!    kinds of picture: bitrate and SSIM.
//! 2. Glass-to-glass latency from one stamped publisher (1 s keyframes) sent at once to
//!    Fieldcast and to nginx-rtmp with its own HLS (`hls on; hls_fragment 1s`): Fieldcast's
//!    LL-HLS in the watch page (hls.js in Chromium), Fieldcast's plain HLS and nginx-rtmp's
//!    HLS through GStreamer's `hlsdemux` playing in real time. The time code is
//!    crates/engine/src/media/time_code.rs. Each reader starts several times (a plain player's latency
//!    depends on where in a segment it starts, an LL-HLS player's on whether it stalled),
//!    and the frames of all its readings are pooled.
//! 3. Scale: LL-HLS clients (`fieldcast_probe::hls_load`, what `fieldcast-probe hls-swarm` runs) doing
//!    blocking reloads and fetching every part, straight from Fieldcast, then through the
//!    README's nginx `proxy_cache`; Fieldcast's CPU per client, late parts, and what reaches
//!    Fieldcast per part through the cache.
//!
//! The cost of HLS when nobody watches is in the transcode benchmark
//! (`FIELDCAST_BASELINE_BIN`: this build against another, studios with no HLS viewer).
//!
//! Run: `cargo bench --bench hls` (or `make bench`); `-- --quick` for short windows and
//! 500 clients instead of 2,000; `-- keyframes`, `-- latency` or `-- scale` for one part.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldcast_engine::media::time_code;
use fieldcast_probe::hls_load::{self as load, LoadOptions};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video::prelude::*;

mod harness;
mod peers;
mod stamped;

use harness::{Server, quantile_of};
use peers::{NginxRtmp, Peer};
use stamped::{Publisher, PublisherKind};

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// x264 at constant quality (CRF 23) with a keyframe every `keyint` frames: (kb/s, SSIM).
fn encode(source: &str, keyint: u32, seconds: u32) -> (f64, f64) {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-f", "lavfi", "-i"])
        .arg(format!("{source}=size=1280x720:rate=30"))
        .args(["-t", &seconds.to_string(), "-c:v", "libx264"])
        .args([
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-profile:v",
            "baseline",
        ])
        .args(["-crf", "23", "-g", &keyint.to_string(), "-keyint_min"])
        .arg(keyint.to_string())
        .args([
            "-pix_fmt",
            "yuv420p",
            "-sc_threshold",
            "0",
            "-x264-params",
            "ssim=1",
        ])
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg (scripts/deps.sh bench installs it)");
    let log = String::from_utf8_lossy(&output.stderr);
    let after = |marker: &str| -> f64 {
        log.lines()
            .find_map(|l| l.split(marker).nth(1))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {marker} in ffmpeg's output:\n{log}"))
    };
    (after("kb/s:"), after("SSIM Mean Y:"))
}

fn keyframe_cost(quick: bool) {
    let seconds = if quick { 10 } else { 30 };
    println!(
        "## 1. The keyframe interval's cost (x264 veryfast zerolatency baseline, CRF 23, 720p30, {seconds} s)"
    );
    println!();
    println!("| picture | 2 s keyframes | 1 s keyframes | bitrate 1 s / 2 s |");
    println!("|---|---:|---:|---:|");
    for (name, source) in [
        ("test card with moving parts (testsrc2)", "testsrc2"),
        ("whole-picture motion (mandelbrot zoom)", "mandelbrot"),
    ] {
        let (two, ssim_two) = encode(source, 60, seconds);
        let (one, ssim_one) = encode(source, 30, seconds);
        println!(
            "| {name} | {two:.0} kb/s, SSIM {ssim_two:.4} | {one:.0} kb/s, SSIM {ssim_one:.4} | {:.2}× |",
            one / two
        );
    }
    println!();
}

/// Plays an HLS playlist with GStreamer's hlsdemux in real time (a clock-synchronised sink,
/// as a player shows frames) and reads the time code of every frame: latencies in ms.
fn hlsdemux_latency(url: &str, seconds: Duration) -> (Vec<f64>, usize) {
    let description = format!(
        "souphttpsrc location={url} ! hlsdemux ! decodebin ! videoconvert \
         ! video/x-raw,format=I420 ! appsink name=sink sync=true max-buffers=4"
    );
    let pipeline = gst::parse::launch(&description)
        .expect("hlsdemux pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .expect("appsink");
    let samples = Arc::new(Mutex::new(Vec::new()));
    let frames = Arc::new(Mutex::new(0usize));
    let (s, f) = (samples.clone(), frames.clone());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(info) = gstreamer_video::VideoInfo::from_caps(caps) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                *f.lock().unwrap() += 1;
                if let Ok(frame) =
                    gstreamer_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                    && let Ok(y) = frame.plane_data(0)
                    && let Some(code) =
                        time_code::read(y, frame.plane_stride()[0] as usize, time_code::ORIGIN_720P)
                {
                    let now = time_code::now_ms();
                    s.lock().unwrap().push(now.wrapping_sub(code) as f64);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline
        .set_state(gst::State::Playing)
        .expect("hlsdemux playing");
    std::thread::sleep(seconds);
    let _ = pipeline.set_state(gst::State::Null);
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let frames = *frames.lock().unwrap();
    (samples, frames)
}

/// hls.js in Chromium, read the same way: the watch page's LL-HLS (`args` = its URL), or a
/// bare hls.js at its defaults (`args` = `--plain`, the playlist, hls.js's URL).
fn chromium_latency(args: &[&str], seconds: Duration) -> (Vec<f64>, usize, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/hls-latency.mjs");
    let output = Command::new("node")
        .arg(&script)
        .args(args)
        .arg(seconds.as_secs().to_string())
        .output()
        .expect("run node (make test installs it and the browser scripts' packages)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(result) = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        eprintln!(
            "  Chromium reader failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return (Vec::new(), 0, String::new());
    };
    let samples = result["samples"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    (
        samples,
        result["frames"].as_u64().unwrap_or(0) as usize,
        result["debug"].as_str().unwrap_or("").replace('\n', "; "),
    )
}

fn latency_row(
    name: &str,
    reader: &str,
    mut samples: Vec<f64>,
    frames: usize,
    target: &str,
) -> f64 {
    let p50 = quantile_of(&mut samples, 0.5);
    let p95 = quantile_of(&mut samples, 0.95);
    let p99 = quantile_of(&mut samples, 0.99);
    println!(
        "| {name} | {reader} | {} of {frames} | {:.2} s | {:.2} s | {:.2} s | {target} |",
        samples.len(),
        p50 / 1e3,
        p95 / 1e3,
        p99 / 1e3
    );
    p50
}

/// The HLS segment durations a playlist lists now.
fn segment_durations(url: &str) -> Vec<f64> {
    ureq::get(url)
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:")?.split(',').next()?.parse().ok())
        .collect()
}

/// Where a plain HLS player starts depends on how much of the newest segment is made when it
/// reads the playlist: its latency moves by up to a segment with that phase. Each plain reader
/// therefore starts four times, a quarter of a segment apart after a segment boundary (the
/// playlist's newest segment changing), and the frames of all four are pooled.
const PHASES: [f64; 4] = [0.0, 0.25, 0.5, 0.75];

/// Readings of the LL-HLS watch page, pooled.
const LL_READINGS: usize = 4;

/// Waits for the playlist's newest segment to change, then `phase` of `segment` seconds.
fn at_phase(url: &str, phase: f64, segment: f64) {
    let newest = || {
        ureq::get(url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| {
                t.lines()
                    .rfind(|l| !l.starts_with('#') && !l.is_empty())
                    .map(String::from)
            })
    };
    let before = newest();
    let deadline = Instant::now() + Duration::from_secs(5);
    while newest() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs_f64(phase * segment));
}

/// A plain reader started at each of [`PHASES`], `each` long: all samples and frames.
fn phased(
    url: &str,
    segment: f64,
    each: Duration,
    read: impl Fn(Duration) -> (Vec<f64>, usize),
) -> (Vec<f64>, usize) {
    let (mut samples, mut frames) = (Vec::new(), 0);
    for phase in PHASES {
        at_phase(url, phase, segment);
        let (s, f) = read(each);
        samples.extend(s);
        frames += f;
    }
    (samples, frames)
}

fn latency(quick: bool) {
    let seconds = Duration::from_secs(if quick { 15 } else { 45 });
    let dir = bench_dir("bench-hls-latency");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let server = Server::start(&dir.join("fieldcast"), &[]);
    let (id, key) = server.show("HLS latency probe");
    let nginx = NginxRtmp::start_with_hls(&dir.join("nginx"));
    let publisher = Publisher::start_to(
        &[&server.publish_url(&key), &nginx.url("probe")],
        PublisherKind::OneSecondKeyframes,
    );
    std::thread::sleep(Duration::from_secs(3));
    let base = format!("http://{}", server.http);
    let plain = format!("{base}/hls/{id}/index.m3u8");
    let theirs = format!(
        "http://127.0.0.1:{}/hls/probe.m3u8",
        nginx.hls_port.unwrap()
    );
    // Both HLS outputs running and a few segments deep before anyone measures.
    let _ = ureq::get(&plain).call();
    std::thread::sleep(Duration::from_secs(8));

    let each = (seconds / PHASES.len() as u32).max(Duration::from_secs(5));
    println!(
        "## 2. Glass-to-glass latency (one publisher, x264 zerolatency with 1 s keyframes, to both servers at once; the LL-HLS watch page opened {LL_READINGS} times; each plain HLS reader started {} times, a quarter segment apart after a segment boundary; {} s each, frames pooled)",
        PHASES.len(),
        each.as_secs()
    );
    println!();
    println!("| output | player | frames read (of shown) | p50 | p95 | p99 | target (p50) |");
    println!("|---|---|---:|---:|---:|---:|---|");
    // The watch page, opened LL_READINGS times and the frames pooled: hls.js holds 1 s more
    // for the rest of a reading once it stalled, so one reading is one draw of that.
    let (mut samples, mut frames, mut debug) = (Vec::new(), 0, String::new());
    for _ in 0..LL_READINGS {
        let (s, f, d) = chromium_latency(&[&format!("{base}/watch/{id}")], each);
        samples.extend(s);
        frames += f;
        debug = d;
    }
    let ll = latency_row(
        "Fieldcast LL-HLS (parts 233 ms, PART-HOLD-BACK 0.75 s)",
        "hls.js 1.7.4 in Chromium (the watch page)",
        samples,
        frames,
        "≤ 1.5 s",
    );
    let ours_segments = segment_durations(&plain);
    let segment = ours_segments.iter().sum::<f64>() / ours_segments.len().max(1) as f64;
    let their_segments = segment_durations(&theirs);
    let their_segment = their_segments.iter().sum::<f64>() / their_segments.len().max(1) as f64;
    let ours_name = format!("Fieldcast plain HLS (segments {segment:.2} s)");
    let theirs_name = format!("nginx-rtmp HLS, `hls_fragment 1s` (segments {their_segment:.2} s)");
    let target = format!("≤ 3 × {segment:.2} + 1 = {:.1} s", 3.0 * segment + 1.0);
    let hls_js = format!("{base}/web/hls.light.min.js");
    let mut plain_p50 = Vec::new();
    for (name, url, target, segment) in [
        (&ours_name, &plain, target.as_str(), segment),
        (&theirs_name, &theirs, "(peer)", their_segment),
    ] {
        let (samples, frames) = phased(url, segment, each, |each| {
            let (samples, frames, _) = chromium_latency(&["--plain", url, &hls_js], each);
            (samples, frames)
        });
        let js = latency_row(
            name,
            "hls.js 1.7.4 in Chromium, defaults",
            samples,
            frames,
            target,
        );
        let (samples, frames) = phased(url, segment, each, |each| hlsdemux_latency(url, each));
        let demux = latency_row(name, "GStreamer hlsdemux", samples, frames, target);
        plain_p50.push((js, demux));
    }
    let (fieldcast_plain, nginx_plain) = (plain_p50[0].0, plain_p50[1].0);
    let verdict = |p50: f64, limit: f64| {
        if p50 <= limit { "meets" } else { "MISSES" }
    };
    let plain_limit = (3.0 * segment + 1.0) * 1e3;
    println!();
    println!(
        "LL-HLS p50 {:.2} s ({} ≤ 1.5 s); Fieldcast plain HLS p50 {:.2} s in hls.js, {:.2} s in hlsdemux ({} and {} ≤ {:.1} s); plain HLS, Fieldcast / nginx-rtmp p50: {:.2}× in hls.js, {:.2}× in hlsdemux. The watch page's own view: {debug}",
        ll / 1e3,
        verdict(ll, 1500.0),
        fieldcast_plain / 1e3,
        plain_p50[0].1 / 1e3,
        verdict(fieldcast_plain, plain_limit),
        verdict(plain_p50[0].1, plain_limit),
        plain_limit / 1e3,
        fieldcast_plain / nginx_plain,
        plain_p50[0].1 / plain_p50[1].1
    );
    println!();
    drop(publisher);
    drop(nginx);
}

/// The part number the live playlist hints at next.
fn next_part(url: &str) -> u64 {
    let text = ureq::get(url)
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .rfind(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .and_then(|l| {
            l.split("URI=\"")
                .nth(1)?
                .split(".ts")
                .next()?
                .rsplit('.')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

struct Swarm {
    report: load::LoadReport,
    server_cores: f64,
    cache_cores: f64,
    parts_made: u64,
    parts_at_origin: f64,
    playlists_at_origin: f64,
}

fn swarm(
    server: &Server,
    url: &str,
    clients: usize,
    window: Duration,
    cache_peer: Option<&Peer>,
) -> Swarm {
    let origin_playlist = format!(
        "http://{}{}",
        server.http,
        &url[url.find("/hls/").unwrap()..]
    );
    let options = LoadOptions {
        url: url.to_string(),
        clients,
        ramp: Duration::from_secs(15),
        play: window,
        sources: load::parse_sources("127.0.0.2+250").unwrap(),
    };
    let ramp = options.ramp;
    let runner = std::thread::spawn(move || load::run(&options));
    std::thread::sleep(ramp);
    let made_before = next_part(&origin_playlist);
    let parts_before = server.metric("fieldcast_hls_parts_served_total") as f64;
    let playlists_before = server.metric("fieldcast_hls_playlists_served_total") as f64;
    let (server_before, _) = server.usage();
    let cache_before = cache_peer.map(|p| p.usage().0).unwrap_or(0.0);
    std::thread::sleep(window);
    let (server_after, _) = server.usage();
    let cache_after = cache_peer.map(|p| p.usage().0).unwrap_or(0.0);
    let made = next_part(&origin_playlist).saturating_sub(made_before);
    let parts = server.metric("fieldcast_hls_parts_served_total") as f64 - parts_before;
    let playlists = server.metric("fieldcast_hls_playlists_served_total") as f64 - playlists_before;
    let report = runner.join().expect("load thread").expect("load run");
    let secs = window.as_secs_f64();
    Swarm {
        report,
        server_cores: (server_after - server_before) / secs,
        cache_cores: (cache_after - cache_before) / secs,
        parts_made: made,
        parts_at_origin: parts,
        playlists_at_origin: playlists,
    }
}

fn scale(quick: bool) {
    let clients = if quick { 500 } else { 2000 };
    let window = Duration::from_secs(if quick { 10 } else { 30 });
    let dir = bench_dir("bench-hls-scale");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let server = Server::start(&dir.join("fieldcast"), &[]);
    let (id, key) = server.show("HLS at scale");
    let _publisher = Publisher::start(&server.publish_url(&key), PublisherKind::ZeroLatency);
    std::thread::sleep(Duration::from_secs(3));
    let origin = format!("http://{}/hls/{id}/ll.m3u8", server.http);
    // HLS running, nobody fetching: the baseline the clients' cost is measured against.
    let keep_warm = Arc::new(AtomicBool::new(true));
    let warm = {
        let (keep, url) = (keep_warm.clone(), origin.clone());
        std::thread::spawn(move || {
            while keep.load(Ordering::Relaxed) {
                let _ = ureq::get(&url).call();
                std::thread::sleep(Duration::from_secs(5));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    let (c0, _) = server.usage();
    std::thread::sleep(window);
    let (c1, _) = server.usage();
    let baseline = (c1 - c0) / window.as_secs_f64();

    let direct = swarm(&server, &origin, clients, window, None);
    let (nginx, listen) = peers::nginx_cache(server.http, &dir.join("nginx"));
    let cached = swarm(
        &server,
        &format!("http://{listen}/hls/{id}/ll.m3u8"),
        clients,
        window,
        Some(&nginx),
    );
    keep_warm.store(false, Ordering::Relaxed);
    let _ = warm.join();

    println!(
        "## 3. Scale: {clients} LL-HLS clients on this machine's 2 cores (one load thread beside the server), {} s measured after a 15 s ramp",
        window.as_secs()
    );
    println!();
    println!(
        "Fieldcast with HLS on and no client: {:.2} cores (the studio's decode, overlays and encode, and the AAC encode).",
        baseline
    );
    println!();
    println!(
        "| path | clients played | Fieldcast CPU | per client (above the baseline) | nginx CPU | delivered | parts fetched | late (> 250 ms after the first client) | fell behind the window (went on from the live edge) | arrival spread p50 / p99 | part requests at Fieldcast per part made | playlist requests at Fieldcast per part made |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, s) in [
        ("straight from Fieldcast", &direct),
        ("through nginx `proxy_cache`", &cached),
    ] {
        let r = &s.report;
        println!(
            "| {name} | {} of {} | {:.2} cores | {:.3} % of a core | {} | {:.0} Mbit/s | {} | {:.1} % | {} | {:.0} / {:.0} ms | {:.2} | {:.2} |",
            r.playing,
            r.clients,
            s.server_cores,
            100.0 * (s.server_cores - baseline).max(0.0) / clients as f64,
            if s.cache_cores > 0.0 {
                format!("{:.2} cores", s.cache_cores)
            } else {
                "–".into()
            },
            r.bytes as f64 * 8.0 / r.window.as_secs_f64() / 1e6,
            r.parts_fetched,
            100.0 * r.parts_late as f64 / r.parts_fetched.max(1) as f64,
            r.fell_behind,
            r.spread_p50.as_secs_f64() * 1e3,
            r.spread_p99.as_secs_f64() * 1e3,
            s.parts_at_origin / s.parts_made.max(1) as f64,
            s.playlists_at_origin / s.parts_made.max(1) as f64,
        );
    }
    println!();
    for (name, s) in [("straight", &direct), ("through nginx", &cached)] {
        if let Some(e) = &s.report.first_error {
            println!(
                "{name}: {} clients stopped on an error; the first: {e}",
                s.report.errors
            );
            println!();
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    gst::init().expect("GStreamer");
    fieldcast_engine::process::raise_fd_limit();
    println!("# HLS and Low-Latency HLS");
    println!();
    // `cargo bench --bench hls -- [--quick] [keyframes] [latency] [scale]`: the named parts only.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| ["keyframes", "latency", "scale"].contains(&a.as_str()))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if wanted("keyframes") {
        keyframe_cost(quick);
    }
    if wanted("latency") {
        latency(quick);
    }
    if wanted("scale") {
        scale(quick);
    }
}
