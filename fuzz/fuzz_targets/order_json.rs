//! An order body, as `POST /api/v1/sessions/{id}/orders` checks it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fieldcast::control::parse_order(data, "86");
});
