//! The hand-built chain Fieldcast is compared with, started by the benchmarks themselves on
//! this machine and stopped when they end: nginx-rtmp (RTMP server), ffmpeg (overlay +
//! libx264 zerolatency + Opus, out as RTP) and the Janus streaming plugin (WebRTC fan-out),
//! all from Debian's packages (`scripts/deps.sh bench` installs them).
//!
//! Janus gathers ICE candidates only from non-loopback interfaces, so it is told to use this
//! machine's own first IPv4 address ([`local_ipv4`]); packets to a local address never leave
//! the machine (the kernel routes them through the loopback device), and every other
//! listener here binds 127.0.0.1.
#![allow(dead_code)]

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fieldcast_probe::link::Link;
use fieldcast_probe::whep::{ClientError, Negotiated, Signalling};
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::{Candidate, RtcConfig};

use crate::harness::process_usage;

/// A peer process, killed when dropped.
pub struct Peer {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Peer {
    pub fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Peer {
        let file = std::fs::File::create(log).expect("peer log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {name} ({e}); install the peers: scripts/deps.sh bench")
            });
        Peer {
            name,
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds and RSS (KiB) so far.
    pub fn usage(&self) -> (f64, u64) {
        process_usage(self.child.id())
    }

    /// Fails loudly, with the end of its log, if the process has exited.
    pub fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let mut log = String::new();
            let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut log));
            let tail: String = log
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            panic!("{} exited ({status}):\n{tail}", self.name);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (TCP and UDP are checked).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Two consecutive free even UDP ports would be nicer for RTP; one each is all we need.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < timeout,
            "{what} did not come up in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// This machine's first non-loopback IPv4 address (Janus will not use loopback).
pub fn local_ipv4() -> Ipv4Addr {
    // SAFETY: getifaddrs allocates a list we walk read-only and free once.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            panic!("getifaddrs failed");
        }
        let mut found = None;
        let mut cursor = list;
        while !cursor.is_null() {
            let entry = &*cursor;
            cursor = entry.ifa_next;
            if entry.ifa_addr.is_null()
                || (*entry.ifa_addr).sa_family as i32 != libc::AF_INET
                || entry.ifa_flags & libc::IFF_LOOPBACK as u32 != 0
                || entry.ifa_flags & libc::IFF_UP as u32 == 0
            {
                continue;
            }
            let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
            found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            break;
        }
        libc::freeifaddrs(list);
        found.expect(
            "Janus needs a non-loopback IPv4 address on this machine (it never gathers loopback \
             candidates); add one, e.g. `ip link add fc0 type dummy && ip addr add 10.99.0.1/32 dev fc0 && ip link set fc0 up`",
        )
    }
}

/// nginx with the RTMP module, one `live` application, on 127.0.0.1; with `hls`, it also
/// writes that application's HLS (`hls_fragment 1s`) and serves it over HTTP.
pub struct NginxRtmp {
    pub peer: Peer,
    pub port: u16,
    /// The HTTP port its HLS is served on (`/hls/{key}.m3u8`), when started with HLS.
    pub hls_port: Option<u16>,
}

impl NginxRtmp {
    pub fn start(dir: &Path) -> NginxRtmp {
        Self::launch(dir, false)
    }

    pub fn start_with_hls(dir: &Path) -> NginxRtmp {
        Self::launch(dir, true)
    }

    fn launch(dir: &Path, hls: bool) -> NginxRtmp {
        std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
        std::fs::create_dir_all(dir.join("hls")).expect("nginx hls dir");
        let port = free_port();
        let hls_port = hls.then(free_port);
        let d = dir.display();
        let (hls_application, http) = match hls_port {
            Some(http_port) => (
                format!(
                    "      hls on;\n      hls_path {d}/hls;\n      hls_fragment 1s;\n      hls_playlist_length 6s;\n"
                ),
                format!(
                    "http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                     types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}\n\
                     server {{\n    listen 127.0.0.1:{http_port};\n    location /hls/ {{ alias {d}/hls/; add_header Cache-Control no-cache; add_header Access-Control-Allow-Origin *; }}\n  }}\n}}\n"
                ),
            ),
            None => (String::new(), String::new()),
        };
        let conf = fieldcast_probe::nginx::nginx_rtmp_config(dir, port, &hls_application, &http);
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let mut peer = Peer::spawn(
            "nginx-rtmp",
            Command::new("nginx")
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.join("logs/error.log")),
            &dir.join("nginx.out"),
        );
        wait_for("nginx-rtmp", Duration::from_secs(10), || {
            peer.check_running();
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        NginxRtmp {
            peer,
            port,
            hls_port,
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }
}

/// Janus with only its HTTP transport and the streaming plugin, one RTP mountpoint (id 1:
/// H.264 constrained baseline, pt 96, and Opus, pt 111).
pub struct Janus {
    pub peer: Peer,
    pub http: String,
    pub video_port: u16,
    pub audio_port: u16,
}

impl Janus {
    pub fn start(dir: &Path) -> Janus {
        std::fs::create_dir_all(dir).expect("janus dir");
        let lib = "/usr/lib/x86_64-linux-gnu/janus";
        let keep = |folder: &str, kept: &str| -> String {
            std::fs::read_dir(format!("{lib}/{folder}"))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .filter(|n| n.ends_with(".so") && n != kept)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let http_port = free_port();
        let (video_port, audio_port) = (free_udp_port(), free_udp_port());
        let ip = local_ipv4();
        let d = dir.display();
        std::fs::write(
            dir.join("janus.jcfg"),
            format!(
                "general: {{\n  configs_folder = \"{d}\"\n  plugins_folder = \"{lib}/plugins\"\n\
                 transports_folder = \"{lib}/transports\"\n  events_folder = \"{lib}/events\"\n\
                 loggers_folder = \"{lib}/loggers\"\n  log_to_stdout = true\n  debug_level = 3\n\
                 session_timeout = 0\n}}\n\
                 media: {{\n  rtp_port_range = \"20000-40000\"\n}}\n\
                 nat: {{\n  ice_enforce_list = \"{ip}\"\n}}\n\
                 plugins: {{\n  disable = \"{}\"\n}}\n\
                 transports: {{\n  disable = \"{}\"\n}}\n\
                 events: {{\n  broadcast = false\n  disable = \"{}\"\n}}\n\
                 loggers: {{\n  disable = \"{}\"\n}}\n",
                keep("plugins", "libjanus_streaming.so"),
                keep("transports", "libjanus_http.so"),
                keep("events", ""),
                keep("loggers", ""),
            ),
        )
        .expect("janus.jcfg");
        std::fs::write(
            dir.join("janus.transport.http.jcfg"),
            format!(
                "general: {{\n  json = \"compact\"\n  base_path = \"/janus\"\n  http = true\n\
                 port = {http_port}\n  ip = \"127.0.0.1\"\n  https = false\n}}\n\
                 admin: {{\n  admin_http = false\n  admin_https = false\n}}\n"
            ),
        )
        .expect("http config");
        std::fs::write(
            dir.join("janus.plugin.streaming.jcfg"),
            format!(
                "general: {{\n}}\n\
                 bench: {{\n  type = \"rtp\"\n  id = 1\n  description = \"bench\"\n\
                 audio = true\n  video = true\n  audioport = {audio_port}\n  audiopt = 111\n\
                 audioiface = \"127.0.0.1\"\n  videoiface = \"127.0.0.1\"\n\
                 audiocodec = \"opus\"\n  videoport = {video_port}\n  videopt = 96\n\
                 videocodec = \"h264\"\n\
                 videofmtp = \"profile-level-id=42e01f;packetization-mode=1\"\n\
                 videobufferkf = true\n}}\n"
            ),
        )
        .expect("streaming config");
        let mut peer = Peer::spawn(
            "janus",
            Command::new("janus")
                .arg("-C")
                .arg(dir.join("janus.jcfg"))
                .arg("-F")
                .arg(dir),
            &dir.join("janus.log"),
        );
        let http = format!("http://127.0.0.1:{http_port}/janus");
        wait_for("janus", Duration::from_secs(20), || {
            peer.check_running();
            ureq::get(&format!("{http}/info")).call().is_ok()
        });
        Janus {
            peer,
            http,
            video_port,
            audio_port,
        }
    }

    /// Where RTP for the mountpoint goes.
    pub fn rtp_targets(&self) -> (SocketAddr, SocketAddr) {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        (
            SocketAddr::new(lo, self.video_port),
            SocketAddr::new(lo, self.audio_port),
        )
    }

    pub fn viewer(&self) -> JanusWatch {
        JanusWatch {
            http: self.http.clone(),
        }
    }
}

/// A viewer's signalling with the Janus streaming plugin over its HTTP API: create a
/// session, attach the plugin, `watch` mountpoint 1, take Janus's offer, answer, `start`.
pub struct JanusWatch {
    http: String,
}

fn janus_call(url: &str, mut body: Value) -> Result<Value, ClientError> {
    body["transaction"] = json!(format!("{:x}", rand_u64()));
    let text = ureq::post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| ClientError::Http(format!("{url}: {e}")))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| ClientError::Http(format!("{url}: {e}")))?;
    if value["janus"] == "error" {
        return Err(ClientError::Http(format!("{url}: {value}")));
    }
    Ok(value)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

impl Signalling for JanusWatch {
    fn open(&self, config: RtcConfig) -> Result<Negotiated, ClientError> {
        let id = |v: &Value| v["data"]["id"].as_u64();
        let session = id(&janus_call(&self.http, json!({"janus": "create"}))?)
            .ok_or_else(|| ClientError::Http("no Janus session id".into()))?;
        let session_url = format!("{}/{session}", self.http);
        let handle = id(&janus_call(
            &session_url,
            json!({"janus": "attach", "plugin": "janus.plugin.streaming"}),
        )?)
        .ok_or_else(|| ClientError::Http("no Janus handle id".into()))?;
        let handle_url = format!("{session_url}/{handle}");
        janus_call(
            &handle_url,
            json!({"janus": "message", "body": {"request": "watch", "id": 1}}),
        )?;
        // The offer comes as an event on the session's long poll.
        let deadline = Instant::now() + Duration::from_secs(10);
        let offer_sdp = loop {
            if Instant::now() > deadline {
                return Err(ClientError::Http("Janus sent no offer in 10 s".into()));
            }
            let text = ureq::get(&format!("{session_url}?maxev=1"))
                .call()
                .and_then(|mut r| r.body_mut().read_to_string())
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Some(sdp) = event["jsep"]["sdp"].as_str() {
                break sdp.to_string();
            }
        };
        // Bind where Janus's candidate is: a local address (see the module's notes).
        let ip: IpAddr = offer_sdp
            .lines()
            .filter_map(|l| l.strip_prefix("a=candidate:"))
            .filter_map(|c| c.split_whitespace().nth(4)?.parse().ok())
            .find(|ip: &IpAddr| ip.is_ipv4())
            .ok_or_else(|| ClientError::Rtc("Janus offered no IPv4 candidate".into()))?;
        let socket = UdpSocket::bind((ip, 0))?;
        let local = socket.local_addr()?;
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(
            Candidate::host(local, "udp").map_err(|e| ClientError::Rtc(e.to_string()))?,
        );
        let offer =
            SdpOffer::from_sdp_string(&offer_sdp).map_err(|e| ClientError::Rtc(e.to_string()))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| ClientError::Rtc(e.to_string()))?;
        janus_call(
            &handle_url,
            json!({"janus": "message", "body": {"request": "start"},
                   "jsep": {"type": "answer", "sdp": answer.to_sdp_string()}}),
        )?;
        let leave = Box::new(move || {
            let _ = janus_call(&session_url, json!({"janus": "destroy"}));
        });
        Ok(Negotiated {
            rtc,
            link: Link::Udp(socket),
            local,
            leave: Some(leave),
        })
    }
}

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// A product card for ffmpeg's overlay: a 460×180 panel with the product's name and price.
pub fn card_png(dir: &Path) -> PathBuf {
    let path = dir.join("card.png");
    let text = |words: &str, y: u32, size: u32| {
        format!(
            "drawtext=fontfile={FONT}:text='{words}':x=24:y={y}:fontsize={size}:fontcolor=white"
        )
    };
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=c=0x2e7d4f:s=460x180")
        .arg("-vf")
        .arg(format!(
            "{},{}",
            text("Rose jam", 24, 44),
            text("29.00 CNY  88 left", 110, 36)
        ))
        .args(["-frames:v", "1"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not draw the card");
    path
}

/// The hand-built chain's ffmpeg work after its input (`-i …` already on `command`): the
/// card (`card`, as a second input) and a counter burnt in, then libx264 veryfast
/// zerolatency constrained baseline at the studio's 2.5 Mb/s with 2 s keyframes and Opus
/// 64 kb/s, each as RTP (1200-byte packets) to `video` and `audio`.
pub fn overlay_and_encode(
    command: &mut Command,
    card: &Path,
    video: SocketAddr,
    audio: SocketAddr,
) {
    let filter = format!(
        "[0:v][1:v]overlay=38:500,drawtext=fontfile={FONT}:text='Viewers 120  Likes 3400  Sold 12':x=w-tw-32:y=29:fontsize=30:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=12[v]"
    );
    command
        .args(["-loop", "1", "-i"])
        .arg(card)
        .args(["-filter_complex", &filter])
        .args([
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-profile:v",
            "baseline",
            "-b:v",
            "2500k",
            "-g",
            "60",
            "-bf",
            "0",
        ])
        .args(["-payload_type", "96", "-f", "rtp"])
        .arg(format!("rtp://{video}?pkt_size=1200"))
        .args([
            "-map", "0:a", "-c:a", "libopus", "-b:a", "64k", "-ar", "48000", "-ac", "2",
        ])
        .args(["-payload_type", "111", "-f", "rtp"])
        .arg(format!("rtp://{audio}"));
}

/// An nginx with the README's cache configuration in front of `upstream`.
pub fn nginx_cache(upstream: std::net::SocketAddr, dir: &Path) -> (Peer, std::net::SocketAddr) {
    std::fs::create_dir_all(dir.join("cache")).expect("cache dir");
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        fieldcast_probe::nginx::nginx_main_config(&upstream.to_string(), &listen.to_string(), dir),
    )
    .expect("nginx.conf");
    let peer = Peer::spawn(
        "nginx (proxy_cache)",
        Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir),
        &dir.join("nginx.out"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    (peer, listen)
}
