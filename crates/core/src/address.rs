//! Which network a client address counts as, for every per-address limit.
//!
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, how a socket bound to `[::]` sees an IPv4
//! client) is that IPv4 address. An IPv6 address counts by its prefix (a /64 by default): one
//! subscriber holds a whole /64 and can use any address in it, so per-/128 limits would
//! stop nobody.

use std::net::{IpAddr, Ipv6Addr};

/// Default for `ipv6_prefix`: the prefix one IPv6 subscriber holds.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// `ip` as IPv4 when it is an IPv4-mapped IPv6 address; otherwise unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The network `ip` counts as: an IPv4 address itself (mapped ones included), an IPv6
/// address with every bit past `v6_prefix` cleared (`v6_prefix` is clamped to 128).
pub fn network(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_addresses_are_ipv4_and_ipv6_counts_by_its_prefix() {
        assert_eq!(network(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(network(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(
            network(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(network(ip("2001:db8:1:2:aaaa::1"), 48), ip("2001:db8:1::"));
        assert_eq!(network(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(network(ip("2001:db8::1"), 0), ip("::"));
        assert_eq!(network(ip("2001:db8::1"), 200), ip("2001:db8::1"));
        assert_eq!(network(ip("::1"), 64), ip("::"));
    }
}
