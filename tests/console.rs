//! The operator console as an operator uses it: headless Chromium (Debian's, through
//! playwright-core) drives `/console` by its labels and roles (tests/browser/console.mjs)
//! against the real server, a real ffmpeg publisher, and the project's WHEP client decoding
//! the output. Also: the console's own files stay within their weight budget.

mod common;

use std::path::{Path, PathBuf};

use common::{BrowserScript, Publisher, Server, data_dir, last_frame, near_white};
use fieldcast_core::overlay::layout;
use fieldcast_core::overlay::scene::{Layer, LayerKind, template};
use fieldcast_probe::whep::RgbFrame;
use serde_json::json;

/// The console's HTML, script and style together, uncompressed.
const WEIGHT_BUDGET: u64 = 200 * 1024;

/// The publisher's picture: one steady colour, so whatever else is on a frame is an overlay.
const BACKGROUND: &str = "color=c=0x203040:size=1280x720:rate=30";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_console_files_weigh_at_most_200_kb() {
    let files = ["web/console.html", "web/console.js", "web/console.css"];
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(root().join(f)).expect(f).len())
        .sum();
    eprintln!("console: {total} bytes in {files:?}");
    assert!(
        total <= WEIGHT_BUDGET,
        "the console's files weigh {total} bytes, over the {WEIGHT_BUDGET}-byte budget"
    );
}

/// Share of the frame's pixels more than 24 levels from the background colour (the median
/// of the frame) in some channel: what overlays add to a steady picture.
fn off_background(frame: &RgbFrame) -> f64 {
    let mut channels: [Vec<u8>; 3] = Default::default();
    for px in frame.data.chunks_exact(3) {
        for c in 0..3 {
            channels[c].push(px[c]);
        }
    }
    let median: Vec<u8> = channels
        .iter_mut()
        .map(|v| {
            v.sort_unstable();
            v[v.len() / 2]
        })
        .collect();
    let off = frame
        .data
        .chunks_exact(3)
        .filter(|px| (0..3).any(|c| px[c].abs_diff(median[c]) > 24))
        .count();
    off as f64 / (frame.width * frame.height) as f64
}

#[test]
fn an_operator_signs_in_sets_up_a_show_drags_the_card_sells_cancels_exports_and_hides_all() {
    let browser = root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists()
            && Path::new("/usr/bin/chromium").exists(),
        "Chromium and playwright-core are missing: run `make test`"
    );
    // Public rate limits and the per-network share lifted: the test's orders come from
    // 127.0.0.1.
    let server = Server::start_with(
        &data_dir("console"),
        &[
            "--rate-orders",
            "1000:100",
            "--rate-whep",
            "1000:100",
            "--address-share-percent",
            "0",
        ],
    );
    let photo = data_dir("console-photo").join("jar.png");
    std::fs::write(&photo, fieldcast::demo::jar_photo().expect("a photo")).unwrap();
    let docs = root().join("docs");
    let config = json!({
        "base": server.url(""),
        "token": common::TOKEN,
        "photo": photo,
        "docs": docs,
    });

    let config = config.to_string();
    let mut script = BrowserScript::start("console.mjs", &[&config]);
    // The session the operator created; the host starts OBS (here: ffmpeg, H.264 + AAC).
    let created = script.step("created");
    let id = created["session"].as_str().unwrap().to_string();
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        server.session(&id)["stream_key"],
        key,
        "the revealed key is the session's"
    );
    let _publisher = Publisher::ffmpeg_from(&server.publish_url(key), BACKGROUND, 300);
    script.next();

    // The card, dragged: saved as fractions that put it in the top-right quarter, and the
    // decoded video shows it there (and no longer at its default place, bottom left).
    script.step("dragged");
    let (status, scene) = server.api("GET", &format!("/api/v1/sessions/{id}/overlays"), None);
    assert_eq!(status, 200);
    let layers: Vec<Layer> = serde_json::from_value(scene["layers"].clone()).unwrap();
    let card = layers
        .iter()
        .find(|l| l.kind == LayerKind::ProductCard)
        .expect("the card layer");
    let place = layout::place(card, 1280, 720);
    assert!(
        place.x >= 640 && place.y >= 0 && place.y as u32 + place.height <= 360,
        "the dragged card is at {place:?}, not in the top-right quarter ({:?} {:?})",
        card.anchor,
        card.offset
    );
    assert!(
        place.x as u32 + place.width >= 1280 - 64 && place.y <= 64,
        "the card was dropped in the corner, yet it is at {place:?}"
    );
    let shown = last_frame(&server, &id);
    assert_eq!((shown.width, shown.height), (1280, 720));
    let default_place = layout::place(&template(LayerKind::ProductCard, "x".into()), 1280, 720);
    let (there, before) = (
        near_white(&shown, place, 8),
        near_white(&shown, default_place, 8),
    );
    eprintln!(
        "card panel: {there:.2} near-white where it was dragged, {before:.2} at its default place"
    );
    assert!(
        there > 0.3,
        "the card is not on the video where it was dragged ({there:.2} near-white)"
    );
    assert!(
        before < 0.05,
        "the card is still at its default place ({before:.2} near-white)"
    );
    let with_layers = off_background(&shown);
    script.next();

    // Hide all: the next frames are the publisher's picture alone.
    script.step("hidden");
    let hidden = last_frame(&server, &id);
    let residue = off_background(&hidden);
    eprintln!(
        "pixels off the background: {:.2} % with the layers, {:.3} % after hide-all",
        with_layers * 100.0,
        residue * 100.0
    );
    assert!(
        with_layers > 0.02,
        "the layers barely showed before hide-all ({with_layers:.4})"
    );
    assert!(
        residue < 0.001,
        "layers are still on the video after hide-all ({residue:.4} of the pixels)"
    );
    script.next();

    let seen = script.step("");
    script.finish();
    assert_eq!(
        seen["ingest"], "Connected, H.264 1280×720 30 fps",
        "the ingest panel: {seen}"
    );
    // Restream from the live view: a wrong URL refused, a dead destination retried with why.
    assert!(
        seen["restreamRefused"].as_str().unwrap().contains("`url`"),
        "{seen}"
    );
    assert!(
        seen["restreamRetrying"]
            .as_str()
            .unwrap()
            .contains("Connection"),
        "the retrying destination gives no reason: {seen}"
    );
    // Five units, orders of 2 and 1, the 2 cancelled: 4 remain.
    assert_eq!(seen["remainingAfterCancel"], 4, "{seen}");
    // 55 more orders: the table holds the newest 50, Older shows the rest.
    assert_eq!(
        seen["pages"]["first"], "Orders 1–50, newest first",
        "{seen}"
    );
    assert_eq!(
        seen["pages"]["second"], "Orders 51–57, newest first",
        "{seen}"
    );
    assert_eq!(seen["pages"]["secondRows"], 7, "{seen}");
    let (status, orders) = server.api("GET", &format!("/api/v1/sessions/{id}/orders"), None);
    assert_eq!(status, 200);
    let statuses: Vec<(String, String)> = orders
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().into(),
                o["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let [first, second] = [&seen["orders"][0], &seen["orders"][1]].map(|v| v.as_str().unwrap());
    assert!(
        statuses.contains(&(first.into(), "cancelled".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(second.into(), "confirmed".into())),
        "{statuses:?}"
    );
    let csv = seen["csv"].as_str().unwrap();
    for buyer in [
        "Aygul Tursun",
        "Mehmet Ali",
        "+86 138 0000 0101",
        "+86 138 0000 0102",
    ] {
        assert!(csv.contains(buyer), "the CSV lacks {buyer}:\n{csv}");
    }
    for (screen, violations) in seen["axe"].as_object().unwrap() {
        assert!(
            violations.as_array().unwrap().is_empty(),
            "axe-core on the console's {screen} screen: {violations}"
        );
    }
    // The ingest endpoint itself, with the publisher still on: what the panel showed.
    let (status, ingest) = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
    assert_eq!(status, 200);
    assert_eq!(ingest["connected"], true, "{ingest}");
    assert_eq!(ingest["address"], "127.0.x.x", "{ingest}");
    assert_eq!(ingest["video"]["profile"], "High", "{ingest}");
    assert_eq!(ingest["video"]["keyframe_interval_s"], 2.0, "{ingest}");
    assert!(
        ingest["video"]["b_frames"].as_u64() > Some(0),
        "ffmpeg sends B-frames: {ingest}"
    );
    assert_eq!(ingest["audio"]["codec"], "AAC", "{ingest}");
    assert!(ingest["bitrate_kbps"].as_u64() > Some(0), "{ingest}");
}
