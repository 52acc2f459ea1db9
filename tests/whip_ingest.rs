//! WHIP ingest end to end: the phone publish page in Chromium with a fake camera goes live
//! over WHIP, and the project's WHEP client decodes the composited output, card included.
//! A second publisher on the same key and a wrong key are refused; Stop returns the show to
//! the slate.

mod common;

use std::time::Duration;

use common::{
    BrowserScript, Server, data_dir, docs_dir, is_slate, near_white, pinned_product, wait_for,
};
use fieldcast_core::overlay::layout;
use fieldcast_core::overlay::scene::{LayerKind, template};
use fieldcast_probe::whep::{PlayOptions, play};

/// The page's own files, which a phone downloads before it can go live.
const PAGE_BUDGET_BYTES: u64 = 60 * 1024;

#[test]
fn the_phone_page_goes_live_over_whip_and_stop_returns_the_show_to_the_slate() {
    let server = Server::start(&data_dir("whip-phone"));
    let session = server.create_session("Rose jam from the greenhouse");
    let id = session["id"].as_str().unwrap().to_string();
    pinned_product(&server, &id);
    let page_url = session["publish_page_url"].as_str().unwrap();
    assert_eq!(
        session["whip_url"],
        server.url(&format!("/whip/{id}")),
        "{session}"
    );
    assert!(page_url.ends_with(&format!(
        "/studio/{id}#key={}",
        session["stream_key"].as_str().unwrap()
    )));

    let weight: u64 = ["web/studio.html", "web/studio.js", "web/studio.css"]
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        weight <= PAGE_BUDGET_BYTES,
        "the publish page weighs {weight} bytes"
    );

    let docs = docs_dir();
    let mut page = BrowserScript::start("studio.mjs", &[page_url, docs.to_str().unwrap()]);
    let pages = page.step("pages");
    for lang in ["en", "zh", "ug"] {
        assert_eq!(
            pages["violations"][lang],
            serde_json::json!([]),
            "axe-core in {lang}: {pages}"
        );
    }
    page.next();

    let live = page.step("live");
    assert_eq!(live["badge"], "live", "{live}");
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
    // The viewer sees the phone's camera, composited, with the card on it.
    let report = play(
        &server.url(&format!("/whep/{id}")),
        &PlayOptions {
            duration: Duration::from_secs(20),
            stop_after_frames: Some(60),
            keep_last_frame: true,
            ..Default::default()
        },
    )
    .expect("WHEP playback");
    let camera = report
        .decoded
        .iter()
        .filter(|f| !is_slate(f.mean_rgb))
        .count();
    assert!(
        camera >= 40,
        "only {camera} of {} frames showed the phone",
        report.decoded.len()
    );
    let frame = report.last_frame.expect("a frame");
    let card = layout::place(
        &template(LayerKind::ProductCard, "c".into()),
        frame.width,
        frame.height,
    );
    let white = near_white(&frame, card, 16);
    assert!(
        white > 0.3,
        "no card on the phone's picture ({white:.2} white)"
    );
    let (_, ingest) = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
    assert_eq!(ingest["transport"], "whip", "{ingest}");
    assert!(
        ["H.264", "VP8"].contains(&ingest["video"]["codec"].as_str().unwrap_or("")),
        "{ingest}"
    );
    assert_eq!(ingest["audio"]["codec"], "Opus", "{ingest}");
    page.next();

    let busy = page.step("busy");
    assert_eq!(
        busy["host"], "live",
        "the first phone lost the show: {busy}"
    );
    page.next();
    page.step("refused");
    page.next();

    page.step("stopped");
    wait_for(
        "the show to return to the slate",
        Duration::from_secs(5),
        || server.state(&id) == "live",
    );
    let after = play(
        &server.url(&format!("/whep/{id}")),
        &PlayOptions {
            duration: Duration::from_secs(10),
            stop_after_frames: Some(20),
            ..Default::default()
        },
    )
    .expect("WHEP playback");
    let slate = after
        .decoded
        .iter()
        .filter(|f| is_slate(f.mean_rgb))
        .count();
    assert!(
        slate >= 15,
        "{slate} of {} frames were the slate after Stop",
        after.decoded.len()
    );
    page.next();
    page.finish();
}

#[test]
fn whip_refuses_a_missing_wrong_or_foreign_key_with_401() {
    let server = Server::start(&data_dir("whip-refusals"));
    let session = server.create_session("Refusals");
    let id = session["id"].as_str().unwrap();
    let offer = common::whep_offer_sdp();
    let post = |key: Option<&str>| {
        let mut request = ureq::post(&server.url(&format!("/whip/{id}")))
            .header("Content-Type", "application/sdp")
            .config()
            .http_status_as_error(false)
            .build();
        if let Some(key) = key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let response = request.send(offer.as_str()).unwrap();
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        (status, challenge)
    };
    assert_eq!(post(None), (401, Some("Bearer".into())));
    assert_eq!(post(Some("not-a-key")), (401, Some("Bearer".into())));
    // Another session's key does not publish here either.
    let other = server.create_session("Other");
    assert_eq!(post(other["stream_key"].as_str()).0, 401);
    assert_eq!(server.state(id), "idle");
}

/// aiortc (tests/whip/publish.py): a WHIP publisher with its own ICE, DTLS and encoders.
fn aiortc(whip_url: &str, key: &str, codec: &str, seconds: u32) -> std::process::Child {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::process::Command::new(root.join("target/aiortc/bin/python"))
        .arg(root.join("tests/whip/publish.py"))
        .args([whip_url, key, codec, &seconds.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run aiortc (make test installs it into target/aiortc)")
}

#[test]
fn aiortc_publishes_h264_and_then_vp8_over_whip_and_a_viewer_decodes_both() {
    use std::io::BufRead;
    let server = Server::start(&data_dir("whip-aiortc"));
    let session = server.create_session("Published by aiortc");
    let id = session["id"].as_str().unwrap();
    let key = session["stream_key"].as_str().unwrap();
    let whip_url = session["whip_url"].as_str().unwrap();
    for (codec, name) in [("H264", "H.264"), ("VP8", "VP8")] {
        let mut child = aiortc(whip_url, key, codec, 12);
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().expect("a line from aiortc").unwrap()).unwrap();
        assert_eq!(first["state"], "connected", "{codec}: {first}");
        server.wait_state(id, "publisher-connected", Duration::from_secs(10));
        let report = play(
            &server.url(&format!("/whep/{id}")),
            &PlayOptions {
                duration: Duration::from_secs(15),
                stop_after_frames: Some(60),
                ..Default::default()
            },
        )
        .expect("WHEP playback");
        let colour = report
            .decoded
            .iter()
            .filter(|f| common::is_publisher_colour(f.mean_rgb))
            .count();
        assert!(
            colour >= 30,
            "{codec}: only {colour} of {} frames showed aiortc's picture: {:?}",
            report.decoded.len(),
            report
                .decoded
                .iter()
                .map(|f| f.mean_rgb)
                .take(5)
                .collect::<Vec<_>>()
        );
        let (_, ingest) = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
        assert_eq!(ingest["video"]["codec"], name, "{ingest}");
        assert_eq!(ingest["transport"], "whip", "{ingest}");
        // It ends its publish with DELETE on the resource: the show goes to the slate.
        let last: serde_json::Value =
            serde_json::from_str(&lines.next().expect("aiortc's last line").unwrap()).unwrap();
        assert_eq!(last, serde_json::json!({"state": "done", "delete": 200}));
        assert!(child.wait().unwrap().success());
        wait_for("the slate after DELETE", Duration::from_secs(5), || {
            server.state(id) == "live"
        });
    }
}
