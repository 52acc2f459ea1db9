//! Overlays on the real output: the pinned product's card appears (and matches a reference
//! rendering of the card), "hide all" removes it, counter changes reach the video within a
//! frame or two, and text in three scripts renders like the checked-in references.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Server, data_dir};
use fieldcast_core::commerce::records::ProductRow;
use fieldcast_core::overlay::layout;
use fieldcast_core::overlay::scene::{LayerKind, template};
use fieldcast_engine::overlay::feed::Pinned;
use fieldcast_engine::overlay::render::{self, View};
use fieldcast_engine::overlay::text::{TextAlign, TextStyle, engine};
use fieldcast_probe::whep::{PlayOptions, PlaybackReport, RgbFrame, play};
use serde_json::json;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// Renders `text` and compares it with `tests/reference/NAME.png` (written instead when
/// FIELDCAST_BLESS=1). Antialiasing may differ by a level or two; shapes may not.
fn check_text(name: &str, text: &str) {
    let mut pixmap = tiny_skia::Pixmap::new(640, 96).unwrap();
    pixmap.fill(tiny_skia::Color::from_rgba8(255, 255, 255, 255));
    let style = TextStyle {
        size_px: 48.0,
        bold: true,
        rgba: [20, 60, 40, 255],
        align: TextAlign::Center,
    };
    engine().draw(&mut pixmap, text, 0.0, 10.0, 640.0, &style);
    let path = reference_dir().join(format!("{name}.png"));
    if std::env::var("FIELDCAST_BLESS").is_ok() {
        std::fs::create_dir_all(reference_dir()).unwrap();
        pixmap.save_png(&path).unwrap();
    }
    let reference =
        tiny_skia::Pixmap::load_png(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (a, b) = (pixmap.data(), reference.data());
    assert_eq!(a.len(), b.len());
    let inked = a.iter().step_by(4).filter(|&&v| v < 200).count();
    assert!(
        inked > 500,
        "{name}: almost nothing was drawn ({inked} dark pixels)"
    );
    let differing = a
        .chunks(4)
        .zip(b.chunks(4))
        .filter(|(p, q)| p.iter().zip(q.iter()).any(|(x, y)| x.abs_diff(*y) > 24))
        .count();
    let total = a.len() / 4;
    assert!(
        differing * 1000 < total,
        "{name}: {differing} of {total} pixels differ from {}",
        path.display()
    );
}

#[test]
fn text_in_latin_chinese_and_uyghur_renders_like_the_reference_images() {
    check_text("text-latin", "Rose jam, 350 g");
    check_text("text-chinese", "玫瑰花酱");
    // Uyghur in Arabic script: right to left, letters joined.
    check_text("text-uyghur", "قىزىلگۈل مۇراببا");
}

fn watch(server: &Server, id: &str, frames: usize, options: PlayOptions) -> PlaybackReport {
    let options = PlayOptions {
        duration: Duration::from_secs(30),
        stop_after_frames: Some(frames),
        ..options
    };
    play(&server.url(&format!("/whep/{id}")), &options).expect("WHEP playback")
}

fn last_frame(server: &Server, id: &str) -> RgbFrame {
    let report = watch(
        server,
        id,
        45,
        PlayOptions {
            keep_last_frame: true,
            ..Default::default()
        },
    );
    report.last_frame.expect("a decoded frame")
}

/// Mean absolute difference per channel over a rectangle, skipping a margin (corners are
/// rounded and edges carry chroma subsampling).
fn region_diff(a: &RgbFrame, b: &RgbFrame, r: layout::Rect, margin: u32) -> f64 {
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in (r.y as u32 + margin)..(r.y as u32 + r.height - margin) {
        for x in (r.x as u32 + margin)..(r.x as u32 + r.width - margin) {
            let (p, q) = (a.pixel(x, y), b.pixel(x, y));
            sum += p
                .iter()
                .zip(q.iter())
                .map(|(u, v)| u.abs_diff(*v) as u64)
                .sum::<u64>();
            n += 3;
        }
    }
    sum as f64 / n as f64
}

#[test]
fn pinned_card_shows_on_the_video_like_its_reference_rendering_and_hide_all_removes_it() {
    let server = Server::start(&data_dir("card"));
    let session = server.create_session("Card");
    let id = session["id"].as_str().unwrap().to_string();
    // On air with no publisher: the slate is a steady background.
    server.go_live(&id);
    let (status, product) = server.api(
        "POST",
        "/api/v1/products",
        Some(json!({"name": "Rose jam 玫瑰花酱", "unit_amount": 3500, "currency": "CNY", "unit": "jar", "origin": "Kashgar"})),
    );
    assert_eq!(status, 201);
    let card = template(LayerKind::ProductCard, "card".into());
    let place = layout::place(&card, 1280, 720);

    let before = last_frame(&server, &id);
    let (status, _) = server.api(
        "PUT",
        &format!("/api/v1/sessions/{id}/pinned"),
        Some(json!({"product_id": product["id"]})),
    );
    assert_eq!(status, 200);
    let pinned = last_frame(&server, &id);
    let changed = region_diff(&before, &pinned, place, 12);
    assert!(
        changed > 40.0,
        "the card region barely changed after pinning ({changed:.1})"
    );

    // The reference: the same card rendered by the overlay renderer, blended over the
    // unpinned frame.
    let row = ProductRow {
        id: product["id"].as_str().unwrap().into(),
        name: "Rose jam 玫瑰花酱".into(),
        translations: "{}".into(),
        unit_amount: 3500,
        currency: "CNY".into(),
        unit: "jar".into(),
        origin: Some("Kashgar".into()),
        harvest_date: None,
        description: None,
        created_at: 0,
        image_hash: None,
    };
    let pin = Pinned {
        product: row,
        image: None,
    };
    let toasts = Default::default();
    let view = View {
        now_ms: 0,
        viewers: 0,
        likes: 0,
        pinned: Some(&pin),
        offers: &[],
        toasts: &toasts,
        watch_url: "",
        images_dir: std::path::Path::new("/nonexistent"),
        image_revision: 0,
    };
    let pixmap = render::render(&card, &view, place.width, place.height).expect("the card renders");
    let mut expected = before.clone();
    for y in 0..place.height {
        for x in 0..place.width {
            let src = pixmap.pixel(x, y).unwrap();
            let (fx, fy) = (place.x as u32 + x, place.y as u32 + y);
            let i = ((fy * expected.width + fx) * 3) as usize;
            let a = src.alpha() as u32;
            for (c, s) in [src.red(), src.green(), src.blue()].into_iter().enumerate() {
                expected.data[i + c] =
                    (s as u32 + expected.data[i + c] as u32 * (255 - a) / 255).min(255) as u8;
            }
        }
    }
    let off_reference = region_diff(&expected, &pinned, place, 12);
    eprintln!(
        "card region: {changed:.1} per channel from the unpinned frame, {off_reference:.1} from the reference rendering"
    );
    assert!(
        off_reference < 8.0,
        "the card on the video differs from its reference rendering by {off_reference:.1} per channel"
    );

    let (status, scene) = server.api(
        "POST",
        &format!("/api/v1/sessions/{id}/overlays/hide"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(scene["hidden"], true);
    let hidden = last_frame(&server, &id);
    let residue = region_diff(&before, &hidden, place, 12);
    assert!(
        residue < 4.0,
        "the card is still on the video after hide-all ({residue:.1})"
    );
}

fn p95(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[((values.len() - 1) as f64 * 0.95).round() as usize]
}

/// Each of 50 like-counter changes is on a composited frame within two frame intervals
/// (66 ms at 30 fps, the server's own clock), and each reaches the viewer's decoded picture
/// before the next change is made: a lost change fails, since it cannot borrow the next
/// one's frame.
#[test]
fn counter_changes_are_composited_within_two_frames_and_each_reaches_the_viewer() {
    let server = Server::start(&data_dir("counter"));
    let session = server.create_session("Counter");
    let id = session["id"].as_str().unwrap().to_string();
    server.go_live(&id);
    let counter = template(LayerKind::Counter, "c".into());
    let place = layout::place(&counter, 1280, 720);

    const CHANGES: usize = 50;
    let epoch = Instant::now();
    let whep = server.url(&format!("/whep/{id}"));
    let viewer = std::thread::spawn(move || {
        let options = PlayOptions {
            duration: Duration::from_secs(3)
                + Duration::from_millis(300) * CHANGES as u32
                + Duration::from_secs(2),
            region: Some((place.x as u32, place.y as u32, place.width, place.height)),
            epoch: Some(epoch),
            ..Default::default()
        };
        play(&whep, &options)
    });
    // The viewer is connected and its video flows: then the changes start.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("fieldcast_viewers") < 1.0 {
        assert!(Instant::now() < deadline, "the viewer never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = server.metric("fieldcast_egress_datagrams_sent_total");
    while server.metric("fieldcast_egress_datagrams_sent_total") < sent + 200.0 {
        assert!(Instant::now() < deadline, "no video reached the viewer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let likes = server.url(&format!("/api/v1/sessions/{id}/likes"));
    let mut changed_at = Vec::new();
    for _ in 0..CHANGES {
        let response = ureq::post(&likes)
            .send_json(json!({"count": 1}))
            .expect("like");
        assert_eq!(response.status(), 202);
        changed_at.push(epoch.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(500));
    let report = viewer
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("viewer: {e}"));
    let metrics = server.metrics();

    // The first decoded frame after each call whose counter differs from the frame before.
    let frames = &report.decoded;
    let differs = |a: &[u8], b: &[u8]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y) as u64)
            .sum::<u64>() as f64
            / a.len() as f64
            > 0.5
    };
    // Change i must show in a frame decoded after it and before change i + 1 was made.
    let mut delays = Vec::new();
    for (i, at) in changed_at.iter().enumerate() {
        let before = changed_at.get(i + 1).copied().unwrap_or(Duration::MAX);
        let shown = frames.windows(2).find(|w| {
            w[1].at > *at
                && w[1].at < before
                && differs(
                    w[0].region.as_deref().unwrap_or(&[]),
                    w[1].region.as_deref().unwrap_or(&[]),
                )
        });
        let shown = shown.unwrap_or_else(|| {
            panic!(
                "change {i} (at {at:?}) never showed on the video before the next change; last frame at {:?}",
                frames.last().map(|f| f.at)
            )
        });
        delays.push(shown[1].at - *at);
    }
    let p95 = p95(delays.clone());
    let worst = delays.iter().max().unwrap();
    // Server side: from the change to the frame composited with it.
    let composited_within_66ms: u64 = metrics
        .lines()
        .find(|l| l.starts_with("fieldcast_overlay_update_to_frame_seconds_bucket{le=\"0.066\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    let total: u64 = metrics
        .lines()
        .find(|l| l.starts_with("fieldcast_overlay_update_to_frame_seconds_count"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    eprintln!(
        "counter change → decoded at the viewer: p95 {:.1} ms, worst {:.1} ms over {CHANGES} changes; \
         change → composited frame: {composited_within_66ms} of {total} within 66 ms",
        p95.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("fieldcast_overlay_update_to_frame_seconds_"))
    {
        eprintln!("{line}");
    }
    assert!(
        total >= CHANGES as u64,
        "the compositor saw {total} changes"
    );
    // Two frame intervals at 30 fps, on the server's clock: every change.
    assert_eq!(
        composited_within_66ms,
        total,
        "{} of {total} changes took longer than two frames to be composited",
        total - composited_within_66ms
    );
}

#[test]
fn product_images_are_checked_and_bad_ones_refused_with_a_reason() {
    let server = Server::start(&data_dir("images"));
    let (_, product) = server.api(
        "POST",
        "/api/v1/products",
        Some(json!({"name": "Naan", "unit_amount": 500, "currency": "CNY"})),
    );
    let url = server.url(&format!(
        "/api/v1/products/{}/image",
        product["id"].as_str().unwrap()
    ));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let auth = format!("Bearer {}", common::TOKEN);
    let put = |content_type: &str, body: &[u8]| {
        let mut r = agent
            .put(&url)
            .header("Authorization", &auth)
            .header("Content-Type", content_type)
            .send(body)
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (status, body) = put("image/png", b"\x89PNG\r\n\x1a\n not really");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("cannot be decoded"), "{body}");
    let (status, _) = put("image/gif", b"GIF89a");
    assert_eq!(status, 415);
    // An oversized upload is refused from its Content-Length, before the body is read.
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(server.http).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let path = url.trim_start_matches(&format!("http://{}", server.http));
        write!(stream, "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", 6 << 20).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head[9..12], b"413", "an oversized upload is refused");
    }
    // A real 1000x600 PNG is accepted and scaled once to fit 512.
    let mut pixmap = tiny_skia::Pixmap::new(1000, 600).unwrap();
    pixmap.fill(tiny_skia::Color::from_rgba8(200, 30, 90, 255));
    let (status, body) = put("image/png", &pixmap.encode_png().unwrap());
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer["width"].as_u64(), answer["height"].as_u64()),
        (Some(512), Some(307))
    );
}

#[test]
fn layers_are_created_patched_validated_and_survive_a_restart() {
    let data = data_dir("layers");
    let server = Server::start(&data);
    let session = server.create_session("Layers");
    let id = session["id"].as_str().unwrap().to_string();
    let (status, scene) = server.api("GET", &format!("/api/v1/sessions/{id}/overlays"), None);
    assert_eq!(status, 200);
    assert_eq!(
        scene["layers"].as_array().unwrap().len(),
        4,
        "the default scene: card, counter, countdown, toasts"
    );
    let (status, layer) = server.api(
        "POST",
        &format!("/api/v1/sessions/{id}/overlays"),
        Some(json!({"kind": "text", "content": {"text": "Fresh naan every morning"}, "anchor": "bottom"})),
    );
    assert_eq!(status, 201, "{layer}");
    let layer_id = layer["id"].as_str().unwrap();
    let (status, patched) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}/overlays/{layer_id}"),
        Some(json!({"visible": false, "style": {"theme": "#b03a2e"}})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (
            patched["visible"].as_bool(),
            patched["style"]["theme"].as_str()
        ),
        (Some(false), Some("#b03a2e"))
    );
    assert_eq!(
        patched["style"]["font_scale"], 1.0,
        "a partial style patch keeps the other fields"
    );
    let (status, problem) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}/overlays/{layer_id}"),
        Some(json!({"size": [3.0, 0.1]})),
    );
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("size[0]"),
        "{problem}"
    );
    let (status, problem) = server.api(
        "POST",
        &format!("/api/v1/sessions/{id}/overlays"),
        Some(json!({"kind": "hologram"})),
    );
    assert_eq!(status, 422, "{problem}");
    server.kill();

    let server = Server::start(&data);
    let (_, scene) = server.api("GET", &format!("/api/v1/sessions/{id}/overlays"), None);
    let stored = scene["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == layer_id)
        .cloned()
        .expect("the layer survived");
    assert_eq!(stored["style"]["theme"], "#b03a2e");
    assert_eq!(stored["visible"], false);
}
