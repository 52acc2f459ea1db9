//! Orders benchmark against the real binary over HTTP on loopback:
//! 1. sustained durable orders a second with p50/p99 latency (closed loop, keep-alive
//!    connections, one order per request, each acknowledged only after its commit);
//! 2. a flash-sale burst: 10,000 buyers at once for 1,000 units.
//!
//! Run: `cargo bench --bench orders` (or `make bench`); `-- --quick` for a short run.
//! The load generator runs on the same machine and shares its cores with the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod conn;
mod harness;

use conn::Conn;

use harness::{Server, TOKEN, percentile};

async fn api(addr: SocketAddr, method: &str, path: &str, body: Value) -> Value {
    let mut c = Conn::open(addr).await.unwrap();
    let auth = format!("Bearer {TOKEN}");
    let (status, text) = c
        .request(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
        .await
        .unwrap();
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn offer(addr: SocketAddr, quantity: i64) -> (String, String) {
    let session = api(addr, "POST", "/api/v1/sessions", json!({"title": "Bench"})).await;
    let product = api(
        addr,
        "POST",
        "/api/v1/products",
        json!({"name": "Rose jam", "unit_amount": 3500, "currency": "CNY"}),
    )
    .await;
    let sid = session["id"].as_str().unwrap().to_string();
    let offer = api(
        addr,
        "POST",
        &format!("/api/v1/sessions/{sid}/offers"),
        json!({"product_id": product["id"], "unit_amount": 2900, "quantity": quantity, "duration_s": 3600}),
    )
    .await;
    (sid, offer["id"].as_str().unwrap().to_string())
}

fn order_body(offer_id: &str, n: u64) -> String {
    json!({"offer_id": offer_id, "quantity": 1,
           "buyer": {"name": format!("Buyer {n}"), "phone": format!("+86{n:011}"), "address": "1 Rose Street", "city": "Kashgar"}})
    .to_string()
}

async fn sustained(
    addr: SocketAddr,
    clients: usize,
    seconds: u64,
) -> (f64, Duration, Duration, usize) {
    let (sid, offer_id) = offer(addr, 1_000_000).await;
    let path = format!("/api/v1/sessions/{sid}/orders");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let (path, offer_id, stop) = (path.clone(), offer_id.clone(), stop.clone());
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await.unwrap();
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut n = (w as u64) << 32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("k{n}");
                    let t = Instant::now();
                    match conn
                        .request(
                            "POST",
                            &path,
                            &[
                                ("Content-Type", "application/json"),
                                ("Idempotency-Key", &key),
                            ],
                            &order_body(&offer_id, n),
                        )
                        .await
                    {
                        Ok((201, _)) => latencies.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        all.len() as f64 / elapsed,
        percentile(&mut all, 0.5),
        percentile(&mut all, 0.99),
        errors,
    )
}

async fn burst(
    addr: SocketAddr,
    buyers: u64,
    units: i64,
) -> (Duration, usize, usize, usize, Value) {
    let (sid, offer_id) = offer(addr, units).await;
    let path = format!("/api/v1/sessions/{sid}/orders");
    let started = Instant::now();
    let tasks: Vec<_> = (0..buyers)
        .map(|n| {
            let (path, body) = (path.clone(), order_body(&offer_id, 1_000_000 + n));
            tokio::spawn(async move {
                let key = format!("burst-{n}");
                for _ in 0..20 {
                    if let Ok(mut conn) = Conn::open(addr).await
                        && let Ok((status, _)) = conn
                            .request(
                                "POST",
                                &path,
                                &[
                                    ("Content-Type", "application/json"),
                                    ("Idempotency-Key", &key),
                                ],
                                &body,
                            )
                            .await
                    {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                0
            })
        })
        .collect();
    let mut sold = 0;
    let mut sold_out = 0;
    let mut other = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => sold += 1,
            409 => sold_out += 1,
            _ => other += 1,
        }
    }
    let settled = started.elapsed();
    let ledger = api(
        addr,
        "GET",
        &format!("/api/v1/sessions/{sid}/offers/{offer_id}"),
        json!({}),
    )
    .await;
    (settled, sold, sold_out, other, ledger)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    fieldcast_engine::process::raise_fd_limit();
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-orders");
    let server = Server::start(&data, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seconds = if quick { 4 } else { 20 };
    let client_counts: &[usize] = if quick { &[16, 64] } else { &[16, 64, 256] };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "orders benchmark: {} cores, {cpu}; server and load generator on the same machine",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!("| clients | durable orders/s | p50 | p99 | errors | server CPU per order |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &clients in client_counts {
        let cpu_before = server.usage().0;
        let (rate, p50, p99, errors) = rt.block_on(sustained(server.http, clients, seconds));
        let per_order = (server.usage().0 - cpu_before) / (rate * seconds as f64);
        println!(
            "| {clients} | {rate:.0} | {:.1} ms | {:.1} ms | {errors} | {:.0} µs |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            per_order * 1e6
        );
    }
    println!();
    let (settled, sold, sold_out, other, ledger) = rt.block_on(burst(server.http, 10_000, 1_000));
    println!(
        "| flash-sale burst | buyers | units | settled in | 201 | 409 | other | ledger remaining/sold |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| all at once | 10000 | 1000 | {:.2} s | {sold} | {sold_out} | {other} | {}/{} |",
        settled.as_secs_f64(),
        ledger["remaining"],
        ledger["sold"]
    );
}
