//! The live path end to end: real publishers (ffmpeg, GStreamer rtmp2sink) into the real
//! binary, out over WebRTC to the project's WHEP client, decoded and checked.

mod common;

use std::time::Duration;

use common::{Publisher, Server, data_dir, is_slate};
use fieldcast_engine::histogram::{parse_buckets, quantile};
use fieldcast_probe::whep::{PlayOptions, PlaybackReport, play};

/// Plays until `frames` pictures were decoded, or 30 s passed (a loaded CI machine runs
/// slower than real time; the test asserts counts, not speed).
fn watch(server: &Server, session_id: &str, frames: usize) -> PlaybackReport {
    let options = PlayOptions {
        duration: Duration::from_secs(30),
        stop_after_frames: Some(frames),
        ..Default::default()
    };
    play(&server.url(&format!("/whep/{session_id}")), &options).expect("WHEP playback")
}

fn assert_plays_720p_without_b_frames(report: &PlaybackReport) {
    let at_720p = report.decoded_at_size(1280, 720);
    assert!(
        at_720p >= 90,
        "decoded only {at_720p} frames at 1280x720: {report:?}"
    );
    assert!(
        report.audio_packets >= 25,
        "only {} Opus packets",
        report.audio_packets
    );
    assert!(report.keyframes >= 1, "no keyframe received");
    assert_eq!(report.b_slices, 0, "the output carries B-frames");
}

#[test]
fn ffmpeg_publisher_with_b_frames_plays_as_720p_h264_and_opus() {
    let server = Server::start(&data_dir("ffmpeg"));
    let session = server.create_session("Rose jam");
    let id = session["id"].as_str().unwrap();
    // 1080p in, with B-frames and AAC: the output must be 720p baseline + Opus.
    let _publisher = Publisher::ffmpeg(
        &server.publish_url(session["stream_key"].as_str().unwrap()),
        "1920x1080",
        40,
    );
    server.wait_state(id, "publisher-connected", Duration::from_secs(10));
    let report = watch(&server, id, 150);
    assert_plays_720p_without_b_frames(&report);
    // The publisher's picture, not the slate.
    let live = report
        .decoded
        .iter()
        .filter(|f| !is_slate(f.mean_rgb))
        .count();
    assert!(live >= 60, "only {live} frames showed the publisher");
    // Every publisher frame sent to the viewer was timed from its RTMP message to its first
    // RTP packet (`/metrics`); the slate's frames are not.
    let metrics = server.metrics();
    let buckets = parse_buckets(&metrics, "fieldcast_server_latency_seconds");
    let timed = buckets.last().map(|b| b.1).unwrap_or(0);
    assert!(
        timed >= 60 && timed as usize <= report.video_frames as usize + 5,
        "{timed} frames timed for {} received",
        report.video_frames
    );
    let p50 = quantile(&buckets, 0.5).unwrap();
    assert!(
        p50 > 0.0 && p50 < 0.5,
        "server-added latency p50 {p50} s: not a frame's decode + encode"
    );
}

#[test]
fn gstreamer_rtmp2sink_publisher_plays_as_720p_h264_and_opus() {
    let server = Server::start(&data_dir("rtmp2sink"));
    let session = server.create_session("Fresh naan");
    let id = session["id"].as_str().unwrap();
    let _publisher = Publisher::gstreamer(
        &server.publish_url(session["stream_key"].as_str().unwrap()),
        40,
    );
    server.wait_state(id, "publisher-connected", Duration::from_secs(10));
    let report = watch(&server, id, 120);
    assert_plays_720p_without_b_frames(&report);
}

#[test]
fn unknown_and_rotated_stream_keys_are_refused() {
    let server = Server::start(&data_dir("keys"));
    let session = server.create_session("Keys");
    let id = session["id"].as_str().unwrap().to_string();
    let old_key = session["stream_key"].as_str().unwrap().to_string();

    let refused = Publisher::ffmpeg(&server.publish_url("not-a-key"), "640x360", 10)
        .wait_exit(Duration::from_secs(8))
        .expect("ffmpeg with an unknown key kept running");
    assert!(!refused.0, "ffmpeg with an unknown key succeeded");
    assert_eq!(server.state(&id), "idle");

    let (status, rotated) = server.api("POST", &format!("/api/v1/sessions/{id}/rotate-key"), None);
    assert_eq!(status, 200);
    let new_key = rotated["stream_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert!(new_key.len() >= 32, "stream keys carry at least 128 bits");

    let refused = Publisher::ffmpeg(&server.publish_url(&old_key), "640x360", 10)
        .wait_exit(Duration::from_secs(8))
        .expect("ffmpeg with the rotated-out key kept running");
    assert!(!refused.0, "the old key was accepted after rotation");
    assert_eq!(server.state(&id), "idle");

    let _publisher = Publisher::ffmpeg(&server.publish_url(&new_key), "640x360", 10);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));
}

#[test]
fn second_publisher_on_a_live_key_is_refused() {
    let server = Server::start(&data_dir("second"));
    let session = server.create_session("Busy");
    let id = session["id"].as_str().unwrap();
    let url = server.publish_url(session["stream_key"].as_str().unwrap());
    let _first = Publisher::ffmpeg(&url, "640x360", 20);
    server.wait_state(id, "publisher-connected", Duration::from_secs(10));
    let second = Publisher::ffmpeg(&url, "640x360", 10)
        .wait_exit(Duration::from_secs(8))
        .expect("second publisher kept running");
    assert!(!second.0, "a second publisher was accepted");
    assert_eq!(server.state(id), "publisher-connected");
}

#[test]
fn sessions_and_keys_survive_a_restart_and_live_sessions_resume() {
    let data = data_dir("restart");
    let server = Server::start(&data);
    let session = server.create_session("Survives");
    let id = session["id"].as_str().unwrap().to_string();
    server.go_live(&id);
    server.kill();

    let server = Server::start(&data);
    let again = server.session(&id);
    assert_eq!(again["stream_key"], session["stream_key"]);
    assert_eq!(again["title"], "Survives");
    assert_eq!(
        again["state"], "live",
        "a session on air before the restart is on air after it"
    );
    // The resumed studio plays its slate.
    let report = watch(&server, &id, 40);
    assert!(
        report
            .decoded
            .iter()
            .filter(|f| is_slate(f.mean_rgb))
            .count()
            >= 30,
        "{report:?}"
    );
}

#[test]
fn publisher_killed_and_back_within_10s_reappears_for_viewers_who_stayed() {
    let server = Server::start(&data_dir("comeback"));
    let session = server.create_session("Comeback");
    let id = session["id"].as_str().unwrap().to_string();
    let url = server.publish_url(session["stream_key"].as_str().unwrap());
    let publisher = Publisher::ffmpeg(&url, "1280x720", 30);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));

    let whep = server.url(&format!("/whep/{id}"));
    let viewer = std::thread::spawn(move || {
        play(
            &whep,
            &PlayOptions {
                duration: Duration::from_secs(16),
                ..Default::default()
            },
        )
    });
    std::thread::sleep(Duration::from_secs(4));
    publisher.kill(); // like kill -9: no FCUnpublish, the socket just closes
    server.wait_state(&id, "live", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    // Back within 10 s, at another resolution.
    let _publisher = Publisher::ffmpeg(&url, "960x540", 20);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));

    let report = viewer.join().unwrap().expect("the viewer stayed connected");
    // P = the publisher's picture, s = the slate: expect P…, then s…, then P… again.
    let trace: String = report
        .decoded
        .iter()
        .map(|f| if is_slate(f.mean_rgb) { 's' } else { 'P' })
        .collect();
    let first = trace.find('P').expect("the publisher was never shown");
    let slate = first
        + trace[first..]
            .find('s')
            .unwrap_or_else(|| panic!("no slate after the publisher left: {trace}"));
    let back = slate
        + trace[slate..]
            .find('P')
            .unwrap_or_else(|| panic!("the publisher never came back: {trace}"));
    assert!(
        slate - first >= 30,
        "too little of the first publish: {trace}"
    );
    assert!(
        trace.len() - back >= 30,
        "too little after the comeback: {trace}"
    );
    assert!(
        report
            .decoded
            .iter()
            .all(|f| f.width == 1280 && f.height == 720)
    );
    // The picture never stopped: no gap between decoded frames over half a second.
    let worst = report
        .decoded
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap();
    assert!(
        worst < Duration::from_millis(500),
        "the picture froze for {worst:?}"
    );
}
