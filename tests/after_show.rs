//! After the show: the on-screen record against the frames the show really made, its hash
//! chain under `fieldcast audit verify`, and the recording (VOD in ffprobe and hls.js, the
//! slate where the publisher dropped, the disk budget deleting the oldest first).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Publisher, Server, data_dir, is_slate, mean_colour, node, wait_for};
use serde_json::{Value, json};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sleeps until `ms` after `t0`.
fn at(t0: Instant, ms: u64) {
    let until = t0 + Duration::from_millis(ms);
    if let Some(left) = until.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

fn buy(server: &Server, session: &str, offer: &str, buyer: usize, quantity: i64) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent
        .post(&server.url(&format!("/api/v1/sessions/{session}/orders")))
        .header("Idempotency-Key", &format!("after-show-{buyer}"))
        .header("Content-Type", "application/json")
        .send(common::order_body(offer, buyer, quantity))
        .expect("order");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn product(server: &Server, name: &str, unit_amount: i64) -> String {
    let (status, p) = server.api(
        "POST",
        "/api/v1/products",
        Some(json!({"name": name, "unit_amount": unit_amount, "currency": "CNY", "unit": "jar"})),
    );
    assert_eq!(status, 201, "{p}");
    p["id"].as_str().unwrap().to_string()
}

fn pin(server: &Server, session: &str, product: &str) {
    let (status, body) = server.api(
        "PUT",
        &format!("/api/v1/sessions/{session}/pinned"),
        Some(json!({"product_id": product})),
    );
    assert_eq!(status, 200, "{body}");
}

fn get_text(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// `2026-12-06T08:01:02.345Z` as Unix ms.
fn parse_iso8601(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = s[20..23].parse::<i64>().unwrap();
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + ms
}

/// A recording's segments: (wall-clock start in Unix ms, duration in ms, URI).
fn segments(playlist: &str) -> Vec<(i64, i64, String)> {
    let mut out = Vec::new();
    let mut date = None;
    let mut duration = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            date = Some(parse_iso8601(d));
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = Some((d.trim_end_matches(',').parse::<f64>().unwrap() * 1000.0) as i64);
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((
                date.take().unwrap(),
                duration.take().unwrap(),
                line.to_string(),
            ));
        }
    }
    out
}

/// The frame of the recording shown at wall-clock `t_ms`, decoded from the segment that holds
/// it, as a PNG at twice its size (for OCR).
fn frame_at(
    base_url: &str,
    playlist: &str,
    t_ms: i64,
    dir: &Path,
    name: &str,
) -> std::path::PathBuf {
    let (start, _, uri) = segments(playlist)
        .into_iter()
        .find(|(start, duration, _)| *start <= t_ms && t_ms < start + duration)
        .unwrap_or_else(|| panic!("no recorded segment holds {t_ms}: {playlist}"));
    let png = dir.join(format!("{name}.png"));
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", &format!("{base_url}/{uri}")])
        .args(["-ss", &format!("{:.3}", (t_ms - start) as f64 / 1000.0)])
        .args(["-frames:v", "1", "-vf", "scale=iw*2:ih*2:flags=lanczos"])
        .arg(&png)
        .output()
        .expect("run ffmpeg");
    assert!(
        output.status.success() && png.exists(),
        "decoding {uri}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    png
}

/// The words tesseract reads on the product card: the bottom-left of the frame, where the
/// default scene puts it (tesseract misses it beside the slate's big words).
fn ocr(png: &Path) -> String {
    let card = png.with_extension("card.png");
    let cropped = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(png)
        .args(["-vf", "crop=iw/2:ih*0.4:0:ih*0.6"])
        .arg(&card)
        .status()
        .expect("run ffmpeg");
    assert!(cropped.success());
    let output = Command::new("tesseract")
        .arg(&card)
        .args(["stdout", "--psm", "11"])
        .output()
        .expect("run tesseract (make test installs tesseract-ocr)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).replace('\n', " ")
}

fn audit(data: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .arg("audit")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run fieldcast audit");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// What the card showed at one moment, as the record says and as the picture reads.
struct Moment {
    name: &'static str,
    at_ms: i64,
    /// The card's price and stock, as the record must give them.
    price: i64,
    remaining: Option<i64>,
    /// What OCR of the recorded frame must find, and must not.
    reads: &'static [&'static str],
    not: &'static [&'static str],
}

#[test]
fn the_onscreen_record_matches_the_recorded_frames_at_five_moments_and_an_edited_row_fails_audit_verify()
 {
    let server = Server::start(&data_dir("onscreen"));
    let session = server.create_session("Rose jam, after the show");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    assert_eq!(
        session["record"], true,
        "recording is on by default: {session}"
    );
    let jam = product(&server, "Rose jam", 3500);
    let honey = product(&server, "Mountain honey", 1200);

    // A steady blue publisher for 42 s, then the slate until the show ends at 60 s.
    let publisher = Publisher::ffmpeg_from(
        &server.publish_url(&key),
        "color=c=0x2050a0:size=1280x720:rate=30:duration=120",
        120,
    );
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    let t0 = Instant::now();
    let mut moments = Vec::new();
    let mut moment = |name, price, remaining, reads, not| {
        moments.push(Moment {
            name,
            at_ms: now_ms(),
            price,
            remaining,
            reads,
            not,
        })
    };

    // Each moment is taken halfway between two changes, seconds from either.
    at(t0, 2_000);
    pin(&server, &id, &jam);
    at(t0, 5_000);
    moment(
        "jam at its price",
        3500,
        None,
        &["35.00"],
        &["29.00", "left"],
    );

    at(t0, 8_000);

    let (status, offer) = server.api(
        "POST",
        &format!("/api/v1/sessions/{id}/offers"),
        Some(json!({"product_id": jam, "unit_amount": 2900, "quantity": 5, "per_buyer_limit": 3, "duration_s": 300})),
    );
    assert_eq!(status, 201, "{offer}");
    let offer = offer["id"].as_str().unwrap().to_string();
    at(t0, 10_000);
    assert_eq!(buy(&server, &id, &offer, 1, 2).0, 201);
    at(t0, 13_500);
    moment(
        "the sale, 3 left",
        2900,
        Some(3),
        &["29.00", "3 left"],
        &["Sold out"],
    );

    at(t0, 17_000);
    assert_eq!(buy(&server, &id, &offer, 2, 3).0, 201);
    assert_eq!(
        buy(&server, &id, &offer, 3, 1).0,
        409,
        "the sixth unit is refused"
    );
    at(t0, 21_000);
    moment(
        "sold out",
        2900,
        Some(0),
        &["29.00", "Sold out"],
        &["3 left"],
    );

    at(t0, 25_000);
    pin(&server, &id, &honey);
    at(t0, 29_000);
    moment("honey", 1200, None, &["12.00", "honey"], &["Rose", "15.00"]);

    at(t0, 33_000);
    let (status, body) = server.api(
        "PATCH",
        &format!("/api/v1/products/{honey}"),
        Some(json!({"unit_amount": 1500})),
    );
    assert_eq!(status, 200, "{body}");
    at(t0, 37_500);
    moment(
        "honey's new price",
        1500,
        None,
        &["15.00", "honey"],
        &["12.00"],
    );

    at(t0, 42_000);
    publisher.kill();
    let dropped_ms = now_ms();
    at(t0, 52_000);
    moment(
        "honey on the slate",
        1500,
        None,
        &["15.00", "honey"],
        &["12.00"],
    );
    at(t0, 60_000);
    let (status, body) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}"),
        Some(json!({"state": "idle"})),
    );
    assert_eq!(status, 200, "{body}");

    // The recording is finished: a VOD playlist.
    let mut recording = Value::Null;
    wait_for("the recording to finish", Duration::from_secs(10), || {
        let (_, list) = server.api("GET", &format!("/api/v1/sessions/{id}/recordings"), None);
        recording = list["recordings"][0].clone();
        recording["state"] == "complete"
    });
    let url = recording["url"].as_str().unwrap().to_string();
    assert_eq!(server.session(&id)["recording_url"], url.as_str());
    let playlist = get_text(&url);
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD")
            && playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{playlist}"
    );
    let base_url = url.trim_end_matches("/index.m3u8");
    let segs = segments(&playlist);
    let span = segs.last().map(|(s, d, _)| s + d).unwrap() - segs[0].0;
    eprintln!(
        "recording {}: {} segments, {:.1} s, {} bytes",
        recording["id"],
        segs.len(),
        span as f64 / 1000.0,
        recording["bytes"]
    );
    assert!(
        span >= 55_000,
        "the recording spans {span} ms of a 60 s show"
    );

    // ffprobe reads it end to end: every frame decodes, H.264 and AAC, about 60 s.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames:format=duration",
            "-of",
            "json",
            &url,
        ])
        .output()
        .expect("run ffprobe");
    let stderr = String::from_utf8_lossy(&probe.stderr);
    assert!(
        probe.status.success() && stderr.trim().is_empty(),
        "ffprobe: {stderr}"
    );
    let probed: Value = serde_json::from_slice(&probe.stdout).unwrap();
    eprintln!("ffprobe: {probed}");
    let streams = probed["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_name"] == "h264")
        .expect("an H.264 stream");
    assert!(streams.iter().any(|s| s["codec_name"] == "aac"), "{probed}");
    let frames: f64 = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(duration >= 55.0, "{probed}");
    assert!(
        frames >= duration * 30.0 * 0.9,
        "{frames} frames in {duration} s: {probed}"
    );

    // hls.js plays it: from the start, from the sale, from the slate, to the end.
    let seen = node(
        "vod.mjs",
        &[&json!({"base": server.url(""), "playlist": url, "seekTo": [14.0, 50.0]}).to_string()],
    );
    eprintln!("hls.js: {seen}");

    // The five moments: the record's answer, and the words on the recorded frame.
    let dir = server.data.join("frames");
    std::fs::create_dir_all(&dir).unwrap();
    for m in &moments {
        let (status, answer) = server.api(
            "GET",
            &format!("/api/v1/sessions/{id}/onscreen?at={}", m.at_ms),
            None,
        );
        assert_eq!(status, 200, "{answer}");
        let card = &answer["entry"]["screen"]["card"];
        assert_eq!(card["price"], m.price, "{}: {answer}", m.name);
        assert_eq!(
            card["remaining"].as_i64(),
            m.remaining,
            "{}: {answer}",
            m.name
        );
        let png = frame_at(
            base_url,
            &playlist,
            m.at_ms,
            &dir,
            &m.name.replace([' ', ',', '\''], "-"),
        );
        let text = ocr(&png);
        eprintln!(
            "{}: the record says price {}, remaining {:?}; OCR reads {text:?}",
            m.name, card["price"], card["remaining"]
        );
        for word in m.reads {
            assert!(
                text.contains(word),
                "{}: the frame at {} does not read {word:?}: {text:?} ({})",
                m.name,
                m.at_ms,
                png.display()
            );
        }
        for word in m.not {
            assert!(
                !text.contains(word),
                "{}: the frame at {} reads {word:?}: {text:?}",
                m.name,
                m.at_ms
            );
        }
    }
    // The publisher's blue before the drop, the slate after it (below its words, right of the
    // card).
    let before = frame_at(base_url, &playlist, dropped_ms - 3000, &dir, "before-drop");
    let after = frame_at(base_url, &playlist, dropped_ms + 5000, &dir, "after-drop");
    let region = "600:200:1700:900";
    let (blue, slate) = (
        mean_colour(&before, Some(region)),
        mean_colour(&after, Some(region)),
    );
    assert!(
        !is_slate(blue) && blue[2] > 120 && blue[0] < 80,
        "before the drop: {blue:?}"
    );
    assert!(
        is_slate(slate),
        "after the drop the recording shows {slate:?}, not the slate"
    );

    // The replay: a chapter at each product, the panel following; the operator leaves an
    // offer open on the honey, and a buy from the replay makes one order.
    let (status, open_offer) = server.api(
        "POST",
        &format!("/api/v1/sessions/{id}/offers"),
        Some(json!({"product_id": honey, "unit_amount": 1300, "quantity": 10, "duration_s": 3600})),
    );
    assert_eq!(status, 201, "{open_offer}");
    let session = server.session(&id);
    assert!(
        session["replay_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/replay/{id}")),
        "{session}"
    );
    let seen = node(
        "replay.mjs",
        &[&json!({
            "base": server.url(""),
            "session": id,
            "chapters": [{"name": "Rose jam", "showPrice": "35.00"}, {"name": "Mountain honey", "showPrice": "12.00"}],
            "buy": "Mountain honey",
            "screenshots": common::docs_dir(),
        })
        .to_string()],
    );
    eprintln!("replay: {seen}");
    let orders = server.all_orders(&id, "");
    let from_replay: Vec<_> = orders
        .iter()
        .filter(|o| o["offer_id"] == open_offer["id"])
        .collect();
    assert_eq!(
        from_replay.len(),
        1,
        "orders on the replay's offer: {from_replay:?}"
    );
    assert_eq!(from_replay[0]["id"], seen["order"]);

    // The chain: intact, exported and verified again; one edited row names itself.
    let (ok, said) = audit(&server.data, &["verify", &id]);
    assert!(ok, "{said}");
    eprintln!("{said}");
    let export = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .args(["audit", "export", &id, "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert!(export.status.success());
    let jsonl = server.data.join("onscreen.jsonl");
    std::fs::write(&jsonl, &export.stdout).unwrap();
    let (ok, said) = audit(
        &server.data,
        &["verify", &id, "--file", jsonl.to_str().unwrap()],
    );
    assert!(ok, "{said}");

    let db = rusqlite::Connection::open(server.data.join("fieldcast.db")).unwrap();
    let seq: i64 = db
        .query_row(
            "SELECT seq FROM onscreen WHERE session_id = ?1 AND screen LIKE '%\"remaining\":3%' ORDER BY seq LIMIT 1",
            [&id],
            |r| r.get(0),
        )
        .expect("an entry with 3 left");
    let changed = db
        .execute(
            "UPDATE onscreen SET screen = replace(screen, '\"remaining\":3', '\"remaining\":30') WHERE session_id = ?1 AND seq = ?2",
            rusqlite::params![id, seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let (ok, said) = audit(&server.data, &["verify", &id]);
    assert!(!ok, "verify passed an edited record: {said}");
    assert!(
        said.contains(&format!("entry {seq}:")),
        "verify did not name entry {seq}: {said}"
    );
    eprintln!("after editing entry {seq}: {said}");
}

/// A 12 s show from an ffmpeg publisher, ended by the operator; its recording once it ends.
fn show(server: &Server, title: &str) -> Value {
    let session = server.create_session(title);
    let id = session["id"].as_str().unwrap().to_string();
    let publisher = Publisher::ffmpeg(
        &server.publish_url(session["stream_key"].as_str().unwrap()),
        "1280x720",
        14,
    );
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(12));
    let (status, _) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}"),
        Some(json!({"state": "idle"})),
    );
    assert_eq!(status, 200);
    drop(publisher);
    let mut recording = Value::Null;
    wait_for("the recording to end", Duration::from_secs(30), || {
        let (_, list) = server.api("GET", &format!("/api/v1/sessions/{id}/recordings"), None);
        recording = list["recordings"][0].clone();
        recording["state"] != "recording" && !recording.is_null()
    });
    recording
}

/// ffprobe decodes every frame of a playlist: the video frames counted, and its stderr.
fn decoded_frames(url: &str) -> (u64, String) {
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("run ffprobe");
    // An HLS input prints the stream under its program too: the first line is the count.
    let frames = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (frames, String::from_utf8_lossy(&probe.stderr).into_owned())
}

#[test]
fn with_the_disk_budget_below_two_recordings_the_older_goes_first_and_no_write_fails() {
    let data = data_dir("budget");
    let server = Server::start(&data);
    let first = show(&server, "First show");
    assert_eq!(first["state"], "complete", "{first}");
    let bytes = first["bytes"].as_u64().unwrap();
    // Room for one and a half recordings of that size, in whole megabytes.
    let budget_mb = (bytes * 3 / 2).div_ceil(1 << 20);
    assert!(
        budget_mb << 20 < 2 * bytes && budget_mb << 20 >= bytes,
        "a {bytes}-byte recording leaves no whole-megabyte budget between one and two of it"
    );
    let server = server.restart(&["--recording-budget-mb", &budget_mb.to_string()]);
    let second = show(&server, "Second show");
    assert_eq!(
        second["state"], "complete",
        "the second recording was stopped: {second}"
    );
    let first_after = server
        .api(
            "GET",
            &format!(
                "/api/v1/sessions/{}/recordings",
                first["session_id"].as_str().unwrap()
            ),
            None,
        )
        .1;
    assert_eq!(
        first_after["recordings"].as_array().unwrap().len(),
        0,
        "the first recording is still kept: {first_after}"
    );
    assert!(
        !server
            .data
            .join("recordings")
            .join(first["id"].as_str().unwrap())
            .exists()
    );
    let log = std::fs::read_to_string(server.data.join("server.log")).unwrap();
    assert!(
        log.contains("recording deleted: the disk budget needed its room"),
        "the deletion is not logged"
    );
    for bad in ["recording stopped", "could not", "the recording failed"] {
        assert!(!log.contains(bad), "the log says {bad:?}");
    }
    let used: u64 = std::fs::read_dir(server.data.join("recordings"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.metadata().unwrap().len())
        .sum();
    eprintln!(
        "recordings of {bytes} and {} bytes, budget {budget_mb} MB: {used} bytes on disk",
        second["bytes"]
    );
    assert!(
        used <= budget_mb << 20,
        "{used} bytes on disk over a {budget_mb} MB budget"
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            second["url"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        probe.status.success() && probe.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// moto's S3 server on a loopback port, with one empty bucket; killed when dropped.
struct S3(std::process::Child, std::net::SocketAddr);

impl S3 {
    const BUCKET: &str = "fieldcast-recordings";

    fn start(dir: &Path) -> S3 {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto/bin/moto_server");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {} (make test installs it): {e}", bin.display()));
        let s3 = S3(child, addr);
        wait_for(
            "moto's S3 server to listen",
            Duration::from_secs(30),
            || std::net::TcpStream::connect(addr).is_ok(),
        );
        let created = ureq::put(&s3.url(Self::BUCKET)).send_empty();
        assert!(created.is_ok(), "create the bucket: {created:?}");
        s3
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.1)
    }

    /// The keys under `prefix` and their sizes, straight from the store (moto lists for an
    /// unsigned request; it refuses to read another account's objects to one).
    fn keys(&self, prefix: &str) -> Vec<(String, u64)> {
        let xml = get_text(&self.url(&format!("{}?list-type=2&prefix={prefix}", Self::BUCKET)));
        let field = |entry: &str, name: &str| -> String {
            entry
                .split(&format!("<{name}>"))
                .nth(1)
                .and_then(|v| v.split(&format!("</{name}>")).next())
                .unwrap_or_default()
                .to_string()
        };
        xml.split("<Contents>")
            .skip(1)
            .map(|entry| (field(entry, "Key"), field(entry, "Size").parse().unwrap()))
            .collect()
    }

    /// What a server needs to reach it.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "fieldcast".into()),
            ("AWS_SECRET_ACCESS_KEY", "fieldcast-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT", format!("http://{}", self.1)),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn with_an_s3_store_a_recording_moves_there_and_plays_from_it_and_with_the_store_gone_it_stays_on_disk()
 {
    let data = data_dir("s3");
    let s3 = S3::start(&data);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = format!("s3://{}/shows", S3::BUCKET);
    let server = Server::start_with_env(&data, &["--recording-store", &store], &env);

    // The store answers: every file moves there, and none is left on disk.
    let moved = show(&server, "Rose jam, kept in the store");
    assert_eq!(moved["state"], "complete", "{moved}");
    assert_eq!(moved["stored_in"], "object_store", "{moved}");
    let id = moved["id"].as_str().unwrap();
    let segments = moved["segments"].as_u64().unwrap();
    assert!(segments >= 10, "{moved}");
    let mut keys = s3.keys(&format!("shows/{id}/"));
    keys.sort();
    assert_eq!(keys.len() as u64, segments + 1, "{keys:?}");
    assert_eq!(keys[0].0, format!("shows/{id}/index.m3u8"));
    let segment_bytes: u64 = keys[1..].iter().map(|(_, size)| size).sum();
    assert_eq!(segment_bytes, moved["bytes"].as_u64().unwrap(), "{keys:?}");
    assert!(
        !server.data.join("recordings").join(id).exists(),
        "the recording's folder is still on disk"
    );
    assert_eq!(
        server.metric("fieldcast_recording_uploads_total{result=\"ok\"}"),
        (segments + 1) as f64
    );
    // It plays through the server, from the store: each file whole, and every frame.
    let playlist = get_text(moved["url"].as_str().unwrap());
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    for (key, size) in &keys[1..] {
        let name = key.rsplit('/').next().unwrap();
        assert!(playlist.contains(name), "{name} is not in the playlist");
        let mut served = Vec::new();
        ureq::get(&server.url(&format!("/recordings/{id}/{name}")))
            .call()
            .unwrap()
            .body_mut()
            .as_reader()
            .read_to_end(&mut served)
            .unwrap();
        assert_eq!(served.len() as u64, *size, "{name}");
    }
    let (frames, stderr) = decoded_frames(moved["url"].as_str().unwrap());
    let seconds = moved["duration_ms"].as_u64().unwrap() / 1000;
    assert!(
        frames >= seconds * 15 && stderr.is_empty(),
        "{frames} frames of a {seconds} s recording: {stderr}"
    );

    // The store gone: the show records all the same, to disk, and plays from there.
    drop(s3);
    let kept = show(&server, "Honey, with the store down");
    assert_eq!(kept["state"], "complete", "{kept}");
    assert_eq!(kept["stored_in"], "disk", "{kept}");
    let kept_id = kept["id"].as_str().unwrap();
    let on_disk = std::fs::read_dir(server.data.join("recordings").join(kept_id))
        .unwrap()
        .count() as u64;
    assert_eq!(on_disk, kept["segments"].as_u64().unwrap() + 1);
    let (frames, stderr) = decoded_frames(kept["url"].as_str().unwrap());
    let folder = server.data.join("recordings").join(kept_id);
    let (in_folder, _) = decoded_frames(folder.join("index.m3u8").to_str().unwrap());
    assert!(
        frames == in_folder && frames >= 150 && stderr.is_empty(),
        "{frames} frames through the server, {in_folder} from the folder: {stderr}"
    );
    assert!(server.metric("fieldcast_recording_uploads_total{result=\"failed\"}") >= 1.0);
    let log = std::fs::read_to_string(server.data.join("server.log")).unwrap();
    assert!(
        log.contains(
            "the object store fails every upload: the rest of this recording stays on disk"
        ),
        "the log does not say the store failed"
    );
    // The first recording, whose files are all in the store, now answers 502, not 404.
    let status = ureq::get(moved["url"].as_str().unwrap())
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(502));
}
