//! Who a public request is from, and what each client address may ask of the public routes.
//!
//! The client is the TCP peer, unless the peer is one of the configured `trusted_proxies`:
//! then it is the right-most `X-Forwarded-For` entry that is not itself a trusted proxy
//! (entries further left were written by the client and prove nothing). Addresses are
//! compared as IPv4 when IPv4-mapped (a server on `[::]` sees IPv4 clients that way), and a
//! client counts as its network: IPv6 by its `ipv6_prefix` (`fieldcast_core::address`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::commerce::rate::RateLimiter;
use crate::config::Rate;
use fieldcast_engine::slots::{AddressSlots, Slot};

/// The public routes that are rate-limited per client address, as `/metrics` labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicRoute {
    Orders = 0,
    Likes = 1,
    Whep = 2,
    Events = 3,
    Devices = 4,
}

impl PublicRoute {
    pub const ALL: [PublicRoute; 5] = [
        PublicRoute::Orders,
        PublicRoute::Likes,
        PublicRoute::Whep,
        PublicRoute::Events,
        PublicRoute::Devices,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PublicRoute::Orders => "orders",
            PublicRoute::Likes => "likes",
            PublicRoute::Whep => "whep",
            PublicRoute::Events => "events",
            PublicRoute::Devices => "devices",
        }
    }
}

/// Token buckets per client address for orders, likes, WHEP offers and device tokens; per
/// device for the orders of pages that carry one (`commerce::devices`); a count of open SSE
/// streams per address; and how many requests each refused.
pub struct PublicLimits {
    orders: RateLimiter,
    /// Orders with a device token: `orders`' rate per device, and this loose cap per address
    /// (a crowd of real phones behind one address never reaches it; a flood does).
    orders_by_device: RateLimiter,
    orders_flood: RateLimiter,
    likes: RateLimiter,
    whep: RateLimiter,
    devices: RateLimiter,
    /// Open SSE streams per address (no total cap: the connection limits bound them).
    events: Arc<AddressSlots>,
    limited: [AtomicU64; 5],
}

/// What one public client may ask for.
pub struct PublicRates {
    pub orders: Rate,
    pub orders_per_address: Rate,
    pub likes: Rate,
    pub whep: Rate,
    pub devices: Rate,
    pub max_events_per_address: usize,
}

impl PublicLimits {
    pub fn new(rates: PublicRates) -> Self {
        let bucket = |r: Rate| RateLimiter::new(r.burst, r.per_second);
        Self {
            orders: bucket(rates.orders),
            orders_by_device: bucket(rates.orders),
            orders_flood: bucket(rates.orders_per_address),
            likes: bucket(rates.likes),
            whep: bucket(rates.whep),
            devices: bucket(rates.devices),
            events: AddressSlots::new(usize::MAX, rates.max_events_per_address),
            limited: Default::default(),
        }
    }

    /// An order's tokens: per device when it carries a valid device token (and from the
    /// address's flood cap), else per address. A refusal is counted and is a 429.
    pub fn check_order(&self, client: IpAddr, device: Option<&str>) -> Result<(), ApiError> {
        let now = Instant::now();
        let allowed = match device {
            Some(device) => {
                self.orders_flood.allow(&client.to_string(), now)
                    && self.orders_by_device.allow(device, now)
            }
            None => self.orders.allow(&client.to_string(), now),
        };
        if allowed {
            Ok(())
        } else {
            Err(self.refuse(PublicRoute::Orders))
        }
    }

    /// Takes a token for `route` from `client`'s bucket; a refusal is counted and is a 429.
    pub fn check(&self, route: PublicRoute, client: IpAddr) -> Result<(), ApiError> {
        let limiter = match route {
            PublicRoute::Orders => &self.orders,
            PublicRoute::Likes => &self.likes,
            PublicRoute::Whep => &self.whep,
            PublicRoute::Devices => &self.devices,
            PublicRoute::Events => return Ok(()),
        };
        if limiter.allow(&client.to_string(), Instant::now()) {
            return Ok(());
        }
        Err(self.refuse(route))
    }

    fn refuse(&self, route: PublicRoute) -> ApiError {
        self.limited[route as usize].fetch_add(1, Ordering::Relaxed);
        let detail = match route {
            PublicRoute::Orders => "too many orders from your network; wait a few seconds",
            PublicRoute::Likes => "too many likes; batch taps into one request",
            PublicRoute::Whep => "too many players started from your network; wait a few seconds",
            PublicRoute::Events => "too many live updates open from your network",
            PublicRoute::Devices => "too many new devices from your network; wait a few seconds",
        };
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail).retry_after(2)
    }

    /// A place for one more SSE stream from `client`, given back when the slot drops.
    pub fn open_events(&self, client: IpAddr) -> Result<Slot, ApiError> {
        self.events
            .take(client)
            .map_err(|_| self.refuse(PublicRoute::Events))
    }

    pub fn limited(&self, route: PublicRoute) -> u64 {
        self.limited[route as usize].load(Ordering::Relaxed)
    }

    /// Drops buckets that have refilled (called every second).
    pub fn forget_idle(&self) {
        self.orders.forget_idle();
        self.orders_by_device.forget_idle();
        self.orders_flood.forget_idle();
        self.likes.forget_idle();
        self.whep.forget_idle();
        self.devices.forget_idle();
    }
}

/// The network a request is from (see the module doc): what every per-address limit keys on.
pub struct Client(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client
where
    std::sync::Arc<crate::config::Settings>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let settings = std::sync::Arc::<crate::config::Settings>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::internal("no peer address on the connection"))?;
        let client = client_address(
            peer,
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
            &settings.trusted_proxies,
        );
        Ok(Client(fieldcast_core::address::network(
            client,
            settings.ipv6_prefix,
        )))
    }
}

/// The client behind `peer`, believing `X-Forwarded-For` only from trusted proxies (given
/// canonical, as the settings hold them). Linear in the header's length.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpAddr],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            // Garbage is where the trust ends; the last good address stands.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        let header = ["6.6.6.6, 203.0.113.7"];
        // From the proxy: the right-most address it added.
        assert_eq!(
            client_address(proxy, header.into_iter(), &trusted),
            ip("203.0.113.7")
        );
        // From anyone else: the header is the client's own word.
        assert_eq!(
            client_address(ip("198.51.100.2"), header.into_iter(), &trusted),
            ip("198.51.100.2")
        );
        // A chain of trusted proxies is walked; garbage stops the walk.
        let two = [proxy, ip("10.0.0.2")];
        assert_eq!(
            client_address(proxy, ["203.0.113.7, 10.0.0.2"].into_iter(), &two),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_address(proxy, ["203.0.113.7, nonsense"].into_iter(), &trusted),
            proxy
        );
        // A server on [::] sees an IPv4 proxy as IPv4-mapped: still the trusted proxy, and an
        // IPv4-mapped client in the header is that IPv4 client.
        assert_eq!(
            client_address(
                ip("::ffff:10.0.0.1"),
                ["::ffff:203.0.113.7"].into_iter(),
                &trusted
            ),
            ip("203.0.113.7")
        );
    }
}
