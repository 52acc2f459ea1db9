//! Seeded mutation testing of the parsers here, which take bytes from the network: the RTMP
//! chunk reader and session, AMF0, and the FLV/AVC/AAC tags. Each gets 10,000 cases made by
//! mutating valid inputs; each case must end in a value or an error, never a panic.
//!
//! `make test` runs this file in the dev profile too (`cargo test -p fieldcast-core`), where
//! arithmetic overflow panics: an overflow on input is found here, not wrapped in silence. That
//! build is this crate and its two dependencies, seconds. A failure names the parser, the seed
//! and the case: `FIELDCAST_MUTATION_SEED=S` reruns it. For open-ended fuzzing with coverage,
//! see `fuzz/` (cargo fuzz) and docs/testing.

mod support;

use bytes::Bytes;
use fieldcast_core::flv;
use fieldcast_core::rtmp::amf0::{self, Amf0Value};
use fieldcast_core::rtmp::chunk::{ChunkDecoder, ChunkEncoder};
use fieldcast_core::rtmp::session::{ServerSession, SessionEvent};
use support::fuzz;

fn amf(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        amf0::encode(v, &mut out);
    }
    out
}

fn amf_seeds() -> Vec<Vec<u8>> {
    let s = |t: &str| Amf0Value::String(t.into());
    vec![
        amf(&[
            s("connect"),
            Amf0Value::Number(1.0),
            amf0::object([("app", s("live")), ("tcUrl", s("rtmp://h/live"))]),
        ]),
        amf(&[
            s("publish"),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            s("key"),
            s("live"),
        ]),
        amf(&[
            s("@setDataFrame"),
            s("onMetaData"),
            amf0::object([
                ("width", Amf0Value::Number(1280.0)),
                ("height", Amf0Value::Number(720.0)),
                ("stereo", Amf0Value::Boolean(true)),
            ]),
        ]),
        // An ECMA array and a strict array, as encoders send them.
        vec![
            0x08, 0, 0, 0, 1, 0, 1, b'a', 0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09,
        ],
        vec![0x0A, 0, 0, 0, 2, 0x05, 0x06, 0x0C, 0, 0, 0, 1, b'x'],
    ]
}

fn flv_seeds() -> Vec<Vec<u8>> {
    vec![
        // AVC sequence header with one SPS and one PPS.
        vec![
            0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1F, 1, 0, 2,
            0x68, 0xEE,
        ],
        // Frames with two NAL units, classic and Enhanced RTMP avc1.
        vec![
            0x27, 1, 0, 0, 0x21, 0, 0, 0, 2, 0x41, 0x9A, 0, 0, 0, 1, 0x06,
        ],
        vec![
            0x91, b'a', b'v', b'c', b'1', 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88,
        ],
        vec![0x93, b'a', b'v', b'c', b'1', 0, 0, 0, 1, 0x41],
        // AAC: sequence header and a frame.
        vec![0xAF, 0, 0x11, 0x90],
        vec![0xAF, 1, 0x21, 0x10, 0x04],
    ]
}

fn rtmp_seeds() -> Vec<Vec<u8>> {
    let mut publish = support::rtmp_publish_bytes("live", "key");
    let enc = ChunkEncoder::default();
    for (i, tag) in flv_seeds().iter().enumerate() {
        let type_id = if tag[0] == 0xAF { 8 } else { 9 };
        enc.write(&mut publish, 6, type_id, 1, 33 * i as u32, tag);
    }
    let mut extended = Vec::new();
    enc.write(&mut extended, 6, 9, 1, 0x0100_0000, &[0x27; 300]);
    vec![publish, extended]
}

/// The chunk reader alone: every seed without its handshake, in small pieces.
#[test]
fn the_chunk_reader_survives_10000_mutations() {
    let seeds: Vec<Vec<u8>> = rtmp_seeds()
        .into_iter()
        .map(|s| s.get(1 + 2 * 1536..).unwrap_or(&s).to_vec())
        .collect();
    fuzz("chunk reader", &seeds, |input| {
        let mut decoder = ChunkDecoder::default();
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for piece in input.chunks(97) {
            pending.extend_from_slice(piece);
            match decoder.decode(&pending, &mut out) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(_) => return,
            }
        }
    });
}

/// The whole RTMP session (handshake, commands, media), accepting the publish.
#[test]
fn the_rtmp_session_survives_10000_mutations() {
    fuzz("rtmp session", &rtmp_seeds(), |input| {
        let mut session = ServerSession::new();
        for piece in input.chunks(512) {
            let result = session.handle_input(piece);
            while let Some(event) = session.poll_event() {
                if matches!(event, SessionEvent::PublishRequested { .. }) {
                    session.accept_publish();
                }
            }
            let _ = session.take_output();
            if result.is_err() {
                return;
            }
        }
    });
}

#[test]
fn amf0_survives_10000_mutations() {
    fuzz("amf0", &amf_seeds(), |input| {
        let _ = amf0::decode_all(input);
    });
}

#[test]
fn the_flv_avc_and_aac_parsers_survive_10000_mutations() {
    fuzz("flv/avc/aac", &flv_seeds(), |input| {
        let _ = flv::parse_video(Bytes::copy_from_slice(input));
        let _ = flv::parse_audio(Bytes::copy_from_slice(input));
    });
}
