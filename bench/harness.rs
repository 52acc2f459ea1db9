//! What the benchmarks share: the real server on loopback ports, and CPU and memory readings
//! from /proc and getrusage.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "bench-operator-token-0123456789";

pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    /// The demo session's id, when started with `--demo`.
    pub demo_session: Option<String>,
}

impl Server {
    /// Starts `fieldcast serve` on `127.0.0.1:0` ports with a fresh data directory.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let _ = std::fs::remove_dir_all(data);
        std::fs::create_dir_all(data).expect("create bench data dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--rtmp",
                "127.0.0.1:0",
                "--webrtc-udp",
                "127.0.0.1:0",
            ])
            .args(["--api-token", TOKEN])
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("FIELDCAST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fieldcast");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut demo_session = None;
        let ready = loop {
            let line = lines
                .next()
                .expect("server exited before ready")
                .expect("read stdout");
            if let Some(rest) = line.strip_prefix("demo session ") {
                demo_session = Some(rest.trim_end_matches(':').to_string());
            }
            if line.starts_with("fieldcast ready") {
                break line;
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let http = ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("http="))
            .and_then(|v| v.parse().ok())
            .expect("http= in the ready line");
        Server {
            child,
            http,
            demo_session,
        }
    }

    /// CPU seconds (user + system) and resident memory (KiB) of the server so far.
    pub fn usage(&self) -> (f64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        ((field(11) + field(12)) / tick, rss_kb)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) of this process so far.
pub fn self_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(usage.ru_utime) + t(usage.ru_stime)
    }
}

/// The `p` quantile (0..=1) of `values`, sorting them.
pub fn percentile(values: &mut [Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    values[((values.len() - 1) as f64 * p).round() as usize]
}
