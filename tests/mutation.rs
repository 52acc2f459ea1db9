//! Seeded mutation testing of every parser that takes bytes from the network: the RTMP chunk
//! reader and session, AMF0, the FLV/AVC/AAC tags, the WHEP SDP offer and the order JSON.
//! Each gets at least 10,000 cases made by mutating valid inputs (bit flips, interesting
//! bytes, insertions, deletions, duplications, truncations, splices). Each case must end in
//! a value or an error, never a panic.
//!
//! `make test` runs this file in the dev profile (`cargo test --test mutation`), where
//! arithmetic overflow panics: an overflow on input is found here, not wrapped in silence.
//! A failure names the parser, the seed and the case: `FIELDCAST_MUTATION_SEED=S` reruns it.
//! For open-ended fuzzing with coverage, see `fuzz/` (cargo fuzz) in the README.

mod common;

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use bytes::Bytes;
use fieldcast::ingest::flv;
use fieldcast::ingest::rtmp::amf0::{self, Amf0Value};
use fieldcast::ingest::rtmp::chunk::{ChunkDecoder, ChunkEncoder};
use fieldcast::ingest::rtmp::session::{ServerSession, SessionEvent};

const CASES: usize = 10_000;

/// xorshift64*: small, seeded, the same cases on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 10] = [0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xC0, 0xFE, 0xFF, 0x3F];

/// One mutation of a seed (sometimes of two seeds spliced).
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                data.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let copy = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            5 if len > 0 => data.truncate(rng.below(len)),
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ if len >= 4 => {
                // A 16- or 32-bit length field somewhere set to something large.
                let i = rng.below(len - 3);
                let v = [0xFFFF_FFFFu32, 0x7FFF_FFFF, 0x00FF_FFFF, 0x0001_0000, 0][rng.below(5)];
                data[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
    data
}

/// Runs `CASES` mutated inputs through `parse`; returns how many, or the first panic.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut parse: impl FnMut(&[u8])) -> usize {
    let seed = std::env::var("FIELDCAST_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_F1E1_DCA5_0001_u64);
    let mut rng = Rng(seed ^ (name.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let started = Instant::now();
    for case in 0..CASES {
        let input = mutate(&mut rng, seeds);
        if catch_unwind(AssertUnwindSafe(|| parse(&input))).is_err() {
            panic!(
                "{name}: case {case} (FIELDCAST_MUTATION_SEED={seed}) panicked on {} bytes: {:02x?}",
                input.len(),
                &input[..input.len().min(256)]
            );
        }
    }
    println!("{name}: {CASES} cases in {:?}", started.elapsed());
    CASES
}

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
    let mut publish = common::rtmp_publish_bytes("live", "key");
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

#[test]
fn the_whep_offer_handling_survives_10000_mutations() {
    use str0m::media::{Direction, MediaKind};
    let offer = |audio: bool| {
        let mut rtc = fieldcast::egress::client::viewer_config().build(Instant::now());
        rtc.add_local_candidate(
            str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap(),
        );
        let mut changes = rtc.sdp_api();
        changes.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        if audio {
            changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        changes.apply().unwrap().0.to_sdp_string().into_bytes()
    };
    let seeds = vec![offer(true), offer(false)];
    let announce: SocketAddr = "127.0.0.1:8189".parse().unwrap();
    // The seeds themselves negotiate: the mutations start from offers that work.
    for seed in &seeds {
        fieldcast::egress::whep::negotiate(std::str::from_utf8(seed).unwrap(), announce)
            .expect("a valid offer negotiates");
    }
    fuzz("sdp offer", &seeds, |input| {
        // The handler takes UTF-8 only (a 400 before this).
        if let Ok(text) = std::str::from_utf8(input) {
            let _ = fieldcast::egress::whep::negotiate(text, announce);
        }
    });
}

#[test]
fn the_order_json_survives_10000_mutations() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"offer_id":"offer_1","quantity":2,"buyer":{"name":"Aygul Tursun","phone":"+86 138 0000 0000","address":"3 Rose Lane","city":"Kashgar"}}"#,
        r#"{"offer_id":"o","quantity":1,"buyer":{"name":"李","phone":"0086-13800000000","address":"路 1"}}"#,
        r#"{"offer_id":"o","quantity":1000,"buyer":{"name":"ئايگۈل","phone":"(0998) 123-4567","address":"x","city":"قەشقەر"}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // The first seed parses.
    fieldcast::control::parse_order(&seeds[0]).expect("a valid order parses");
    fuzz("order json", &seeds, |input| {
        let _ = fieldcast::control::parse_order(input);
    });
}
