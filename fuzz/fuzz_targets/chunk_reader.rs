//! The RTMP chunk reader alone, fed in small pieces as reads arrive.
#![no_main]

use fieldcast::ingest::rtmp::chunk::ChunkDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = ChunkDecoder::default();
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for piece in data.chunks(97) {
        pending.extend_from_slice(piece);
        match decoder.decode(&pending, &mut out) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(_) => return,
        }
    }
});
