//! The watch page in headless Chromium (Debian's /usr/bin/chromium through playwright-core):
//! it must decode the session's video while ffmpeg publishes.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Publisher, Server, data_dir};

#[test]
fn watch_page_decodes_video_in_headless_chromium_while_ffmpeg_publishes() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `make test` (it runs `npm ci` in tests/browser)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: run `make test` (apt-get install chromium)"
    );

    let server = Server::start(&data_dir("watch-page"));
    let session = server.create_session("Watch page");
    let id = session["id"].as_str().unwrap();
    let _publisher = Publisher::ffmpeg(
        &server.publish_url(session["stream_key"].as_str().unwrap()),
        "1280x720",
        30,
    );
    server.wait_state(id, "publisher-connected", Duration::from_secs(10));

    let screenshot = server.data.join("watch.png");
    let output = Command::new("node")
        .arg(browser_dir.join("watch.mjs"))
        .arg(server.url(&format!("/watch/{id}")))
        .arg("8")
        .arg(&screenshot)
        .output()
        .expect("run node (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "watch.mjs failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let frames = result["totalVideoFrames"].as_u64().unwrap_or(0);
    assert!(
        frames >= 90,
        "Chromium decoded only {frames} frames: {result}"
    );
    assert_eq!(result["videoWidth"], 1280, "{result}");
    assert_eq!(result["videoHeight"], 720, "{result}");
    assert_eq!(result["status"], "Live", "{result}");
}
