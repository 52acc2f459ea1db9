//! Fan-out: many WebRTC viewers of one studio (the demo session's 720p30 test pattern at
//! 2.5 Mb/s), each a Rust WHEP client (str0m, no decoding) on its own thread and socket.
//! Reports, per viewer count: the server's CPU per viewer and per packet sent (from /proc),
//! the load generator's own CPU, memory per viewer, gaps, and time to first frame.
//!
//! Run: `cargo bench --bench fanout` (or `make bench`); `-- --quick` for fewer viewers.
//! Not compared with Janus yet (the benchmarks issue).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fieldcast::egress::client::{PlayOptions, play};

struct Server {
    child: Child,
    http: SocketAddr,
    session: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / tick;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (cpu, rss_kb)
}

fn self_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(usage.ru_utime) + t(usage.ru_stime)
    }
}

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
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .args([
            "serve",
            "--demo",
            "--http",
            "127.0.0.1:0",
            "--rtmp",
            "127.0.0.1:0",
            "--webrtc-udp",
            "127.0.0.1:0",
        ])
        .args(["--api-token", "bench-operator-token-0123456789"])
        .arg("--data")
        .arg(&data)
        .env("FIELDCAST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fieldcast");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut session = String::new();
    let ready = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.strip_prefix("demo session ") {
            session = rest.trim_end_matches(':').to_string();
        }
        if line.starts_with("fieldcast ready") {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let http = ready
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("http="))
        .unwrap()
        .parse()
        .unwrap();
    Server {
        child,
        http,
        session,
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
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
        let (idle0, _) = proc_stat(server.child.id());
        std::thread::sleep(Duration::from_secs(3));
        let (idle1, rss_before) = proc_stat(server.child.id());
        let studio_cores = (idle1 - idle0) / 3.0;
        let url = format!("http://{}/whep/{}", server.http, server.session);
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
        let (cpu0, _) = proc_stat(server.child.id());
        let sent0 = metric(&server, "fieldcast_egress_datagrams_sent_total");
        let gen0 = self_cpu();
        std::thread::sleep(window);
        let (cpu1, rss) = proc_stat(server.child.id());
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
        let ttff: Vec<Duration> = reports.iter().filter_map(|r| r.first_frame_after).collect();
        println!(
            "| {n} ({} played) | {:.2} cores ({:.2}) | {:.2} % of a core | {:.2} µs | {:.2} cores | {:.0} KiB | {with_gaps} | {gap_frames} | {:.0} ms | {:.0} ms |",
            reports.len(),
            server_cores,
            studio_cores,
            egress_cores * 100.0 / n as f64,
            egress_cores * secs * 1e6 / packets,
            (gen1 - gen0) / secs,
            rss.saturating_sub(rss_before) as f64 / n as f64,
            percentile(ttff.clone(), 0.5).as_secs_f64() * 1e3,
            percentile(ttff, 0.95).as_secs_f64() * 1e3,
        );
    }
    println!();
    println!(
        "(egress = server CPU minus the same server's CPU with no viewer, measured just before; TTFF = from the WHEP POST to the first video frame)"
    );
}
