//! FLV video (AVC, Enhanced RTMP) and audio (AAC) tags.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fieldcast::ingest::flv::parse_video(Bytes::copy_from_slice(data));
    let _ = fieldcast::ingest::flv::parse_audio(Bytes::copy_from_slice(data));
});
