//! The test kit of the parsers that take bytes from the network: seeded mutation testing
//! (bit flips, interesting bytes, insertions, deletions, duplications, truncations, splices,
//! large length fields) and the bytes an RTMP publisher sends. Used by this crate's
//! `tests/mutation.rs` and, through `tests/common`, by the server's tests (one copy).
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

pub const CASES: usize = 10_000;

/// xorshift64*: small, seeded, the same cases on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 10] = [0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xC0, 0xFE, 0xFF, 0x3F];

/// One mutation of a seed (sometimes of two seeds spliced).
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
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
pub fn fuzz(name: &str, seeds: &[Vec<u8>], mut parse: impl FnMut(&[u8])) -> usize {
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

/// The bytes an RTMP publisher sends up to its `publish` (handshake C0+C1+C2, `connect`,
/// `createStream`, `publish`), chunked as our own encoder does. It needs no answer read
/// first: the server does not check S1 echoes.
pub fn rtmp_publish_bytes(app: &str, key: &str) -> Vec<u8> {
    use fieldcast_core::rtmp::amf0::{self, Amf0Value};
    use fieldcast_core::rtmp::chunk::ChunkEncoder;
    let s = |t: &str| Amf0Value::String(t.into());
    let amf = |values: &[Amf0Value]| {
        let mut out = Vec::new();
        for v in values {
            amf0::encode(v, &mut out);
        }
        out
    };
    let mut b = vec![3];
    b.extend((0..2 * 1536).map(|i| (i * 7) as u8));
    let enc = ChunkEncoder::default();
    let connect = amf(&[
        s("connect"),
        Amf0Value::Number(1.0),
        amf0::object([("app", s(app)), ("tcUrl", s("rtmp://127.0.0.1/live"))]),
    ]);
    enc.write(&mut b, 3, 20, 0, 0, &connect);
    let create = amf(&[s("createStream"), Amf0Value::Number(2.0), Amf0Value::Null]);
    enc.write(&mut b, 3, 20, 0, 0, &create);
    let publish = amf(&[
        s("publish"),
        Amf0Value::Number(3.0),
        Amf0Value::Null,
        s(key),
        s("live"),
    ]);
    enc.write(&mut b, 4, 20, 1, 0, &publish);
    b
}
