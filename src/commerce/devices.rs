//! Who a buyer is, beyond an address: device tokens, and the key an address is counted by.
//!
//! Many honest phones share one public address (a carrier's NAT, a school's Wi-Fi, a
//! co-op's line), so per-address limits refuse real buyers and barely slow a bot. Each watch
//! page therefore asks once for a device token (`POST /api/v1/devices`, minted at a bounded
//! rate per address) and sends it with its orders; the order limits then hold per device,
//! and per address only as a loose flood cap. A token is `d1.ID.ISSUED.MAC`: a random id,
//! when it was issued (Unix seconds), and an HMAC-SHA256 over both with this server's secret
//! (kept in the data directory), so the server checks it without storing it.
//!
//! From one address, 40 real phones and a bot with 40 tokens look alike. What bounds the bot
//! is the ledger's per-address share of each offer (`commerce::rules::address_share`),
//! counted by [`DeviceKeys::address_key`]: the client's network (an IPv6 client by its /64, which
//! one subscriber holds whole) under a keyed hash, so orders never store a buyer's address.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a device token is good for; a page asks for a new one after.
pub const DEVICE_TOKEN_LIFETIME_S: i64 = 7 * 24 * 3600;
/// Longest token looked at (a real one is 67 characters).
const MAX_TOKEN_LEN: usize = 128;

type HmacSha256 = Hmac<Sha256>;

/// The server's secret for device tokens and address keys.
#[derive(Clone)]
pub struct DeviceKeys {
    secret: [u8; 32],
}

impl DeviceKeys {
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // A key of any length is accepted: this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key");
        for part in parts {
            mac.update(part);
        }
        mac
    }

    /// A new token for a device, issued at `now_s`.
    pub fn mint(&self, id: &str, now_s: i64) -> String {
        let body = format!("d1.{id}.{now_s}");
        let tag = self.mac(&[body.as_bytes()]).finalize().into_bytes();
        format!("{body}.{}", hex(&tag[..16]))
    }

    /// The device id of a token this server issued that has not expired; `None` for anything
    /// else. Constant-time in the tag, linear in the token's length (which is bounded).
    pub fn verify(&self, token: &str, now_s: i64) -> Option<String> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (body, tag) = token.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (version, id, issued) = (parts.next()?, parts.next()?, parts.next()?);
        if version != "d1" || parts.next().is_some() || id.is_empty() {
            return None;
        }
        let issued: i64 = issued.parse().ok()?;
        if !(issued - 60..=issued + DEVICE_TOKEN_LIFETIME_S).contains(&now_s) {
            return None;
        }
        let tag = unhex(tag).filter(|t| t.len() == 16)?;
        self.mac(&[body.as_bytes()])
            .verify_truncated_left(&tag)
            .ok()?;
        Some(id.to_string())
    }

    /// The keyed hash a network is counted by: `network` as the public routes' `Client` gives
    /// it (an IPv4 address, or an IPv6 address cut to `ipv6_prefix`; `fieldcast_core::address`).
    pub fn address_key(&self, network: IpAddr) -> String {
        let network = match fieldcast_core::address::canonical(network) {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let tag = self.mac(&[b"address:", &network]).finalize().into_bytes();
        hex(&tag[..12])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn a_minted_token_verifies_and_names_its_device_until_it_expires() {
        let keys = DeviceKeys::new([7; 32]);
        let token = keys.mint("a1b2c3d4e5f6a7b8", NOW);
        assert_eq!(
            keys.verify(&token, NOW).as_deref(),
            Some("a1b2c3d4e5f6a7b8")
        );
        assert_eq!(
            keys.verify(&token, NOW + DEVICE_TOKEN_LIFETIME_S)
                .as_deref(),
            Some("a1b2c3d4e5f6a7b8")
        );
        assert_eq!(keys.verify(&token, NOW + DEVICE_TOKEN_LIFETIME_S + 1), None);
        assert_eq!(
            keys.verify(&token, NOW - 3600),
            None,
            "issued in the future"
        );
    }

    #[test]
    fn a_forged_altered_or_foreign_token_is_nobody() {
        let keys = DeviceKeys::new([7; 32]);
        let token = keys.mint("device1", NOW);
        let other = DeviceKeys::new([8; 32]).mint("device1", NOW);
        assert_eq!(keys.verify(&other, NOW), None, "another server's secret");
        let renamed = token.replacen("device1", "device2", 1);
        assert_eq!(keys.verify(&renamed, NOW), None);
        let (body, tag) = token.rsplit_once('.').unwrap();
        assert_eq!(
            keys.verify(&format!("{body}.{}", &tag[..8]), NOW),
            None,
            "a short tag"
        );
        for junk in [
            "",
            ".",
            "d1..1.00",
            "d1.x.y.zz",
            "d2.device1.1790000000.00",
            &"d1.".repeat(100),
        ] {
            assert_eq!(keys.verify(junk, NOW), None, "{junk:?}");
        }
    }

    #[test]
    fn an_ipv6_subscriber_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let keys = DeviceKeys::new([1; 32]);
        let ip = |s: &str| fieldcast_core::address::network(s.parse::<IpAddr>().unwrap(), 64);
        assert_eq!(
            keys.address_key(ip("2001:db8:1:2::1")),
            keys.address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            keys.address_key(ip("2001:db8:1:2::1")),
            keys.address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            keys.address_key(ip("::ffff:198.51.100.7")),
            keys.address_key(ip("198.51.100.7"))
        );
        assert_ne!(
            keys.address_key(ip("198.51.100.7")),
            keys.address_key(ip("198.51.100.8"))
        );
        assert!(
            !keys.address_key(ip("198.51.100.7")).contains("198"),
            "no address in the key"
        );
    }
}
