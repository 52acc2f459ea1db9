//! Seeded mutation testing of the server's own parsers of network input: the WHEP SDP offer
//! and the order JSON, 10,000 cases each from the kit the RTMP and FLV parsers use
//! (`crates/core/tests/support`, shared through `tests/common`). Each case must end in a value
//! or an error, never a panic. The RTMP, AMF0 and FLV parsers are `fieldcast-core`'s, and
//! their mutation test (crates/core/tests/mutation.rs) also runs in the dev profile, where
//! overflow panics. A failure names the parser, the seed and the case:
//! `FIELDCAST_MUTATION_SEED=S` reruns it.

mod common;

use std::time::Instant;

use common::kit::fuzz;

#[test]
fn the_whep_offer_handling_survives_10000_mutations() {
    use str0m::media::{Direction, MediaKind};
    let offer = |audio: bool| {
        let mut rtc = fieldcast_probe::whep::viewer_config().build(Instant::now());
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
    // UDP and ICE-TCP candidates, as the server answers.
    let announce = fieldcast_engine::egress::Announce {
        udp: "127.0.0.1:8189".parse().unwrap(),
        tcp: Some("127.0.0.1:8189".parse().unwrap()),
    };
    let need = 2_800_000;
    // The seeds themselves negotiate: the mutations start from offers that work.
    for seed in &seeds {
        fieldcast_engine::egress::whep::negotiate(
            std::str::from_utf8(seed).unwrap(),
            announce,
            need,
        )
        .expect("a valid offer negotiates");
    }
    fuzz("sdp offer", &seeds, |input| {
        // The handler takes UTF-8 only (a 400 before this).
        if let Ok(text) = std::str::from_utf8(input) {
            let _ = fieldcast_engine::egress::whep::negotiate(text, announce, need);
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
    fieldcast::control::parse_order(&seeds[0], "86").expect("a valid order parses");
    fuzz("order json", &seeds, |input| {
        let _ = fieldcast::control::parse_order(input, "86");
    });
}
