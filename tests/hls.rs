//! HLS and Low-Latency HLS from the studio's encode, as players and caches use them: ffprobe
//! on the plain playlist across a publisher's drop, the HTTP rules (cache, validators, CORS,
//! blocking reloads, the preload hint), HLS stopping when unwatched, 200 LL-HLS clients
//! through a real nginx `proxy_cache`, and the watch page falling back to hls.js in
//! Chromium when the WebRTC audience is full.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    LiveSale, Nginx, Publisher, Server, data_dir, docs_dir, is_slate, live_sale_recorded,
    mean_colour, node, probe_binary, wait_for,
};
use fieldcast_engine::hls::playlist::iso8601;
use fieldcast_probe::hls_load::parse_listing;
use serde_json::{Value, json};

/// Public rate limits lifted: every client here is on loopback.
const OPEN_LIMITS: &[&str] = &["--rate-orders", "1000:100", "--rate-whep", "1000:100"];

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    took: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut request = agent.get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let started = Instant::now();
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Answer {
        status,
        headers,
        body,
        took: started.elapsed(),
    }
}

fn on_air(server: &Server, title: &str) -> String {
    let session = server.create_session(title);
    let id = session["id"].as_str().unwrap().to_string();
    server.go_live(&id);
    id
}

/// The same, not recorded: a recording keeps HLS running, and this one's HLS runs only
/// while it is asked for.
fn on_air_unrecorded(server: &Server, title: &str) -> String {
    let session = server.create_session(title);
    let id = session["id"].as_str().unwrap().to_string();
    let (status, body) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}"),
        Some(serde_json::json!({"record": false})),
    );
    assert_eq!(status, 200, "{body}");
    server.go_live(&id);
    id
}

/// A plain playlist's segments, in order: each one's `EXTINF` and URI.
fn segments(playlist: &str) -> Vec<(f64, String)> {
    let mut listed = Vec::new();
    let mut duration = None;
    for line in playlist.lines() {
        if let Some(extinf) = line.strip_prefix("#EXTINF:") {
            duration = extinf.trim_end_matches(',').parse::<f64>().ok();
        } else if line.ends_with(".ts") {
            let duration = duration.take().expect("an EXTINF before each segment");
            listed.push((duration, line.to_string()));
        }
    }
    listed
}

/// The value of `name="..."` in a playlist line.
fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(&format!("{name}=\"")).nth(1)?.split('"').next()
}

#[test]
fn hls_answers_with_cache_rules_validators_and_cors_and_blocks_reloads_until_the_part_exists() {
    let server = Server::start_with(&data_dir("hls-http"), &["--hls-idle", "4"]);
    let id = on_air_unrecorded(&server, "HLS over HTTP");
    let base = server.url(&format!("/hls/{id}"));

    let missing = get(&server.url("/hls/nosuchsession/ll.m3u8"), &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("access-control-allow-origin"), "*");
    assert_eq!(missing.header("cache-control"), "no-store");

    // The first request starts HLS and waits for its first segment.
    let plain = get(&format!("{base}/index.m3u8"), &[]);
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert!(plain.took < Duration::from_secs(6), "{:?}", plain.took);
    assert_eq!(
        plain.header("content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(plain.header("cache-control"), "public, max-age=1");
    assert_eq!(plain.header("access-control-allow-origin"), "*");
    assert!(plain.header("etag").starts_with('"'));
    assert!(plain.header("last-modified").ends_with(" GMT"));
    assert!(plain.text().contains("#EXTINF:"), "{}", plain.text());
    let again = get(
        &format!("{base}/index.m3u8"),
        &[("If-None-Match", plain.header("etag"))],
    );
    assert!(matches!(again.status, 200 | 304));
    if again.status == 304 {
        assert!(again.body.is_empty());
    }

    // The plain playlist ends with the segment being made, listed with the grid's duration;
    // the segments end on the grid (a late frame on a busy machine may move one off it).
    let text = plain.text();
    let listed = segments(&text);
    let (last, growing_uri) = listed.last().cloned().expect("a segment listed");
    assert_eq!(last, 1.0, "{text}");
    let on_grid = listed.iter().filter(|(d, _)| *d == 1.0).count();
    assert!(
        on_grid * 2 > listed.len(),
        "segments off the 1 s grid: {text}"
    );

    // It is sent as it is made (chunked, no length known), and the answer ends when the
    // segment does: then it is served whole, the same bytes under the same validators.
    let growing = get(&format!("{base}/{growing_uri}"), &[]);
    assert_eq!(growing.status, 200, "{}", growing.text());
    assert_eq!(growing.header("transfer-encoding"), "chunked");
    assert_eq!(growing.header("content-type"), "video/mp2t");
    assert_eq!(
        growing.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let segment = get(&format!("{base}/{growing_uri}"), &[]);
    assert_eq!(segment.status, 200);
    assert_eq!(
        segment.header("content-length"),
        segment.body.len().to_string()
    );
    assert_eq!(segment.header("etag"), growing.header("etag"));
    assert!(
        segment.body == growing.body,
        "the segment sent as it was made ({} bytes) is not the complete one ({} bytes)",
        growing.body.len(),
        segment.body.len()
    );

    // A whole segment: MPEG-TS, immutable, with its validators; 304 for a client holding it.
    assert_eq!(segment.header("content-type"), "video/mp2t");
    assert_eq!(
        segment.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(segment.body.len() % 188, 0);
    assert_eq!(segment.body[0], 0x47);
    let held = get(
        &format!("{base}/{growing_uri}"),
        &[("If-None-Match", segment.header("etag"))],
    );
    assert_eq!(held.status, 304);
    assert!(held.body.is_empty());

    // The low-latency playlist: its rules, and a blocking reload for the next part.
    let ll = get(&format!("{base}/ll.m3u8"), &[]);
    assert_eq!(ll.status, 200);
    assert_eq!(ll.header("cache-control"), "public, max-age=0");
    let text = ll.text();
    assert!(
        text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK="),
        "{text}"
    );
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET="), "{text}");
    let listing = parse_listing(&text).unwrap();
    let (msn, part) = listing.edge;
    let blocked = get(
        &format!("{base}/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        &[],
    );
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    assert_eq!(blocked.header("cache-control"), "public, max-age=2");
    assert!(
        blocked.took < Duration::from_millis(1500),
        "a blocking reload for the next part took {:?}",
        blocked.took
    );
    let after = parse_listing(&blocked.text()).unwrap();
    assert!(
        after.parts.iter().any(|(m, p, _)| (*m, *p) == (msn, part)) || after.edge.0 > msn,
        "the answer does not hold part {msn}.{part}: {}",
        blocked.text()
    );

    // The hinted part is held until it is complete, then served like any part.
    let hint_line = blocked
        .text()
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .unwrap()
        .to_string();
    let hinted = attribute(&hint_line, "URI").unwrap().to_string();
    let part_answer = get(&format!("{base}/{hinted}"), &[]);
    assert_eq!(part_answer.status, 200, "{}", part_answer.text());
    assert_eq!(part_answer.header("content-type"), "video/mp2t");
    assert_eq!(
        part_answer.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(part_answer.body.len() % 188, 0);
    assert!(
        part_answer.took < Duration::from_millis(1500),
        "{:?}",
        part_answer.took
    );

    // Bad requests get a clear 400 or 404, with CORS.
    for (query, status) in [
        ("?_HLS_msn=abc", 400),
        ("?_HLS_part=1", 400),
        (&format!("?_HLS_msn={}", msn + 10) as &str, 400),
    ] {
        let answer = get(&format!("{base}/ll.m3u8{query}"), &[]);
        assert_eq!(answer.status, status, "{query}: {}", answer.text());
        assert_eq!(answer.header("access-control-allow-origin"), "*");
        assert!(
            answer
                .header("content-type")
                .starts_with("application/problem+json")
        );
    }
    let epoch: &str = hinted.trim_start_matches('p').split('.').next().unwrap();
    for file in [
        format!("p{epoch}.99999999.ts"),
        "p1.0.ts".into(),
        "s1.ts".into(),
        format!("s1.{msn}.ts"),
        "index.html".into(),
    ] {
        assert_eq!(get(&format!("{base}/{file}"), &[]).status, 404, "{file}");
    }

    let metrics = server.metrics();
    assert!(
        server.metric("fieldcast_hls_parts_served_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        server.metric("fieldcast_hls_segments_served_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        server.metric("fieldcast_hls_playlists_served_total") >= 3.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("\nfieldcast_hls_blocking_requests 0\n"),
        "{metrics}"
    );
    assert_eq!(
        server.metric(&format!(
            "fieldcast_session_hls_viewers{{session=\"{id}\"}}"
        )),
        1.0
    );
    assert_eq!(
        server.metric(&format!("fieldcast_session_hls_active{{session=\"{id}\"}}")),
        1.0
    );

    // Unwatched for its idle time (4 s here), HLS stops; a request starts it again, with
    // new names (a cache may still hold the old ones).
    wait_for(
        "HLS to stop when unwatched",
        Duration::from_secs(10),
        || server.metric(&format!("fieldcast_session_hls_active{{session=\"{id}\"}}")) == 0.0,
    );
    let restarted = get(&format!("{base}/ll.m3u8"), &[]);
    assert_eq!(restarted.status, 200);
    let listing = parse_listing(&restarted.text()).unwrap();
    assert!(
        listing.edge.0 > msn,
        "media sequence went back: {} after {msn}",
        listing.edge.0
    );
    assert!(
        !restarted.text().contains(&format!("p{epoch}.")),
        "the new run reuses the old part names"
    );
}

/// `ffprobe -show_packets` of a playlist: the streams and every packet's stream and time.
fn probe(url: &str, seconds: u32) -> Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-live_start_index", "0", "-read_intervals"])
        .arg(format!("%+{seconds}"))
        .args([
            "-show_entries",
            "stream=index,codec_name,width,height,sample_rate,channels:packet=stream_index,pts_time",
            "-of",
            "json",
            url,
        ])
        .output()
        .expect("run ffprobe (apt-get install ffmpeg)");
    assert!(
        output.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ffprobe JSON")
}

/// The presentation time (s) of the first video PES in MPEG-TS bytes.
fn first_video_pts(ts: &[u8]) -> Option<f64> {
    for packet in ts.chunks_exact(188) {
        let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
        if pid != fieldcast_engine::hls::ts::PID_VIDEO || packet[1] & 0x40 == 0 {
            continue;
        }
        let start = if packet[3] & 0x20 != 0 {
            5 + usize::from(packet[4])
        } else {
            4
        };
        let pes = packet.get(start..)?;
        if pes.get(..3)? != [0, 0, 1] || pes.get(7)? & 0x80 == 0 {
            return None;
        }
        let p = pes.get(9..14)?;
        let pts = (u64::from(p[0] >> 1) & 7) << 30
            | u64::from(p[1]) << 22
            | u64::from(p[2] >> 1) << 15
            | u64::from(p[3]) << 7
            | u64::from(p[4] >> 1);
        return Some(pts as f64 / 90_000.0);
    }
    None
}

#[test]
fn plain_hls_reads_in_ffprobe_as_720p_h264_and_aac_with_time_running_on_across_a_publisher_drop() {
    let server = Server::start(&data_dir("hls-ffprobe"));
    let session = server.create_session("HLS across a drop");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    // A phone at 25 fps first: the encoder's own count (30 frames) would put keyframes
    // 1.2 s apart; the segments' keyframes are asked for on the 1 s grid.
    let first = Publisher::ffmpeg_from(
        &server.publish_url(&key),
        "testsrc2=size=1280x720:rate=25:duration=60",
        60,
    );
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    let playlist = server.url(&format!("/hls/{id}/index.m3u8"));
    assert_eq!(get(&playlist, &[]).status, 200);
    std::thread::sleep(Duration::from_secs(5));

    // The publisher drops; the slate fills in; a publisher comes back.
    first.kill();
    let dropped = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_secs(4));
    let _second = Publisher::ffmpeg(&server.publish_url(&key), "1280x720", 60);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(5));

    let probed = probe(&playlist, 15);
    let streams = probed["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_name"] == "h264")
        .expect("an H.264 stream");
    let audio = streams
        .iter()
        .find(|s| s["codec_name"] == "aac")
        .expect("an AAC stream");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(audio["sample_rate"], "48000");
    assert_eq!(audio["channels"], 2);
    // The slate takes over after 250 ms without a picture, silence after 200 ms
    // (crates/engine/src/media/output.rs): the longest step allowed is that and a few frames.
    let slate_after = fieldcast_engine::media::output::SLATE_AFTER.as_secs_f64();
    let silence_after = fieldcast_engine::media::output::SILENCE_AFTER.as_secs_f64();
    for (stream, name, longest) in [
        (video, "video", slate_after + 4.0 / 30.0),
        (audio, "audio", silence_after + 4.0 * 1024.0 / 48000.0),
    ] {
        let times: Vec<f64> = probed["packets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["stream_index"] == stream["index"])
            .filter_map(|p| p["pts_time"].as_str()?.parse().ok())
            .collect();
        let span = times.last().unwrap() - times.first().unwrap();
        assert!(span >= 13.0, "{name}: only {span:.1} s read");
        let biggest = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(f64::MIN, f64::max);
        let (at, smallest) = times
            .windows(2)
            .map(|w| (w[0], w[1] - w[0]))
            .fold((0.0, f64::MAX), |a, b| if b.1 < a.1 { b } else { a });
        assert!(
            smallest > 0.0,
            "{name}: timestamps do not increase (step {smallest} at {at}, {:.3} s into the read)",
            at - times[0]
        );
        assert!(
            biggest < longest,
            "{name}: a {biggest:.3} s hole in the timestamps (the filler should take over within {longest:.3} s)"
        );
        eprintln!(
            "{name}: {} packets over {span:.1} s, steps {smallest:.4}..{biggest:.4} s",
            times.len()
        );
    }

    // Each segment begins where the listed durations before it say, within a frame and a
    // little (a 25 fps frame is 40 ms; frames arrive a few ms early or late) at 25 fps, the
    // slate, then 30 fps: the grid's 1 s at 25 fps (the encoder's own count would give
    // 1.2 s), its own length where the picture stopped, and no drift over the window.
    let text = get(&playlist, &[]).text();
    let (listed, uris): (Vec<f64>, Vec<String>) = segments(&text).into_iter().unzip();
    let starts: Vec<f64> = uris
        .iter()
        .map(|uri| {
            let ts = get(&server.url(&format!("/hls/{id}/{uri}")), &[]).body;
            first_video_pts(&ts).expect("a video PES in each segment")
        })
        .collect();
    let spans: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("segments listed {listed:?}, lasting {spans:.3?}");
    let mut at = starts[0];
    for (i, start) in starts.iter().enumerate().skip(1) {
        at += listed[i - 1];
        assert!(
            (start - at).abs() <= 0.06,
            "segment {i} begins {:.3} s from where the playlist puts it: {text}",
            start - at
        );
    }
    let on_grid = listed.iter().filter(|d| **d == 1.0).count();
    assert!(
        on_grid + 3 >= listed.len() && spans.len() >= 12,
        "{on_grid} of {} segments on the 1 s grid: {text}",
        listed.len()
    );

    // The slate is in the HLS too: a segment begun during the drop shows it.
    let lines: Vec<&str> = text.lines().collect();
    let during = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let date = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:")?;
            let uri = lines[i + 2..].iter().find(|l| l.ends_with(".ts"))?;
            Some((date.to_string(), uri.to_string()))
        })
        .find(|(date, _)| {
            let from = iso8601(dropped + Duration::from_millis(1200));
            let until = iso8601(dropped + Duration::from_millis(3500));
            date.as_str() >= from.as_str() && date.as_str() <= until.as_str()
        })
        .map(|(_, uri)| uri)
        .unwrap_or_else(|| panic!("no segment begun during the drop: {text}"));
    let ts = get(&server.url(&format!("/hls/{id}/{during}")), &[]).body;
    let file = server.data.join("probe.ts");
    std::fs::write(&file, &ts).unwrap();
    let colour = mean_colour(&file, None);
    assert!(
        is_slate(colour),
        "a segment made during the drop shows {colour:?}, not the slate"
    );
}

#[test]
fn the_page_falls_back_to_low_latency_hls_in_chromium_when_webrtc_is_full_or_udp_is_blocked_and_still_sells()
 {
    let mut extra = OPEN_LIMITS.to_vec();
    extra.extend(["--max-viewers-per-session", "1"]);
    let server = Server::start_with(&data_dir("hls-fallback"), &extra);
    let LiveSale {
        id,
        offer,
        publisher: _publisher,
        ..
    } = live_sale_recorded(&server, "Rose jam, on HLS", 120, false);
    // Unrecorded: the page is HLS's first viewer, and joins at the live edge. (A page that
    // joins a window already running, a recorded show's or one others watch, starts three
    // whole segments behind; hls.js did not move on to parts within 20 s there.)

    // The one WebRTC place is taken by the project's own WHEP client.
    let mut occupant = Command::new(probe_binary())
        .args([
            "watch",
            &server.url(&format!("/whep/{id}")),
            "--seconds",
            "20",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the WHEP client");
    wait_for(
        "the WebRTC place to be taken",
        Duration::from_secs(15),
        || server.metric("fieldcast_viewers") >= 1.0,
    );

    let screenshot = docs_dir().join("watch-hls-fallback.png");
    let config = json!({
        "base": server.url(""),
        "session": id,
        "product": "Rose jam",
        "screenshot": screenshot,
    });
    let seen = node("hls.mjs", &[&config.to_string()]);
    // It leaves by itself (DTLS close, then DELETE) after its 20 s.
    let _ = occupant.wait();
    eprintln!("the page saw: {seen}");
    assert!(seen["firstFrameMs"].as_u64().unwrap() <= 6000, "{seen}");

    // The order is the ledger's, like any other.
    let (status, orders) = server.api(
        "GET",
        &format!("/api/v1/sessions/{id}/orders?offer_id={offer}"),
        None,
    );
    assert_eq!(status, 200);
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["id"], seen["order"]);
    assert_eq!(orders[0]["quantity"], 2);
    assert!(server.metric("fieldcast_hls_parts_served_total") >= 5.0);
    assert_eq!(
        server.metric(&format!(
            "fieldcast_session_hls_viewers{{session=\"{id}\"}}"
        )),
        1.0
    );

    // With room on WebRTC again but the browser's WebRTC to the server lost, UDP and TCP (the
    // answer's candidates point at a closed port): WHEP answers, ICE never connects, and the
    // page plays HLS after its 4 s wait.
    wait_for("the WebRTC place to free", Duration::from_secs(45), || {
        server.metric("fieldcast_viewers") == 0.0
    });
    let config = json!({"base": server.url(""), "session": id, "udpBlocked": true});
    let seen = node("hls.mjs", &[&config.to_string()]);
    eprintln!("with UDP blocked the page saw: {seen}");
    let first = seen["firstFrameMs"].as_u64().unwrap();
    assert!((4000..=10_000).contains(&first), "{seen}");
}

/// The number the next part will have, from the live playlist's preload hint.
fn next_part(server: &Server, id: &str) -> u64 {
    let text = get(&server.url(&format!("/hls/{id}/ll.m3u8")), &[]).text();
    let hint = text
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .unwrap();
    let uri = attribute(hint, "URI").unwrap();
    uri.trim_end_matches(".ts")
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn two_hundred_ll_hls_clients_through_an_nginx_proxy_cache_cost_fieldcast_about_one_request_per_part()
 {
    let server = Server::start(&data_dir("hls-cache"));
    let id = on_air(&server, "HLS through a cache");
    let (_nginx, cache) = Nginx::start(server.http, &server.data.join("nginx"));
    // Through the cache, a part is a MISS once and a HIT after.
    let first = get(&format!("http://{cache}/hls/{id}/ll.m3u8"), &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    let part = parse_listing(&first.text())
        .unwrap()
        .parts
        .last()
        .unwrap()
        .2
        .clone();
    let part_url = format!("http://{cache}/hls/{id}/{part}");
    assert_eq!(get(&part_url, &[]).header("x-cache"), "MISS");
    let hit = get(&part_url, &[]);
    assert_eq!(hit.header("x-cache"), "HIT");
    assert_eq!(hit.header("access-control-allow-origin"), "*");

    // The plain playlist's segment being made, through the cache: it comes through to the
    // first client as it is made, and then the cache holds the complete segment.
    let plain = get(&format!("http://{cache}/hls/{id}/index.m3u8"), &[]);
    assert_eq!(plain.status, 200, "{}", plain.text());
    let (_, newest) = segments(&plain.text()).pop().expect("a segment listed");
    let through = get(&format!("http://{cache}/hls/{id}/{newest}"), &[]);
    assert_eq!(through.status, 200, "{}", through.text());
    assert_eq!(through.header("x-cache"), "MISS");
    let direct = get(&server.url(&format!("/hls/{id}/{newest}")), &[]);
    assert!(
        through.body == direct.body && !direct.body.is_empty(),
        "the segment through the cache ({} bytes) is not Fieldcast's ({} bytes)",
        through.body.len(),
        direct.body.len()
    );
    let held = get(&format!("http://{cache}/hls/{id}/{newest}"), &[]);
    assert_eq!(held.header("x-cache"), "HIT");
    assert!(held.body == direct.body);

    let parts_before = server.metric("fieldcast_hls_parts_served_total");
    let playlists_before = server.metric("fieldcast_hls_playlists_served_total");
    let made_before = next_part(&server, &id);
    let clients = 200;
    let swarm = Command::new(probe_binary())
        .args(["hls-swarm", &format!("http://{cache}/hls/{id}/ll.m3u8")])
        .args([
            "--clients",
            &clients.to_string(),
            "--ramp-seconds",
            "2",
            "--seconds",
            "8",
        ])
        .args(["--sources", "127.0.0.2+100"])
        .output()
        .expect("run fieldcast-probe hls-swarm");
    let report = String::from_utf8_lossy(&swarm.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&swarm.stderr));
    assert!(swarm.status.success(), "not every client played: {report}");
    assert!(
        report.starts_with(&format!("{clients} of {clients} clients played")),
        "{report}"
    );
    let made = next_part(&server, &id) - made_before;
    let parts = server.metric("fieldcast_hls_parts_served_total") - parts_before;
    // One initial playlist per client (the live edge is not cacheable), then blocking
    // reloads: one per part and per cache.
    let playlists = server.metric("fieldcast_hls_playlists_served_total")
        - playlists_before
        - clients as f64
        - 1.0;
    eprintln!(
        "{made} parts made; Fieldcast answered {parts} part requests and {playlists} blocking reloads for {clients} clients"
    );
    assert!(made >= 30, "only {made} parts in 10 s");
    assert!(
        parts <= 1.5 * made as f64,
        "{parts} part requests reached Fieldcast for {made} parts: the cache is not collapsing them"
    );
    assert!(
        playlists <= 2.0 * made as f64,
        "{playlists} blocking reloads reached Fieldcast for {made} parts"
    );
}
