//! What the benchmarks share: the real server on loopback ports, and CPU and memory readings
//! from /proc and getrusage.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

pub const TOKEN: &str = "bench-operator-token-0123456789";

pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// SRT ingest (absent from builds before it: the A/B benchmarks run older binaries).
    pub srt: Option<SocketAddr>,
    /// The demo session's id, when started with `--demo`.
    pub demo_session: Option<String>,
    /// The ICE-TCP listener (absent from builds before it).
    pub webrtc_tcp: Option<SocketAddr>,
}

impl Server {
    /// Starts `fieldcast serve` on `127.0.0.1:0` ports with a fresh data directory, its
    /// per-address limits lifted (the load generators play many clients from one address).
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Self::spawn(data, extra, true)
    }

    /// The same with the server's default limits, for a benchmark that measures them (each
    /// client then comes with its own `X-Forwarded-For`, behind `--trusted-proxies`).
    pub fn start_with_default_limits(data: &Path, extra: &[&str]) -> Server {
        Self::spawn(data, extra, false)
    }

    fn spawn(data: &Path, extra: &[&str], lift_limits: bool) -> Server {
        let _ = std::fs::remove_dir_all(data);
        std::fs::create_dir_all(data).expect("create bench data dir");
        // FIELDCAST_BENCH_BIN runs another build (an older one, side by side).
        let binary = std::env::var_os("FIELDCAST_BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_fieldcast").into());
        let mut command = Command::new(binary);
        // The load generators play hundreds of viewers and buyers from one address: the
        // per-address limits (README, "Limits and security") are lifted here, by environment,
        // which an older build ignores.
        if lift_limits {
            command
                .env("FIELDCAST_RATE_WHEP", "1000000:1000000")
                .env("FIELDCAST_RATE_ORDERS", "1000000:1000000")
                .env("FIELDCAST_RATE_DEVICES", "1000000:1000000")
                // One network may buy all of an offer here, but the ledger still checks the share.
                .env("FIELDCAST_ADDRESS_SHARE_PERCENT", "100")
                .env("FIELDCAST_WHEP_MAX_PENDING_PER_ADDRESS", "100000")
                .env("FIELDCAST_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "1000000")
                .env("FIELDCAST_WHEP_MAX_PENDING", "100000")
                .env("FIELDCAST_MAX_VIEWERS_PER_SESSION", "100000");
        }
        // A benchmark that binds its own WebRTC addresses (a network namespace's link) says so.
        let mut defaults = vec!["serve", "--rtmp", "127.0.0.1:0"];
        for flag in ["--http", "--webrtc-udp"] {
            if !extra.contains(&flag) {
                defaults.extend([flag, "127.0.0.1:0"]);
            }
        }
        let mut child = command
            .args(defaults)
            .args(["--api-token", TOKEN])
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("FIELDCAST_LOG", "warn")
            // An environment variable, not a flag: the A/B's older binary ignores it.
            .env("FIELDCAST_SRT", "127.0.0.1:0")
            .env("FIELDCAST_WHIP_UDP", "127.0.0.1:0")
            .env("FIELDCAST_WEBRTC_TCP", "127.0.0.1:0")
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
        let addr = |key: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{key} in the ready line: {ready}"))
        };
        Server {
            child,
            http: addr("http="),
            rtmp: addr("rtmp="),
            srt: ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("srt="))
                .and_then(|v| v.parse().ok()),
            demo_session,
            webrtc_tcp: ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("webrtc_tcp="))
                .and_then(|v| v.parse().ok()),
        }
    }

    /// CPU seconds (user + system) and resident memory (KiB) of the server so far.
    pub fn usage(&self) -> (f64, u64) {
        process_usage(self.child.id())
    }

    /// An operator API call; panics on a refusal (the benchmark's own setup is wrong).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("http://{}{path}", self.http);
        let auth = format!("Bearer {TOKEN}");
        let result = match body {
            Some(body) => ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .map_err(|e| e.to_string())
                .and_then(|r| ureq::run(r).map_err(|e| e.to_string())),
            None => ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Authorization", &auth)
                .body(String::new())
                .map_err(|e| e.to_string())
                .and_then(|r| ureq::run(r).map_err(|e| e.to_string())),
        };
        let text = result
            .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// A session on air as a show looks: a pinned product card, a running flash sale
    /// (counters, countdown). Returns (session id, stream key).
    pub fn show(&self, title: &str) -> (String, String) {
        let session = self.api("POST", "/api/v1/sessions", Some(json!({ "title": title })));
        let id = session["id"].as_str().expect("session id").to_string();
        let key = session["stream_key"]
            .as_str()
            .expect("stream key")
            .to_string();
        let product = self.api(
            "POST",
            "/api/v1/products",
            Some(
                json!({"name": "Rose jam", "unit_amount": 3500, "currency": "CNY", "unit": "jar"}),
            ),
        );
        let product_id = product["id"].as_str().expect("product id");
        self.api(
            "PUT",
            &format!("/api/v1/sessions/{id}/pinned"),
            Some(json!({ "product_id": product_id })),
        );
        self.api(
            "POST",
            &format!("/api/v1/sessions/{id}/offers"),
            Some(json!({"product_id": product_id, "unit_amount": 2900, "quantity": 100, "duration_s": 3600})),
        );
        self.api(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some(json!({"state": "live"})),
        );
        (id, key)
    }

    /// The server's `/metrics` text.
    pub fn metrics(&self) -> String {
        ureq::get(&format!("http://{}/metrics", self.http))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    }

    /// One counter or gauge from `/metrics` (0 when absent).
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0)
    }

    /// The RTMP publish URL for a stream key.
    pub fn publish_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }
}

/// CPU seconds (user + system) and resident memory (KiB) of process `pid` so far, from
/// /proc (threads included).
pub fn process_usage(pid: u32) -> (f64, u64) {
    let (user, system, rss) = process_times(pid);
    (user + system, rss)
}

/// User and system CPU seconds, and resident memory (KiB), of process `pid` so far.
pub fn process_times(pid: u32) -> (f64, f64, u64) {
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
    (field(11) / tick, field(12) / tick, rss_kb)
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

/// The `p` quantile (0..=1) of `values`, sorting them; NaN when there are none.
pub fn quantile_of(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// User and system CPU seconds so far of the threads of process `pid` whose name starts with
/// `prefix` (from /proc/PID/task/*/stat).
pub fn thread_times(pid: u32, prefix: &str) -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0.0, 0.0);
    };
    let mut total = (0.0, 0.0);
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        total.0 += field(11) / tick;
        total.1 += field(12) / tick;
    }
    total
}
