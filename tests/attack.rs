//! A show under attack: a control publisher (ffmpeg) and a control WHEP viewer (the Rust
//! client) run while one test floods every public surface at once:
//! - 200 malformed RTMP sessions (the replay corpus), 20 at a time;
//! - the 8 MiB message in 128-byte chunks, over 4 connections, needing no stream key;
//! - WHEP offers from one address, never connected;
//! - 3,000 orders with random phone numbers from one address, 200 at a time, against a
//!   150-unit offer (one per buyer), while 100 honest buyers buy from addresses of their own.
//!
//! Afterwards: the control viewer saw no gap over 500 ms, `/healthz` stayed fast, every
//! honest buyer got 201 or 409, the flooding address got a handful of units at most, and the
//! server's memory, file descriptors and idempotency rows came back near where they were.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    ControlledShow, HealthProbe, Server, client_ip, data_dir, http_from, order_body, quantile,
    whep_offer_sdp,
};
use fieldcast_core::rtmp::chunk::{ChunkEncoder, MAX_MESSAGE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The flood's own addresses, apart from the honest buyers' (127.1.x.y).
fn attacker(n: u8) -> IpAddr {
    IpAddr::from([127, 9, 0, n])
}

/// What the server process holds, from /proc and its database.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_mib: f64,
    fds: usize,
    idempotency_rows: i64,
}

fn usage(server: &Server) -> Usage {
    let pid = server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let db = rusqlite::Connection::open_with_flags(
        server.data.join("fieldcast.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the server's database read-only");
    let idempotency_rows = db
        .query_row("SELECT count(*) FROM idempotency", [], |r| r.get(0))
        .expect("count idempotency rows");
    Usage {
        rss_mib: rss_kib / 1024.0,
        fds,
        idempotency_rows,
    }
}

/// Sends `bytes` on a new RTMP connection from `from`, then reads until the server closes
/// (or 12 s pass). Returns how the connection ended.
async fn rtmp_session(from: IpAddr, rtmp: SocketAddr, bytes: Arc<Vec<u8>>) -> &'static str {
    let socket = match tokio::net::TcpSocket::new_v4() {
        Ok(s) => s,
        Err(_) => return "socket",
    };
    if socket.bind(SocketAddr::new(from, 0)).is_err() {
        return "bind";
    }
    let Ok(mut stream) = socket.connect(rtmp).await else {
        return "refused";
    };
    let run = async {
        // The write may fail once the server has closed on the bytes so far: that is a close.
        // Then the client is done sending (FIN), as a client that gave up would be.
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return "closed",
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(12), run)
        .await
        .unwrap_or("still open after 12 s")
}

#[test]
fn a_show_keeps_playing_and_selling_fairly_under_rtmp_whep_and_order_floods() {
    let server = Server::start(&data_dir("attack"));
    // The control viewer watches the whole attack.
    let show = ControlledShow::start(&server, 150, Duration::from_secs(30));
    let (session_id, offer_id) = (show.session_id.clone(), show.offer_id.clone());
    std::thread::sleep(Duration::from_secs(3));
    let baseline = usage(&server);

    // /healthz, every 20 ms, for as long as the attack runs.
    let prober = HealthProbe::start(&server);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let corpus: Vec<Arc<Vec<u8>>> = {
        let mut files: Vec<_> = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/rtmp"),
        )
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() < 200_000)
                .unwrap_or(false)
        })
        .collect();
        files.sort();
        files
            .iter()
            .map(|p| Arc::new(std::fs::read(p).unwrap()))
            .collect()
    };
    let big = {
        // The plain handshake, then one 8 MiB message in 128-byte chunks: no key needed.
        let mut b = vec![3];
        b.extend(std::iter::repeat_n(7u8, 2 * 1536));
        let payload = vec![0u8; MAX_MESSAGE_LEN as usize];
        ChunkEncoder::default().write(&mut b, 6, 9, 1, 0, &payload);
        Arc::new(b)
    };
    let rtmp = server.rtmp;
    let http = server.http;
    let orders_path = format!("/api/v1/sessions/{session_id}/orders");
    let whep_path = format!("/whep/{session_id}");
    let offer_sdp = whep_offer_sdp();

    let started = Instant::now();
    let (rtmp_ends, big_ends, whep_statuses, flood, honest) = rt.block_on(async {
        // 200 malformed RTMP sessions, 20 at a time, from 20 addresses.
        let malformed = {
            let corpus = corpus.clone();
            tokio::spawn(async move {
                let mut ends = Vec::new();
                for wave in 0..10 {
                    let wave: Vec<_> = (0..20u8)
                        .map(|i| {
                            let bytes = corpus[(wave * 20 + i as usize) % corpus.len()].clone();
                            tokio::spawn(rtmp_session(attacker(10 + i), rtmp, bytes))
                        })
                        .collect();
                    for t in wave {
                        ends.push(t.await.unwrap());
                    }
                }
                ends
            })
        };
        // The 8 MiB message over 4 connections.
        let eight_mib: Vec<_> = (0..4u8)
            .map(|i| tokio::spawn(rtmp_session(attacker(40 + i), rtmp, big.clone())))
            .collect();
        // WHEP offers from one address, never connected.
        let whep_flood = {
            let (path, sdp) = (whep_path.clone(), offer_sdp.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..300 {
                    let headers = [("Content-Type", "application/sdp")];
                    let s = http_from(Some(attacker(50)), http, "POST", &path, &headers, &sdp)
                        .await
                        .map(|(s, _)| s)
                        .unwrap_or(0);
                    statuses.push(s);
                }
                statuses
            })
        };
        // 3,000 orders, random phones, one address, 200 at a time.
        let order_flood = {
            let (path, offer_id) = (orders_path.clone(), offer_id.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for wave in 0..15 {
                    let tasks: Vec<_> = (0..200)
                        .map(|i| {
                            let (path, offer_id) = (path.clone(), offer_id.clone());
                            tokio::spawn(async move {
                                let phone_n =
                                    10_000_000 + rand::random::<u32>() as usize % 80_000_000;
                                let key = format!("flood-{wave}-{i}");
                                let headers = [
                                    ("Content-Type", "application/json"),
                                    ("Idempotency-Key", key.as_str()),
                                ];
                                let body = order_body(&offer_id, phone_n, 1);
                                http_from(Some(attacker(60)), http, "POST", &path, &headers, &body)
                                    .await
                                    .map(|(s, _)| s)
                                    .unwrap_or(0)
                            })
                        })
                        .collect();
                    for t in tasks {
                        statuses.push(t.await.unwrap());
                    }
                }
                statuses
            })
        };
        // 100 honest buyers within the first two seconds, each from an address of their own.
        let honest = {
            let (path, offer_id) = (orders_path.clone(), offer_id.clone());
            tokio::spawn(async move {
                let tasks: Vec<_> = (0..100)
                    .map(|n| {
                        let (path, offer_id) = (path.clone(), offer_id.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(20 * n as u64)).await;
                            let key = format!("honest-{n}");
                            let headers = [
                                ("Content-Type", "application/json"),
                                ("Idempotency-Key", key.as_str()),
                            ];
                            let body = order_body(&offer_id, n, 1);
                            http_from(Some(client_ip(n)), http, "POST", &path, &headers, &body)
                                .await
                                .map(|(s, _)| s)
                                .unwrap_or(0)
                        })
                    })
                    .collect();
                let mut statuses = Vec::new();
                for t in tasks {
                    statuses.push(t.await.unwrap());
                }
                statuses
            })
        };
        let mut big_ends = Vec::new();
        for t in eight_mib {
            big_ends.push(t.await.unwrap());
        }
        (
            malformed.await.unwrap(),
            big_ends,
            whep_flood.await.unwrap(),
            order_flood.await.unwrap(),
            honest.await.unwrap(),
        )
    });
    let attack_took = started.elapsed();
    let health = prober.stop();
    let report = show
        .viewer
        .join()
        .unwrap()
        .expect("the control viewer played");

    let count = |v: &[u16], s: u16| v.iter().filter(|x| **x == s).count();
    println!("attack took {attack_took:?}");
    println!(
        "malformed RTMP: {} closed, others {:?}",
        rtmp_ends.iter().filter(|e| **e == "closed").count(),
        rtmp_ends
            .iter()
            .filter(|e| **e != "closed")
            .collect::<Vec<_>>()
    );
    println!("8 MiB messages: {big_ends:?}");
    println!(
        "WHEP flood: {} × 201, {} × 429, {} × 503, {} other",
        count(&whep_statuses, 201),
        count(&whep_statuses, 429),
        count(&whep_statuses, 503),
        whep_statuses.len()
            - count(&whep_statuses, 201)
            - count(&whep_statuses, 429)
            - count(&whep_statuses, 503)
    );
    let flood_units = count(&flood, 201);
    println!(
        "order flood: {flood_units} × 201, {} × 429, {} × 409, {} other",
        count(&flood, 429),
        count(&flood, 409),
        flood.len() - flood_units - count(&flood, 429) - count(&flood, 409)
    );
    let honest_units = count(&honest, 201);
    println!(
        "honest buyers: {honest_units} × 201, {} × 409, others {:?}",
        count(&honest, 409),
        honest
            .iter()
            .filter(|s| **s != 201 && **s != 409)
            .collect::<Vec<_>>()
    );

    // The control viewer's picture never stopped.
    let worst_gap = report
        .decoded
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or(Duration::MAX);
    println!(
        "control viewer: {} frames, worst gap {worst_gap:?}",
        report.decoded.len()
    );
    let p99 = quantile(&health, 0.99);
    println!(
        "/healthz: {} probes, p50 {:?}, p99 {p99:?}, max {:?}",
        health.len(),
        quantile(&health, 0.5),
        health.iter().max().unwrap()
    );

    // Pending viewers are reaped (15 s); then the figures come back near the baseline.
    let reaped_by = Instant::now() + Duration::from_secs(25);
    while server.metric("fieldcast_viewers_pending") > 0.0 && Instant::now() < reaped_by {
        std::thread::sleep(Duration::from_millis(250));
    }
    let after = usage(&server);
    println!("baseline {baseline:?}");
    println!("after    {after:?}");
    println!(
        "reaped (never connected): {}; RTMP closed over capacity: {}, malformed: {}",
        server.metric("fieldcast_viewers_ended_total{reason=\"never_connected\"}"),
        server.metric("fieldcast_rtmp_connections_closed_total{reason=\"over_capacity\"}"),
        server.metric("fieldcast_rtmp_connections_closed_total{reason=\"malformed\"}"),
    );

    assert!(
        report.decoded.len() >= 300,
        "the control viewer decoded only {} frames",
        report.decoded.len()
    );
    assert!(
        worst_gap < Duration::from_millis(500),
        "the control viewer's picture froze for {worst_gap:?}"
    );
    assert!(p99 < Duration::from_millis(50), "/healthz p99 {p99:?}");
    assert!(
        honest.iter().all(|s| *s == 201 || *s == 409),
        "an honest buyer got something else: {honest:?}"
    );
    assert!(
        flood_units <= 10,
        "the flooding address got {flood_units} units"
    );
    assert_eq!(
        honest_units,
        100.min(150 - flood_units),
        "the honest buyers should get the rest"
    );
    assert!(
        rtmp_ends
            .iter()
            .chain(&big_ends)
            .all(|e| *e == "closed" || *e == "refused"),
        "an RTMP attack connection stayed open: {rtmp_ends:?} {big_ends:?}"
    );
    assert_eq!(
        server.metric("fieldcast_viewers_pending"),
        0.0,
        "pending viewers were not reaped"
    );
    assert!(
        after.fds <= baseline.fds + 16,
        "file descriptors: {} before, {} after",
        baseline.fds,
        after.fds
    );
    assert!(
        after.rss_mib <= baseline.rss_mib + 96.0,
        "memory: {:.0} MiB before, {:.0} MiB after",
        baseline.rss_mib,
        after.rss_mib
    );
    // One row per order that reached the ledger: the honest ones and the flood's handful.
    let admitted = (flood.len() - count(&flood, 429)) as i64;
    assert!(
        after.idempotency_rows <= baseline.idempotency_rows + 100 + admitted,
        "idempotency rows: {} before, {} after ({admitted} flood orders admitted)",
        baseline.idempotency_rows,
        after.idempotency_rows
    );
}
