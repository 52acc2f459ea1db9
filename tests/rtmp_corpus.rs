//! The RTMP replay corpus: `tests/corpus/rtmp/*.bin`, one byte stream per bug class RTMP
//! servers have shipped, each as a client sends it (handshake included). Every file is fed
//! through the server's protocol core ([`ServerSession`]) in 64 KiB reads, as the connection
//! reads; a publish is accepted, so media parsing runs too (until then the bytes go one at a
//! time, as a client waits for the answer before it sends media). Each must end in an error or at
//! the end of its bytes (the peer closed), never in a panic, and within the bounds below.
//!
//! The files are made by [`corpus`] below. After changing it, write them again with
//! `FIELDCAST_WRITE_CORPUS=1 cargo test --release --test rtmp_corpus`. Files added by hand
//! (captures of real clients) are replayed too, with the same bounds.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fieldcast_core::rtmp::amf0::{self, Amf0Value};
use fieldcast_core::rtmp::chunk::{ChunkEncoder, MAX_BUFFERED, MAX_CHUNK_SIZE, MAX_MESSAGE_LEN};
use fieldcast_core::rtmp::session::{ServerSession, SessionEvent};

/// CPU a file may cost: a fixed part and a part per MiB of input. A quadratic reassembly
/// (the old one took 13 s for the 8 MiB file) is far past it; the linear one takes
/// milliseconds.
const CPU_FIXED: Duration = Duration::from_millis(250);
const CPU_PER_MIB: Duration = Duration::from_millis(100);

/// Most bytes the parser may hold at any point of a replay: 16 MiB of unfinished messages
/// (`MAX_BUFFERED`) plus one chunk of input not yet whole (at most the largest chunk size a
/// peer may set, 16 MiB). Measured after every read.
const HELD_BOUND: usize = MAX_BUFFERED + MAX_CHUNK_SIZE as usize + READ;

const READ: usize = 64 * 1024;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/rtmp")
}

/// Either an error or the end of the bytes.
const ANY_END: Option<&str> = Some("*");

// ----- building blocks of a client's bytes -----

fn handshake() -> Vec<u8> {
    let mut b = vec![3];
    b.extend((0..2 * 1536).map(|i| (i * 7) as u8));
    b
}

fn amf(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        amf0::encode(v, &mut out);
    }
    out
}

fn s(text: &str) -> Amf0Value {
    Amf0Value::String(text.into())
}

fn n(x: f64) -> Amf0Value {
    Amf0Value::Number(x)
}

/// One message, as our encoder chunks it (128-byte chunks, fmt 0 then fmt 3).
fn message(out: &mut Vec<u8>, csid: u8, type_id: u8, stream_id: u32, ts: u32, payload: &[u8]) {
    ChunkEncoder::default().write(out, csid, type_id, stream_id, ts, payload);
}

fn connect(app: &str) -> Vec<u8> {
    let mut b = handshake();
    let payload = amf(&[
        s("connect"),
        n(1.0),
        amf0::object([("app", s(app)), ("tcUrl", s("rtmp://127.0.0.1/live"))]),
    ]);
    message(&mut b, 3, 20, 0, 0, &payload);
    b
}

fn publish_with(app: &str, key: &str) -> Vec<u8> {
    common::rtmp_publish_bytes(app, key)
}

/// Handshake, connect, createStream and publish: the replay accepts the publish.
fn publishing() -> Vec<u8> {
    publish_with("live", "corpus-key")
}

fn avc_record(sps_len_field: u16, sps: &[u8], pps_count: Option<u8>, pps: &[u8]) -> Vec<u8> {
    let mut r = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE1];
    r.extend_from_slice(&sps_len_field.to_be_bytes());
    r.extend_from_slice(sps);
    if let Some(count) = pps_count {
        r.push(count);
        r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        r.extend_from_slice(pps);
    }
    r
}

const SPS: [u8; 4] = [0x67, 0x64, 0x00, 0x1F];
const PPS: [u8; 2] = [0x68, 0xEE];

fn video_frame(keyframe: bool, nals: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    for nal in nals {
        v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        v.extend_from_slice(nal);
    }
    v
}

fn with_media(media: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = publishing();
    for (type_id, ts, payload) in media {
        message(
            &mut b,
            if *type_id == 8 { 5 } else { 6 },
            *type_id,
            1,
            *ts,
            payload,
        );
    }
    b
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut b = handshake();
    message(&mut b, 2, 1, 0, 0, &size.to_be_bytes());
    b
}

/// A fmt 0 header on csid 6 (video, stream 1) declaring `length`.
fn fmt0(length: u32, ts: u32) -> Vec<u8> {
    let l = length.to_be_bytes();
    let t = ts.min(0xFF_FFFF).to_be_bytes();
    vec![6, t[1], t[2], t[3], l[1], l[2], l[3], 9, 1, 0, 0, 0]
}

/// Every case: its file name (the bug class) and what the replay must end with: `Some(words)`
/// for an error whose message contains them, `None` for the end of the bytes without one, and
/// [`ANY_END`] where either is right (the bytes are garbage once the framing is lost).
pub fn corpus() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let mut c: Vec<(&'static str, Vec<u8>, Option<&'static str>)> = Vec::new();

    // Handshake.
    c.push(("handshake-empty", Vec::new(), None));
    let mut b = vec![6];
    b.extend(std::iter::repeat_n(0, 1536));
    c.push(("handshake-wrong-version", b, Some("version 6")));
    c.push(("handshake-truncated", handshake()[..700].to_vec(), None));

    // Chunk sizes and message lengths.
    c.push((
        "chunk-size-huge",
        set_chunk_size(0x7FFF_FFFF),
        Some("chunk size"),
    ));
    c.push(("chunk-size-zero", set_chunk_size(0), Some("chunk size")));
    let mut b = handshake();
    b.extend(fmt0(0xFF_FFFF, 0));
    c.push(("message-length-16-mib", b, Some("exceeds the limit")));
    let mut b = handshake();
    b.extend(fmt0(MAX_MESSAGE_LEN + 1, 0));
    c.push((
        "message-length-one-past-limit",
        b,
        Some("exceeds the limit"),
    ));

    // First chunks that are not type 0.
    for (name, first) in [
        ("first-chunk-fmt1", vec![0x46, 0, 0, 0, 0, 0, 4, 9]),
        ("first-chunk-fmt2", vec![0x86, 0, 0, 0]),
        ("first-chunk-fmt3", vec![0xC6, 1, 2, 3, 4]),
        (
            "first-chunk-fmt3-three-byte-csid",
            vec![0xC1, 0xFF, 0xFF, 1, 2],
        ),
    ] {
        let mut b = handshake();
        b.extend(first);
        c.push((name, b, Some("never started")));
    }
    let mut b = handshake();
    for csid in 0..=80u8 {
        b.extend([0x00, csid, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0x05]);
    }
    c.push(("too-many-chunk-streams", b, Some("chunk streams")));

    // Extended timestamps.
    let mut b = publishing();
    b.extend(avc_message(0x0100_0000));
    let frame = video_frame(true, &[&[0x65; 300]]);
    message(&mut b, 6, 9, 1, 0x0100_0021, &frame);
    c.push(("extended-timestamp-on-type3-chunks", b, None));
    let mut b = publishing();
    // An extended timestamp announced, then fmt 3 continuations without it: the decoder
    // reads four payload bytes as the timestamp and loses the chunk boundaries.
    let payload = video_frame(false, &[&[0x41; 400]]);
    b.extend(fmt0(payload.len() as u32, 0xFF_FFFF));
    b.extend(0x0100_0000u32.to_be_bytes());
    for (i, piece) in payload.chunks(128).enumerate() {
        if i > 0 {
            b.push(0xC6);
        }
        b.extend_from_slice(piece);
    }
    c.push(("extended-timestamp-missing-on-type3", b, ANY_END));

    // AMF0.
    let mut with_command = |name: &'static str, payload: Vec<u8>, expect: &'static str| {
        let mut b = handshake();
        message(&mut b, 3, 20, 0, 0, &payload);
        c.push((name, b, Some(expect)));
    };
    with_command(
        "amf-string-past-end",
        [&[0x02, 0x01, 0x00][..], b"connect"].concat(),
        "AMF0",
    );
    with_command(
        "amf-long-string-past-end",
        [&[0x0C, 0x7F, 0xFF, 0xFF, 0xFF][..], b"connect"].concat(),
        "AMF0",
    );
    let mut object_open = amf(&[s("connect"), n(1.0)]);
    object_open.extend([
        0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i',
    ]);
    with_command("amf-object-past-end", object_open, "AMF0");
    let mut deep = amf(&[s("connect"), n(1.0)]);
    for _ in 0..200 {
        deep.extend([0x03, 0x00, 0x01, b'x']);
    }
    with_command("amf-deep-nesting", deep, "AMF0");
    let mut huge_array = amf(&[s("connect"), n(1.0)]);
    huge_array.extend([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]);
    with_command("amf-strict-array-count-huge", huge_array, "AMF0");
    let mut huge_ecma = amf(&[s("connect"), n(1.0)]);
    huge_ecma.extend([0x08, 0xFF, 0xFF, 0xFF, 0xFF]);
    with_command("amf-ecma-array-past-end", huge_ecma, "AMF0");
    with_command(
        "amf-unknown-marker",
        vec![0x02, 0x00, 0x01, b'x', 0x42],
        "AMF0",
    );
    let mut b = publishing();
    message(
        &mut b,
        5,
        18,
        1,
        0,
        &[&amf(&[s("@setDataFrame")])[..], &[0x02, 0xFF]].concat(),
    );
    c.push(("amf-data-message-cut", b, Some("AMF0")));

    // Names.
    c.push((
        "stream-name-too-long",
        publish_with("live", &"k".repeat(10_000)),
        Some("longer than 256"),
    ));
    c.push((
        "app-name-too-long",
        publish_with(&"a".repeat(70_000), "corpus-key"),
        Some("longer than 256"),
    ));

    // Lengths that change mid-message.
    for (name, first_header, second_header) in [
        (
            "fmt0-shorter-length-mid-message",
            fmt0(1000, 0),
            fmt0(100, 0),
        ),
        (
            "fmt0-longer-length-mid-message",
            fmt0(1000, 0),
            fmt0(5000, 0),
        ),
        (
            "fmt1-shorter-length-mid-message",
            fmt0(1000, 0),
            vec![0x46, 0, 0, 0, 0, 0, 100, 9],
        ),
    ] {
        let mut b = publishing();
        b.extend(first_header);
        b.extend([0x41; 128]);
        b.extend(second_header);
        b.extend([0x41; 128]);
        c.push((name, b, Some("mid-message")));
    }

    // AVC sequence headers and NAL units.
    c.push((
        "avc-sps-length-past-end",
        with_media(&[(9, 0, avc_record(200, &SPS, Some(1), &PPS))]),
        Some("AVC sequence header"),
    ));
    c.push((
        "avc-header-pps-count-lies",
        with_media(&[(9, 0, avc_record(4, &SPS, Some(9), &PPS))]),
        Some("AVC sequence header"),
    ));
    let mut no_sps = avc_record(4, &SPS, Some(1), &PPS);
    no_sps[10] = 0xE0;
    c.push((
        "avc-header-without-sps",
        with_media(&[(9, 0, no_sps)]),
        Some("AVC sequence header"),
    ));
    let mut two_byte_lengths = avc_record(4, &SPS, Some(1), &PPS);
    two_byte_lengths[9] = 0xFD;
    c.push((
        "avc-header-two-byte-nal-lengths",
        with_media(&[(9, 0, two_byte_lengths)]),
        Some("AVC sequence header"),
    ));
    let mut past_end = video_frame(true, &[&[0x65; 64]]);
    past_end[8] = 0xFF;
    c.push((
        "nal-length-past-end",
        with_media(&[
            (9, 0, avc_record(4, &SPS, Some(1), &PPS)),
            (9, 33, past_end),
        ]),
        Some("NAL unit"),
    ));
    let mut cut = video_frame(true, &[&[0x65; 64]]);
    cut.extend([0, 0]);
    c.push((
        "nal-length-prefix-cut",
        with_media(&[(9, 0, avc_record(4, &SPS, Some(1), &PPS)), (9, 33, cut)]),
        Some("NAL length"),
    ));
    // HEVC is taken (Enhanced RTMP `hvc1`), but this sequence start is no HEVC record.
    c.push((
        "video-codec-hevc-enhanced",
        with_media(&[(9, 0, vec![0x90, b'h', b'v', b'c', b'1', 1, 2, 3])]),
        Some("HEVC sequence header is malformed"),
    ));
    c.push((
        "video-codec-vp9-enhanced",
        with_media(&[(9, 0, vec![0x90, b'v', b'p', b'0', b'9', 1, 2, 3])]),
        Some("not supported"),
    ));
    c.push((
        "audio-codec-mp3",
        with_media(&[(8, 0, vec![0x2F, 0xFF, 0xFB])]),
        Some("not supported"),
    ));

    // Timestamps that wrap at 32 bits: fine, and the stream goes on.
    let wrap: Vec<(u8, u32, Vec<u8>)> = [0xFFFF_FF00u32, 0xFFFF_FFF0, 0x10, 0x30]
        .iter()
        .map(|&ts| (9, ts, video_frame(false, &[&[0x41; 20]])))
        .collect();
    c.push(("timestamp-32-bit-wrap", with_media(&wrap), None));

    // Memory and CPU.
    let mut big = publishing();
    let nal = vec![0u8; MAX_MESSAGE_LEN as usize - 9];
    message(&mut big, 6, 9, 1, 0, &video_frame(true, &[&nal]));
    c.push(("eight-mib-message-in-128-byte-chunks", big, None));
    let mut b = set_chunk_size(1 << 20);
    for csid in 3u8..8 {
        let l = MAX_MESSAGE_LEN.to_be_bytes();
        b.extend([csid, 0, 0, 0, l[1], l[2], l[3], 9, 1, 0, 0, 0]);
        b.extend(std::iter::repeat_n(0, 1 << 20));
        for _ in 0..3 {
            b.push(0xC0 | csid);
            b.extend(std::iter::repeat_n(0, 1 << 20));
        }
    }
    c.push((
        "unfinished-messages-on-many-streams",
        b,
        Some("unfinished messages"),
    ));

    // Protocol misuse.
    let mut b = publishing();
    message(&mut b, 2, 5, 0, 0, &1u32.to_be_bytes());
    for ts in 0..50 {
        message(
            &mut b,
            6,
            9,
            1,
            ts * 33,
            &video_frame(false, &[&[0x41; 10]]),
        );
    }
    c.push(("window-ack-size-one", b, None));
    let mut b = publishing();
    b.extend(fmt0(600, 0));
    b.extend([0x41; 128]);
    message(&mut b, 2, 2, 0, 0, &6u32.to_be_bytes());
    b.extend([0xC6]);
    b.extend([0x41; 128]);
    c.push(("abort-then-continue", b, None));
    let mut b = connect("live");
    message(
        &mut b,
        3,
        20,
        0,
        0,
        &amf(&[s("play"), n(2.0), Amf0Value::Null, s("x")]),
    );
    c.push(("play-command", b, Some("not supported by this server")));
    let mut b = publishing();
    let payload = amf(&[s("publish"), n(5.0), Amf0Value::Null, s("other"), s("live")]);
    message(&mut b, 4, 20, 1, 0, &payload);
    c.push((
        "second-publish-on-one-connection",
        b,
        Some("second publish"),
    ));
    c
}

fn avc_message(ts: u32) -> Vec<u8> {
    let mut b = Vec::new();
    message(&mut b, 6, 9, 1, ts, &avc_record(4, &SPS, Some(1), &PPS));
    b
}

// ----- replay -----

#[derive(Debug)]
struct Replay {
    error: Option<String>,
    events: usize,
    cpu: Duration,
    bytes: u64,
    /// Most bytes the parser held after any read.
    held: usize,
}

fn thread_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn replay(path: &Path) -> Replay {
    let mut file = std::fs::File::open(path).expect("open a corpus file");
    let mut session = ServerSession::new();
    let mut buf = vec![0u8; READ];
    let mut events = 0;
    let mut bytes = 0u64;
    let start = thread_cpu();
    let mut error = None;
    let mut held = 0;
    loop {
        let n = file.read(&mut buf).expect("read a corpus file");
        if n == 0 {
            break;
        }
        bytes += n as u64;
        // Until its publish is accepted a client waits for the answer (as ffmpeg and OBS
        // do), so its bytes are fed one at a time until then; then as they are read.
        let mut read = &buf[..n];
        while !read.is_empty() {
            let take = if session.is_publishing() {
                read.len()
            } else {
                1
            };
            let result = session.handle_input(&read[..take]);
            read = &read[take..];
            while let Some(event) = session.poll_event() {
                events += 1;
                if matches!(event, SessionEvent::PublishRequested { .. }) {
                    session.accept_publish();
                }
            }
            let _ = session.take_output();
            held = held.max(session.held_bytes());
            if let Err(e) = result {
                error = Some(e.to_string());
                break;
            }
        }
        if error.is_some() {
            break;
        }
    }
    Replay {
        error,
        events,
        cpu: thread_cpu() - start,
        bytes,
        held,
    }
}

#[test]
fn corpus_files_are_the_generated_ones() {
    let dir = corpus_dir();
    let write = std::env::var_os("FIELDCAST_WRITE_CORPUS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let cases = corpus();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, bytes, _) in &cases {
        let path = dir.join(format!("{name}.bin"));
        if write {
            std::fs::write(&path, bytes).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write the corpus with FIELDCAST_WRITE_CORPUS=1 cargo test --release --test rtmp_corpus",
                path.display()
            )
        });
        assert!(
            &on_disk == bytes,
            "{} differs from what corpus() makes; write it again with FIELDCAST_WRITE_CORPUS=1",
            path.display()
        );
    }
}

#[test]
fn every_corpus_file_ends_in_an_error_or_a_close_never_a_panic_within_bounds() {
    let expected: std::collections::HashMap<String, Option<&str>> = corpus()
        .into_iter()
        .map(|(name, _, expect)| (format!("{name}.bin"), expect))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus/rtmp exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} corpus files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = std::panic::catch_unwind(|| replay(path));
        let replay = match outcome {
            Ok(r) => r,
            Err(_) => {
                failures.push(format!("{name}: PANICKED"));
                continue;
            }
        };
        let bound = CPU_FIXED + CPU_PER_MIB.mul_f64(replay.bytes as f64 / (1 << 20) as f64);
        println!(
            "{name}: {} bytes, {} events, {:.1} ms CPU (bound {:.0} ms), {} KiB held at most: {}",
            replay.bytes,
            replay.events,
            replay.cpu.as_secs_f64() * 1e3,
            bound.as_secs_f64() * 1e3,
            replay.held / 1024,
            replay.error.as_deref().unwrap_or("closed by the peer"),
        );
        if replay.cpu > bound {
            failures.push(format!("{name}: {:?} of CPU, over {bound:?}", replay.cpu));
        }
        if replay.held > HELD_BOUND {
            failures.push(format!(
                "{name}: held {} bytes, over {HELD_BOUND}",
                replay.held
            ));
        }
        match (expected.get(&name), &replay.error) {
            (Some(expect), _) if *expect == ANY_END => {}
            (Some(Some(words)), Some(error)) if !error.contains(words) => {
                failures.push(format!("{name}: error {error:?} does not say {words:?}"))
            }
            (Some(Some(words)), None) => {
                failures.push(format!("{name}: ended without the error {words:?}"))
            }
            (Some(None), Some(error)) => {
                failures.push(format!("{name}: a valid stream failed: {error}"))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
