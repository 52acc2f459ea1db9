//! The shop at the audience's scale, against the real binary on loopback:
//! 1. **Surge**: 50,000 buyers from distinct addresses and 500 behind one address (with device
//!    tokens) for 1,000 units, arriving over a few seconds, with the server's default limits.
//!    Each buyer's time is from its arrival to its answer.
//! 2. **State fan-out** through the README's nginx (`docs/nginx-cache.conf`): many readers
//!    follow `/state` as the watch page does while orders and likes change it. Origin requests
//!    per state version, the delay from an order's commit to each reader seeing it, the
//!    origin's CPU; then the sizing for 505,000 viewers.
//! 3. **Like storm**: viewers sending one like batch a second each, from distinct addresses,
//!    while buyers order; orders' p99 beside the same orders without the storm, the origin's
//!    CPU, and whether every like was counted.
//!
//! Clients come with their own `X-Forwarded-For` behind `--trusted-proxies 127.0.0.1`: one
//! address on loopback plays many. The load generator shares the machine's cores with the
//! server (and nginx): the server's own capacity is higher than what is shown.
//!
//! Run: `cargo bench --bench audience` (or `make bench`); `-- --quick` for a short run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod conn;
mod harness;
mod peers;

use conn::Conn;
use harness::{Server, percentile};

const TRUST_LOOPBACK: [&str; 2] = ["--trusted-proxies", "127.0.0.1"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The `n`th distinct public address a load generator plays (10.x.y.z).
fn address(n: usize) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

/// A session with a product and an offer of `units`; (session id, offer id).
fn sale(server: &Server, units: i64) -> (String, String) {
    let session = server.api(
        "POST",
        "/api/v1/sessions",
        Some(json!({"title": "Audience bench"})),
    );
    let sid = session["id"].as_str().unwrap().to_string();
    let product = server.api(
        "POST",
        "/api/v1/products",
        Some(json!({"name": "Rose jam", "unit_amount": 3500, "currency": "CNY", "unit": "jar"})),
    );
    server.api(
        "PUT",
        &format!("/api/v1/sessions/{sid}/pinned"),
        Some(json!({"product_id": product["id"]})),
    );
    let offer = server.api(
        "POST",
        &format!("/api/v1/sessions/{sid}/offers"),
        Some(json!({"product_id": product["id"], "unit_amount": 2900, "quantity": units, "duration_s": 3600})),
    );
    (sid, offer["id"].as_str().unwrap().to_string())
}

fn order_body(offer_id: &str, n: usize) -> String {
    json!({"offer_id": offer_id, "quantity": 1,
           "buyer": {"name": format!("Buyer {n}"), "phone": format!("+86{:011}", 13_000_000_000u64 + n as u64), "address": "1 Rose Street"}})
    .to_string()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

// ---- 1. Surge ----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Buyer {
    /// From its own address, with no device token (as a script or the API would).
    Distinct(usize),
    /// Behind the one shared address, with its device token.
    Shared(usize),
}

/// What one buyer got: status, the problem's `code` if any, and the time from its arrival.
struct Answer {
    buyer: Buyer,
    status: u16,
    code: String,
    took: Duration,
}

fn problem_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn surge(spread: Duration) {
    const DISTINCT: usize = 50_000;
    const SHARED: usize = 500;
    const UNITS: i64 = 1_000;
    const SHARED_ADDRESS: &str = "100.64.0.1";
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-audience-surge");
    // The default limits, except that the shared address may mint its 500 tokens at once: in a
    // show the phones got them over the minutes before the sale, as each opened its buy sheet.
    let mut args = TRUST_LOOPBACK.to_vec();
    args.extend(["--rate-devices", "600:5"]);
    let server = Server::start_with_default_limits(&data, &args);
    let (sid, offer_id) = sale(&server, UNITS);
    let rt = runtime();
    let addr = server.http;

    let tokens: Vec<String> = rt.block_on(async {
        let mut conn = Conn::open(addr).await.unwrap();
        let mut tokens = Vec::new();
        for _ in 0..SHARED {
            let (status, body) = conn
                .request(
                    "POST",
                    "/api/v1/devices",
                    &[("X-Forwarded-For", SHARED_ADDRESS)],
                    "",
                )
                .await
                .unwrap();
            assert_eq!(status, 201, "{body}");
            let token: Value = serde_json::from_str(&body).unwrap();
            tokens.push(token["device"].as_str().unwrap().to_string());
        }
        tokens
    });

    // Arrivals spread evenly over `spread`, the two kinds of buyer interleaved at random.
    let mut buyers: Vec<Buyer> = (0..DISTINCT)
        .map(Buyer::Distinct)
        .chain((0..SHARED).map(Buyer::Shared))
        .collect();
    {
        use rand::seq::SliceRandom;
        buyers.shuffle(&mut rand::rng());
    }
    let tokens = Arc::new(tokens);
    let path = format!("/api/v1/sessions/{sid}/orders");
    let cpu_before = server.usage().0;
    let answers: Vec<Answer> = rt.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(200);
        let count = buyers.len();
        let tasks: Vec<_> = buyers
            .into_iter()
            .enumerate()
            .map(|(i, buyer)| {
                let (path, offer_id, tokens) = (path.clone(), offer_id.clone(), tokens.clone());
                let at = start + spread.mul_f64(i as f64 / count as f64);
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let (from, n, token) = match buyer {
                        Buyer::Distinct(n) => (address(n), n, None),
                        Buyer::Shared(n) => (
                            SHARED_ADDRESS.to_string(),
                            DISTINCT + n,
                            Some(tokens[n].clone()),
                        ),
                    };
                    let key = format!("surge-{n}");
                    let mut headers = vec![
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", key.as_str()),
                        ("X-Forwarded-For", from.as_str()),
                    ];
                    if let Some(token) = &token {
                        headers.push(("Fieldcast-Device", token.as_str()));
                    }
                    let body = order_body(&offer_id, n);
                    // A connection refused by a full backlog is tried again, as a phone would;
                    // the time keeps running from the buyer's arrival.
                    for _ in 0..50 {
                        if let Ok(mut conn) = Conn::open(addr).await
                            && let Ok((status, text)) =
                                conn.request("POST", &path, &headers, &body).await
                        {
                            return Answer {
                                buyer,
                                status,
                                code: problem_code(&text),
                                took: at.elapsed(),
                            };
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Answer {
                        buyer,
                        status: 0,
                        code: String::new(),
                        took: at.elapsed(),
                    }
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(count);
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    });
    let cpu = server.usage().0 - cpu_before;
    let ledger = server.api(
        "GET",
        &format!("/api/v1/sessions/{sid}/offers/{offer_id}"),
        None,
    );

    let mut took: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    let within_2s = took
        .iter()
        .filter(|t| **t <= Duration::from_secs(2))
        .count();
    let (p50, p99, max) = (
        percentile(&mut took, 0.5),
        percentile(&mut took, 0.99),
        *took.iter().max().unwrap(),
    );
    let mut classes: HashMap<(bool, String), usize> = HashMap::new();
    for a in &answers {
        let class = match (a.status, a.code.as_str()) {
            (201, _) => "201 sold".to_string(),
            (409, code) => format!("409 {code}"),
            (429, _) => "429".to_string(),
            (s, _) if s >= 500 => format!("{s} (5xx)"),
            (0, _) => "no answer".to_string(),
            (s, code) => format!("{s} {code}"),
        };
        *classes
            .entry((matches!(a.buyer, Buyer::Shared(_)), class))
            .or_default() += 1;
    }
    println!(
        "### Surge: {DISTINCT} distinct buyers + {SHARED} behind one address (device tokens), {UNITS} units, arriving over {:.1} s",
        spread.as_secs_f64()
    );
    println!();
    println!("| buyers | answer | count |");
    println!("|---|---|---:|");
    let mut rows: Vec<_> = classes.into_iter().collect();
    rows.sort();
    for ((shared, class), n) in rows {
        println!(
            "| {} | {class} | {n} |",
            if shared {
                "behind one address"
            } else {
                "distinct addresses"
            }
        );
    }
    println!();
    println!(
        "answered: {} of {}; within 2 s of arrival: {within_2s}; time to answer p50 {} p99 {} max {}; ledger sold {} remaining {}; server CPU {:.1} s ({:.0} µs a buyer)",
        answers.len(),
        DISTINCT + SHARED,
        ms(p50),
        ms(p99),
        ms(max),
        ledger["sold"],
        ledger["remaining"],
        cpu,
        cpu / answers.len() as f64 * 1e6,
    );
    println!();
}

// ---- 2. State fan-out through nginx -------------------------------------------------------

/// The number after `"key":` in a JSON text (the readers do not parse whole states).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn fan_out(readers: usize, seconds: u64) {
    let orders_per_s = 10u64;
    let like_batches_per_s = 50u64;
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-audience-fanout");
    let server = Server::start(&data, &TRUST_LOOPBACK);
    let (sid, offer_id) = sale(&server, 1_000_000);
    let (nginx, edge) = peers::nginx_cache(server.http, &data.join("nginx"));
    let rt = runtime();
    let state_path = format!("/api/v1/sessions/{sid}/state");
    // When each order (the `sold` count reaching k) was answered 201: the reader's delay is
    // from there to its first state with sold ≥ k.
    let committed: Arc<Vec<AtomicU64>> = Arc::new(
        (0..(orders_per_s * (seconds + 5) + 10))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let origin = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(AtomicUsize::new(0));
    let delays: Arc<Mutex<Vec<Duration>>> = Default::default();
    let versions: Arc<Mutex<std::collections::HashSet<u64>>> = Default::default();
    let connected = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let cache_kinds: Arc<Mutex<HashMap<String, usize>>> = Default::default();

    let (cpu, nginx_cpu, measured) = rt.block_on(async {
        // The readers, each on its own keep-alive connection to nginx, as pages behind a cache.
        let mut tasks = Vec::new();
        for _ in 0..readers {
            let (path, stop, origin, answers, delays, versions, committed, connected, failures) = (
                state_path.clone(),
                stop.clone(),
                origin.clone(),
                answers.clone(),
                delays.clone(),
                versions.clone(),
                committed.clone(),
                connected.clone(),
                failures.clone(),
            );
            let cache_kinds = cache_kinds.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = loop {
                    match Conn::open(edge).await {
                        Ok(c) => break c,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                connected.fetch_add(1, Ordering::Relaxed);
                let (mut version, mut sold, mut mine) = (0u64, 0u64, Vec::new());
                let mut kinds: HashMap<String, usize> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let url = if version == 0 {
                        path.clone()
                    } else {
                        format!("{path}?after={version}")
                    };
                    let Ok((status, head, body)) =
                        conn.request_with_head("GET", &url, &[], "").await
                    else {
                        // Dropped (nginx full, or restarting): wait, then a new connection.
                        failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if let Ok(c) = Conn::open(edge).await {
                            conn = c;
                        }
                        continue;
                    };
                    let now = epoch.elapsed();
                    if status != 200 {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    answers.fetch_add(1, Ordering::Relaxed);
                    let cache = head
                        .lines()
                        .find_map(|l| l.strip_prefix("X-Cache: "))
                        .unwrap_or("none")
                        .trim();
                    if cache != "HIT" {
                        origin.fetch_add(1, Ordering::Relaxed);
                        *kinds.entry(cache.to_string()).or_insert(0usize) += 1;
                    }
                    let Some(v) = number_after(&body, "\"version\":") else {
                        continue;
                    };
                    if v > version {
                        version = v;
                        versions.lock().unwrap().insert(v);
                    }
                    let now_sold = number_after(&body, "\"sold\":").unwrap_or(0);
                    while sold < now_sold {
                        sold += 1;
                        let at = committed
                            .get(sold as usize)
                            .map(|c| c.load(Ordering::Relaxed))
                            .unwrap_or(0);
                        if at > 0 {
                            mine.push(now.saturating_sub(Duration::from_micros(at)));
                        }
                    }
                }
                delays.lock().unwrap().extend(mine);
                let mut all = cache_kinds.lock().unwrap();
                for (k, n) in kinds {
                    *all.entry(k).or_insert(0) += n;
                }
            }));
            if tasks.len() % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        while connected.load(Ordering::Relaxed) < readers {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the readers settle on the current version, then change the state and measure.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu_before, nginx_before) = (server.usage().0, nginx.usage().0);
        let answered_before = state_answers(&server, &sid);
        let (origin_before, versions_before, answers_before) = (
            origin.load(Ordering::Relaxed),
            versions.lock().unwrap().len(),
            answers.load(Ordering::Relaxed),
        );
        let measure_started = Instant::now();
        let orders = {
            let (sid, offer_id, committed) = (sid.clone(), offer_id.clone(), committed.clone());
            tokio::spawn(async move {
                let mut conn = Conn::open(edge).await.unwrap();
                let path = format!("/api/v1/sessions/{sid}/orders");
                let mut tick = tokio::time::interval(Duration::from_millis(1000 / orders_per_s));
                for n in 1..=(orders_per_s * seconds) as usize {
                    tick.tick().await;
                    let key = format!("fan-{n}");
                    let from = address(n);
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", key.as_str()),
                        ("X-Forwarded-For", from.as_str()),
                    ];
                    let (status, body) = conn
                        .request("POST", &path, &headers, &order_body(&offer_id, n))
                        .await
                        .unwrap();
                    assert_eq!(status, 201, "{body}");
                    committed[n].store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
            })
        };
        let likes = {
            let sid = sid.clone();
            tokio::spawn(async move {
                let mut conn = Conn::open(edge).await.unwrap();
                let path = format!("/api/v1/sessions/{sid}/likes");
                let mut tick =
                    tokio::time::interval(Duration::from_millis(1000 / like_batches_per_s));
                for n in 0..(like_batches_per_s * seconds) as usize {
                    tick.tick().await;
                    let from = address(100_000 + n % 5_000);
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("X-Forwarded-For", from.as_str()),
                    ];
                    let _ = conn
                        .request("POST", &path, &headers, r#"{"count":3}"#)
                        .await;
                }
            })
        };
        orders.await.unwrap();
        likes.await.unwrap();
        let measured = measure_started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu = server.usage().0 - cpu_before;
        let nginx_cpu = nginx.usage().0 - nginx_before;
        stop.store(true, Ordering::Relaxed);
        // The readers' held requests end with the next heartbeat at the latest.
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let origin_requests = origin.load(Ordering::Relaxed) - origin_before;
        let answered_at_origin = state_answers(&server, &sid) - answered_before;
        let new_versions = versions.lock().unwrap().len() - versions_before;
        let served = answers.load(Ordering::Relaxed) - answers_before;
        (
            cpu,
            nginx_cpu,
            (
                measured,
                origin_requests,
                new_versions,
                served,
                answered_at_origin,
            ),
        )
    });
    let (measured, origin_requests, new_versions, served, answered_at_origin) = measured;
    let mut delays = delays.lock().unwrap().clone();
    let (p50, p95, max) = (
        percentile(&mut delays, 0.5),
        percentile(&mut delays, 0.95),
        delays.iter().max().copied().unwrap_or_default(),
    );
    let secs = measured.as_secs_f64();
    let origin_cores = cpu / secs;
    let per_version = origin_requests as f64 / new_versions.max(1) as f64;
    let state_bytes = ureq::get(&format!("http://{}{state_path}", server.http))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .map(|b| b.len())
        .unwrap_or(0);
    println!(
        "### State fan-out: {readers} readers through nginx (`docs/nginx-cache.conf`), {orders_per_s} orders and {like_batches_per_s} like batches a second, {:.0} s",
        secs
    );
    println!();
    println!(
        "| readers | versions | origin requests | per version | answers served by nginx | order → reader p50 | p95 | max | origin CPU | nginx CPU | state size |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {readers} | {new_versions} | {origin_requests} | {per_version:.2} | {served} ({:.0}/s) | {} | {} | {} | {:.1} % of a core | {:.0} % of a core | {state_bytes} B |",
        served as f64 / secs,
        ms(p50),
        ms(p95),
        ms(max),
        origin_cores * 100.0,
        nginx_cpu / secs * 100.0
    );
    let mut kinds: Vec<_> = cache_kinds.lock().unwrap().clone().into_iter().collect();
    kinds.sort();
    println!(
        "live-state reads the origin answered (its own count, /metrics): {answered_at_origin}, {:.2} a version; answers nginx did not serve from its cache, by X-Cache (from the start): {kinds:?}",
        answered_at_origin as f64 / new_versions.max(1) as f64
    );
    println!(
        "reads that failed (a dropped connection, then a new one after 500 ms): {}",
        failures.load(Ordering::Relaxed)
    );
    println!();
    // Sizing: the origin's cost does not grow with readers behind caches (it answers each cache
    // about once a version); what grows is what the cache tier serves.
    let viewers = 505_000f64;
    let versions_per_s = new_versions as f64 / secs;
    println!(
        "For 505,000 viewers: the origin answers each cache about {per_version:.1} requests a version ({versions_per_s:.1} versions/s here): with 10 edge caches, about {:.0} requests/s and {:.1} % of a core at the origin (measured above with one cache); the cache tier serves {:.0} answers/s ({:.0} MB/s at {state_bytes} B, before gzip) — about {:.0} nginx cores at this machine's {:.0} answers per nginx core-second.",
        per_version * versions_per_s * 10.0,
        origin_cores * 100.0,
        viewers * versions_per_s,
        viewers * versions_per_s * state_bytes as f64 / 1e6,
        viewers * versions_per_s / (served as f64 / nginx_cpu.max(1e-9)),
        served as f64 / nginx_cpu.max(1e-9)
    );
    println!();
    drop(nginx);
}

/// The origin's own count of live-state reads it answered for `session`.
fn state_answers(server: &Server, session: &str) -> usize {
    let series = format!("fieldcast_session_state_answers_total{{session=\"{session}\"}}");
    server
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

// ---- 3. Like storm ------------------------------------------------------------------------

/// Closed-loop orders on `clients` keep-alive connections for `seconds`; their latencies.
async fn orders_for(
    addr: SocketAddr,
    sid: &str,
    offer_id: &str,
    clients: usize,
    seconds: u64,
) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let path = format!("/api/v1/sessions/{sid}/orders");
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let (path, offer_id, stop) = (path.clone(), offer_id.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await.unwrap();
                let mut latencies = Vec::new();
                let mut n = 1_000_000 * (w + 1) + rand::random_range(0..100_000);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (key, from) = (format!("storm-{n}"), address(n % 60_000));
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", key.as_str()),
                        ("X-Forwarded-For", from.as_str()),
                    ];
                    let t = Instant::now();
                    if let Ok((201, _)) = conn
                        .request("POST", &path, &headers, &order_body(&offer_id, n))
                        .await
                    {
                        latencies.push(t.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all
}

fn like_storm(quick: bool) {
    const VIEWERS: usize = 50_000;
    let seconds = if quick { 8 } else { 20 };
    let connections = 64;
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-audience-likes");
    let server = Server::start(&data, &TRUST_LOOPBACK);
    let (sid, offer_id) = sale(&server, 1_000_000);
    let rt = runtime();
    let addr = server.http;

    // Orders alone.
    let cpu_before = server.usage().0;
    let mut alone = rt.block_on(orders_for(addr, &sid, &offer_id, 16, seconds));
    let cpu_alone = (server.usage().0 - cpu_before) / seconds as f64;

    // The storm: each viewer one batch (1–10 taps) a second, paced over the connections;
    // orders beside it.
    let sent = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let cpu_before = server.usage().0;
    let storm_started = Instant::now();
    let mut during = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let likers: Vec<_> = (0..connections)
            .map(|c| {
                let (sid, stop, sent, batches, refused) = (
                    sid.clone(),
                    stop.clone(),
                    sent.clone(),
                    batches.clone(),
                    refused.clone(),
                );
                tokio::spawn(async move {
                    let mut conn = Conn::open(addr).await.unwrap();
                    let path = format!("/api/v1/sessions/{sid}/likes");
                    let per_conn = VIEWERS / connections;
                    // This connection's viewers, one batch each a second, evenly spaced.
                    let gap = Duration::from_secs(1) / per_conn as u32;
                    let mut next = tokio::time::Instant::now();
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        next += gap;
                        tokio::time::sleep_until(next).await;
                        let viewer = c * per_conn + i % per_conn;
                        i += 1;
                        let count = 1 + (viewer % 10) as u64;
                        let from = address(viewer);
                        let body = format!("{{\"count\":{count}}}");
                        let headers = [
                            ("Content-Type", "application/json"),
                            ("X-Forwarded-For", from.as_str()),
                        ];
                        match conn.request("POST", &path, &headers, &body).await {
                            Ok((202, _)) => {
                                sent.fetch_add(count, Ordering::Relaxed);
                                batches.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                conn = Conn::open(addr).await.unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let during = orders_for(addr, &sid, &offer_id, 16, seconds).await;
        stop.store(true, Ordering::Relaxed);
        for l in likers {
            l.await.unwrap();
        }
        during
    });
    let storm_secs = storm_started.elapsed().as_secs_f64();
    let cpu_storm = (server.usage().0 - cpu_before) / storm_secs;
    // Every accepted tap counted: the live state shows them all within a second.
    let total = sent.load(Ordering::Relaxed) as i64;
    let shown_after = {
        let started = Instant::now();
        loop {
            let state: Value = ureq::get(&format!("http://{addr}/api/v1/sessions/{sid}/state"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json().ok())
                .unwrap_or(Value::Null);
            if state["likes"].as_i64() == Some(total) || started.elapsed() > Duration::from_secs(5)
            {
                break (started.elapsed(), state["likes"].as_i64().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let batches_per_s = batches.load(Ordering::Relaxed) as f64 / storm_secs;
    println!("### Like storm: {VIEWERS} viewers × one batch a second, with 16 buyers ordering");
    println!();
    println!(
        "| | orders/s | order p50 | order p99 | like batches/s accepted | refused | origin CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let rate = |l: &Vec<Duration>| l.len() as f64 / seconds as f64;
    let (alone_rate, during_rate) = (rate(&alone), rate(&during));
    println!(
        "| orders alone | {alone_rate:.0} | {} | {} | – | – | {:.0} % of a core |",
        ms(percentile(&mut alone, 0.5)),
        ms(percentile(&mut alone, 0.99)),
        cpu_alone * 100.0
    );
    println!(
        "| during the storm | {during_rate:.0} | {} | {} | {batches_per_s:.0} | {} | {:.0} % of a core |",
        ms(percentile(&mut during, 0.5)),
        ms(percentile(&mut during, 0.99)),
        refused.load(Ordering::Relaxed),
        cpu_storm * 100.0
    );
    println!();
    println!(
        "likes accepted {total}, shown in the live state {} ({:.0} ms after the storm stopped){}",
        shown_after.1,
        shown_after.0.as_secs_f64() * 1e3,
        if shown_after.1 == total {
            ""
        } else {
            " — NOT ALL COUNTED"
        }
    );
    println!();
}

/// This process's open-file limit (the server and nginx inherit it).
fn fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur as usize
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Tens of thousands of sockets on each side (the readers, nginx, the buyers): as root the
    // hard limit may be raised too; the server and nginx inherit it.
    // SAFETY: setrlimit only reads the struct we pass.
    unsafe {
        let wanted = libc::rlimit {
            rlim_cur: 262_144,
            rlim_max: 262_144,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            fieldcast_engine::process::raise_fd_limit();
        }
    }
    println!(
        "audience benchmark: {} cores; server, nginx and load generator on the same machine",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    let only = std::env::args().find_map(|a| a.strip_prefix("--only=").map(str::to_string));
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("surge") {
        // The same surge in both runs. Over 5 s it is about 10,000 buyers a second, 1 core of
        // the server's: faster arrivals overrun what two shared cores do for server and
        // generator together, and measure the machine.
        surge(Duration::from_secs(5));
    }
    if run("fanout") {
        if quick {
            fan_out(2_000, 15);
        } else {
            // What one nginx worker holds on this machine beside the server and the readers,
            // then 20,000 or as many as one process's open-file limit lets nginx hold beside
            // its cache files and upstream connections (here the hard limit is 20,000).
            fan_out(5_000, 40);
            fan_out(20_000.min(fd_limit().saturating_sub(3_000)), 40);
        }
    }
    if run("likes") {
        like_storm(quick);
    }
}
