//! What one client may hold of the server's connections, and how it is counted:
//! - 5,000 slow-loris connections from 5,000 addresses are closed by the header timer while a
//!   show plays and sells;
//! - RTMP connections that idle without a stream key cannot keep the host's OBS out;
//! - an IPv6 subscriber counts by its /64, and a server on `[::]` still knows its IPv4 proxy.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    ControlledShow, HealthProbe, Publisher, Server, buy_one, data_dir, http_from, offer,
    order_body, quantile,
};
use fieldcast_probe::whep::{PlayOptions, play};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The largest gap between two decoded frames of a control viewer.
fn worst_gap(report: &fieldcast_probe::whep::PlaybackReport) -> Duration {
    report
        .decoded
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or(Duration::MAX)
}

/// One slow-loris client: opens a connection from `from`, sends the start of a request head
/// and then a header byte a second, never finishing. Returns how long the server kept it.
async fn slow_loris(from: IpAddr, http: SocketAddr) -> Option<Duration> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    let mut stream = socket.connect(http).await.ok()?;
    let opened = Instant::now();
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await;
    let mut buf = [0u8; 256];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(opened.elapsed()),
                Ok(_) => {}
            },
            _ = tick.tick() => {
                if stream.write_all(b"a").await.is_err() {
                    return Some(opened.elapsed());
                }
                if opened.elapsed() > Duration::from_secs(60) {
                    return None;
                }
            }
        }
    }
}

#[test]
fn slow_loris_from_5000_addresses_is_closed_within_15_s_while_the_show_plays_and_sells() {
    fieldcast_engine::process::raise_fd_limit();
    let server = Server::start(&data_dir("slow-loris"));
    let show = ControlledShow::start(&server, 100, Duration::from_secs(28));
    let (session_id, offer_id) = (show.session_id.clone(), show.offer_id.clone());
    std::thread::sleep(Duration::from_secs(3));
    let baseline = open_fds(&server);
    let health = HealthProbe::start(&server);

    let http = server.http;
    let session = session_id.clone();
    let peak_fds = Arc::new(AtomicUsize::new(0));
    let pid = server.pid();
    let (held, honest) = runtime().block_on(async {
        let sampler = {
            let peak = peak_fds.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    let n = std::fs::read_dir(format!("/proc/{pid}/fd"))
                        .map(|d| d.count())
                        .unwrap_or(0);
                    peak.fetch_max(n, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        // 5,000 addresses, 127.20.x.y, one connection each, opened within about a second.
        let loris: Vec<_> = (0..5000usize)
            .map(|i| {
                let from = IpAddr::from([127, 20, (i / 250) as u8, (i % 250 + 1) as u8]);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(200 * i as u64)).await;
                    slow_loris(from, http).await
                })
            })
            .collect();
        // Honest buyers, one every 200 ms while the connections are held, each from their own
        // address.
        let buyers: Vec<_> = (0..30usize)
            .map(|n| {
                let (session, offer_id) = (session.clone(), offer_id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1500 + 200 * n as u64)).await;
                    buy_one(http, &session, &offer_id, n, &format!("honest-{n}"))
                        .await
                        .map(|(s, _)| s)
                        .unwrap_or(0)
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in loris {
            held.push(t.await.unwrap());
        }
        let mut honest = Vec::new();
        for t in buyers {
            honest.push(t.await.unwrap());
        }
        sampler.abort();
        (held, honest)
    });
    // The fds come back once the closed connections' tasks end.
    let settled_by = Instant::now() + Duration::from_secs(10);
    while open_fds(&server) > baseline + 16 && Instant::now() < settled_by {
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = open_fds(&server);
    let report = show
        .viewer
        .join()
        .unwrap()
        .expect("the control viewer played");
    let health = health.stop();

    let opened = held.iter().flatten().count();
    let longest = held.iter().flatten().max().copied().unwrap_or_default();
    let never_closed = held.iter().filter(|h| h.is_none()).count();
    let gap = worst_gap(&report);
    let failed_probes = health
        .iter()
        .filter(|d| **d >= Duration::from_secs(5))
        .count();
    println!(
        "slow loris: {opened} connections held, the longest {longest:?}, {never_closed} not closed in 60 s"
    );
    println!(
        "server fds: {baseline} before, {} at the peak, {after} after",
        peak_fds.load(Ordering::Relaxed)
    );
    println!(
        "control viewer: {} frames, worst gap {gap:?}; /healthz: {} probes, p99 {:?}, {failed_probes} failed; honest buyers: {honest:?}",
        report.decoded.len(),
        health.len(),
        quantile(&health, 0.99)
    );
    assert_eq!(opened, 5000, "every slow connection was opened and ended");
    assert!(
        longest <= Duration::from_secs(15),
        "a slow-loris connection was held {longest:?}"
    );
    assert!(
        peak_fds.load(Ordering::Relaxed) >= baseline + 4000,
        "the attack never held the server's sockets (peak {})",
        peak_fds.load(Ordering::Relaxed)
    );
    assert!(
        after <= baseline + 16,
        "file descriptors: {baseline} before, {after} after"
    );
    assert!(
        report.decoded.len() >= 300,
        "the control viewer decoded {} frames",
        report.decoded.len()
    );
    assert!(
        gap < Duration::from_millis(500),
        "the control viewer froze for {gap:?}"
    );
    assert_eq!(failed_probes, 0, "/healthz failed to answer");
    assert!(
        honest.iter().all(|s| *s == 201),
        "every honest buyer buys: {honest:?}"
    );
}

/// Holds `per_address` RTMP connections from `from` that never send a byte; each one closed
/// by the server is opened again at once, until `stop`. Returns how many were opened.
async fn squat(from: IpAddr, rtmp: SocketAddr, per_address: usize, stop: Arc<AtomicBool>) -> usize {
    let opened = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..per_address)
        .map(|_| {
            let (stop, opened) = (stop.clone(), opened.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                        return;
                    };
                    if socket.bind(SocketAddr::new(from, 0)).is_err() {
                        return;
                    }
                    let Ok(mut stream) = socket.connect(rtmp).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    // Idle until the server closes it (or the run ends).
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    opened.load(Ordering::Relaxed)
}

#[test]
fn rtmp_connections_idling_without_a_key_cannot_keep_the_host_out() {
    let server = Server::start(&data_dir("rtmp-squat"));
    let session = server.create_session("Squatted");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    let rtmp = server.rtmp;
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime();
    // 32 addresses × 8 idle connections: all 256 places of the default caps.
    let squatters: Vec<_> = (0..32u8)
        .map(|a| {
            rt.spawn(squat(
                IpAddr::from([127, 21, 0, a + 1]),
                rtmp,
                8,
                stop.clone(),
            ))
        })
        .collect();
    wait_for_metric(&server, "fieldcast_rtmp_connections", 256.0);

    let started = Instant::now();
    let publisher = Publisher::ffmpeg(&server.publish_url(&key), "640x360", 30);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    let admitted = started.elapsed();
    let whep = server.url(&format!("/whep/{id}"));
    let report = play(
        &whep,
        &PlayOptions {
            duration: Duration::from_secs(6),
            decode: true,
            keep_last_frame: true,
            ..Default::default()
        },
    )
    .expect("a viewer plays the host");
    let last = report.last_frame.as_ref().expect("a decoded picture");
    let centre = last.pixel(last.width / 2, last.height / 2);
    let made_room =
        server.metric("fieldcast_rtmp_connections_closed_total{reason=\"over_capacity\"}");
    stop.store(true, Ordering::Relaxed);
    let opened: usize = rt.block_on(async {
        let mut n = 0;
        for s in squatters {
            n += s.await.unwrap_or(0);
        }
        n
    });
    drop(publisher);
    println!(
        "host admitted {admitted:?} after start (ffmpeg's own start included); squatters opened {opened} connections; {made_room} closed to make room; the viewer decoded {} frames ({}×{}), centre {centre:?}",
        report.decoded.len(),
        last.width,
        last.height
    );
    assert!(
        admitted <= Duration::from_secs(2),
        "the host waited {admitted:?}"
    );
    assert!(made_room >= 1.0, "no squatter was closed to make room");
    assert!(
        report.decoded.len() >= 60,
        "the viewer decoded {} frames",
        report.decoded.len()
    );
    assert_eq!(
        (last.width, last.height),
        (1280, 720),
        "the composited output"
    );
    assert!(
        !common::is_slate(centre),
        "the viewer sees the slate, not the host: {centre:?}"
    );
}

fn wait_for_metric(server: &Server, series: &str, at_least: f64) {
    common::wait_for(
        &format!("{series} ≥ {at_least}"),
        Duration::from_secs(15),
        || server.metric(series) >= at_least,
    );
}

#[test]
fn an_ipv6_subscriber_counts_by_its_64_and_a_server_on_all_addresses_knows_its_ipv4_proxy() {
    let rt = runtime();
    let order = |to: SocketAddr, session: &str, offer_id: &str, n: usize, forwarded: &str| {
        let path = format!("/api/v1/sessions/{session}/orders");
        let key = format!("buyer-{n}-{forwarded}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key.as_str()),
            ("X-Forwarded-For", forwarded),
        ];
        let body = order_body(offer_id, n, 1);
        rt.block_on(http_from(None, to, "POST", &path, &headers, &body))
            .map(|(s, _)| s)
            .unwrap_or(0)
    };

    // On ::1, behind a proxy at ::1: 100 addresses of one /64 are one client; 100 addresses
    // in 100 /64s are 100.
    let server = Server::start_on(
        &data_dir("ipv6-64"),
        "[::1]:0",
        &["--trusted-proxies", "::1", "--address-share-percent", "0"],
    );
    assert!(server.http.is_ipv6());
    let (session, offer_id) = offer(&server, 1000, None, 600);
    let one_64: Vec<u16> = (0..100)
        .map(|n| {
            order(
                server.http,
                &session,
                &offer_id,
                n,
                &format!("2001:db8:1:2::{:x}", n + 1),
            )
        })
        .collect();
    let many_64: Vec<u16> = (0..100)
        .map(|n| {
            order(
                server.http,
                &session,
                &offer_id,
                100 + n,
                &format!("2001:db8:1:{:x}::1", n + 16),
            )
        })
        .collect();
    let count = |v: &[u16], s| v.iter().filter(|x| **x == s).count();
    println!(
        "one /64: {} × 201, {} × 429; 100 /64s: {} × 201",
        count(&one_64, 201),
        count(&one_64, 429),
        count(&many_64, 201)
    );
    assert_eq!(
        count(&one_64, 201),
        5,
        "one /64 has one order budget (5 at once): {one_64:?}"
    );
    assert_eq!(count(&one_64, 429), 95);
    assert_eq!(count(&many_64, 201), 100, "{many_64:?}");
    drop(server);

    // On [::], IPv4 clients arrive IPv4-mapped; the proxy is configured as 127.0.0.1.
    let server = Server::start_on(
        &data_dir("ipv6-mapped"),
        "[::]:0",
        &[
            "--trusted-proxies",
            "127.0.0.1",
            "--address-share-percent",
            "0",
        ],
    );
    assert!(server.http.ip().is_unspecified());
    let (session, offer_id) = offer(&server, 1000, None, 600);
    // The proxy reaches the server over IPv4: the server's socket sees ::ffff:127.0.0.1.
    let proxy_to = SocketAddr::from(([127, 0, 0, 1], server.http.port()));
    let through_proxy: Vec<u16> = (0..50)
        .map(|n| {
            order(
                proxy_to,
                &session,
                &offer_id,
                n,
                &format!("198.51.100.{}", n + 1),
            )
        })
        .collect();
    println!(
        "through an IPv4 proxy to [::]: {} × 201 of 50",
        count(&through_proxy, 201)
    );
    assert_eq!(
        count(&through_proxy, 201),
        50,
        "50 clients through the proxy are 50, not one: {through_proxy:?}"
    );
}
