//! Fan-out: many WebRTC viewers of one studio (the demo session's 720p30 test pattern at
//! 2.5 Mb/s), each a Rust WHEP client (str0m, no decoding) on its own thread and socket.
//! Reports, per viewer count: the server's CPU per viewer and per packet sent (from /proc),
//! the load generator's own CPU, memory per viewer, gaps, and time to first frame.
//!
//! Run: `cargo bench --bench fanout` (or `make bench`); `-- --quick` for fewer viewers.
//! Not compared with Janus yet (the benchmarks issue).

use std::path::PathBuf;
use std::time::Duration;

use fieldcast::egress::client::{PlayOptions, play};

mod harness;

use harness::{Server, percentile, self_cpu};

fn metric(server: &Server, name: &str) -> u64 {
    let text = ureq::get(&format!("http://{}/metrics", server.http))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

fn start_server() -> Server {
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-fanout");
    Server::start(&data, &["--demo"])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    fieldcast::server::raise_fd_limit();
    gstreamer::init().unwrap();
    let counts: &[usize] = if quick { &[25, 50] } else { &[50, 100, 200] };
    let window = Duration::from_secs(if quick { 6 } else { 10 });
    println!(
        "fan-out benchmark: the demo studio (720p30, 2.5 Mb/s) to N Rust WHEP viewers on this machine"
    );
    println!();
    println!(
        "| viewers | server CPU (studio alone) | egress per viewer | egress per packet sent | load generator CPU | server RSS per viewer | viewers with gaps | frames with gaps | TTFF p50 | TTFF p95 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in counts {
        let server = start_server();
        std::thread::sleep(Duration::from_secs(2));
        // The studio's own cost (encoding the test pattern), with no viewer.
        let (idle0, _) = server.usage();
        std::thread::sleep(Duration::from_secs(3));
        let (idle1, rss_before) = server.usage();
        let studio_cores = (idle1 - idle0) / 3.0;
        let session = server.demo_session.clone().expect("a demo session");
        let url = format!("http://{}/whep/{session}", server.http);
        let join_gap = Duration::from_millis(20);
        let play_for = window + join_gap * n as u32 + Duration::from_secs(4);
        let viewers: Vec<_> = (0..n)
            .map(|i| {
                let url = url.clone();
                std::thread::sleep(join_gap);
                let _ = i;
                std::thread::spawn(move || {
                    play(
                        &url,
                        &PlayOptions {
                            duration: play_for - join_gap * i as u32,
                            decode: false,
                            ..Default::default()
                        },
                    )
                })
            })
            .collect();
        // Measure once everyone has joined and settled.
        std::thread::sleep(Duration::from_secs(3));
        let (cpu0, _) = server.usage();
        let sent0 = metric(&server, "fieldcast_egress_datagrams_sent_total");
        let gen0 = self_cpu();
        std::thread::sleep(window);
        let (cpu1, rss) = server.usage();
        let sent1 = metric(&server, "fieldcast_egress_datagrams_sent_total");
        let gen1 = self_cpu();
        let reports: Vec<_> = viewers
            .into_iter()
            .filter_map(|v| v.join().ok().and_then(|r| r.ok()))
            .collect();
        let secs = window.as_secs_f64();
        let server_cores = (cpu1 - cpu0) / secs;
        let egress_cores = (server_cores - studio_cores).max(0.0);
        let packets = (sent1 - sent0).max(1) as f64;
        let with_gaps = reports.iter().filter(|r| r.gaps > 0).count();
        let gap_frames: u64 = reports.iter().map(|r| r.gaps).sum();
        let mut ttff: Vec<Duration> = reports.iter().filter_map(|r| r.first_frame_after).collect();
        println!(
            "| {n} ({} played) | {:.2} cores ({:.2}) | {:.2} % of a core | {:.2} µs | {:.2} cores | {:.0} KiB | {with_gaps} | {gap_frames} | {:.0} ms | {:.0} ms |",
            reports.len(),
            server_cores,
            studio_cores,
            egress_cores * 100.0 / n as f64,
            egress_cores * secs * 1e6 / packets,
            (gen1 - gen0) / secs,
            rss.saturating_sub(rss_before) as f64 / n as f64,
            percentile(&mut ttff, 0.5).as_secs_f64() * 1e3,
            percentile(&mut ttff, 0.95).as_secs_f64() * 1e3,
        );
    }
    println!();
    println!(
        "(egress = server CPU minus the same server's CPU with no viewer, measured just before; TTFF = from the WHEP POST to the first video frame)"
    );
}
