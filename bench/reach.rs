//! What reach costs (issue #25), against the real binary bound to all interfaces with a
//! network namespace's link as its public address (as in `tests/reach.rs`):
//!
//! 1. server CPU for one studio (ffmpeg publishing 1280×720 testsrc2 over RTMP) with one
//!    WebRTC viewer on the main rendition, and then with a second viewer on a 1 Mb/s link
//!    (tc tbf), moved to the light rendition: the difference is the light encode;
//! 2. the time a viewer takes to move down once its link is shaped from the start, and back up
//!    once the shaping is lifted (from the frames the Rust WHEP client decodes);
//!
//! Not here yet: fan-out cost per datagram over ICE-TCP beside UDP. A few Chromium pages send
//! too few datagrams for their cost to stand out of the server's noise (a first try read
//! 55 µs and 0 µs); it needs a load generator that speaks ICE-TCP, as `fieldcast-probe swarm`
//! speaks UDP.
//!
//! Needs root (namespaces, tc), ffmpeg, and `fieldcast-probe` built beside the server.
//! `cargo bench --bench reach [-- --quick]`.

mod harness;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fieldcast_probe::whep::{PlayOptions, play};
use harness::Server;

const NS: &str = "fcbench9";
const HOST_DEV: &str = "fcbh9";
const INNER_DEV: &str = "fcbn9";
const HOST_IP: &str = "10.231.9.1";
const INNER_IP: &str = "10.231.9.2";

fn sh(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

fn in_ns(program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", NS, program]);
    c
}

/// The namespace and its veth link (removed first if an earlier run left them).
struct Link;

impl Link {
    fn up() -> Link {
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
        let _ = Command::new("ip")
            .args(["link", "del", HOST_DEV])
            .stderr(Stdio::null())
            .status();
        sh("ip", &["netns", "add", NS]);
        sh(
            "ip",
            &[
                "link", "add", HOST_DEV, "type", "veth", "peer", "name", INNER_DEV,
            ],
        );
        sh("ip", &["link", "set", INNER_DEV, "netns", NS]);
        sh(
            "ip",
            &["addr", "add", &format!("{HOST_IP}/24"), "dev", HOST_DEV],
        );
        sh("ip", &["link", "set", HOST_DEV, "up"]);
        for args in [
            vec![
                "ip",
                "addr",
                "add",
                &format!("{INNER_IP}/24"),
                "dev",
                INNER_DEV,
            ],
            vec!["ip", "link", "set", INNER_DEV, "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ] {
            let status = in_ns(args[0]).args(&args[1..]).status().unwrap();
            assert!(status.success());
        }
        Link
    }

    fn shape(&self) {
        sh(
            "tc",
            &[
                "qdisc", "add", "dev", HOST_DEV, "root", "tbf", "rate", "1000kbit", "burst",
                "16kb", "latency", "50ms",
            ],
        );
    }

    fn unshape(&self) {
        let _ = Command::new("tc")
            .args(["qdisc", "del", "dev", HOST_DEV, "root"])
            .status();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
        let _ = Command::new("ip").args(["link", "del", HOST_DEV]).status();
    }
}

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn server(name: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--http",
        "0.0.0.0:0",
        "--webrtc-udp",
        "0.0.0.0:0",
        "--webrtc-tcp",
        "0.0.0.0:0",
        "--public-ip",
        HOST_IP,
    ];
    args.extend_from_slice(extra);
    Server::start(&bench_dir(name), &args)
}

/// A publisher, stopped (and reaped) when dropped.
struct Feed(Child);

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ffmpeg(url: &str, seconds: u64) -> Feed {
    let child = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1280x720:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-b:v", "3M", "-pix_fmt",
            "yuv420p", "-c:a", "aac", "-f", "flv", url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    Feed(child)
}

fn whep(server: &Server, id: &str) -> String {
    format!("http://{HOST_IP}:{}/whep/{id}", server.http.port())
}

/// The shaped viewer: the probe in the namespace for `seconds`, its frames written to `out`.
fn shaped_viewer(url: &str, seconds: u64, out: &std::path::Path) -> Child {
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_fieldcast"))
        .parent()
        .unwrap()
        .join("fieldcast-probe");
    in_ns(probe.to_str().unwrap())
        .args(["watch", url, "--seconds", &seconds.to_string(), "--frames"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fieldcast-probe (cargo build --release -p fieldcast-probe)")
}

fn frames(path: &std::path::Path) -> Vec<(u64, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|f| {
            (
                f["at_ms"].as_u64().unwrap(),
                f["width"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn light_viewers(server: &Server) -> u64 {
    server.metric("fieldcast_viewers_by_rendition{rendition=\"light\"}")
}

fn cpu_with_light(link: &Link, window: Duration) -> (f64, f64) {
    let server = server("bench-reach-cpu", &[]);
    let (id, key) = server.show("Reach cost");
    let _feed = ffmpeg(&server.publish_url(&key), 40 + 2 * window.as_secs());
    std::thread::sleep(Duration::from_secs(4));
    let url = whep(&server, &id);
    let clean = {
        let url = url.clone();
        let watch = Duration::from_secs(20 + 2 * window.as_secs());
        std::thread::spawn(move || {
            play(
                &url,
                &PlayOptions {
                    duration: watch,
                    decode: false,
                    ..Default::default()
                },
            )
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    let (c0, _) = server.usage();
    std::thread::sleep(window);
    let (c1, _) = server.usage();
    let main_only = (c1 - c0) / window.as_secs_f64();
    link.shape();
    let out = bench_dir("bench-reach-cpu").join("frames.jsonl");
    let mut shaped = shaped_viewer(&url, window.as_secs() + 20, &out);
    wait_for(
        "a viewer on the light rendition",
        Duration::from_secs(15),
        || light_viewers(&server) == 1,
    );
    std::thread::sleep(Duration::from_secs(2));
    let (c0, _) = server.usage();
    std::thread::sleep(window);
    let (c1, _) = server.usage();
    let both = (c1 - c0) / window.as_secs_f64();
    let _ = shaped.kill();
    let _ = shaped.wait();
    link.unshape();
    let _ = clean.join();
    (main_only, both)
}

/// Seconds to move down (shaped from the start) and back up (after the shaping is lifted).
fn switch_times(link: &Link) -> (f64, f64) {
    let server = server("bench-reach-switch", &[]);
    let (id, key) = server.show("Reach switch");
    let _feed = ffmpeg(&server.publish_url(&key), 70);
    std::thread::sleep(Duration::from_secs(4));
    link.shape();
    let out = bench_dir("bench-reach-switch").join("frames.jsonl");
    let started = Instant::now();
    let mut viewer = shaped_viewer(&whep(&server, &id), 45, &out);
    std::thread::sleep(Duration::from_secs(15));
    link.unshape();
    let lifted = started.elapsed().as_millis() as u64;
    let _ = viewer.wait();
    let frames = frames(&out);
    let down = frames.iter().find(|(_, w)| *w == 640).map(|(at, _)| *at);
    let up = frames
        .iter()
        .find(|(at, w)| *at > lifted && *w == 1280)
        .map(|(at, _)| at - lifted);
    (
        down.map_or(f64::NAN, |ms| ms as f64 / 1000.0),
        up.map_or(f64::NAN, |ms| ms as f64 / 1000.0),
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let window = Duration::from_secs(if quick { 8 } else { 20 });
    let link = Link::up();

    println!("1. server CPU for one studio (1280×720 RTMP in), one WebRTC viewer per rendition");
    println!();
    println!("| viewers | server CPU |");
    println!("|---|---:|");
    let (main_only, both) = cpu_with_light(&link, window);
    println!("| one on main (light encode off) | {main_only:.2} cores |");
    println!("| one on main, one on light (1 Mb/s link) | {both:.2} cores |");
    println!(
        "| the light rendition's cost | {:.2} cores ({:.2}×) |",
        both - main_only,
        both / main_only
    );
    println!();

    println!(
        "2. moving between renditions: a viewer on a 1 Mb/s link from the start, lifted at 15 s"
    );
    println!();
    println!("| run | down to light after | back to main after the link is clean |");
    println!("|---|---:|---:|");
    for run in 1..=(if quick { 1 } else { 3 }) {
        let (down, up) = switch_times(&link);
        println!("| {run} | {down:.1} s | {up:.1} s |");
    }
    println!();
}
