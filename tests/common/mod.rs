//! Shared test harness: the real `fieldcast` binary on loopback ports, real publishers
//! (ffmpeg, GStreamer's rtmp2sink) and the project's WHEP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The mutation kit and the bytes of an RTMP publish (one copy, beside the RTMP core).
#[path = "../../crates/core/tests/support/mod.rs"]
pub mod kit;
#[allow(unused_imports)]
pub use kit::rtmp_publish_bytes;

pub const TOKEN: &str = "test-operator-token-0123456789";

/// The slate's background colour (crates/engine/pipelines/slate.pipeline), as RGB.
pub const SLATE_RGB: [u8; 3] = [0x1f, 0x3a, 0x2e];

pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// SRT ingest (UDP).
    pub srt: SocketAddr,
    pub data: PathBuf,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh data directory under the target dir, unique per test.
/// The `fieldcast-probe` binary (the WHEP player and the load generators; `crates/probe`),
/// built beside the server's by `cargo test --workspace` (its own CLI test needs it).
pub fn probe_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_fieldcast"))
        .parent()
        .expect("the server binary is in a directory");
    let probe = dir.join("fieldcast-probe");
    assert!(
        probe.exists(),
        "{} is missing: build it with `cargo build --release -p fieldcast-probe` (`make test` \
         runs `cargo test --workspace`, which does)",
        probe.display()
    );
    probe
}

pub fn data_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test data dir");
    dir
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Self::start_with(data, &[])
    }

    pub fn start_with(data: &Path, extra: &[&str]) -> Server {
        Self::launch(data, "127.0.0.1:0", "127.0.0.1:0", extra, &[])
    }

    /// With its HTTP listener on `http` (an IPv6 address, `[::]:0`).
    pub fn start_on(data: &Path, http: &str, extra: &[&str]) -> Server {
        Self::launch(data, http, "127.0.0.1:0", extra, &[])
    }

    /// With environment variables of its own (those with no flag, such as the log format).
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(data, "127.0.0.1:0", "127.0.0.1:0", extra, env)
    }

    /// Kills the server (SIGKILL) and starts it again on the same HTTP and RTMP ports with
    /// the same data: what a page or a publisher sees of a crash and restart.
    pub fn restart(mut self, extra: &[&str]) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (http, rtmp) = (self.http.to_string(), self.rtmp.to_string());
        let data = self.data.clone();
        drop(self);
        Self::launch(&data, &http, &rtmp, extra, &[])
    }

    fn launch(data: &Path, http: &str, rtmp: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        // The server's log goes to a file beside its data, named in failure messages.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))
            .expect("open server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
            .args(["serve", "--http", http, "--rtmp", rtmp])
            .args(if extra.contains(&"--webrtc-udp") {
                &[][..]
            } else {
                &["--webrtc-udp", "127.0.0.1:0", "--webrtc-tcp", "127.0.0.1:0"][..]
            })
            .args(["--whip-udp", "127.0.0.1:0"])
            .args(if extra.contains(&"--srt") {
                &[][..]
            } else {
                &["--srt", "127.0.0.1:0"][..]
            })
            .arg("--data")
            .arg(data)
            .args(["--api-token", TOKEN])
            .args(extra)
            // FIELDCAST_TEST_LOG raises what a test's server logs (`info,str0m=warn` unless set).
            .env(
                "FIELDCAST_LOG",
                std::env::var("FIELDCAST_TEST_LOG").unwrap_or_else(|_| "info,str0m=warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start fieldcast");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = loop {
            assert!(Instant::now() < deadline, "fieldcast did not become ready");
            let line = lines
                .next()
                .expect("fieldcast exited before ready")
                .expect("read stdout");
            if line.starts_with("fieldcast ready") {
                break line;
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let field = |name: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name}= in {ready:?}"))
        };
        Server {
            http: field("http"),
            rtmp: field("rtmp"),
            srt: field("srt"),
            child,
            data: data.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn create_session(&self, title: &str) -> Value {
        let (status, body) = self.api(
            "POST",
            "/api/v1/sessions",
            Some(serde_json::json!({ "title": title })),
        );
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Puts a session on air with no publisher (the slate plays).
    pub fn go_live(&self, id: &str) {
        let (status, body) = self.api(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some(serde_json::json!({"state": "live"})),
        );
        assert_eq!(status, 200, "{body}");
    }

    pub fn session(&self, id: &str) -> Value {
        let (status, body) = self.api("GET", &format!("/api/v1/sessions/{id}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn state(&self, id: &str) -> String {
        self.session(id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the session reports `state`, or panics after `timeout`.
    pub fn wait_state(&self, id: &str, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.state(id);
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "session {id} stayed {now:?}, expected {state:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the server to exit by itself: `Some(true)` for exit code 0, `None` when it
    /// still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One sample of `/metrics` by its name with labels (`name{label="x"}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.split_whitespace().next() == Some(series))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// The server's `/metrics` text.
    pub fn metrics(&self) -> String {
        ureq::get(&self.url("/metrics"))
            .call()
            .expect("GET /metrics")
            .body_mut()
            .read_to_string()
            .expect("metrics text")
    }

    /// Every order of a session (`query`: more filters, or ""), page after page by the
    /// list's cursor, oldest first.
    pub fn all_orders(&self, session: &str, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = self.url(&format!("/api/v1/sessions/{session}/orders?limit=1000"));
            if !query.is_empty() {
                url.push('&');
                url.push_str(query);
            }
            if let Some(cursor) = &after {
                url.push_str(&format!("&after={cursor}"));
            }
            let mut response = ureq::get(&url)
                .header("Authorization", &format!("Bearer {TOKEN}"))
                .call()
                .expect("list orders");
            after = response
                .headers()
                .get("fieldcast-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let page: Vec<Value> = response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_json()
                .expect("a page of orders");
            all.extend(page);
            if after.is_none() {
                return all;
            }
        }
    }

    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let url = self.url(path);
        let auth = format!("Bearer {TOKEN}");
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
            ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
            ("POST", None) => agent.post(&url).header("Authorization", &auth).send_empty(),
            ("PATCH", Some(b)) => agent
                .patch(&url)
                .header("Authorization", &auth)
                .send_json(b),
            ("PUT", Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(b),
            other => panic!("unsupported call {other:?}"),
        };
        let mut response = response.expect("HTTP call");
        let status = response.status().as_u16();
        // ureq reads at most 10 MB by default; the crash test lists tens of thousands of orders.
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn publish_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A publisher process, killed when dropped.
pub struct Publisher(pub Child);

impl Publisher {
    /// OBS-like ffmpeg: x264 veryfast with two B-frames, 2 s GOP, AAC.
    pub fn ffmpeg(url: &str, size: &str, seconds: u32) -> Publisher {
        Self::ffmpeg_from(
            url,
            &format!("testsrc2=size={size}:rate=30:duration={seconds}"),
            seconds,
        )
    }

    /// The same encoder settings over any lavfi video source (a steady colour, say).
    pub fn ffmpeg_from(url: &str, video_source: &str, seconds: u32) -> Publisher {
        let child = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", video_source])
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "60", "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg (apt-get install ffmpeg)");
        Publisher(child)
    }

    /// GStreamer's rtmp2sink with x264enc and AAC (avenc_aac).
    pub fn gstreamer(url: &str, seconds: u32) -> Publisher {
        let buffers = (seconds * 30).to_string();
        let pipeline = format!(
            "videotestsrc is-live=true pattern=ball num-buffers={buffers} \
             ! video/x-raw,width=1280,height=720,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 ! h264parse \
             ! flvmux name=mux streamable=true ! rtmp2sink location={url} \
             audiotestsrc is-live=true wave=sine \
             ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! mux."
        );
        let child = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gst-launch-1.0 (apt-get install gstreamer1.0-tools)");
        Publisher(child)
    }

    /// Waits for the publisher to exit; returns its success and stderr.
    pub fn wait_exit(mut self, timeout: Duration) -> Option<(bool, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = self.0.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut err);
                }
                return Some((status.success(), err));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The colour test publishers send when a test checks that their picture shows (`0x20A040`,
/// as `PUBLISHER_COLOUR` for lavfi's `color` source).
pub const PUBLISHER_RGB: [u8; 3] = [0x20, 0xA0, 0x40];
pub const PUBLISHER_COLOUR: &str = "0x20A040";

/// Whether a decoded colour is the publisher's, within what two lossy encodes and the
/// overlays leave.
pub fn is_publisher_colour(rgb: [u8; 3]) -> bool {
    rgb.iter()
        .zip(PUBLISHER_RGB)
        .all(|(&a, b)| (a as i32 - b as i32).abs() < 40)
}

/// A network namespace joined to the host by a veth pair, for a client whose link a test
/// shapes or filters. The host side is `10.231.N.1`, the namespace side `10.231.N.2`. Removed
/// when dropped.
pub struct Netns {
    pub name: String,
    pub host_ip: std::net::IpAddr,
    pub inner_ip: std::net::IpAddr,
    /// The namespace's end of the pair (its egress is what the client sends).
    pub inner_dev: String,
    pub host_dev: String,
}

impl Netns {
    pub fn create(n: u8) -> Netns {
        let name = format!("fctest{n}");
        let (host_dev, inner_dev) = (format!("fch{n}"), format!("fcn{n}"));
        // Leftovers of an earlier run that did not clean up.
        for args in [
            &["netns", "del", &name][..],
            &["link", "del", &host_dev][..],
        ] {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        }
        let host = format!("10.231.{n}.1");
        let inner = format!("10.231.{n}.2");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), name.clone()],
            vec![
                "link".into(),
                "add".into(),
                host_dev.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                inner_dev.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                inner_dev.clone(),
                "netns".into(),
                name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{host}/24"),
                "dev".into(),
                host_dev.clone(),
            ],
            vec!["link".into(), "set".into(), host_dev.clone(), "up".into()],
        ];
        for step in steps {
            run("ip", &step.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let ns = Netns {
            name,
            host_ip: host.parse().unwrap(),
            inner_ip: inner.parse().unwrap(),
            inner_dev,
            host_dev,
        };
        ns.exec_ok(
            "ip",
            &["addr", "add", &format!("{inner}/24"), "dev", &ns.inner_dev],
        );
        ns.exec_ok("ip", &["link", "set", &ns.inner_dev, "up"]);
        ns.exec_ok("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    pub fn exec_ok(&self, program: &str, args: &[&str]) {
        let status = self
            .command(program)
            .args(args)
            .status()
            .expect("ip netns exec");
        assert!(
            status.success(),
            "in {}: {program} {args:?} failed",
            self.name
        );
    }

    /// Drops `percent` % of the UDP packets the namespace sends, at random (nftables'
    /// `numgen random`: netem is not in every kernel, and this one has none).
    pub fn lose_outgoing_udp(&self, percent: u32) {
        self.exec_ok("nft", &["add", "table", "inet", "fieldcast_loss"]);
        self.exec_ok(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                "fieldcast_loss",
                "out",
                "{ type filter hook output priority 0; }",
            ],
        );
        self.exec_ok(
            "nft",
            &[
                "add",
                "rule",
                "inet",
                "fieldcast_loss",
                "out",
                "meta",
                "l4proto",
                "udp",
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                &percent.to_string(),
                "counter",
                "drop",
            ],
        );
    }

    /// Shapes what the host sends into the namespace (the server to a viewer there): a token
    /// bucket at `kbit` kb/s whose queue holds at most 50 ms (tbf's `latency`: what waits
    /// longer is dropped), and `loss` % of what arrives dropped at random (nftables: this
    /// kernel has no netem, nor fq for a BPF-timed delay, so no added delay).
    pub fn shape_downlink(&self, kbit: u32, loss: u32) {
        run(
            "tc",
            &[
                "qdisc",
                "add",
                "dev",
                &self.host_dev,
                "root",
                "tbf",
                "rate",
                &format!("{kbit}kbit"),
                "burst",
                "16kb",
                "latency",
                "50ms",
            ],
        );
        if loss > 0 {
            let rules = format!(
                "add table inet fieldcast_shape\n\
                 add chain inet fieldcast_shape in {{ type filter hook input priority 0; }}\n\
                 add rule inet fieldcast_shape in numgen random mod 100 < {loss} counter drop\n"
            );
            self.nft(&rules);
        }
    }

    /// Packets the downlink's loss rule dropped so far.
    pub fn shaped_drops(&self) -> u64 {
        self.counter("fieldcast_shape", "in")
    }

    /// The first rule counter of an nftables chain in the namespace (0 without one).
    fn counter(&self, table: &str, chain: &str) -> u64 {
        let out = self
            .command("nft")
            .args(["list", "chain", "inet", table, chain])
            .output()
            .expect("nft");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("counter packets ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Lifts [`Netns::shape_downlink`].
    pub fn unshape(&self) {
        run("tc", &["qdisc", "del", "dev", &self.host_dev, "root"]);
        let _ = self
            .command("nft")
            .args(["delete", "table", "inet", "fieldcast_shape"])
            .status();
    }

    /// Drops every UDP packet into and out of the namespace, as a network that lets only TCP
    /// through.
    pub fn block_udp(&self) {
        self.nft(
            "add table inet fieldcast_block\n\
             add chain inet fieldcast_block out { type filter hook output priority 0; }\n\
             add chain inet fieldcast_block in { type filter hook input priority 0; }\n\
             add rule inet fieldcast_block out meta l4proto udp counter drop\n\
             add rule inet fieldcast_block in meta l4proto udp counter drop\n",
        );
    }

    /// Runs an nftables script inside the namespace.
    fn nft(&self, script: &str) {
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft (apt-get install nftables)");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("nft stdin")
            .write_all(script.as_bytes())
            .expect("write nft script");
        assert!(child.wait().expect("nft").success(), "nft failed: {script}");
    }

    /// Packets the loss rule dropped so far.
    pub fn lost_packets(&self) -> u64 {
        self.counter("fieldcast_loss", "out")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_dev])
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// The mean colour of a picture's first frame (a TS segment, a PNG), or of a rectangle of
/// it (`crop`: ffmpeg's `w:h:x:y`).
pub fn mean_colour(file: &Path, crop: Option<&str>) -> [u8; 3] {
    let filter = match crop {
        Some(crop) => format!("crop={crop},scale=1:1:flags=area"),
        None => "scale=1:1:flags=area".to_string(),
    };
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-vf", &filter])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert_eq!(
        output.stdout.len(),
        3,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    [output.stdout[0], output.stdout[1], output.stdout[2]]
}

/// Whether a decoded frame is the slate (its background colour, within a margin for the
/// text and the codec).
pub fn is_slate(rgb: [u8; 3]) -> bool {
    rgb.iter()
        .zip(SLATE_RGB)
        .all(|(&a, b)| (a as i32 - b as i32).abs() <= 24)
}

/// A minimal async HTTP/1.1 client (one request per connection) for load-shaped tests:
/// thousands of requests in flight at once from one thread.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    http_from(None, addr, method, path, headers, body).await
}

/// The loopback address of the `n`th distinct client (127.1.x.y): rate limits are per client
/// address, so a test plays many people by binding each one's socket to its own address.
pub fn client_ip(n: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 1, (n / 250 % 250) as u8, (n % 250 + 1) as u8])
}

/// One HTTP/1.1 request with `Connection: close`, from `from` when given.
pub async fn http_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let (status, _head, body) = http_full(from, addr, method, path, headers, body).await?;
    Ok((status, body))
}

/// The same, with the response's head (status line and headers, names as sent) as well.
pub async fn http_full(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match from {
        None => tokio::net::TcpStream::connect(addr).await?,
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await?
        }
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    Ok((status, head, body))
}

/// A disk that stalls, made with strace's fault injection on the running server: every
/// `fsync` and `fdatasync` of every thread returns only after `delay`. Each ledger commit
/// fsyncs (SQLite `synchronous = FULL`), so the ledger becomes that slow. Detaches on drop.
pub struct SlowDisk(Child);

impl SlowDisk {
    pub fn attach(pid: u32, delay: Duration) -> SlowDisk {
        let inject = format!("inject=fsync,fdatasync:delay_exit={}", delay.as_micros());
        let mut child = Command::new("strace")
            .args([
                "-f",
                "-o",
                "/dev/null",
                "-e",
                "trace=fsync,fdatasync",
                "-e",
                &inject,
            ])
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .expect("run strace (make test installs it)");
        // "strace: Process N attached with M threads" once every thread is traced.
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.contains("attached"), "strace did not attach: {first}");
        std::thread::spawn(move || lines.for_each(drop));
        SlowDisk(child)
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // SIGTERM: strace detaches and lets a held call return.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Reads the first Server-Sent Event's data from a stream URL path.
pub fn first_sse_data(server: &Server, path: &str) -> serde_json::Value {
    use std::io::BufRead;
    let stream = std::net::TcpStream::connect(server.http).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    use std::io::Write;
    write!(
        writer,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("read SSE");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str(data).expect("SSE data is JSON");
        }
    }
    panic!("no SSE event");
}

/// A product and a live offer of `quantity` units in a new session.
pub fn offer(
    server: &Server,
    quantity: i64,
    per_buyer_limit: Option<i64>,
    duration_s: i64,
) -> (String, String) {
    let session = server.create_session("Flash sale");
    let session_id = session["id"].as_str().unwrap().to_string();
    let (status, product) = server.api(
        "POST",
        "/api/v1/products",
        Some(serde_json::json!({"name": "Rose jam", "unit_amount": 3500, "currency": "CNY", "unit": "jar"})),
    );
    assert_eq!(status, 201, "{product}");
    let mut body = serde_json::json!({"product_id": product["id"], "unit_amount": 2900, "quantity": quantity, "duration_s": duration_s});
    if let Some(limit) = per_buyer_limit {
        body["per_buyer_limit"] = limit.into();
    }
    let (status, offer) = server.api(
        "POST",
        &format!("/api/v1/sessions/{session_id}/offers"),
        Some(body),
    );
    assert_eq!(status, 201, "{offer}");
    (session_id, offer["id"].as_str().unwrap().to_string())
}

/// The JSON body of an order for buyer number `n`.
pub fn order_body(offer_id: &str, n: usize, quantity: i64) -> String {
    serde_json::json!({
        "offer_id": offer_id,
        "quantity": quantity,
        "buyer": {"name": format!("Buyer {n}"), "phone": format!("+86138{n:08}"), "address": "1 Rose Street", "city": "Kashgar"}
    })
    .to_string()
}

/// Polls `check` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A WHEP offer as a browser makes one (receive video and audio), for tests that post offers
/// without playing them.
pub fn whep_offer_sdp() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = fieldcast_probe::whep::viewer_config().build(Instant::now());
    let local: SocketAddr = "127.0.0.1:9".parse().expect("an address");
    rtc.add_local_candidate(str0m::Candidate::host(local, "udp").expect("a host candidate"));
    let mut changes = rtc.sdp_api();
    changes.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    changes.apply().expect("an offer").0.to_sdp_string()
}

/// A browser script (tests/browser/NAME.mjs) run in step with its test: it prints one JSON
/// line per step (`{"step": …}`) and then waits for a line on its stdin before the next.
pub struct BrowserScript {
    name: String,
    child: Child,
    to_page: Option<std::process::ChildStdin>,
    from_page: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl BrowserScript {
    pub fn start(name: &str, args: &[&str]) -> BrowserScript {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/browser")
            .join(name);
        let mut child = Command::new("node")
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node (make test installs it)");
        let to_page = child.stdin.take();
        let from_page = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        BrowserScript {
            name: name.into(),
            child,
            to_page,
            from_page,
        }
    }

    /// The next line, which must be step `expected` (any line when `expected` is empty).
    pub fn step(&mut self, expected: &str) -> Value {
        let line = self
            .from_page
            .next()
            .unwrap_or_else(|| panic!("{} ended before step {expected:?}", self.name))
            .expect("read the script's output");
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{}: not JSON: {line}", self.name));
        if !expected.is_empty() {
            assert_eq!(v["step"], expected, "{}: {v}", self.name);
        }
        eprintln!("{}: {}", self.name, &line[..line.len().min(400)]);
        v
    }

    /// Lets the script go on to its next step.
    pub fn next(&mut self) {
        use std::io::Write;
        let to_page = self.to_page.as_mut().expect("the script's stdin is open");
        writeln!(to_page, "next").expect("write to the script");
    }

    /// Closes its stdin and waits for it to succeed.
    pub fn finish(mut self) {
        drop(self.to_page.take());
        let status = self.child.wait().expect("wait for node");
        assert!(status.success(), "{} failed", self.name);
    }
}

/// The last of 45 frames the project's WHEP client decodes from a session.
pub fn last_frame(server: &Server, id: &str) -> fieldcast_probe::whep::RgbFrame {
    let report = fieldcast_probe::whep::play(
        &server.url(&format!("/whep/{id}")),
        &fieldcast_probe::whep::PlayOptions {
            duration: Duration::from_secs(20),
            stop_after_frames: Some(45),
            keep_last_frame: true,
            ..Default::default()
        },
    )
    .expect("WHEP playback");
    report.last_frame.expect("a decoded frame")
}

/// Share of a rectangle's pixels (inset by `margin`, clipped to the frame) that are near
/// white, as the product card's panel is.
pub fn near_white(
    frame: &fieldcast_probe::whep::RgbFrame,
    r: fieldcast_core::overlay::layout::Rect,
    margin: u32,
) -> f64 {
    let (x0, y0) = (r.x.max(0) as u32 + margin, r.y.max(0) as u32 + margin);
    let x1 = (r.x.max(0) as u32 + r.width)
        .min(frame.width)
        .saturating_sub(margin);
    let y1 = (r.y.max(0) as u32 + r.height)
        .min(frame.height)
        .saturating_sub(margin);
    let (mut white, mut all) = (0u32, 0u32);
    for y in y0..y1 {
        for x in x0..x1 {
            all += 1;
            if frame.pixel(x, y).iter().all(|&c| c > 200) {
                white += 1;
            }
        }
    }
    white as f64 / all.max(1) as f64
}

/// The repository's `docs/` (screenshots for the README).
pub fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

pub fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && dir.join("node_modules/axe-core").exists(),
        "playwright-core and axe-core are not installed: run `make test` (it runs `npm ci` in tests/browser)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: run `make test` (apt-get install chromium)"
    );
    dir
}

/// Runs a browser script to its end; returns its last stdout line as JSON.
pub fn node(script: &str, args: &[&str]) -> Value {
    node_with(Command::new("node"), script, args)
}

/// Runs a browser script inside a network namespace (Chromium there reaches only its link).
pub fn node_in(ns: &Netns, script: &str, args: &[&str]) -> Value {
    node_with(ns.command("node"), script, args)
}

fn node_with(mut command: Command, script: &str, args: &[&str]) -> Value {
    let output = command
        .arg(browser_dir().join(script))
        .args(args)
        .output()
        .expect("run node (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script}: not JSON ({e}): {stdout}"))
}

/// A product with a photo and names in Chinese and Uyghur, pinned on the session.
pub fn pinned_product(server: &Server, session: &str) -> Value {
    let (status, product) = server.api(
        "POST",
        "/api/v1/products",
        Some(json!({
            "name": "Rose jam",
            "translations": {"zh": "玫瑰花酱", "ug": "قىزىلگۈل مۇراببا"},
            "unit_amount": 5900, "currency": "CNY", "unit": "jar", "origin": "Kashgar"
        })),
    );
    assert_eq!(status, 201, "{product}");
    let id = product["id"].as_str().unwrap();
    let photo = fieldcast::demo::jar_photo().expect("a photo");
    let response = ureq::put(&server.url(&format!("/api/v1/products/{id}/image")))
        .header("Authorization", &format!("Bearer {}", TOKEN))
        .header("Content-Type", "image/png")
        .send(&photo[..])
        .expect("upload the photo");
    assert_eq!(response.status(), 200);
    let (status, _) = server.api(
        "PUT",
        &format!("/api/v1/sessions/{session}/pinned"),
        Some(json!({"product_id": id})),
    );
    assert_eq!(status, 200);
    product
}

pub fn five_units(server: &Server, session: &str, product: &str) -> String {
    let (status, offer) = server.api(
        "POST",
        &format!("/api/v1/sessions/{session}/offers"),
        Some(json!({"product_id": product, "unit_amount": 3900, "quantity": 5, "per_buyer_limit": 3})),
    );
    assert_eq!(status, 201, "{offer}");
    offer["id"].as_str().unwrap().to_string()
}

/// A show on air with a sale, as the page tests need it: a session, an ffmpeg publisher at
/// 1280x720 for `seconds`, the photographed product pinned and five units on offer.
pub struct LiveSale {
    pub id: String,
    pub product: Value,
    pub offer: String,
    pub publisher: Publisher,
}

pub fn live_sale(server: &Server, title: &str, seconds: u32) -> LiveSale {
    live_sale_recorded(server, title, seconds, true)
}

/// The same, recorded or not. Recording holds the session's HLS running from the start of
/// the show; unrecorded, HLS starts with its first viewer.
pub fn live_sale_recorded(server: &Server, title: &str, seconds: u32, record: bool) -> LiveSale {
    let session = server.create_session(title);
    let id = session["id"].as_str().unwrap().to_string();
    if !record {
        let (status, body) = server.api(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some(json!({"record": false})),
        );
        assert_eq!(status, 200, "{body}");
    }
    let publisher = Publisher::ffmpeg(
        &server.publish_url(session["stream_key"].as_str().unwrap()),
        "1280x720",
        seconds,
    );
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    let product = pinned_product(server, &id);
    let offer = five_units(server, &id, product["id"].as_str().unwrap());
    LiveSale {
        id,
        product,
        offer,
        publisher,
    }
}

/// A foreground nginx with the README's configuration (`docs/nginx-cache.conf`) in front of
/// `upstream`, its files under `dir`; killed when dropped.
pub struct Nginx(std::process::Child);

impl Nginx {
    pub fn start(upstream: std::net::SocketAddr, dir: &Path) -> (Nginx, std::net::SocketAddr) {
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            fieldcast_probe::nginx::nginx_main_config(
                &upstream.to_string(),
                &listen.to_string(),
                dir,
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx (make test installs nginx-light)");
        wait_for("nginx to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(listen).is_ok()
        });
        (Nginx(child), listen)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Buyer `n` orders one unit of `offer_id` from an address of their own (`client_ip(n)`), under
/// `key`: the answer's status and body.
pub async fn buy_one(
    http: SocketAddr,
    session: &str,
    offer_id: &str,
    n: usize,
    key: &str,
) -> std::io::Result<(u16, String)> {
    let headers = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", key),
    ];
    http_from(
        Some(client_ip(n)),
        http,
        "POST",
        &format!("/api/v1/sessions/{session}/orders"),
        &headers,
        &order_body(offer_id, n, 1),
    )
    .await
}

/// `/healthz` asked every 20 ms on a thread of its own until [`HealthProbe::stop`]: each
/// answer's time, 5 s for one that failed.
pub struct HealthProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl HealthProbe {
    pub const FAILED: Duration = Duration::from_secs(5);

    pub fn start(server: &Server) -> HealthProbe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let url = server.url("/healthz");
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Self::FAILED))
                    .build()
                    .into();
                let mut latencies = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = agent.get(&url).call().is_ok();
                    latencies.push(if ok { t.elapsed() } else { Self::FAILED });
                    std::thread::sleep(Duration::from_millis(20));
                }
                latencies
            })
        };
        HealthProbe { stop, thread }
    }

    /// Stops probing; the answers' times, sorted.
    pub fn stop(self) -> Vec<Duration> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut latencies = self.thread.join().expect("the /healthz probe");
        latencies.sort();
        latencies
    }
}

/// The `q` quantile of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A PNG of `width`×`height`: noise (about 3 bytes a pixel, a new picture each call) or one
/// colour (almost nothing, decoding to full size).
pub fn png(width: u32, height: u32, noise: bool) -> Vec<u8> {
    static CALLS: AtomicU32 = AtomicU32::new(1);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ CALLS.fetch_add(1, Ordering::Relaxed) as u64;
    let picture = image::RgbImage::from_fn(width, height, |_, _| {
        if noise {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let b = seed.to_le_bytes();
            image::Rgb([b[0], b[1], b[2]])
        } else {
            image::Rgb([200, 40, 90])
        }
    });
    let mut bytes = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode a PNG");
    bytes
}

/// A show under test: a session with an offer of `units` (one per buyer), an ffmpeg publisher
/// at 1280×720 for 60 s, and a control WHEP viewer playing for `watch` on a thread of its own
/// (its report from [`ControlledShow::viewer`]).
pub struct ControlledShow {
    pub session_id: String,
    pub offer_id: String,
    pub publisher: Publisher,
    pub viewer: std::thread::JoinHandle<
        Result<fieldcast_probe::whep::PlaybackReport, fieldcast_probe::whep::ClientError>,
    >,
}

impl ControlledShow {
    pub fn start(server: &Server, units: i64, watch: Duration) -> ControlledShow {
        let (session_id, offer_id) = offer(server, units, Some(1), 600);
        let key = server.session(&session_id)["stream_key"]
            .as_str()
            .expect("a stream key")
            .to_string();
        let publisher = Publisher::ffmpeg(&server.publish_url(&key), "1280x720", 60);
        server.wait_state(&session_id, "publisher-connected", Duration::from_secs(15));
        let whep = server.url(&format!("/whep/{session_id}"));
        let viewer = std::thread::spawn(move || {
            fieldcast_probe::whep::play(
                &whep,
                &fieldcast_probe::whep::PlayOptions {
                    duration: watch,
                    ..Default::default()
                },
            )
        });
        ControlledShow {
            session_id,
            offer_id,
            publisher,
            viewer,
        }
    }
}
