//! Selling against the real binary and its SQLite file: no oversell under 2,000 concurrent
//! buyers, idempotent orders, acknowledged orders surviving `kill -9`, webhooks delivered
//! exactly once (after dedupe) across receiver outages and server restarts.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Server, SlowDisk, client_ip, data_dir, first_sse_data, http, http_from, http_full, offer,
    order_body, wait_for,
};
use fieldcast::commerce::buyers::base64url_encode as b64url;
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    fieldcast_engine::process::raise_fd_limit();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn offer_state(server: &Server, session_id: &str, offer_id: &str) -> Value {
    let (status, offer) = server.api(
        "GET",
        &format!("/api/v1/sessions/{session_id}/offers/{offer_id}"),
        None,
    );
    assert_eq!(status, 200, "{offer}");
    offer
}

fn orders(server: &Server, session_id: &str) -> Vec<Value> {
    server.all_orders(session_id, "")
}

#[test]
fn flash_sale_of_100_units_to_2000_concurrent_buyers_sells_exactly_100() {
    let server = Server::start(&data_dir("flash"));
    let (session_id, offer_id) = offer(&server, 100, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let addr = server.http;
    let statuses: Vec<u16> = runtime().block_on(async {
        let tasks: Vec<_> = (0..2000)
            .map(|n| {
                let (path, body) = (path.clone(), order_body(&offer_id, n, 1));
                tokio::spawn(async move {
                    let key = format!("buy-{n}");
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", key.as_str()),
                    ];
                    // 2,000 buyers: each from an address of their own.
                    http_from(Some(client_ip(n)), addr, "POST", &path, &headers, &body)
                        .await
                        .map(|(s, _)| s)
                        .unwrap_or(0)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for s in statuses {
        *counts.entry(s).or_default() += 1;
    }
    assert_eq!(counts.get(&201), Some(&100), "{counts:?}");
    assert_eq!(counts.get(&409), Some(&1900), "{counts:?}");
    assert_eq!(counts.len(), 2, "errors among the answers: {counts:?}");

    let offer = offer_state(&server, &session_id, &offer_id);
    assert_eq!(
        (offer["remaining"].as_i64(), offer["sold"].as_i64()),
        (Some(0), Some(100)),
        "{offer}"
    );
    assert_eq!(offer["state"], "sold_out");
    let confirmed: i64 = orders(&server, &session_id)
        .iter()
        .map(|o| o["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(confirmed, 100);

    // The stream coalesces changes to 4 a second: a sale over within one pause shows on the
    // next snapshot, at most 250 ms (and a little) later.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let live = loop {
        let live = first_sse_data(&server, &format!("/api/v1/sessions/{session_id}/events"));
        let figures = (
            live["offers"][0]["remaining"].as_i64(),
            live["offers"][0]["sold"].as_i64(),
        );
        if figures == (Some(0), Some(100)) || std::time::Instant::now() > deadline {
            break live;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let sse_offer = &live["offers"][0];
    assert_eq!(
        (sse_offer["remaining"].as_i64(), sse_offer["sold"].as_i64()),
        (Some(0), Some(100)),
        "{live}"
    );
}

#[test]
fn one_idempotency_key_makes_one_order_and_refuses_another_body() {
    let server = Server::start(&data_dir("idem"));
    let (session_id, offer_id) = offer(&server, 50, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let addr = server.http;
    let body = order_body(&offer_id, 1, 2);
    let answers: Vec<(u16, String)> = runtime().block_on(async {
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (path, body) = (path.clone(), body.clone());
                tokio::spawn(async move {
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", "same-key"),
                    ];
                    http(addr, "POST", &path, &headers, &body).await.unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
    assert!(
        answers.iter().all(|(_, b)| *b == answers[0].1),
        "bodies differ: {answers:?}"
    );
    assert_eq!(orders(&server, &session_id).len(), 1);
    assert_eq!(offer_state(&server, &session_id, &offer_id)["sold"], 2);

    let other = order_body(&offer_id, 1, 3);
    let (status, problem) = runtime()
        .block_on(http_from(
            Some(client_ip(1)),
            addr,
            "POST",
            &path,
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "same-key"),
            ],
            &other,
        ))
        .unwrap();
    assert_eq!(status, 422, "{problem}");
    assert!(problem.contains("Idempotency-Key"), "{problem}");
}

#[test]
fn a_ledger_slower_than_the_deadline_says_keep_the_key_and_the_retry_gets_the_one_order() {
    let server = Server::start(&data_dir("slow-ledger"));
    let (session_id, offer_id) = offer(&server, 10, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let body = order_body(&offer_id, 1, 1);
    let headers = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "slow-disk-attempt"),
    ];
    let rt = runtime();
    // Every fsync takes 12 s: longer than the order's wait (10 s), shorter than a page's
    // patience. The first try's order is handed to the ledger and committed late.
    let disk = SlowDisk::attach(server.pid(), Duration::from_secs(12));
    let started = std::time::Instant::now();
    let (status, head, problem) = rt
        .block_on(http_full(None, server.http, "POST", &path, &headers, &body))
        .unwrap();
    let first_took = started.elapsed();
    // Normally the order's own wait (10 s) answers, saying to resend with the same key. A
    // store write held in a stalled fsync can keep the handler from the ledger until the
    // request deadline (15 s), which answers the same way: 503 with Retry-After, never final.
    assert_eq!(
        status, 503,
        "the first answer must not read as final: {head}\n{problem}"
    );
    assert!(
        head.to_ascii_lowercase().contains("\r\nretry-after: 2"),
        "no Retry-After: {head}"
    );
    assert!(
        problem.contains("same Idempotency-Key") || problem.contains("longer than 15 s; try again"),
        "{problem}"
    );
    assert!(
        first_took < Duration::from_secs(16),
        "answered after {first_took:?}, past the request deadline"
    );

    // The client does what the page does: the same request, same key, after Retry-After,
    // until a final answer. The ledger serves in order, so the retry finds the first order.
    let mut answers = vec![status];
    let order = loop {
        std::thread::sleep(Duration::from_secs(2));
        let (status, answer) = rt
            .block_on(http(server.http, "POST", &path, &headers, &body))
            .unwrap();
        answers.push(status);
        match status {
            200 | 201 => break serde_json::from_str::<Value>(&answer).unwrap(),
            503 if answers.len() < 10 => continue,
            _ => panic!("answers {answers:?}, the last: {answer}"),
        }
    };
    drop(disk);
    eprintln!("answers to one key on a slow disk: {answers:?}; first after {first_took:?}");
    let list = orders(&server, &session_id);
    assert_eq!(list.len(), 1, "one key, one order: {list:?}");
    assert_eq!(list[0]["id"], order["id"], "{list:?}");
    assert_eq!(offer_state(&server, &session_id, &offer_id)["sold"], 1);
}

/// Each offer as `(id, state, remaining, sold)`, sorted: the live state's (`events`) or the API's.
/// Buyer `n` orders one unit (from `from` when given) and must get it; its order id.
fn one_order(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    path: &str,
    offer_id: &str,
    n: usize,
    from: Option<std::net::IpAddr>,
) -> String {
    let key = format!("one-order-{n}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", key.as_str()),
    ];
    let body = order_body(offer_id, n, 1);
    let (status, body) = rt
        .block_on(http_from(from, server.http, "POST", path, &headers, &body))
        .unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn offer_figures(offers: &Value) -> Vec<(String, String, i64, i64)> {
    let mut out: Vec<_> = offers
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["state"].as_str().unwrap().to_string(),
                o["remaining"].as_i64().unwrap(),
                o["sold"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_live_state_follows_the_ledger_while_offers_open_and_end_among_orders() {
    let server = Server::start(&data_dir("churn"));
    let (session_id, first) = offer(&server, 4, None, 600);
    let product = offer_state(&server, &session_id, &first)["product_id"].clone();
    let orders_path = format!("/api/v1/sessions/{session_id}/orders");
    let offers_path = format!("/api/v1/sessions/{session_id}/offers");
    let auth = format!("Bearer {}", common::TOKEN);
    let rt = runtime();
    let (mut selling, mut before, mut version) = (first, None::<String>, 0u64);
    const OPENS_PER_ROUND: usize = 3;
    for round in 0..12 {
        // Twice the stock in buyers for the offer on sale, while the operator opens the next
        // one and ends the one before it: stock changes from both sides at once.
        let buyers: Vec<(usize, String)> = (0..8)
            .map(|i| (round * 8 + i, order_body(&selling, round * 8 + i, 1)))
            .collect();
        let open_body =
            json!({"product_id": product, "unit_amount": 2900, "quantity": 4}).to_string();
        let (addr, end_path) = (
            server.http,
            before.as_ref().map(|id| format!("{offers_path}/{id}/end")),
        );
        let opened: Value = rt.block_on(async {
            let buys: Vec<_> = buyers
                .into_iter()
                .map(|(n, body)| {
                    let path = orders_path.clone();
                    tokio::spawn(async move {
                        let key = format!("churn-{n}");
                        let headers = [
                            ("Content-Type", "application/json"),
                            ("Idempotency-Key", key.as_str()),
                        ];
                        http_from(Some(client_ip(n)), addr, "POST", &path, &headers, &body)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let headers = [
                ("Content-Type", "application/json"),
                ("Authorization", auth.as_str()),
            ];
            if let Some(end) = &end_path {
                let (status, body) = http(addr, "POST", end, &headers, "").await.unwrap();
                assert_eq!(status, 200, "ending an offer: {body}");
            }
            // Several at once: each opening used to re-read the offers on its own thread.
            let opens: Vec<_> = (0..OPENS_PER_ROUND)
                .map(|_| {
                    let (path, body, auth) = (offers_path.clone(), open_body.clone(), auth.clone());
                    tokio::spawn(async move {
                        let headers = [
                            ("Content-Type", "application/json"),
                            ("Authorization", auth.as_str()),
                        ];
                        http(addr, "POST", &path, &headers, &body).await
                    })
                })
                .collect();
            let mut body = String::new();
            for open in opens {
                let (status, text) = open.await.unwrap().unwrap();
                assert_eq!(status, 201, "opening an offer: {text}");
                body = text;
            }
            for buy in buys {
                let (status, body) = buy.await.unwrap();
                assert!(
                    status == 201 || status == 409,
                    "a buyer got {status}: {body}"
                );
            }
            serde_json::from_str(&body).unwrap()
        });
        before = Some(std::mem::replace(
            &mut selling,
            opened["id"].as_str().unwrap().to_string(),
        ));

        // After the change, a page reads what the API says: every offer's state, remaining
        // and sold, the sold-out one among them (changes are coalesced to 4 a second).
        let (status, api) = server.api("GET", &offers_path, None);
        assert_eq!(status, 200, "{api}");
        let want = offer_figures(&api);
        // What the watch page reads: the versioned state, each version after the last.
        // The state may be one version behind the API read (a version published in the
        // pause before the last change), never more: the next version is the ledger's.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut behind = 0;
        let seen = loop {
            let path = format!("/api/v1/sessions/{session_id}/state?after={version}");
            let (status, state) = rt
                .block_on(http(server.http, "GET", &path, &[], ""))
                .unwrap();
            assert_eq!(status, 200, "{state}");
            let state: Value = serde_json::from_str(&state).unwrap();
            let next = state["version"].as_u64().unwrap();
            assert!(
                next > version,
                "round {round}: version {next} after {version}"
            );
            version = next;
            let seen = offer_figures(&state["offers"]);
            if seen == want || std::time::Instant::now() > deadline {
                break seen;
            }
            behind += 1;
        };
        assert!(
            behind <= 1,
            "round {round}: the state lagged the ledger for {behind} versions"
        );
        assert_eq!(
            seen, want,
            "round {round}: the live state (left) is not the ledger's (right)"
        );
        assert!(
            want.iter()
                .any(|(_, state, remaining, _)| state == "sold_out" && *remaining == 0),
            "round {round}: the buyers did not empty the offer: {want:?}"
        );
    }
}

/// A device token minted for a page at `from`.
async fn device_token(addr: std::net::SocketAddr, from: std::net::IpAddr) -> String {
    let (status, body) = http_from(Some(from), addr, "POST", "/api/v1/devices", &[], "")
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["device"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Orders of one unit each, all at once: buyer `n` from `from(n)`, with `token(n)` if any.
async fn buy_at_once(
    addr: std::net::SocketAddr,
    path: &str,
    offer_id: &str,
    buyers: impl Iterator<Item = (usize, std::net::IpAddr, Option<String>)>,
) -> Vec<(u16, String)> {
    let tasks: Vec<_> = buyers
        .map(|(n, from, token)| {
            let (path, body) = (path.to_string(), order_body(offer_id, n, 1));
            tokio::spawn(async move {
                let key = format!("device-test-{n}");
                let mut headers = vec![
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", key.as_str()),
                ];
                if let Some(token) = &token {
                    headers.push(("Fieldcast-Device", token.as_str()));
                }
                http_from(Some(from), addr, "POST", &path, &headers, &body)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[test]
fn thirty_phones_behind_one_address_with_device_tokens_all_buy_at_once() {
    let server = Server::start(&data_dir("shared-address"));
    let (session_id, offer_id) = offer(&server, 150, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let (addr, shared) = (server.http, client_ip(7));
    let rt = runtime();
    let answers = rt.block_on(async {
        let mut tokens = Vec::new();
        for _ in 0..30 {
            tokens.push(device_token(addr, shared).await);
        }
        buy_at_once(
            addr,
            &path,
            &offer_id,
            tokens
                .into_iter()
                .enumerate()
                .map(|(n, t)| (n, shared, Some(t))),
        )
        .await
    });
    let confirmed = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(confirmed, 30, "{answers:?}");
    assert_eq!(orders(&server, &session_id).len(), 30);

    // The same crowd without device tokens meets the per-address limit (5 at once).
    let (second_session, second) = offer(&server, 150, None, 600);
    let second_path = format!("/api/v1/sessions/{second_session}/orders");
    let answers = rt.block_on(buy_at_once(
        addr,
        &second_path,
        &second,
        (100..130).map(|n| (n, client_ip(8), None)),
    ));
    let confirmed = answers.iter().filter(|(s, _)| *s == 201).count();
    let limited = answers.iter().filter(|(s, _)| *s == 429).count();
    assert!(
        confirmed <= 6 && confirmed + limited == 30,
        "without device tokens: {answers:?}"
    );

    // A token this server did not sign is no identity: the address's limit applies.
    let forged = "d1.0123456789abcdef.1790000000.00112233445566778899aabbccddeeff".to_string();
    let (third_session, third) = offer(&server, 150, None, 600);
    let third_path = format!("/api/v1/sessions/{third_session}/orders");
    let answers = rt.block_on(buy_at_once(
        addr,
        &third_path,
        &third,
        (200..210).map(|n| (n, client_ip(9), Some(forged.clone()))),
    ));
    assert!(
        answers.iter().filter(|(s, _)| *s == 201).count() <= 6,
        "a forged token passed: {answers:?}"
    );
}

#[test]
fn one_phone_typed_three_ways_is_one_buyer_for_the_per_buyer_limit() {
    let server = Server::start(&data_dir("phone-forms"));
    let (session_id, offer_id) = offer(&server, 50, Some(2), 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let rt = runtime();
    let answers: Vec<(u16, String)> = ["+86 138 0013 8000", "0086-13800138000", "138 0013 8000"]
        .iter()
        .enumerate()
        .map(|(n, phone)| {
            let body = json!({"offer_id": offer_id, "quantity": 1,
                "buyer": {"name": "Aygul", "phone": phone, "address": "1 Rose Street"}})
            .to_string();
            let key = format!("phone-form-{n}");
            let headers = [
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key.as_str()),
            ];
            rt.block_on(http_from(
                Some(client_ip(n)),
                server.http,
                "POST",
                &path,
                &headers,
                &body,
            ))
            .unwrap()
        })
        .collect();
    assert_eq!(answers[0].0, 201, "{answers:?}");
    assert_eq!(answers[1].0, 201, "{answers:?}");
    assert_eq!(
        answers[2].0, 409,
        "the third form is the same buyer, over the limit of 2: {answers:?}"
    );
    assert!(answers[2].1.contains("over_limit"), "{answers:?}");
}

#[test]
fn device_tokens_are_minted_at_a_bounded_rate_per_address() {
    let server = Server::start_with(&data_dir("device-rate"), &["--rate-devices", "3:0.1"]);
    let rt = runtime();
    let mint = |from: usize| {
        rt.block_on(http_from(
            Some(client_ip(from)),
            server.http,
            "POST",
            "/api/v1/devices",
            &[],
            "",
        ))
        .unwrap()
        .0
    };
    // Three at once from one address, then refused; another address has its own budget.
    let statuses = [mint(3), mint(3), mint(3), mint(3), mint(4)];
    assert_eq!(statuses, [201, 201, 201, 429, 201]);
}

#[test]
fn a_bot_with_fifty_device_tokens_behind_one_address_gets_at_most_its_networks_share() {
    let server = Server::start(&data_dir("bot-share"));
    let (session_id, offer_id) = offer(&server, 150, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let (addr, bot) = (server.http, client_ip(0));
    let rt = runtime();
    let mut tokens = Vec::new();
    rt.block_on(async {
        for _ in 0..50 {
            tokens.push(device_token(addr, bot).await);
        }
    });
    let (bot_answers, honest) = rt.block_on(async {
        // The bot, 50 identities with 50 phones, and 100 honest buyers from their own
        // addresses, all at once.
        let bot_buys = buy_at_once(
            addr,
            &path,
            &offer_id,
            tokens
                .iter()
                .cloned()
                .enumerate()
                .map(|(n, t)| (1000 + n, bot, Some(t))),
        );
        let honest_buys = buy_at_once(
            addr,
            &path,
            &offer_id,
            (1..=100).map(|n| (n, client_ip(n), None)),
        );
        tokio::join!(bot_buys, honest_buys)
    });
    let bot_units = bot_answers.iter().filter(|(s, _)| *s == 201).count();
    // 20 % of 150 is the share of one network.
    assert!(
        bot_units <= 30,
        "the bot got {bot_units} units: {bot_answers:?}"
    );
    assert!(
        bot_answers.iter().all(|(s, b)| *s == 201
            || (*s == 409 && (b.contains("network_share") || b.contains("sold_out")))),
        "{bot_answers:?}"
    );
    let honest_ok = honest
        .iter()
        .filter(|(s, b)| *s == 201 || (*s == 409 && b.contains("sold_out")))
        .count();
    assert_eq!(
        honest_ok, 100,
        "an honest buyer got another answer: {honest:?}"
    );
    eprintln!(
        "bot: {bot_units} units of 150; honest: {} of 100 confirmed",
        honest.iter().filter(|(s, _)| *s == 201).count()
    );

    // A cancelled order gives its units back to the network's share, and only those.
    assert_eq!(
        bot_units, 30,
        "the bot should have reached the share: {bot_answers:?}"
    );
    let order_id = bot_answers.iter().find(|(s, _)| *s == 201).map(|(_, b)| {
        serde_json::from_str::<Value>(b).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let (status, cancelled) = server.api(
        "POST",
        &format!(
            "/api/v1/sessions/{session_id}/orders/{}/cancel",
            order_id.unwrap()
        ),
        None,
    );
    assert_eq!(status, 200, "{cancelled}");
    let again = rt.block_on(buy_at_once(
        addr,
        &path,
        &offer_id,
        (2000..2002).map(|n| (n, bot, Some(tokens[n - 2000].clone()))),
    ));
    let mut statuses: Vec<u16> = again.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409],
        "after one cancellation, one more unit: {again:?}"
    );
}

#[test]
fn orders_are_refused_with_the_right_status() {
    let server = Server::start(&data_dir("refusals"));
    let (session_id, offer_id) = offer(&server, 10, Some(2), 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let rt = runtime();
    // Each request from a client of its own, unless it says from whom.
    let next_client = std::cell::Cell::new(10);
    let post_from = |from: std::net::IpAddr, key: &str, body: &str| {
        rt.block_on(http_from(
            Some(from),
            server.http,
            "POST",
            &path,
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
            ],
            body,
        ))
        .unwrap()
    };
    let post = |key: &str, body: &str| {
        next_client.set(next_client.get() + 1);
        post_from(client_ip(next_client.get()), key, body)
    };
    assert_eq!(post("k1", &order_body(&offer_id, 7, 2)).0, 201);
    let (status, body) = post("k2", &order_body(&offer_id, 7, 1));
    assert_eq!(status, 409, "over the per-buyer limit: {body}");
    // It says the limit, never what this phone number already bought.
    assert!(
        body.contains("limit of 2 per buyer") && !body.contains("already"),
        "{body}"
    );
    let (status, body) = rt
        .block_on(http_from(
            Some(client_ip(1)),
            server.http,
            "POST",
            &path,
            &[("Content-Type", "application/json")],
            &order_body(&offer_id, 8, 1),
        ))
        .unwrap();
    assert_eq!(status, 422, "no Idempotency-Key: {body}");
    let (status, body) = post("k3", r#"{"offer_id": 5}"#);
    assert_eq!(status, 422, "{body}");
    let (status, _) = post("k4", "{not json");
    assert_eq!(status, 400);
    // A network that keeps hammering is rate-limited (5 at once by default), whatever
    // phone numbers it sends; another network is not.
    let hammer = client_ip(2);
    let statuses: Vec<u16> = (0..8)
        .map(|i| post_from(hammer, &format!("r{i}"), &order_body(&offer_id, 100 + i, 1)).0)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    assert_ne!(post("r-other", &order_body(&offer_id, 200, 1)).0, 429);

    let (status, _) = server.api(
        "POST",
        &format!("/api/v1/sessions/{session_id}/offers/{offer_id}/end"),
        None,
    );
    assert_eq!(status, 200);
    let (status, body) = post("k5", &order_body(&offer_id, 10, 1));
    assert_eq!(status, 409, "ended offer: {body}");
    assert!(body.contains("\"code\":\"ended\""), "{body}");
}

/// Buyers in a loop until stopped; returns the ids of acknowledged orders.
async fn buy_until(
    addr: std::net::SocketAddr,
    path: String,
    offer_id: String,
    stop: Arc<Mutex<bool>>,
    base: usize,
) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut n = base;
    while !*stop.lock().unwrap() {
        n += 1;
        let key = format!("crash-{n}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key.as_str()),
        ];
        // Each attempt from its own address: this is many buyers, not one client's flood.
        let from = Some(client_ip(n));
        match http_from(
            from,
            addr,
            "POST",
            &path,
            &headers,
            &order_body(&offer_id, n, 1),
        )
        .await
        {
            Ok((201, body)) => {
                let order: Value = serde_json::from_str(&body).unwrap();
                acknowledged.push(order["id"].as_str().unwrap().to_string());
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    acknowledged
}

#[test]
fn acknowledged_orders_survive_kill_9_five_times() {
    let data = data_dir("crash");
    let mut server = Server::start(&data);
    let (session_id, offer_id) = offer(&server, 1_000_000, None, 3600);
    let mut acknowledged: Vec<String> = Vec::new();
    let rt = runtime();
    for round in 0..5 {
        let stop = Arc::new(Mutex::new(false));
        let path = format!("/api/v1/sessions/{session_id}/orders");
        let buyers: Vec<_> = (0..16)
            .map(|b| {
                rt.spawn(buy_until(
                    server.http,
                    path.clone(),
                    offer_id.clone(),
                    stop.clone(),
                    round * 10_000_000 + b * 100_000,
                ))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        server.kill(); // SIGKILL mid-load
        *stop.lock().unwrap() = true;
        for b in buyers {
            acknowledged.extend(rt.block_on(b).unwrap());
        }
        server = Server::start(&data);
        let stored: HashSet<String> = orders(&server, &session_id)
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| !stored.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged orders lost, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        let offer = offer_state(&server, &session_id, &offer_id);
        let (allocated, remaining, sold) = (
            offer["allocated"].as_i64().unwrap(),
            offer["remaining"].as_i64().unwrap(),
            offer["sold"].as_i64().unwrap(),
        );
        assert_eq!(
            remaining + sold,
            allocated,
            "round {round}: the ledger does not balance: {offer}"
        );
        assert_eq!(
            sold as usize,
            stored.len(),
            "round {round}: sold differs from the orders on disk"
        );
    }
    assert!(
        acknowledged.len() > 100,
        "the load was too light to mean anything: {}",
        acknowledged.len()
    );
}

/// A webhook receiver: records (event id, type) of deliveries with a valid signature;
/// answers 503 while `down`.
struct Receiver {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    bad_signatures: Arc<Mutex<usize>>,
    down: Arc<Mutex<bool>>,
}

fn start_receiver(rt: &tokio::runtime::Runtime, secret: Arc<Mutex<String>>) -> Receiver {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let bad = Arc::new(Mutex::new(0));
    let down = Arc::new(Mutex::new(false));
    let (seen2, bad2, down2) = (seen.clone(), bad.clone(), down.clone());
    rt.spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let (seen, bad, down, secret) = (seen2.clone(), bad2.clone(), down2.clone(), secret.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                    let header = |name: &str| {
                        head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    let status = if *down.lock().unwrap() {
                        "503 Service Unavailable"
                    } else {
                        let signature = header("fieldcast-signature").unwrap_or_default();
                        let t: i64 = signature.split(',').find_map(|p| p.strip_prefix("t=")).and_then(|v| v.parse().ok()).unwrap_or(0);
                        let v1 = signature.split(',').find_map(|p| p.strip_prefix("v1=")).unwrap_or("");
                        let expected = fieldcast::commerce::webhooks::sign(&secret.lock().unwrap(), t, body);
                        if v1 == expected {
                            seen.lock().unwrap().push((header("fieldcast-event-id").unwrap_or_default(), header("fieldcast-event-type").unwrap_or_default()));
                        } else {
                            *bad.lock().unwrap() += 1;
                        }
                        "200 OK"
                    };
                    let _ = stream.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes()).await;
                    return;
                }
            });
        }
    });
    Receiver {
        addr,
        seen,
        bad_signatures: bad,
        down,
    }
}

fn unique_by_type(seen: &[(String, String)]) -> HashMap<String, usize> {
    let unique: HashSet<&(String, String)> = seen.iter().collect();
    let mut counts = HashMap::new();
    for (_, t) in unique {
        *counts.entry(t.clone()).or_default() += 1;
    }
    counts
}

#[test]
fn webhooks_arrive_signed_and_once_across_outages_and_restarts() {
    let data = data_dir("webhooks");
    let mut server = Server::start(&data);
    let rt = runtime();
    let secret = Arc::new(Mutex::new(String::new()));
    let receiver = start_receiver(&rt, secret.clone());
    let (status, hook) = server.api(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": format!("http://{}/hooks", receiver.addr)})),
    );
    assert_eq!(status, 201, "{hook}");
    *secret.lock().unwrap() = hook["secret"].as_str().unwrap().to_string();

    let (session_id, offer_id) = offer(&server, 3, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let buy = |server: &Server, n: usize| one_order(&rt, server, &path, &offer_id, n, None);
    let first = buy(&server, 1);
    wait_for("order.created", Duration::from_secs(10), || {
        unique_by_type(&receiver.seen.lock().unwrap()).get("order.created") == Some(&1)
    });

    // The receiver goes down; events queue up; the server is killed and restarted meanwhile.
    *receiver.down.lock().unwrap() = true;
    buy(&server, 2);
    let (status, _) = server.api(
        "POST",
        &format!("/api/v1/sessions/{session_id}/orders/{first}/cancel"),
        None,
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(1500)); // at least one failed attempt each
    server.kill();
    server = Server::start(&data);
    buy(&server, 3);
    buy(&server, 4); // the last unit (the cancel put one back): offer.sold_out
    let (status, _) = server.api(
        "POST",
        &format!("/api/v1/sessions/{session_id}/offers/{offer_id}/end"),
        None,
    );
    assert_eq!(status, 200);
    *receiver.down.lock().unwrap() = false;

    let expected: HashMap<String, usize> = [
        ("order.created", 4),
        ("order.cancelled", 1),
        ("offer.sold_out", 1),
        ("offer.ended", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    wait_for("every event", Duration::from_secs(30), || {
        unique_by_type(&receiver.seen.lock().unwrap()) == expected
    });
    assert_eq!(
        *receiver.bad_signatures.lock().unwrap(),
        0,
        "deliveries with a bad signature"
    );
    // Nothing more arrives later (no event is sent twice under a new id).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(unique_by_type(&receiver.seen.lock().unwrap()), expected);
}

/// How a bot run ended, and how the honest buyers beside it fared.
struct BotRun {
    bot_requests: usize,
    bot_units: usize,
    bot_statuses: HashMap<u16, usize>,
    honest: Vec<(u16, String)>,
}

/// One bot from `bot` against a 150-unit sale while 100 honest buyers, each from their own
/// address and with their own device token as the page gets one, buy one unit each, spread
/// over `honest_over`. `bot_loop` is the bot: it runs until it returns, and counts its
/// requests and answers.
fn bot_run<F, Fut>(server: &Server, honest_over: Duration, bot_loop: F) -> BotRun
where
    F: FnOnce(std::net::SocketAddr, String, String) -> Fut,
    Fut: std::future::Future<Output = Vec<(u16, String)>>,
{
    let (session_id, offer_id) = offer(server, 150, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let addr = server.http;
    let rt = runtime();
    let (bot, honest) = rt.block_on(async {
        let honest = {
            let (path, offer_id) = (path.clone(), offer_id.clone());
            tokio::spawn(async move {
                let gap = honest_over / 100;
                let mut buyers = Vec::new();
                for n in 1..=100 {
                    let (path, offer_id) = (path.clone(), offer_id.clone());
                    buyers.push(tokio::spawn(async move {
                        let from = client_ip(n);
                        let token = device_token(addr, from).await;
                        let key = format!("honest-{n}");
                        let headers = [
                            ("Content-Type", "application/json"),
                            ("Idempotency-Key", key.as_str()),
                            ("Fieldcast-Device", token.as_str()),
                        ];
                        http_from(
                            Some(from),
                            addr,
                            "POST",
                            &path,
                            &headers,
                            &order_body(&offer_id, n, 1),
                        )
                        .await
                        .unwrap()
                    }));
                    tokio::time::sleep(gap).await;
                }
                let mut answers = Vec::new();
                for buyer in buyers {
                    answers.push(buyer.await.unwrap());
                }
                answers
            })
        };
        let bot = bot_loop(addr, path, offer_id).await;
        (bot, honest.await.unwrap())
    });
    let mut bot_statuses = HashMap::new();
    for (status, _) in &bot {
        *bot_statuses.entry(*status).or_insert(0) += 1;
    }
    BotRun {
        bot_requests: bot.len(),
        bot_units: bot_statuses.get(&201).copied().unwrap_or(0),
        bot_statuses,
        honest,
    }
}

/// `workers` copies of one loop at once, each a task; every answer they got.
async fn in_parallel<Fut>(workers: usize, worker: impl Fn() -> Fut) -> Vec<(u16, String)>
where
    Fut: std::future::Future<Output = Vec<(u16, String)>> + Send + 'static,
{
    let tasks: Vec<_> = (0..workers).map(|_| tokio::spawn(worker())).collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    answers
}

/// One bot order from `from`: a fresh key and a random phone, with `device` if it has one.
async fn bot_buys(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
    path: &str,
    offer_id: &str,
    device: Option<&str>,
) -> (u16, String) {
    let key = format!("bot-{}", rand::random::<u64>());
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Idempotency-Key", key.as_str()),
    ];
    if let Some(device) = device {
        headers.push(("Fieldcast-Device", device));
    }
    let body = bot_order(offer_id, &random_phone());
    http_from(Some(from), addr, "POST", path, &headers, &body)
        .await
        .unwrap()
}

fn random_phone() -> String {
    format!("+86139{:08}", rand::random_range(0..100_000_000u32))
}

fn bot_order(offer_id: &str, phone: &str) -> String {
    json!({"offer_id": offer_id, "quantity": 1,
        "buyer": {"name": "Bot", "phone": phone, "address": "9 Depot Road"}})
    .to_string()
}

fn assert_honest_buyers_all_answered(run: &BotRun, what: &str) {
    let final_answers = run
        .honest
        .iter()
        .filter(|(s, b)| *s == 201 || (*s == 409 && b.contains("sold_out")))
        .count();
    assert_eq!(
        final_answers,
        100,
        "{what}: an honest buyer got neither an order nor sold out: {:?}",
        run.honest
            .iter()
            .filter(|(s, _)| *s != 201)
            .collect::<Vec<_>>()
    );
}

/// The issue's two bot runs, each against a 150-unit sale while 100 honest buyers from other
/// addresses buy: a bot with random phones and no identity sends 3,000 orders from one
/// address (at most 10 units), and a bot that follows the page's own identity flow from one
/// address, as fast as it can for 60 s (at most 30 units, the network's default share of
/// 20 %). Every honest buyer gets an order or a sold-out answer in both.
#[test]
fn bots_from_one_address_stay_bounded_while_a_hundred_honest_buyers_buy() {
    let server = Server::start(&data_dir("bots"));
    let bot_ip = client_ip(1000);

    // 1. 3,000 orders, random phones, no device token, 32 at a time.
    let anonymous = bot_run(
        &server,
        Duration::from_secs(5),
        |addr, path, offer_id| async move {
            let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            in_parallel(32, || {
                let (sent, path, offer_id) = (sent.clone(), path.clone(), offer_id.clone());
                async move {
                    let mut answers = Vec::new();
                    while sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 3_000 {
                        answers.push(bot_buys(addr, bot_ip, &path, &offer_id, None).await);
                    }
                    answers
                }
            })
            .await
        },
    );
    eprintln!(
        "anonymous bot: {} requests, {} units, answers {:?}; honest: {} of 100 confirmed",
        anonymous.bot_requests,
        anonymous.bot_units,
        anonymous.bot_statuses,
        anonymous.honest.iter().filter(|(s, _)| *s == 201).count()
    );
    assert_eq!(anonymous.bot_requests, 3_000);
    assert!(
        anonymous.bot_units <= 10,
        "the anonymous bot got {} units",
        anonymous.bot_units
    );
    assert_honest_buyers_all_answered(&anonymous, "beside the anonymous bot");

    // 2. The page's identity flow, as fast as one address allows, for 60 s: mint a device
    // token, order with it and a new phone, and again; 8 at a time.
    let minted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = minted.clone();
    let identities = bot_run(
        &server,
        Duration::from_secs(50),
        |addr, path, offer_id| async move {
            let until = std::time::Instant::now() + Duration::from_secs(60);
            in_parallel(8, || {
                let (path, offer_id, minted) = (path.clone(), offer_id.clone(), counted.clone());
                async move {
                    let mut answers = Vec::new();
                    while std::time::Instant::now() < until {
                        let (status, body) =
                            http_from(Some(bot_ip), addr, "POST", "/api/v1/devices", &[], "")
                                .await
                                .unwrap();
                        if status != 201 {
                            // Refused a new identity: it keeps trying, as a bot would.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let token: Value = serde_json::from_str(&body).unwrap();
                        let token = token["device"].as_str().unwrap();
                        answers.push(bot_buys(addr, bot_ip, &path, &offer_id, Some(token)).await);
                    }
                    answers
                }
            })
            .await
        },
    );
    eprintln!(
        "identity bot: {} identities minted, {} orders sent, {} units, answers {:?}; honest: {} of 100 confirmed",
        minted.load(std::sync::atomic::Ordering::Relaxed),
        identities.bot_requests,
        identities.bot_units,
        identities.bot_statuses,
        identities.honest.iter().filter(|(s, _)| *s == 201).count()
    );
    assert!(
        identities.bot_units <= 30,
        "the identity bot got {} units",
        identities.bot_units
    );
    assert!(
        identities.bot_requests > 30,
        "the bot hardly ran: {} orders",
        identities.bot_requests
    );
    assert_honest_buyers_all_answered(&identities, "beside the identity bot");
}

/// The modulus and exponent of an RSA public key in PKCS#1 DER (SEQUENCE of two INTEGERs).
fn rsa_public_numbers(der: &[u8]) -> (&[u8], &[u8]) {
    // One DER element at `at`: (its content, where the next one starts).
    fn element(der: &[u8], at: usize) -> (&[u8], usize) {
        let (mut len, mut start) = (der[at + 1] as usize, at + 2);
        if len & 0x80 != 0 {
            let bytes = len & 0x7f;
            len = der[start..start + bytes]
                .iter()
                .fold(0, |n, b| (n << 8) | *b as usize);
            start += bytes;
        }
        (&der[start..start + len], start + len)
    }
    let (sequence, _) = element(der, 0);
    let (n, next) = element(sequence, 0);
    let (e, _) = element(sequence, next);
    (n.strip_prefix(&[0]).unwrap_or(n), e)
}

/// A JWT as a shop's login would sign it, with `alg` and `sign` (by the key `kid`).
fn buyer_token(claims: Value, sign: &dyn Fn(&[u8]) -> Vec<u8>, alg: &str, kid: &str) -> String {
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = sign(signed.as_bytes());
    format!("{signed}.{}", b64url(&signature))
}

/// A shop's customers come with buyer tokens from its own login (HS256 with a shared secret,
/// or ES256 keys from its JWKS URL, served here by a small HTTP server): the per-buyer limit
/// holds per customer whatever phone is typed, 40 customers behind one address all buy
/// (the network's share is for buyers nobody vouches for), and a token that does not verify
/// is refused with the reason.
#[test]
fn a_shops_buyer_tokens_make_the_customer_the_buyer() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use hmac::Mac;
    const SECRET: &str = "the-co-op-shop-login-secret-0123456789";
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let (n, e) = rsa_public_numbers(rsa.public_key().as_ref());
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
         "x": b64url(&point[1..33]), "y": b64url(&point[33..65])},
        {"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": b64url(n), "e": b64url(e)}
    ]})
    .to_string();
    // The shop's JWKS endpoint.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 2048];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}",
                jwks.len()
            );
        }
    });
    let server = Server::start_with_env(
        &data_dir("buyer-tokens"),
        &[],
        &[
            ("FIELDCAST_BUYER_TOKEN_SECRET", SECRET),
            ("FIELDCAST_BUYER_TOKEN_JWKS_URL", &jwks_url),
            ("FIELDCAST_BUYER_TOKEN_ISSUER", "https://shop.example"),
        ],
    );
    let (session_id, offer_id) = offer(&server, 150, Some(2), 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let now = fieldcast_core::time::now_ms() / 1000;
    let hs256 = |sub: &str| {
        let claims = json!({"sub": sub, "iss": "https://shop.example", "exp": now + 600});
        buyer_token(
            claims,
            &|msg| {
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(msg);
                mac.finalize().into_bytes().to_vec()
            },
            "HS256",
            "",
        )
    };
    let rt = runtime();
    let order = |from: std::net::IpAddr, n: usize, phone: &str, quantity: i64, token: &str| {
        let body = json!({"offer_id": offer_id, "quantity": quantity,
            "buyer": {"name": format!("Customer {n}"), "phone": phone, "address": "1 Rose Street"}})
        .to_string();
        let key = format!("customer-{n}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key.as_str()),
            ("Fieldcast-Buyer", token),
        ];
        rt.block_on(http_from(
            Some(from),
            server.http,
            "POST",
            &path,
            &headers,
            &body,
        ))
        .unwrap()
    };

    // The per-buyer limit (2) holds per customer, whatever phone each order types.
    let alice = hs256("alice");
    assert_eq!(
        order(client_ip(1), 1, "+86 138 0000 0001", 2, &alice).0,
        201
    );
    let (status, body) = order(client_ip(1), 2, "+86 139 9999 9999", 1, &alice);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("over_limit"), "{body}");
    // Another customer with Alice's phone is another buyer.
    assert_eq!(
        order(client_ip(1), 3, "+86 138 0000 0001", 2, &hs256("bob")).0,
        201
    );

    // 40 customers behind one address, one unit each: past the network's share of 30 (20 %
    // of 150), because each is vouched for.
    let shared = client_ip(50);
    let statuses: Vec<u16> = (0..40)
        .map(|n| {
            order(
                shared,
                100 + n,
                &format!("+86 137 0000 {:04}", n),
                1,
                &hs256(&format!("c{n}")),
            )
            .0
        })
        .collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    // ES256 with the key from the shop's JWKS (fetched at start; asked again for an unknown kid).
    let es256 = |sub: &str| {
        let claims = json!({"sub": sub, "iss": "https://shop.example", "exp": now + 600});
        buyer_token(
            claims,
            &|msg| {
                key.sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            },
            "ES256",
            "k1",
        )
    };
    wait_for("the JWKS to be fetched", Duration::from_secs(10), || {
        order(client_ip(2), 500, "+86 136 0000 0001", 1, &es256("carol")).0 == 201
    });
    // RS256 with the RSA key of the same JWKS.
    let rs256 = buyer_token(
        json!({"sub": "erin", "iss": "https://shop.example", "exp": now + 600}),
        &|msg| {
            let mut signature = vec![0; rsa.public_modulus_len()];
            rsa.sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                msg,
                &mut signature,
            )
            .unwrap();
            signature
        },
        "RS256",
        "r1",
    );
    let (status, body) = order(client_ip(2), 501, "+86 136 0000 0002", 1, &rs256);
    assert_eq!(status, 201, "{body}");
    // The same claims under another key's signature do not verify.
    let (signed, _) = rs256.rsplit_once('.').unwrap();
    let (_, es_signature) = es256("erin")
        .rsplit_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let (status, body) = order(
        client_ip(2),
        502,
        "+86 136 0000 0003",
        1,
        &format!("{signed}.{es_signature}"),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signature"), "{body}");

    // Refused with the reason, and never counted as an order.
    let forged = hs256("mallory").replace('A', "B");
    let (status, body) = order(client_ip(3), 600, "+86 135 0000 0001", 1, &forged);
    assert_eq!(status, 401, "{body}");
    let expired = buyer_token(
        json!({"sub": "dave", "iss": "https://shop.example", "exp": now - 3600}),
        &|msg| {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        },
        "HS256",
        "",
    );
    let (status, body) = order(client_ip(3), 601, "+86 135 0000 0002", 1, &expired);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    let (status, body) = order(client_ip(3), 602, "+86 135 0000 0003", 1, "not-a-jwt");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not a JWT"), "{body}");
    assert_eq!(orders(&server, &session_id).len(), 1 + 1 + 40 + 2);
}

/// The order list comes a page at a time: each page at most `limit`, the next one named by
/// `Fieldcast-Next-Cursor` and a `Link` header, oldest or newest first; the pages together
/// hold every order once, in the order taken, and orders taken between two reads never
/// shift the pages already read.
#[test]
fn the_order_list_comes_in_pages_by_cursor() {
    let server = Server::start(&data_dir("order-pages"));
    let (session_id, offer_id) = offer(&server, 100, None, 600);
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let rt = runtime();
    let buy = |n: usize| one_order(&rt, &server, &path, &offer_id, n, Some(client_ip(n)));
    let taken: Vec<String> = (0..7).map(buy).collect();
    let page = |query: &str| {
        let mut response = ureq::get(&server.url(&format!("{path}?{query}")))
            .header("Authorization", &format!("Bearer {}", common::TOKEN))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (next, link) = (header("fieldcast-next-cursor"), header("link"));
        let body: Value = response.body_mut().read_json().unwrap();
        (status, body, next, link)
    };
    let ids = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };

    // Oldest first, three at a time: 3 + 3 + 1, every order once, in the order taken.
    let (status, first, next, link) = page("limit=3");
    assert_eq!(status, 200, "{first}");
    let cursor = next.expect("a next page");
    assert!(
        link.as_deref()
            .is_some_and(|l| l.contains(&format!("after={cursor}")) && l.ends_with("rel=\"next\"")),
        "{link:?}"
    );
    // An order taken now does not move the pages already read.
    let late = buy(7);
    let (_, second, next, _) = page(&format!("limit=3&after={cursor}"));
    let (_, third, next_after, _) = page(&format!("limit=3&after={}", next.unwrap()));
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.extend(ids(&third));
    let mut want = taken.clone();
    want.push(late.clone());
    assert_eq!(
        all, want,
        "the three pages hold every order once, in the order taken"
    );
    assert!(
        next_after.is_none(),
        "a fourth page after the last order: {next_after:?}"
    );

    // Newest first: the late order, then the others backwards.
    let (_, newest, next, _) = page("order=newest&limit=2");
    assert_eq!(ids(&newest), [late.clone(), taken[6].clone()]);
    let (_, older, _, _) = page(&format!("order=newest&limit=2&after={}", next.unwrap()));
    assert_eq!(ids(&older), [taken[5].clone(), taken[4].clone()]);

    // The default page holds them all here; the filters still apply.
    let (_, every, next, _) = page("");
    assert_eq!(ids(&every), want);
    assert!(next.is_none());
    let (_, mine, _, _) = page(&format!("offer_id={offer_id}&status=confirmed&limit=100"));
    assert_eq!(ids(&mine).len(), 8);

    // Nonsense is refused with the reason.
    for (query, says) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=12", "after"),
        ("order=sideways", "order"),
    ] {
        let (status, body, _, _) = page(query);
        assert_eq!(status, 422, "{query}: {body}");
        assert!(
            body["detail"].as_str().unwrap().starts_with(says),
            "{query}: {body}"
        );
    }
}
