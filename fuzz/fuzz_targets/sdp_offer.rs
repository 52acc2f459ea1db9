//! A WHEP offer: parsed and negotiated as `POST /whep/{id}` does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let at = std::net::SocketAddr::from(([127, 0, 0, 1], 8189));
        let announce = fieldcast::egress::whep::Announce {
            udp: at,
            tcp: Some(at),
        };
        let _ = fieldcast::egress::whep::negotiate(text, announce, 2_800_000);
    }
});
