//! Restream: one show pushed to a real nginx-rtmp and to a second Fieldcast at once. ffprobe
//! reads the first, the second's WHEP viewer decodes the first show's card; nginx killed for
//! 20 s leaves the second destination and the show's viewers without a gap, and the first
//! destination comes back by itself.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Publisher, Server, data_dir, wait_for};
use fieldcast_probe::whep::{PlayOptions, PlaybackReport, RgbFrame, play};
use serde_json::{Value, json};

/// A foreground nginx with the RTMP module, one `live` application; killed when dropped.
struct NginxRtmp {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl NginxRtmp {
    fn start(dir: &Path, port: u16) -> NginxRtmp {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let conf = fieldcast_probe::nginx::nginx_rtmp_config(dir, port, "", "");
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nginx (make test installs nginx-light and libnginx-mod-rtmp)");
        wait_for("nginx-rtmp to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        NginxRtmp {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn kill(mut self) -> (std::path::PathBuf, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.dir.clone(), self.port)
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn destinations(server: &Server, id: &str) -> Vec<Value> {
    let (status, body) = server.api("GET", &format!("/api/v1/sessions/{id}/restreams"), None);
    assert_eq!(status, 200, "{body}");
    body["restreams"].as_array().unwrap().clone()
}

fn state_of(server: &Server, id: &str, destination: &str) -> Value {
    destinations(server, id)
        .into_iter()
        .find(|d| d["id"] == destination)
        .unwrap_or_else(|| panic!("no destination {destination}"))
}

/// ffprobe of the show on nginx-rtmp (20 s at most): its streams, and what ffprobe said.
fn probe_nginx(port: u16) -> (Value, String) {
    let probe = Command::new("timeout")
        .args([
            "20",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
        ])
        .arg(format!("rtmp://127.0.0.1:{port}/live/show-secret-key"))
        .output()
        .unwrap();
    (
        serde_json::from_slice(&probe.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&probe.stderr).into_owned(),
    )
}

/// The longest time between two decoded frames, and when it began.
fn longest_gap(report: &PlaybackReport) -> (Duration, Duration) {
    report
        .decoded
        .windows(2)
        .map(|w| (w[1].at.saturating_sub(w[0].at), w[0].at))
        .max()
        .unwrap_or_default()
}

fn ocr(frame: &RgbFrame, dir: &Path, name: &str) -> String {
    // PPM at twice the size: tesseract reads it directly.
    let (w, h) = (frame.width * 2, frame.height * 2);
    let mut ppm = format!("P6\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            ppm.extend_from_slice(&frame.pixel(x / 2, y / 2));
        }
    }
    let path = dir.join(format!("{name}.ppm"));
    std::fs::write(&path, ppm).unwrap();
    let output = Command::new("tesseract")
        .arg(&path)
        .args(["stdout", "--psm", "11"])
        .output()
        .expect("run tesseract (make test installs tesseract-ocr)");
    String::from_utf8_lossy(&output.stdout).replace('\n', " ")
}

#[test]
fn a_show_restreams_to_nginx_rtmp_and_a_second_fieldcast_and_a_dead_destination_touches_neither_the_show_nor_the_other()
 {
    let data = data_dir("restream");
    let nginx = NginxRtmp::start(&data.join("nginx"), free_port());
    for dir in ["show", "second"] {
        std::fs::create_dir_all(data.join(dir)).unwrap();
    }
    let show = Server::start(&data.join("show"));
    let second = Server::start(&data.join("second"));

    // The second Fieldcast's session: the show arrives on its RTMP ingest.
    let mirror = second.create_session("Mirror");
    let mirror_id = mirror["id"].as_str().unwrap().to_string();
    let mirror_key = mirror["stream_key"].as_str().unwrap().to_string();

    let session = show.create_session("Rose jam, everywhere");
    let id = session["id"].as_str().unwrap().to_string();
    let _publisher = Publisher::ffmpeg_from(
        &show.publish_url(session["stream_key"].as_str().unwrap()),
        "color=c=0x2050a0:size=1280x720:rate=30:duration=300",
        300,
    );
    show.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    let (status, product) = show.api(
        "POST",
        "/api/v1/products",
        Some(json!({"name": "Rose jam", "unit_amount": 3500, "currency": "CNY", "unit": "jar"})),
    );
    assert_eq!(status, 201);
    let (status, _) = show.api(
        "PUT",
        &format!("/api/v1/sessions/{id}/pinned"),
        Some(json!({"product_id": product["id"]})),
    );
    assert_eq!(status, 200);

    // Bad destinations are refused with the field named.
    for (body, field) in [
        (json!({"url": "http://example.com/live", "key": "k"}), "url"),
        (json!({"url": "rtmp:///live", "key": "k"}), "url"),
        (json!({"url": "rtmp://127.0.0.1/live", "key": "a b"}), "key"),
        (json!({"url": "rtmp://127.0.0.1/live", "key": ""}), "key"),
    ] {
        let (status, problem) = show.api(
            "POST",
            &format!("/api/v1/sessions/{id}/restreams"),
            Some(body),
        );
        assert_eq!(status, 422, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{problem}"
        );
    }

    let add = |url: String, key: &str| -> String {
        let (status, d) = show.api(
            "POST",
            &format!("/api/v1/sessions/{id}/restreams"),
            Some(json!({"url": url, "key": key})),
        );
        assert_eq!(status, 201, "{d}");
        assert_eq!(d["key"], "(set)", "the key is shown: {d}");
        assert!(
            !d.to_string().contains(key),
            "the key is in the answer: {d}"
        );
        d["id"].as_str().unwrap().to_string()
    };
    let to_nginx = add(
        format!("rtmp://127.0.0.1:{}/live", nginx.port),
        "show-secret-key",
    );
    let to_second = add(format!("rtmp://{}/live", second.rtmp), &mirror_key);

    wait_for(
        "both destinations to connect",
        Duration::from_secs(20),
        || {
            destinations(&show, &id)
                .iter()
                .all(|d| d["state"] == "connected")
        },
    );
    second.wait_state(&mirror_id, "publisher-connected", Duration::from_secs(10));

    // ffprobe reads the first: the show's H.264 and AAC, at its size.
    let (probed, stderr) = probe_nginx(nginx.port);
    eprintln!("ffprobe of nginx-rtmp: {probed}");
    let streams = probed["streams"].as_array().cloned().unwrap_or_default();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 1280)
            && streams.iter().any(|s| s["codec_name"] == "aac"),
        "ffprobe: {probed} {stderr}"
    );

    // The second's viewer decodes the show's card (drawn by the first, carried in the picture).
    let frames_dir = data.join("frames");
    std::fs::create_dir_all(&frames_dir).unwrap();
    let mut card_text = String::new();
    wait_for(
        "the card in the second Fieldcast's picture",
        Duration::from_secs(20),
        || {
            let frame = common::last_frame(&second, &mirror_id);
            card_text = ocr(&frame, &frames_dir, "second");
            card_text.contains("35.00") && card_text.contains("Rose")
        },
    );
    eprintln!("OCR of the second's WHEP picture: {card_text:?}");

    // Two viewers, of the show and of the second, through nginx's death and return.
    let watch = |server: &Server, session: &str| {
        let url = server.url(&format!("/whep/{session}"));
        std::thread::spawn(move || {
            play(
                &url,
                &PlayOptions {
                    duration: Duration::from_secs(34),
                    ..Default::default()
                },
            )
            .expect("WHEP playback")
        })
    };
    let show_viewer = watch(&show, &id);
    let second_viewer = watch(&second, &mirror_id);
    std::thread::sleep(Duration::from_secs(5));
    let failures_before = state_of(&show, &id, &to_nginx)["failures"]
        .as_u64()
        .unwrap();
    let (nginx_dir, nginx_port) = nginx.kill();
    let killed = Instant::now();
    let mut seen_retrying = Value::Null;
    wait_for(
        "the dead destination to be retried",
        Duration::from_secs(15),
        || {
            seen_retrying = state_of(&show, &id, &to_nginx);
            seen_retrying["state"] == "retrying"
        },
    );
    eprintln!("while nginx is dead: {seen_retrying}");
    assert!(
        seen_retrying["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{seen_retrying}"
    );
    assert_eq!(state_of(&show, &id, &to_second)["state"], "connected");
    let metrics = show.metrics();
    assert!(
        metrics.contains(&format!(
            "fieldcast_restream_state{{session=\"{id}\",destination=\"{to_nginx}\",state=\"retrying\"}} 1"
        )),
        "/metrics does not show the dead destination retrying"
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(killed.elapsed()));
    let nginx = NginxRtmp::start(&nginx_dir, nginx_port);
    let back = Instant::now();
    wait_for(
        "the first destination to reconnect by itself",
        Duration::from_secs(45),
        || state_of(&show, &id, &to_nginx)["state"] == "connected",
    );
    let first = state_of(&show, &id, &to_nginx);
    eprintln!(
        "nginx back after {:.1} s dead; the destination reconnected {:.1} s later: {first}",
        (back - killed).as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    assert!(first["failures"].as_u64().unwrap() > failures_before);

    for (name, viewer) in [("the show's", show_viewer), ("the second's", second_viewer)] {
        let report = viewer.join().unwrap();
        let (gap, at) = longest_gap(&report);
        eprintln!(
            "{name} viewer: {} frames decoded, longest gap {gap:?} at {at:?}",
            report.decoded.len()
        );
        assert!(
            report.decoded.len() > 30 * 25,
            "{name} viewer decoded {} frames in 34 s",
            report.decoded.len()
        );
        assert!(
            gap <= Duration::from_millis(500),
            "{name} viewer saw a {gap:?} gap at {at:?}"
        );
    }
    // And the stream on nginx again reads.
    let (probed, stderr) = probe_nginx(nginx.port);
    let codecs: Vec<_> = probed["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "after the return: {probed} {stderr}"
    );
    // Removing a destination stops its push.
    let (status, _) = show.api(
        "DELETE",
        &format!("/api/v1/sessions/{id}/restreams/{to_nginx}"),
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(destinations(&show, &id).len(), 1);
}
