//! Fan-out: N WebRTC viewers of one 720p30 2.5 Mb/s stream, Fieldcast against the Janus
//! streaming plugin, side by side in one run, and time to first frame for viewers joining a
//! running stream.
//!
//! Fieldcast plays its demo studio (the built-in test pattern, encoded by the studio). Janus
//! gets the same test pattern encoded with the studio's own x264 settings and payloader by a
//! separate `gst-launch-1.0`, as RTP on loopback, so the Janus process does fan-out only. The
//! viewers are the project's load generator (src/egress/swarm.rs): str0m sessions on one
//! thread, joining 20 ms apart. Per server: CPU from /proc over a window with everyone
//! joined (Fieldcast's studio-alone CPU, measured just before, subtracted), per viewer and
//! per packet delivered (as counted by the viewers), the load generator's own CPU, RSS per
//! viewer, gaps, and time to first frame.
//!
//! Run: `cargo bench --bench fanout` (or `make bench`); `-- --quick` for fewer viewers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fieldcast::egress::client::{Signalling, Whep};
use fieldcast::egress::swarm::{self, SwarmOptions, SwarmProgress};

mod harness;
mod peers;

use harness::{Server, percentile, self_cpu};
use peers::{Janus, Peer};

struct Row {
    viewers: usize,
    played: usize,
    server_cores: f64,
    base_cores: f64,
    packets_per_s: f64,
    gen_cores: f64,
    rss_per_viewer_kib: f64,
    with_gaps: usize,
    gap_frames: u64,
    ttff_p50: Duration,
    ttff_p95: Duration,
}

impl Row {
    fn egress_cores(&self) -> f64 {
        (self.server_cores - self.base_cores).max(0.0)
    }
    fn per_packet_us(&self) -> f64 {
        self.egress_cores() * 1e6 / self.packets_per_s.max(1.0)
    }
}

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Runs `viewers` swarm members against `signalling` while `usage` reads the server's CPU
/// seconds and RSS; `base` is the server's CPU (cores) and RSS with no viewer.
fn measure(
    viewers: usize,
    window: Duration,
    signalling: Box<dyn Signalling + Send>,
    usage: &dyn Fn() -> (f64, u64),
    base: (f64, u64),
) -> Row {
    let progress = Arc::new(SwarmProgress::default());
    let settle = Duration::from_secs(3);
    let options = SwarmOptions {
        viewers,
        join_interval: Duration::from_millis(20),
        watch: settle + window + Duration::from_secs(1),
        progress: progress.clone(),
    };
    let swarm = std::thread::spawn(move || swarm::run(signalling.as_ref(), &options));
    while progress.joined.load(Ordering::Relaxed) < viewers && !swarm.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(settle);
    let (cpu0, _) = usage();
    let packets0 = progress.packets.load(Ordering::Relaxed);
    let gen0 = self_cpu();
    std::thread::sleep(window);
    let (cpu1, rss) = usage();
    let packets1 = progress.packets.load(Ordering::Relaxed);
    let gen1 = self_cpu();
    let report = swarm.join().expect("swarm thread");
    let secs = window.as_secs_f64();
    let played: Vec<_> = report
        .viewers
        .iter()
        .filter(|v| v.first_frame_after.is_some())
        .collect();
    if let Some(error) = report.viewers.iter().find_map(|v| v.error.as_ref()) {
        eprintln!("  (a viewer failed: {error})");
    }
    let mut ttff: Vec<Duration> = played.iter().filter_map(|v| v.first_frame_after).collect();
    Row {
        viewers,
        played: played.len(),
        server_cores: (cpu1 - cpu0) / secs,
        base_cores: base.0,
        packets_per_s: (packets1 - packets0) as f64 / secs,
        gen_cores: (gen1 - gen0) / secs,
        rss_per_viewer_kib: rss.saturating_sub(base.1) as f64 / viewers as f64,
        with_gaps: report.viewers.iter().filter(|v| v.gaps > 0).count(),
        gap_frames: report.viewers.iter().map(|v| v.gaps).sum(),
        ttff_p50: percentile(&mut ttff, 0.5),
        ttff_p95: percentile(&mut ttff, 0.95),
    }
}

/// CPU (cores) and RSS of a process with no viewer, over `secs`.
fn idle(usage: &dyn Fn() -> (f64, u64), secs: u64) -> (f64, u64) {
    let (c0, _) = usage();
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, rss) = usage();
    ((c1 - c0) / secs as f64, rss)
}

fn fieldcast(viewers: usize, window: Duration) -> Row {
    let server = Server::start(&bench_dir("bench-fanout"), &["--demo"]);
    std::thread::sleep(Duration::from_secs(2));
    let usage = || server.usage();
    let base = idle(&usage, 3);
    let session = server.demo_session.clone().expect("a demo session");
    let whep = Whep {
        url: format!("http://{}/whep/{session}", server.http),
    };
    measure(viewers, window, Box::new(whep), &usage, base)
}

/// The studio's test pattern with the studio's encoder settings, as RTP to Janus.
fn janus_feed(janus: &Janus, dir: &std::path::Path) -> Peer {
    let (video, audio) = janus.rtp_targets();
    let pipeline = format!(
        "videotestsrc is-live=true pattern=smpte75 horizontal-speed=4 \
         ! video/x-raw,width=1280,height=720,framerate=30/1 \
         ! timeoverlay font-desc=\"Sans 28\" valignment=bottom halignment=right \
         ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max=60 bframes=0 \
           sliced-threads=true byte-stream=true trellis=false \
         ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au \
         ! rtph264pay config-interval=0 mtu=1200 aggregate-mode=zero-latency pt=96 \
         ! udpsink host=127.0.0.1 port={} sync=false \
         audiotestsrc is-live=true wave=sine freq=440 volume=0.15 samplesperbuffer=960 \
         ! audioconvert ! audioresample ! opusenc bitrate=64000 frame-size=20 \
         ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port={} sync=false",
        video.port(),
        audio.port()
    );
    let mut command = Command::new("gst-launch-1.0");
    command.arg("-q").args(shell_words(&pipeline));
    Peer::spawn(
        "gst-launch (Janus feed)",
        &mut command,
        &dir.join("feed.log"),
    )
}

/// Splits a gst-launch description into arguments, keeping double-quoted values whole.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn janus(viewers: usize, window: Duration) -> Row {
    let dir = bench_dir("bench-janus");
    let _ = std::fs::remove_dir_all(&dir);
    let janus = Janus::start(&dir);
    let mut feed = janus_feed(&janus, &dir);
    std::thread::sleep(Duration::from_secs(2));
    feed.check_running();
    let usage = || janus.peer.usage();
    let base = idle(&usage, 3);
    let row = measure(viewers, window, Box::new(janus.viewer()), &usage, base);
    feed.check_running();
    row
}

fn print_header() {
    println!(
        "| server | viewers (played) | server CPU | fan-out CPU | per viewer | per packet delivered | load generator CPU | RSS per viewer | viewers with gaps | frames after a gap | TTFF p50 | TTFF p95 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn print_row(server: &str, r: &Row) {
    println!(
        "| {server} | {} ({}) | {:.2} cores | {:.3} cores | {:.2} % of a core | {:.2} µs | {:.2} cores | {:.0} KiB | {} | {} | {:.0} ms | {:.0} ms |",
        r.viewers,
        r.played,
        r.server_cores,
        r.egress_cores(),
        r.egress_cores() * 100.0 / r.viewers as f64,
        r.per_packet_us(),
        r.gen_cores,
        r.rss_per_viewer_kib,
        r.with_gaps,
        r.gap_frames,
        r.ttff_p50.as_secs_f64() * 1e3,
        r.ttff_p95.as_secs_f64() * 1e3,
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    fieldcast::server::raise_fd_limit();
    let window = Duration::from_secs(if quick { 5 } else { 10 });
    // Steps; past the fixed ones, keep adding 100 viewers while a server holds 0 gaps.
    let fixed: &[usize] = if quick { &[50, 100] } else { &[50, 100, 200] };
    let ceiling = if quick { 100 } else { 600 };
    println!(
        "fan-out benchmark: one 720p30 2.5 Mb/s stream to N viewers (load generator on one thread), Fieldcast against Janus"
    );
    println!();
    print_header();
    let mut ratios = Vec::new();
    let mut held = [0usize; 2];
    let mut going = [true; 2];
    let mut n_index = 0;
    loop {
        let n = fixed
            .get(n_index)
            .copied()
            .unwrap_or_else(|| fixed[fixed.len() - 1] + 100 * (n_index + 1 - fixed.len()));
        if n > ceiling || (n_index >= fixed.len() && !going.iter().any(|g| *g)) {
            break;
        }
        let mut rows: [Option<Row>; 2] = [None, None];
        for (i, name) in ["Fieldcast", "Janus"].iter().enumerate() {
            if n_index >= fixed.len() && !going[i] {
                continue;
            }
            let row = if i == 0 {
                fieldcast(n, window)
            } else {
                janus(n, window)
            };
            print_row(name, &row);
            if row.with_gaps == 0 && row.played == n {
                held[i] = held[i].max(n);
            } else {
                going[i] = false;
            }
            rows[i] = Some(row);
        }
        if let [Some(f), Some(j)] = &rows {
            ratios.push((n, f.per_packet_us() / j.per_packet_us().max(1e-9)));
        }
        n_index += 1;
    }
    println!();
    for (n, ratio) in &ratios {
        println!("{n} viewers: Fieldcast / Janus fan-out CPU per packet delivered = {ratio:.2}×");
    }
    println!(
        "most viewers held with 0 gaps (tried up to {ceiling}): Fieldcast {}, Janus {}",
        held[0], held[1]
    );
    println!(
        "(fan-out CPU = server CPU minus the same server with no viewer, measured just before: Fieldcast's studio encodes, Janus's feed is a separate process; TTFF = from the start of signalling to the first complete video frame)"
    );
}
