//! Policies a show relies on, each against the real binary: who may publish, how long a show
//! waits for its host, what happens to viewers who never connect or do not fit, what deleting
//! a session keeps, what a stranger's text may put on the video, and what a SIGTERM keeps.
//! (A second publisher refused and a comeback within the grace are in live_path.rs.)

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Publisher, Server, client_ip, data_dir, first_sse_data, http_from, offer, order_body,
    rtmp_publish_bytes,
};
use fieldcast::egress::client::{PlayOptions, play};
use serde_json::Value;

/// Polls `check` every 100 ms until it holds; panics with `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_publisher_gone_silent_is_taken_over_by_a_new_connection_with_the_key() {
    let server = Server::start(&data_dir("silent"));
    let session = server.create_session("Silent host");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    // A publisher whose app is up but sends no media (a phone whose camera froze).
    let mut silent = std::net::TcpStream::connect(server.rtmp).unwrap();
    silent.write_all(&rtmp_publish_bytes("live", &key)).unwrap();
    server.wait_state(&id, "publisher-connected", Duration::from_secs(5));
    let went_silent = Instant::now();

    // While it is only briefly silent, a second publisher is refused.
    let early = Publisher::ffmpeg(&server.publish_url(&key), "640x360", 10)
        .wait_exit(Duration::from_secs(8))
        .expect("an early second publisher kept running");
    assert!(
        !early.0,
        "a second publisher was taken while the first had just gone quiet"
    );

    // Past the idle deadline (10 s), a new connection with the key gets the show.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(went_silent.elapsed()));
    let _new = Publisher::ffmpeg(&server.publish_url(&key), "640x360", 20);
    wait_for("the new publisher is live", Duration::from_secs(8), || {
        server.metric("fieldcast_rtmp_connections_closed_total{reason=\"media_idle\"}")
            + server.metric("fieldcast_rtmp_connections_closed_total{reason=\"replaced\"}")
            >= 1.0
            && server.state(&id) == "publisher-connected"
    });
    // The silent connection was closed by the server.
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = silent.read_to_end(&mut rest).is_ok();
    assert!(closed, "the silent publisher's connection is still open");
}

#[test]
fn past_the_reconnect_grace_the_show_ends_and_its_viewers_are_ended() {
    let server = Server::start_with(&data_dir("grace"), &["--reconnect-grace", "2"]);
    let session = server.create_session("Short grace");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    let publisher = Publisher::ffmpeg(&server.publish_url(&key), "640x360", 60);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    let whep = server.url(&format!("/whep/{id}"));
    let started = Instant::now();
    let viewer = std::thread::spawn(move || {
        play(
            &whep,
            &PlayOptions {
                duration: Duration::from_secs(40),
                ..Default::default()
            },
        )
    });
    wait_for("the viewer connected", Duration::from_secs(10), || {
        server.metric("fieldcast_viewers") >= 1.0
    });
    publisher.kill();
    let left = Instant::now();
    // Within the grace: still on air (the slate).
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(server.state(&id), "live", "the show ended inside the grace");
    // Past it: idle, and the viewer's session is ended by the server.
    wait_for("the show ends", Duration::from_secs(6), || {
        server.state(&id) == "idle"
    });
    assert!(left.elapsed() >= Duration::from_secs(2));
    wait_for("the viewer is ended", Duration::from_secs(5), || {
        server.metric("fieldcast_viewers_ended_total{reason=\"studio_stopped\"}") >= 1.0
            && server.metric("fieldcast_viewers") == 0.0
    });
    let _ = viewer.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(35),
        "the viewer played on to its own end: the server never ended it"
    );
}

/// A WHEP offer, as a browser makes one.
fn whep_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = fieldcast::egress::client::viewer_config().build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut changes = rtc.sdp_api();
    changes.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    changes.apply().expect("an offer").0.to_sdp_string()
}

fn post_offer(server: &Server, from: usize, id: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(http_from(
        Some(client_ip(from)),
        server.http,
        "POST",
        &format!("/whep/{id}"),
        &[("Content-Type", "application/sdp")],
        &whep_offer(),
    ))
    .unwrap()
}

#[test]
fn viewers_that_never_connect_are_reaped_and_one_address_cannot_pile_them_up() {
    let server = Server::start(&data_dir("pending"));
    let session = server.create_session("Pending");
    let id = session["id"].as_str().unwrap().to_string();
    server.go_live(&id);
    // One address: 8 pending viewers at most (the default), then 429.
    let statuses: Vec<u16> = (0..10).map(|_| post_offer(&server, 1, &id).0).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        8,
        "{statuses:?}"
    );
    assert!(statuses[8..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another address is not affected.
    assert_eq!(post_offer(&server, 2, &id).0, 201);
    assert_eq!(server.metric("fieldcast_viewers_pending"), 9.0);
    // None of them finishes ICE: all are reaped within 15 s (plus one check interval).
    let offered = Instant::now();
    wait_for("pending viewers reaped", Duration::from_secs(17), || {
        server.metric("fieldcast_viewers_pending") == 0.0
    });
    assert!(offered.elapsed() >= Duration::from_secs(14));
    assert_eq!(
        server.metric("fieldcast_viewers_ended_total{reason=\"never_connected\"}"),
        9.0
    );
    assert_eq!(server.metric("fieldcast_viewers"), 0.0);
}

#[test]
fn past_the_viewer_cap_whep_answers_503_with_retry_after() {
    let server = Server::start_with(&data_dir("cap"), &["--max-viewers-per-session", "1"]);
    let session = server.create_session("Full house");
    let id = session["id"].as_str().unwrap().to_string();
    server.go_live(&id);
    let whep = server.url(&format!("/whep/{id}"));
    let first = std::thread::spawn(move || {
        play(
            &whep,
            &PlayOptions {
                duration: Duration::from_secs(6),
                decode: false,
                ..Default::default()
            },
        )
    });
    wait_for(
        "the first viewer connected",
        Duration::from_secs(10),
        || {
            server.metric("fieldcast_viewers") >= 1.0
                && server.metric("fieldcast_viewers_pending") == 0.0
        },
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&server.url(&format!("/whep/{id}")))
        .header("Content-Type", "application/sdp")
        .send(whep_offer())
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body = response.body_mut().read_to_string().unwrap();
    assert!(body.contains("audience is full"), "{body}");
    first.join().unwrap().expect("the first viewer played");
}

#[test]
fn deleting_a_session_with_orders_archives_it_and_keeps_its_orders() {
    let server = Server::start(&data_dir("archive"));
    let (session_id, offer_id) = offer(&server, 10, None, 600);
    server.go_live(&session_id);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in 0..3 {
        let key = format!("archive-{n}");
        let (status, body) = rt
            .block_on(http_from(
                Some(client_ip(n)),
                server.http,
                "POST",
                &format!("/api/v1/sessions/{session_id}/orders"),
                &[
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", &key),
                ],
                &order_body(&offer_id, n, 1),
            ))
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = server.api("DELETE", &format!("/api/v1/sessions/{session_id}"), None);
    assert_eq!(status, 204, "{body}");
    // Gone from the lists and lookups, its key refused; its orders and offers still there.
    let (_, list) = server.api("GET", "/api/v1/sessions", None);
    assert!(
        !list.to_string().contains(&session_id),
        "an archived session is listed: {list}"
    );
    let (status, _) = server.api("GET", &format!("/api/v1/sessions/{session_id}"), None);
    assert_eq!(status, 404);
    let (status, orders) = server.api(
        "GET",
        &format!("/api/v1/sessions/{session_id}/orders"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(orders.as_array().map(Vec::len), Some(3), "{orders}");
    let (status, offers) = server.api(
        "GET",
        &format!("/api/v1/sessions/{session_id}/offers"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(offers[0]["sold"], 3, "{offers}");
    // Deleting again: it is not there any more.
    let (status, _) = server.api("DELETE", &format!("/api/v1/sessions/{session_id}"), None);
    assert_eq!(status, 404);
}

#[test]
fn buyer_text_with_control_characters_never_reaches_the_video_unsanitised() {
    let server = Server::start(&data_dir("toast"));
    let (session_id, offer_id) = offer(&server, 10, None, 600);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let post = |n: usize, buyer: Value| {
        let body = serde_json::json!({"offer_id": offer_id, "quantity": 1, "buyer": buyer});
        rt.block_on(http_from(
            Some(client_ip(n)),
            server.http,
            "POST",
            &format!("/api/v1/sessions/{session_id}/orders"),
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", &format!("toast-{n}")),
            ],
            &body.to_string(),
        ))
        .unwrap()
    };
    // A 500-character city is refused outright.
    let (status, body) = post(
        1,
        serde_json::json!({"name": "Aygul", "phone": "+8613800000001", "address": "1 Road", "city": "K".repeat(500)}),
    );
    assert_eq!(status, 422, "{body}");
    // Control characters, a bidi override, and the longest city taken.
    let (status, body) = post(
        2,
        serde_json::json!({
            "name": "Ay\u{202e}gul\u{7}\u{1b}[2J\r\nTursun",
            "phone": "+8613800000002",
            "address": "1 Road",
            "city": format!("Kash\u{0}gar{}", "x".repeat(90)),
        }),
    );
    assert_eq!(status, 201, "{body}");
    // The toast is what the compositor draws on the frame.
    // (The live state follows the commit; the answer may come first.)
    let mut toast = String::new();
    wait_for("the purchase toast", Duration::from_secs(5), || {
        let live = first_sse_data(&server, &format!("/api/v1/sessions/{session_id}/events"));
        toast = live["toasts"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        !toast.is_empty()
    });
    assert!(
        !toast
            .chars()
            .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{toast:?}"
    );
    assert!(toast.starts_with("Aygul in Kash garxxx"), "{toast:?}");
    assert!(toast.ends_with("… just bought 1"), "{toast:?}");
    assert!(
        toast.chars().count() <= 60,
        "{toast:?} is too long for the video"
    );
}

#[test]
fn sigterm_during_a_buyer_burst_loses_no_acknowledged_order() {
    let data = data_dir("sigterm");
    let mut server = Server::start(&data);
    let (session_id, offer_id) = offer(&server, 100_000, None, 600);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let http = server.http;
    let path = format!("/api/v1/sessions/{session_id}/orders");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let buyers: Vec<_> = (0..16)
        .map(|b| {
            let (acknowledged, path, offer_id) =
                (acknowledged.clone(), path.clone(), offer_id.clone());
            rt.spawn(async move {
                for i in 0..100_000usize {
                    let n = b * 100_000 + i;
                    let key = format!("term-{n}");
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", key.as_str()),
                    ];
                    match http_from(
                        Some(client_ip(n)),
                        http,
                        "POST",
                        &path,
                        &headers,
                        &order_body(&offer_id, n, 1),
                    )
                    .await
                    {
                        Ok((201, body)) => {
                            let order: Value = serde_json::from_str(&body).unwrap();
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(order["id"].as_str().unwrap().to_string());
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // SIGTERM: new work is refused, the ledger drains, the database closes; exit 0.
    let pid = server.pid() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let exited = server.wait_exit(Duration::from_secs(15));
    assert_eq!(
        exited,
        Some(true),
        "fieldcast did not exit cleanly on SIGTERM"
    );
    rt.block_on(async {
        for b in buyers {
            let _ = tokio::time::timeout(Duration::from_secs(10), b).await;
        }
    });
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "only {} orders before SIGTERM",
        acknowledged.len()
    );
    let server = Server::start(&data);
    let (_, orders) = server.api(
        "GET",
        &format!("/api/v1/sessions/{session_id}/orders"),
        None,
    );
    let stored: std::collections::HashSet<&str> = orders
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    println!(
        "{} acknowledged before SIGTERM, {} stored",
        acknowledged.len(),
        stored.len()
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

#[test]
fn a_viewer_that_stops_reading_does_not_slow_the_others() {
    let server = Server::start(&data_dir("slow"));
    let session = server.create_session("Slow viewer");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    let _publisher = Publisher::ffmpeg(&server.publish_url(&key), "1280x720", 30);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    let whep = server.url(&format!("/whep/{id}"));
    // The stuck viewer: it connects, takes a second of video, then never reads again.
    let stuck = {
        let whep = whep.clone();
        std::thread::spawn(move || {
            play(
                &whep,
                &PlayOptions {
                    duration: Duration::from_secs(14),
                    decode: false,
                    stall_after: Some(Duration::from_secs(1)),
                    ..Default::default()
                },
            )
        })
    };
    wait_for(
        "the stuck viewer connected",
        Duration::from_secs(10),
        || server.metric("fieldcast_viewers") >= 1.0,
    );
    let report = play(
        &whep,
        &PlayOptions {
            duration: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .expect("the other viewer played");
    let _ = stuck.join().unwrap();
    let worst = report
        .decoded
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or(Duration::MAX);
    println!(
        "other viewer: {} frames, worst gap {worst:?}, gaps {}; datagrams the socket refused: {}",
        report.decoded.len(),
        report.gaps,
        server.metric("fieldcast_egress_datagrams_dropped_total")
    );
    assert!(
        report.decoded.len() >= 240,
        "the other viewer decoded only {} frames in 10 s",
        report.decoded.len()
    );
    assert!(
        worst < Duration::from_millis(500),
        "the other viewer's picture froze for {worst:?}"
    );
}
