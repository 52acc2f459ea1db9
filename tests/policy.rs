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
    rtmp_publish_bytes, wait_for, whep_offer_sdp,
};
use fieldcast_probe::whep::{PlayOptions, play};
use serde_json::Value;

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
        &whep_offer_sdp(),
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
        .send(whep_offer_sdp())
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
    let orders = server.all_orders(&session_id, "");
    let stored: std::collections::HashSet<&str> =
        orders.iter().filter_map(|o| o["id"].as_str()).collect();
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

/// The tags of an FLV file (type, payload), as an RTMP publisher sends them as messages.
fn flv_tags(path: &std::path::Path) -> Vec<(u8, Vec<u8>)> {
    let b = std::fs::read(path).expect("read the FLV file");
    let mut tags = Vec::new();
    let mut pos = 9 + 4;
    while pos + 11 <= b.len() {
        let size = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        if pos + 11 + size > b.len() {
            break;
        }
        tags.push((b[pos], b[pos + 11..pos + 11 + size].to_vec()));
        pos += 11 + size + 4;
    }
    tags
}

/// Encodes `seconds` of ffmpeg's test picture at `size` into an FLV file (H.264, a keyframe
/// a second, no B-frames, no audio).
fn test_flv(dir: &std::path::Path, name: &str, size: &str, seconds: u32) -> Vec<(u8, Vec<u8>)> {
    let path = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-bf",
            "0",
            "-an",
            "-f",
            "flv",
        ])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    flv_tags(&path)
}

/// Rewrites each NAL unit of an AVC video tag (length prefixes kept consistent) with `f`.
fn map_nals(tag: &[u8], mut f: impl FnMut(&mut Vec<u8>)) -> Vec<u8> {
    if tag.len() < 5 || tag[1] != 1 {
        return tag.to_vec();
    }
    let mut out = tag[..5].to_vec();
    let mut pos = 5;
    while pos + 4 <= tag.len() {
        let len = u32::from_be_bytes([tag[pos], tag[pos + 1], tag[pos + 2], tag[pos + 3]]) as usize;
        let Some(nal) = tag.get(pos + 4..pos + 4 + len) else {
            break;
        };
        let mut nal = nal.to_vec();
        f(&mut nal);
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(&nal);
        pos += 4 + len;
    }
    out
}

/// Bit flips, NAL units cut short, an SPS change and 10 s without an IDR from one publisher:
/// its viewers see its picture while the decoder can conceal the damage, the slate while it
/// cannot, and the picture again from the next clean keyframe; the publisher stays connected
/// and another session never notices. (A decode pipeline that errors or gives no picture for
/// 2 s is also rebuilt; this stream does not need that: after a new sequence header the
/// input waits for a keyframe.)
#[test]
fn a_corrupt_h264_stream_disturbs_only_its_own_session_with_the_slate_between() {
    let server = Server::start(&data_dir("corrupt"));
    let dir = server.data.clone();
    let clean = test_flv(&dir, "clean.flv", "640x360", 24);
    let other_size = test_flv(&dir, "other.flv", "480x270", 3);
    let keyframe = |t: &(u8, Vec<u8>)| t.0 == 9 && t.1.first().is_some_and(|b| b >> 4 == 1);
    let sequence_header = |tags: &[(u8, Vec<u8>)]| {
        tags.iter()
            .find(|t| t.0 == 9 && t.1.get(1) == Some(&0))
            .cloned()
            .expect("an AVC sequence header")
    };
    let frames = |tags: &[(u8, Vec<u8>)]| -> Vec<(u8, Vec<u8>)> {
        tags.iter()
            .filter(|t| t.0 == 9 && t.1.get(1) == Some(&1))
            .cloned()
            .collect()
    };
    let (clean_frames, other_frames) = (frames(&clean), frames(&other_size));
    // The show, 30 frames a second: 4 s clean; 3 s of bit flips in NAL payloads; 2 s of NAL
    // units cut in half; an SPS change to 480×270 for 2 s; back to 640×360 with no IDR for
    // 10 s; then clean again from a keyframe.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut flip = move |nal: &mut Vec<u8>| {
        for byte in nal.iter_mut().skip(2) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng.is_multiple_of(50) {
                *byte ^= 1 << (rng % 8);
            }
        }
    };
    let mut plan: Vec<(u8, Vec<u8>)> = vec![sequence_header(&clean)];
    let mut at = 0usize;
    let mut take = |n: usize| {
        let part = clean_frames[at..at + n].to_vec();
        at += n;
        part
    };
    plan.extend(take(120));
    plan.extend(take(90).iter().map(|t| (9, map_nals(&t.1, &mut flip))));
    plan.extend(
        take(60)
            .iter()
            .map(|t| (9, map_nals(&t.1, |nal| nal.truncate(nal.len() / 2 + 1)))),
    );
    plan.push(sequence_header(&other_size));
    plan.extend(other_frames.iter().take(60).cloned());
    plan.push(sequence_header(&clean));
    plan.extend(take(300).into_iter().filter(|t| !keyframe(t)));
    let resume = plan.len();
    let rest: Vec<_> = clean_frames[at..]
        .iter()
        .skip_while(|t| !keyframe(t))
        .cloned()
        .collect();
    plan.extend(rest.into_iter().take(90));
    let no_idr_from = 120 + 90 + 60 + 60; // frames before the no-IDR stretch

    // The control: another session, a clean ffmpeg publisher, its own viewer.
    let control = server.create_session("Control");
    let control_id = control["id"].as_str().unwrap().to_string();
    let _control_publisher = Publisher::ffmpeg(
        &server.publish_url(control["stream_key"].as_str().unwrap()),
        "640x360",
        40,
    );
    server.wait_state(&control_id, "publisher-connected", Duration::from_secs(10));
    let session = server.create_session("Corrupt");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    server.go_live(&id);
    let duration = Duration::from_secs(plan.len() as u64 / 30 + 4);
    let watcher = |id: &str| {
        let whep = server.url(&format!("/whep/{id}"));
        let epoch = Instant::now();
        let handle = std::thread::spawn(move || {
            play(
                &whep,
                &PlayOptions {
                    duration,
                    epoch: Some(epoch),
                    ..Default::default()
                },
            )
        });
        (handle, epoch)
    };
    let (viewer, epoch) = watcher(&id);
    let (control_viewer, _) = watcher(&control_id);
    wait_for("both viewers connected", Duration::from_secs(10), || {
        server.metric("fieldcast_viewers") >= 2.0
    });

    // The corrupt publisher: ffmpeg sending the damaged stream as it is (`-c copy`), paced
    // in real time (`-re`), as a camera app with a broken encoder would.
    let mut flv = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    let mut frame = 0u32;
    for (type_id, payload) in &plan {
        let ts = frame * 1000 / 30;
        let size = payload.len() as u32;
        flv.push(*type_id);
        flv.extend_from_slice(&size.to_be_bytes()[1..]);
        flv.extend_from_slice(&ts.to_be_bytes()[1..]);
        flv.push((ts >> 24) as u8);
        flv.extend_from_slice(&[0, 0, 0]);
        flv.extend_from_slice(payload);
        flv.extend_from_slice(&(11 + size).to_be_bytes());
        if payload.get(1) == Some(&1) {
            frame += 1;
        }
    }
    let corrupt = dir.join("corrupt.flv");
    std::fs::write(&corrupt, &flv).unwrap();
    let started = Instant::now();
    let since_epoch = started - epoch;
    let publisher = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-re", "-i"])
        .arg(&corrupt)
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.publish_url(&key))
        .status()
        .expect("run ffmpeg");
    println!("the corrupt publisher ended: {publisher}");
    let report = viewer.join().unwrap().expect("the viewer played");
    let control_report = control_viewer
        .join()
        .unwrap()
        .expect("the control viewer played");

    let gap = |r: &fieldcast_probe::whep::PlaybackReport| {
        r.decoded
            .windows(2)
            .map(|w| w[1].at - w[0].at)
            .max()
            .unwrap_or(Duration::MAX)
    };
    // Frame n of the plan was sent at since_epoch + n / 30 s.
    let sent_at = |n: usize| since_epoch + Duration::from_millis(n as u64 * 1000 / 30);
    let slate_after_no_idr = report
        .decoded
        .iter()
        .find(|f| f.at > sent_at(no_idr_from) && common::is_slate(f.mean_rgb))
        .map(|f| f.at - sent_at(no_idr_from));
    let picture_after_resume = report
        .decoded
        .iter()
        .find(|f| f.at > sent_at(resume) && !common::is_slate(f.mean_rgb))
        .map(|f| f.at - sent_at(resume));
    let trace: String = report
        .decoded
        .iter()
        .step_by(10)
        .map(|f| {
            if common::is_slate(f.mean_rgb) {
                's'
            } else {
                'P'
            }
        })
        .collect();
    println!(
        "corrupt session, a letter per 10 frames (s = slate, P = picture): {trace}; frames sent from {since_epoch:?}, the no-IDR stretch at frame {no_idr_from}, the keyframe at {resume}"
    );
    println!(
        "corrupt session: {} frames, worst gap {:?}; slate {:?} after the no-IDR stretch began; picture {:?} after the keyframe; restarts {}; control: {} frames, worst gap {:?}",
        report.decoded.len(),
        gap(&report),
        slate_after_no_idr,
        picture_after_resume,
        server.metric("fieldcast_pipeline_restarts_total"),
        control_report.decoded.len(),
        gap(&control_report),
    );
    assert!(
        gap(&control_report) < Duration::from_millis(500),
        "the other session froze"
    );
    assert!(
        gap(&report) < Duration::from_millis(500),
        "the corrupt session's picture froze"
    );
    assert!(
        slate_after_no_idr.is_some_and(|d| d <= Duration::from_millis(2500)),
        "no slate within 2 s (+ the slate's 250 ms) of the stream losing its pictures"
    );
    assert!(
        picture_after_resume.is_some_and(|d| d <= Duration::from_secs(2)),
        "the picture did not come back within 2 s of a clean keyframe"
    );
    assert!(
        publisher.success(),
        "the server dropped the corrupt publisher"
    );
}
