//! SRT ingest end to end: Debian's ffmpeg (libsrt) publishes MPEG-TS to the real binary with
//! the stream key in the `streamid`, and the project's WHEP client decodes the composited
//! output. A wrong key is rejected in the SRT handshake; 5 % packet loss on the publisher's
//! link (a random nftables drop, in a network namespace) still gives a picture.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, PUBLISHER_COLOUR, Publisher, Server, data_dir, is_publisher_colour, is_slate};
use fieldcast_probe::whep::{PlayOptions, PlaybackReport, play};

/// ffmpeg sending the publisher colour (and a tone) as MPEG-TS over SRT to `url`.
fn srt_publisher(command: Command, url: &str, video_codec: &[&str], seconds: u32) -> Publisher {
    let mut command = command;
    let child = command
        .args(["-loglevel", "error", "-nostdin", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("color=c={PUBLISHER_COLOUR}:size=1280x720:rate=30:duration={seconds}"),
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
        ])
        .args(video_codec)
        .args([
            "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg (apt-get install ffmpeg)");
    Publisher(child)
}

const H264: &[&str] = &["-c:v", "libx264", "-preset", "veryfast"];
const HEVC: &[&str] = &[
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "log-level=error",
];

fn watch(server: &Server, id: &str, frames: usize) -> PlaybackReport {
    play(
        &server.url(&format!("/whep/{id}")),
        &PlayOptions {
            duration: Duration::from_secs(25),
            stop_after_frames: Some(frames),
            ..Default::default()
        },
    )
    .expect("WHEP playback")
}

fn publisher_frames(report: &PlaybackReport) -> usize {
    report
        .decoded
        .iter()
        .filter(|f| is_publisher_colour(f.mean_rgb) && !is_slate(f.mean_rgb))
        .count()
}

#[test]
fn ffmpeg_over_srt_shows_on_a_whep_viewer_and_a_wrong_key_is_rejected() {
    let server = Server::start(&data_dir("srt"));
    let session = server.create_session("Rose jam over SRT");
    let id = session["id"].as_str().unwrap();
    let key = session["stream_key"].as_str().unwrap();
    // The session's srt_url is complete: used as given.
    let srt_url = session["srt_url"].as_str().unwrap();
    assert_eq!(
        srt_url,
        format!("srt://{}?streamid={key}", server.srt),
        "{session}"
    );

    // A wrong key is rejected in the handshake: ffmpeg gives up at once.
    let started = Instant::now();
    let wrong = srt_publisher(
        Command::new("ffmpeg"),
        &format!("srt://{}?streamid=not-a-key", server.srt),
        H264,
        10,
    );
    let (ok, stderr) = wrong
        .wait_exit(Duration::from_secs(10))
        .expect("ffmpeg with a wrong key should give up");
    assert!(!ok, "a wrong key was accepted");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the rejection took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("streamid=not-a-key"), "{stderr}");
    assert_eq!(server.state(id), "idle");

    let _publisher = srt_publisher(Command::new("ffmpeg"), srt_url, H264, 40);
    server.wait_state(id, "publisher-connected", Duration::from_secs(10));
    let report = watch(&server, id, 120);
    let live = publisher_frames(&report);
    assert!(
        live >= 60,
        "only {live} of {} frames showed the SRT publisher",
        report.decoded.len()
    );
    assert!(report.audio_packets >= 25, "{report:?}");
    let (_, ingest) = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
    assert_eq!(ingest["transport"], "srt", "{ingest}");
    assert_eq!(ingest["video"]["codec"], "H.264", "{ingest}");
    assert_eq!(ingest["video"]["width"], 1280, "{ingest}");
    assert_eq!(ingest["audio"]["codec"], "AAC", "{ingest}");

    // A second publisher on the live key is rejected; the first keeps the show.
    let second = srt_publisher(Command::new("ffmpeg"), srt_url, H264, 10);
    let (ok, _) = second
        .wait_exit(Duration::from_secs(10))
        .expect("a second publisher on a live key should be rejected");
    assert!(!ok);
    assert_eq!(server.state(id), "publisher-connected");
}

#[test]
fn hevc_over_srt_through_five_percent_loss_still_gives_a_picture() {
    // The publisher is in a namespace whose every outgoing packet has a 5 % chance of loss.
    let ns = Netns::create(1);
    ns.lose_outgoing_udp(5);
    let srt = format!("{}:0", ns.host_ip);
    let server = Server::start_with(&data_dir("srt-loss"), &["--srt", &srt]);
    let session = server.create_session("Greenhouse over a lossy link");
    let id = session["id"].as_str().unwrap();
    let key = session["stream_key"].as_str().unwrap();
    // The SRT Access Control form of the streamid, as Larix writes it.
    let url = format!("srt://{}?streamid=#!::r={key},m=publish", server.srt);
    let _publisher = srt_publisher(ns.command("ffmpeg"), &url, HEVC, 40);
    server.wait_state(id, "publisher-connected", Duration::from_secs(15));
    let report = watch(&server, id, 300);
    let live = publisher_frames(&report);
    assert!(
        live >= 150,
        "only {live} of {} frames showed the publisher through 5 % loss",
        report.decoded.len()
    );
    let (_, ingest) = server.api("GET", &format!("/api/v1/sessions/{id}/ingest"), None);
    assert_eq!(ingest["video"]["codec"], "HEVC", "{ingest}");
    // The loss was real (a steady colour makes few packets: a few dozen of them are 5 %).
    let lost = ns.lost_packets();
    assert!(lost >= 10, "only {lost} packets were dropped");
}
