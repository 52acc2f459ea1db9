//! Viewers on weak and filtered networks, each in a network namespace behind a veth link that
//! the test shapes (tc tbf, nftables loss) or filters (nftables), against the real binary
//! bound to all interfaces with `public_ip` the link's address (as in a container):
//!
//! - a WebRTC viewer on a 1 Mb/s link with 1 % loss moves to the light rendition, a clean
//!   viewer beside it keeps 720p, and the shaped one moves back up once the link is clean;
//! - hls.js in Chromium behind such a link settles on the multivariant playlist's light
//!   rendition, in whole segments, and then plays it without stalls; ffprobe reads both
//!   renditions;
//! - Chromium on a network that drops UDP plays WebRTC over ICE-TCP, not HLS.
//!
//! The shaping is tbf at 1 Mb/s with a 50 ms queue. This kernel has no `sch_netem`, so the
//! links get no added delay; the loss is an nftables rule whose counter the tests read, so a
//! loss that never happened fails them.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, Publisher, Server, data_dir, node_in, probe_binary, wait_for};
use fieldcast_probe::whep::{PlayOptions, play};
use serde_json::{Value, json};

/// A server on all interfaces, announcing the link's host address, with a live session fed
/// by ffmpeg (the moving test picture at 720p). Returns the server, the session id, the
/// publisher, and the base URL a viewer in the namespace uses.
fn live_show(ns: &Netns, name: &str, seconds: u32) -> (Server, String, Publisher, String) {
    live_show_with(ns, name, seconds, &["--webrtc-tcp", "0.0.0.0:0"])
}

fn live_show_with(
    ns: &Netns,
    name: &str,
    seconds: u32,
    extra: &[&str],
) -> (Server, String, Publisher, String) {
    let public_ip = ns.host_ip.to_string();
    let mut args = vec!["--webrtc-udp", "0.0.0.0:0", "--public-ip", &public_ip];
    args.extend_from_slice(extra);
    let server = Server::start_on(&data_dir(name), "0.0.0.0:0", &args);
    let session = server.create_session("Rose jam on a weak link");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap();
    // A 360p camera: the studio still composites and sends 720p and 360p, and these tests
    // (two viewers decoding, a server encoding twice) leave a 2-core machine room to spare,
    // where a 720p publisher's encode would take a third of it.
    let publisher = Publisher::ffmpeg(&server.publish_url(key), "640x360", seconds);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(15));
    let base = format!("http://{}:{}", ns.host_ip, server.http.port());
    (server, id, publisher, base)
}

#[derive(Debug, serde::Deserialize)]
struct Frame {
    at_ms: u64,
    width: u32,
    height: u32,
}

#[test]
fn a_viewer_on_a_one_megabit_link_moves_to_the_light_rendition_and_back_while_a_clean_one_keeps_720p()
 {
    let ns = Netns::create(2);
    let (server, id, _publisher, base) = live_show(&ns, "reach-adapt", 120);
    let whep = format!("{base}/whep/{id}");

    // The clean viewer, on the host: the same address, no shaping.
    let clean = {
        let whep = whep.clone();
        std::thread::spawn(move || {
            play(
                &whep,
                &PlayOptions {
                    duration: Duration::from_secs(40),
                    ..Default::default()
                },
            )
            .expect("the clean viewer plays")
        })
    };
    ns.shape_downlink(1000, 1);
    let frames_file = server.data.join("shaped-frames.jsonl");
    let started = Instant::now();
    let shaped = ns
        .command(probe_binary().to_str().unwrap())
        .args(["watch", &whep, "--seconds", "40", "--frames"])
        .arg(&frames_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fieldcast-probe in the namespace");

    // While shaped: the operator's figures count one viewer on each rendition.
    wait_for(
        "one viewer on each rendition",
        Duration::from_secs(14),
        || {
            server.metric("fieldcast_viewers_by_rendition{rendition=\"light\"}") == 1.0
                && server.metric("fieldcast_viewers_by_rendition{rendition=\"main\"}") == 1.0
        },
    );
    let session = server.session(&id);
    assert_eq!(
        session["viewers_by_rendition"],
        json!({"main": 1, "light": 1}),
        "{session}"
    );
    // The link is clean again 15 s in.
    std::thread::sleep(Duration::from_secs(15).saturating_sub(started.elapsed()));
    let drops = ns.shaped_drops();
    ns.unshape();
    let lifted_ms = started.elapsed().as_millis() as u64;

    let out = shaped.wait_with_output().expect("the shaped viewer ends");
    assert!(
        out.status.success(),
        "fieldcast-probe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(drops > 0, "the 1 % loss rule dropped nothing");
    let frames: Vec<Frame> = std::fs::read_to_string(&frames_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let light = |f: &Frame| (f.width, f.height) == (640, 360);
    let main = |f: &Frame| (f.width, f.height) == (1280, 720);
    let moves: Vec<(u64, (u32, u32))> = frames
        .iter()
        .zip(frames.iter().skip(1))
        .filter(|(a, b)| (a.width, a.height) != (b.width, b.height))
        .map(|(_, b)| (b.at_ms, (b.width, b.height)))
        .collect();
    eprintln!(
        "shaped viewer: {} frames, moves {moves:?}, lifted at {lifted_ms} ms, {drops} packets lost to the rule",
        frames.len()
    );
    // It settles on the light rendition within 10 s, and stays there while shaped.
    let settled = frames
        .iter()
        .find(|f| light(f))
        .map(|f| f.at_ms)
        .expect("the shaped viewer never got the light rendition");
    assert!(settled <= 10_000, "settled on light only at {settled} ms");
    let shaped_span: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.at_ms >= settled && f.at_ms < lifted_ms)
        .collect();
    assert!(
        shaped_span.iter().all(|f| light(f)),
        "left the light rendition while the link was shaped: {moves:?}"
    );
    let freezes: Vec<u64> = shaped_span
        .windows(2)
        .map(|w| w[1].at_ms - w[0].at_ms)
        .filter(|gap| *gap > 500)
        .collect();
    assert!(
        freezes.len() < 2,
        "freezes over 500 ms after settling: {freezes:?}"
    );
    assert!(
        shaped_span.len() as u64 * 1000 / (lifted_ms - settled).max(1) >= 20,
        "fewer than 20 frames a second on the light rendition: {} frames in {} ms",
        shaped_span.len(),
        lifted_ms - settled
    );
    // Back to 720p within 20 s of the link being clean.
    let back = frames
        .iter()
        .find(|f| f.at_ms > lifted_ms && main(f))
        .map(|f| f.at_ms)
        .expect("the viewer never moved back up to 720p");
    assert!(
        back - lifted_ms <= 20_000,
        "back to 720p only {} ms after the link was clean",
        back - lifted_ms
    );

    // The clean viewer kept 720p throughout.
    let report = clean.join().unwrap();
    let small = report.decoded.iter().filter(|f| f.width != 1280).count();
    assert!(
        report.decoded.len() >= 600,
        "clean viewer: {} frames",
        report.decoded.len()
    );
    assert_eq!(small, 0, "the clean viewer got {small} frames below 720p");
}

#[test]
fn hls_js_behind_a_one_megabit_link_settles_on_the_light_rendition_in_whole_segments_then_plays_without_stalls_and_ffprobe_reads_both()
 {
    let ns = Netns::create(3);
    let (server, id, _publisher, base) = live_show(&ns, "reach-hls", 120);

    // The multivariant playlist names both renditions with what players pick by.
    let master = server_text(&format!("{base}/hls/{id}/master.m3u8"));
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert_eq!(master.matches("CODECS=\"avc1.42").count(), 2, "{master}");
    assert_eq!(master.matches("BANDWIDTH=").count(), 4, "{master}");
    assert_eq!(
        server.session(&id)["hls_url"],
        format!("{base}/hls/{id}/master.m3u8")
    );

    // Both renditions' segments begin at the same frames: the same media sequence numbers
    // with the same durations, and each reports the other's live edge.
    std::thread::sleep(Duration::from_secs(3));
    let main = server_text(&format!("{base}/hls/{id}/ll.m3u8"));
    let light = server_text(&format!("{base}/hls/{id}/light/ll.m3u8"));
    let segments = |text: &str| -> Vec<(String, String)> {
        let lines: Vec<&str> = text.lines().collect();
        lines
            .windows(2)
            .filter(|w| w[0].starts_with("#EXTINF:"))
            .map(|w| (w[0].to_string(), w[1].to_string()))
            .collect()
    };
    let (main_segments, light_segments) = (segments(&main), segments(&light));
    let common: Vec<_> = main_segments
        .iter()
        .filter(|s| light_segments.contains(s))
        .collect();
    assert!(
        common.len() >= 2,
        "the renditions' segments do not line up:\n{main_segments:?}\n---\n{light_segments:?}"
    );
    assert!(
        main.contains("#EXT-X-RENDITION-REPORT:URI=\"light/ll.m3u8\""),
        "{main}"
    );
    assert!(
        light.contains("#EXT-X-RENDITION-REPORT:URI=\"../ll.m3u8\""),
        "{light}"
    );

    // ffprobe reads both renditions from the multivariant playlist.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
        ])
        .arg(format!("{base}/hls/{id}/master.m3u8"))
        .output()
        .expect("ffprobe");
    let streams: Value = serde_json::from_slice(&probe.stdout).expect("ffprobe JSON");
    let video: Vec<(String, u64, u64)> = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_name"] == "h264")
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap().to_string(),
                s["width"].as_u64().unwrap(),
                s["height"].as_u64().unwrap(),
            )
        })
        .collect();
    let audio = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_name"] == "aac")
        .count();
    assert!(
        video.contains(&("h264".into(), 1280, 720)) && video.contains(&("h264".into(), 640, 360)),
        "ffprobe saw {streams}"
    );
    assert!(audio >= 2, "ffprobe saw {streams}");

    // hls.js in Chromium behind 1 Mb/s with 1 % loss.
    ns.shape_downlink(1000, 1);
    let config = json!({"base": base, "session": id, "seconds": 30, "hls": true});
    let seen = node_in(&ns, "reach.mjs", &[&config.to_string()]);
    let drops = ns.shaped_drops();
    ns.unshape();
    // What the page and hls.js did, whole, for reading after a run.
    std::fs::write(server.data.join("hls-seen.json"), seen.to_string()).unwrap();
    let samples = seen["samples"].as_array().unwrap();
    let light_from = samples
        .iter()
        .find(|s| s["rendition"] == "light")
        .and_then(|s| s["at"].as_u64())
        .unwrap_or_else(|| panic!("hls.js never played the light rendition: {seen}"));
    // The renditions the page fetched media of, as runs: [rendition, from ms, to ms, count].
    let mut runs: Vec<(String, u64, u64, usize)> = Vec::new();
    for m in seen["media"].as_array().unwrap() {
        let (at, r) = (m[0].as_u64().unwrap(), m[1].as_str().unwrap().to_string());
        match runs.last_mut() {
            Some(run) if run.0 == r => {
                run.2 = at;
                run.3 += 1;
            }
            _ => runs.push((r, at, at, 1)),
        }
    }
    eprintln!(
        "hls.js: first frame {} ms, light from {light_from} ms, stalls {}, {drops} packets lost, media fetched {runs:?}",
        seen["firstFrameMs"], seen["stalls"]
    );
    assert!(drops > 0, "the 1 % loss rule dropped nothing");
    // Settled: on the light rendition, with no main media fetched since, for 5 s: hls.js's
    // start-up, a move up that hls.js may try once and give up, and Chromium's own start on
    // the 2 cores the server and the publisher share (while it starts, the output loses
    // frames, and the first seconds play at 12-20 frames a second, once with a half-second
    // hole, in CI).
    let last_main = runs
        .iter()
        .filter(|r| r.0 == "main")
        .map(|r| r.2)
        .max()
        .unwrap_or(0);
    // A move up that hls.js tries and gives up costs a stall: it ends before settling.
    let stall_of_last_move = seen["stalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["from"].as_u64().unwrap(), s["ms"].as_u64().unwrap()))
        .filter(|(from, _)| last_main > 0 && *from <= last_main + 1000)
        .map(|(from, ms)| from + ms)
        .max()
        .unwrap_or(0);
    let settled = light_from.max(last_main).max(stall_of_last_move) + 5000;
    let end = samples.last().unwrap()["at"].as_u64().unwrap();
    assert!(
        end >= settled + 10_000,
        "hls.js settled on the light rendition only at {settled} ms: {runs:?}"
    );
    let after: Vec<&Value> = samples
        .iter()
        .filter(|s| s["at"].as_u64().unwrap() >= settled)
        .collect();
    assert!(
        after.iter().all(|s| s["rendition"] == "light"),
        "hls.js left the light rendition on a 1 Mb/s link: {seen}"
    );
    // Settled on the light rendition, hls.js takes whole segments, and plays without a stall
    // (no half second without a new frame).
    let stalls_after: Vec<&Value> = seen["stalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["from"].as_u64().unwrap() + s["ms"].as_u64().unwrap() > settled)
        .collect();
    assert!(
        stalls_after.is_empty(),
        "hls.js stalled after settling at {settled} ms: {stalls_after:?} (whole run: {})",
        server.data.join("hls-seen.json").display()
    );
    assert!(
        seen["debug"]
            .as_str()
            .unwrap()
            .contains("hls.js (whole segments)"),
        "{}",
        seen["debug"]
    );
    let played = after.last().unwrap()["frames"].as_u64().unwrap()
        - after.first().unwrap()["frames"].as_u64().unwrap();
    let span = end - after.first().unwrap()["at"].as_u64().unwrap();
    assert!(
        played * 1000 / span.max(1) >= 20,
        "hls.js played {played} frames in {span} ms on the light rendition"
    );
    // Its low-latency playlist holds players 1.5 s back (six parts), the main one 0.75 s.
    assert!(light.contains("PART-HOLD-BACK=1.500"), "{light}");
    assert!(main.contains("PART-HOLD-BACK=0.750"), "{main}");
}

#[test]
fn chromium_on_a_network_that_drops_udp_plays_webrtc_over_tcp_within_two_seconds() {
    let ns = Netns::create(4);
    let (server, id, _publisher, base) = live_show(&ns, "reach-tcp", 90);
    ns.block_udp();
    let screenshot = common::docs_dir().join("watch-debug-tcp.png");
    let config = json!({
        "base": base, "session": id, "seconds": 3,
        "screenshot": screenshot.to_str().unwrap(),
    });
    let seen = node_in(&ns, "reach.mjs", &[&config.to_string()]);
    eprintln!("with UDP dropped the page saw: {seen}");
    assert_eq!(seen["transport"], "TCP", "{seen}");
    let first = seen["firstFrameMs"].as_u64().unwrap();
    assert!(first < 2000, "first frame after {first} ms");
    assert!(seen["stalls"].as_array().unwrap().is_empty(), "{seen}");
    assert_eq!(seen["rendition"], "main", "{seen}");
    // The server saw a WebRTC viewer, and no HLS one.
    assert_eq!(server.metric("fieldcast_hls_parts_served_total"), 0.0);
}

#[test]
fn chromium_on_a_network_that_lets_only_tcp_to_a_turn_server_through_plays_webrtc_relayed_by_coturn()
 {
    let ns = Netns::create(5);
    let secret = "turn-shared-secret-for-the-test";
    // coturn on the host side of the link, TCP only towards viewers, relaying to the server's
    // UDP socket; its credentials checked against the shared secret (use-auth-secret).
    let turn_port = free_tcp_port(ns.host_ip);
    let turn_url = format!("turn:{}:{turn_port}?transport=tcp", ns.host_ip);
    let mut coturn = Command::new("turnserver")
        .args([
            "-n",
            "-v",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--fingerprint",
            "--simple-log",
        ])
        .args([
            "--use-auth-secret",
            &format!("--static-auth-secret={secret}"),
        ])
        .args(["--realm=fieldcast.test", "--log-file=stdout"])
        .arg(format!("--listening-ip={}", ns.host_ip))
        .arg(format!("--relay-ip={}", ns.host_ip))
        .arg(format!("--listening-port={turn_port}"))
        .args(["--min-port=49160", "--max-port=49200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coturn (apt-get install coturn)");
    let (_server, id, _publisher, base) = live_show_with(
        &ns,
        "reach-turn",
        90,
        &[
            "--webrtc-tcp",
            "off",
            "--turn-urls",
            &turn_url,
            "--turn-secret",
            secret,
        ],
    );
    // No UDP at all in the namespace, and no ICE-TCP (the server listens on none): the relay
    // is the only way.
    ns.block_udp();
    let ice = server_text(&format!("{base}/api/v1/ice-servers"));
    let ice: Value = serde_json::from_str(&ice).unwrap();
    assert_eq!(ice["ice_servers"][0]["urls"], json!([turn_url]), "{ice}");
    let config = json!({"base": base, "session": id, "seconds": 3});
    let seen = node_in(&ns, "reach.mjs", &[&config.to_string()]);
    // SIGTERM: coturn flushes its log and ends.
    unsafe { libc::kill(coturn.id() as i32, libc::SIGTERM) };
    let log = {
        use std::io::Read;
        let mut text = String::new();
        let _ = coturn.stdout.take().unwrap().read_to_string(&mut text);
        text
    };
    let _ = coturn.wait();
    eprintln!("through coturn the page saw: {}", seen["debug"]);
    assert_eq!(seen["transport"], "TURN (tcp)", "{seen}\ncoturn:\n{log}");
    let first = seen["firstFrameMs"].as_u64().unwrap();
    assert!(first < 4000, "first frame after {first} ms");
    assert!(seen["stalls"].as_array().unwrap().is_empty(), "{seen}");
    // coturn took the time-limited credentials and allocated a relay for them.
    assert!(
        log.lines()
            .any(|l| l.contains(":fieldcast>") && l.contains("ALLOCATE processed, success")),
        "coturn made no allocation for the page's credentials:\n{log}"
    );
}

fn free_tcp_port(ip: std::net::IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server_text(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap()
}
