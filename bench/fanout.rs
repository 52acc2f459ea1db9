//! Fan-out: N WebRTC viewers of one 720p30 2.5 Mb/s stream, Fieldcast against the Janus
//! streaming plugin, side by side in one run, and time to first frame for viewers joining a
//! running stream.
//!
//! Fieldcast plays its demo studio (the built-in test pattern, encoded by the studio). Janus
//! gets the same test pattern encoded with the studio's own x264 settings and payloader by a
//! separate `gst-launch-1.0`, as RTP on loopback, so the Janus process does fan-out only. The
//! viewers are the project's load generator (crates/probe/src/swarm.rs): str0m sessions on one
//! thread, joining 20 ms apart. Per server: the fan-out's CPU from /proc over a window with
//! everyone joined (Fieldcast: its egress threads, not the studio's; Janus: the process),
//! less the same with no viewer, per viewer and per packet delivered (as counted by the
//! viewers), its kernel share, the load generator's own CPU, RSS per viewer, gaps, and time
//! to first frame.
//!
//! Run: `cargo bench --bench fanout` (or `make bench`); `-- --quick` for fewer viewers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fieldcast_probe::swarm::{self, SwarmOptions, SwarmProgress};
use fieldcast_probe::whep::{Signalling, Whep, WhepOverTcp};

mod harness;
mod peers;

use harness::{Server, percentile, process_times, self_cpu, thread_times};
use peers::{Janus, Peer};

struct Row {
    viewers: usize,
    played: usize,
    server_cores: f64,
    /// CPU of the fan-out over the window, less the same with no viewer.
    fan_out_cores: f64,
    /// Of which system (kernel) time.
    kernel_cores: f64,
    /// Frames after a loss, all viewers, during the window.
    window_gaps: u64,
    packets_per_s: f64,
    gen_cores: f64,
    rss_per_viewer_kib: f64,
    with_gaps: usize,
    ttff_p50: Duration,
    ttff_p95: Duration,
}

impl Row {
    fn egress_cores(&self) -> f64 {
        self.fan_out_cores
    }
    fn per_packet_us(&self) -> f64 {
        self.egress_cores() * 1e6 / self.packets_per_s.max(1.0)
    }
}

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A server's CPU with no viewer: cores in all, of which system, and RSS (KiB).
struct Base {
    cores: f64,
    system: f64,
    rss: u64,
}

/// Where a server's fan-out runs: the whole process, or only its threads named so.
#[derive(Clone, Copy)]
enum FanOut {
    Process,
    /// Threads whose names start with one of these.
    Threads(&'static [&'static str]),
}

fn cpu_times(pid: u32, fan_out: FanOut) -> (f64, f64) {
    match fan_out {
        FanOut::Process => {
            let (user, system, _) = process_times(pid);
            (user, system)
        }
        FanOut::Threads(prefixes) => prefixes
            .iter()
            .map(|prefix| thread_times(pid, prefix))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1)),
    }
}

/// Runs `viewers` swarm members against `signalling` while reading the CPU of the server
/// process `pid` (and of its fan-out); `base` is the same with no viewer.
fn measure(
    viewers: usize,
    window: Duration,
    signalling: Box<dyn Signalling + Send>,
    pid: u32,
    fan_out: FanOut,
    base: Base,
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
    let (user0, sys0, _) = process_times(pid);
    let (fan_user0, fan_sys0) = cpu_times(pid, fan_out);
    let packets0 = progress.packets.load(Ordering::Relaxed);
    let gaps0 = progress.gaps.load(Ordering::Relaxed);
    let gen0 = self_cpu();
    std::thread::sleep(window);
    let (user1, sys1, rss) = process_times(pid);
    let (fan_user1, fan_sys1) = cpu_times(pid, fan_out);
    let packets1 = progress.packets.load(Ordering::Relaxed);
    let gaps1 = progress.gaps.load(Ordering::Relaxed);
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
        server_cores: (user1 + sys1 - user0 - sys0) / secs,
        fan_out_cores: ((fan_user1 + fan_sys1 - fan_user0 - fan_sys0) / secs - base.cores).max(0.0),
        kernel_cores: ((fan_sys1 - fan_sys0) / secs - base.system).max(0.0),
        window_gaps: gaps1 - gaps0,
        packets_per_s: (packets1 - packets0) as f64 / secs,
        gen_cores: (gen1 - gen0) / secs,
        rss_per_viewer_kib: rss.saturating_sub(base.rss) as f64 / viewers as f64,
        with_gaps: report.viewers.iter().filter(|v| v.gaps > 0).count(),
        ttff_p50: percentile(&mut ttff, 0.5),
        ttff_p95: percentile(&mut ttff, 0.95),
    }
}

/// Fan-out CPU and process RSS of `pid` with no viewer, over `secs`.
fn idle(pid: u32, fan_out: FanOut, secs: u64) -> Base {
    let (u0, s0) = cpu_times(pid, fan_out);
    std::thread::sleep(Duration::from_secs(secs));
    let (u1, s1) = cpu_times(pid, fan_out);
    let (_, _, rss) = process_times(pid);
    Base {
        cores: (u1 + s1 - u0 - s0) / secs as f64,
        system: (s1 - s0) / secs as f64,
        rss,
    }
}

/// How the Fieldcast viewers reach it.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Udp,
    /// ICE-TCP, one connection per viewer, as a browser on a network that drops UDP.
    Tcp,
}

fn fieldcast(viewers: usize, window: Duration) -> Row {
    fieldcast_over(viewers, window, Transport::Udp)
}

fn fieldcast_over(viewers: usize, window: Duration, transport: Transport) -> Row {
    let server = Server::start(&bench_dir("bench-fanout"), &["--demo"]);
    std::thread::sleep(Duration::from_secs(2));
    let pid = server.child.id();
    // The egress loop runs on its own thread ("egress"; on the tokio workers before it had
    // one, which also parse the publisher's RTMP): both are counted, so that an older build
    // measures the same work. The studio runs on GStreamer's threads.
    let fan_out = FanOut::Threads(&["egress", "tokio-rt-worker"]);
    let base = idle(pid, fan_out, 3);
    let session = server.demo_session.clone().expect("a demo session");
    let url = format!("http://{}/whep/{session}", server.http);
    let signalling: Box<dyn Signalling + Send> = match transport {
        Transport::Udp => Box::new(Whep { url }),
        Transport::Tcp => Box::new(WhepOverTcp {
            url,
            server: server
                .webrtc_tcp
                .expect("an ICE-TCP listener (webrtc_tcp=)"),
        }),
    };
    measure(viewers, window, signalling, pid, fan_out, base)
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
    let base = idle(janus.peer.pid(), FanOut::Process, 3);
    let row = measure(
        viewers,
        window,
        Box::new(janus.viewer()),
        janus.peer.pid(),
        FanOut::Process,
        base,
    );
    feed.check_running();
    row
}

fn print_header() {
    println!(
        "| server | viewers (played) | server CPU | fan-out CPU (of which kernel) | per viewer | per packet delivered | load generator CPU | RSS per viewer | frames after a gap, in the window | viewers with a gap, whole run | TTFF p50 | TTFF p95 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn print_row(server: &str, r: &Row) {
    println!(
        "| {server} | {} ({}) | {:.2} cores | {:.3} ({:.3}) cores | {:.2} % of a core | {:.2} µs | {:.2} cores | {:.0} KiB | {} | {} | {:.0} ms | {:.0} ms |",
        r.viewers,
        r.played,
        r.server_cores,
        r.egress_cores(),
        r.kernel_cores,
        r.egress_cores() * 100.0 / r.viewers as f64,
        r.per_packet_us(),
        r.gen_cores,
        r.rss_per_viewer_kib,
        r.window_gaps,
        r.with_gaps,
        r.ttff_p50.as_secs_f64() * 1e3,
        r.ttff_p95.as_secs_f64() * 1e3,
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    fieldcast_engine::process::raise_fd_limit();
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
            if row.window_gaps == 0 && row.played == n {
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
    // The same fan-out to viewers on networks that drop UDP: ICE-TCP, beside UDP, one after
    // the other in this run.
    let n = if quick { 50 } else { 100 };
    println!();
    println!("over ICE-TCP beside UDP, {n} viewers:");
    print_header();
    let udp = fieldcast_over(n, window, Transport::Udp);
    print_row("Fieldcast, UDP", &udp);
    let tcp = fieldcast_over(n, window, Transport::Tcp);
    print_row("Fieldcast, ICE-TCP", &tcp);
    println!(
        "ICE-TCP / UDP fan-out CPU per packet delivered = {:.2}×",
        tcp.per_packet_us() / udp.per_packet_us().max(1e-9)
    );
    println!(
        "(fan-out CPU: Fieldcast's egress thread and tokio workers (RTMP parsing included; the studio encodes on GStreamer's threads), the whole Janus process (its feed is a separate process); each less the same with no viewer, measured just before. Kernel = system time: on loopback it includes delivering each datagram to the viewer's socket. Held = every viewer played and no frame came after a loss during the window; a viewer's first second may show one gap at Janus, whose cached keyframe is not contiguous with the live packets. TTFF = from the start of signalling to the first complete video frame)"
    );
}
