//! HEVC and AV1 over Enhanced RTMP, as OBS 30 sends them: the probe's E-RTMP publisher (its
//! own FLV tags around x265enc or av1enc output) into the real binary, decoded by
//! `avdec_h265` or `av1dec`, composited, and decoded again by the WHEP client.

mod common;

use std::time::Duration;

use common::{Server, data_dir, is_slate, wait_for};
use fieldcast_probe::rtmp_publish::{EnhancedCodec, EnhancedPublish, publish};
use fieldcast_probe::whep::{PlayOptions, play};

/// The publisher's colour, 0x20A040, decoded back within what two lossy encodes and the
/// overlays leave.
fn publisher_green(rgb: [u8; 3]) -> bool {
    let [r, g, b] = rgb.map(i32::from);
    (r - 0x20).abs() < 40 && (g - 0xA0).abs() < 40 && (b - 0x40).abs() < 40
}

fn publishes_and_plays(codec: EnhancedCodec, name: &str, profile: &str) {
    let server = Server::start(&data_dir(&format!("ertmp-{name}")));
    let session = server.create_session(&format!("{name} from OBS"));
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    let rtmp = server.rtmp;
    let publisher = std::thread::spawn(move || {
        publish(
            rtmp,
            &key,
            &EnhancedPublish::new(codec, Duration::from_secs(25)),
        )
    });
    server.wait_state(&id, "publisher-connected", Duration::from_secs(15));

    // The operator sees what comes in.
    wait_for(
        "the ingest health to name the codec",
        Duration::from_secs(10),
        || {
            let (_, ingest) = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
            ingest["video"]["codec"] == name && ingest["video"]["width"] == 640
        },
    );
    let (_, ingest) = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
    assert_eq!(ingest["video"]["profile"], profile, "{ingest}");
    assert_eq!(ingest["video"]["height"], 360, "{ingest}");

    let report = play(
        &server.url(&format!("/whep/{id}")),
        &PlayOptions {
            duration: Duration::from_secs(20),
            stop_after_frames: Some(90),
            keep_last_frame: true,
            ..Default::default()
        },
    )
    .expect("WHEP playback");
    let green = report
        .decoded
        .iter()
        .filter(|f| publisher_green(f.mean_rgb))
        .count();
    assert!(
        green >= 45,
        "only {green} of {} decoded frames show the {name} publisher's picture: {:?}",
        report.decoded.len(),
        report
            .decoded
            .iter()
            .map(|f| f.mean_rgb)
            .collect::<Vec<_>>()
    );
    let last = report.last_frame.expect("a decoded frame");
    let centre = last.pixel(last.width / 2, last.height / 2);
    assert!(
        publisher_green(centre) && !is_slate(centre),
        "the centre of the last frame is {centre:?}"
    );
    let sent = publisher
        .join()
        .unwrap()
        .expect("the publish ran to its end");
    assert!(sent.keyframes >= 10, "{sent:?}");
}

#[test]
fn hevc_over_enhanced_rtmp_shows_on_a_whep_viewer() {
    publishes_and_plays(EnhancedCodec::Hevc, "HEVC", "Main");
}

#[test]
fn av1_over_enhanced_rtmp_shows_on_a_whep_viewer() {
    publishes_and_plays(EnhancedCodec::Av1, "AV1", "Main");
}
