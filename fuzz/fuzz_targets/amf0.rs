//! AMF0 values, as commands and data messages carry them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fieldcast::ingest::rtmp::amf0::decode_all(data);
});
