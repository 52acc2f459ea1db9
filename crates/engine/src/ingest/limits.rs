//! What one RTMP client may cost the server: how many connections it holds, how long each
//! phase may take, and the counters `/metrics` shows for what was refused or closed.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::flood_log::FloodLog;
use crate::slots::{AddressSlots, Slot};

/// Default for `rtmp_max_connections`: RTMP connections open at once, from everyone.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Default for `rtmp_max_connections_per_address`: one site's publishers behind one NAT.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 8;

/// From accept to an accepted `publish`: the handshake, `connect` and `publish`.
pub const ADMIT_DEADLINE: Duration = Duration::from_secs(5);

/// Every write to the peer; a peer that does not read is closed.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// A publisher that sends no audio or video for this long is closed.
pub const MEDIA_IDLE_DEADLINE: Duration = Duration::from_secs(10);

/// Why a connection ended, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum CloseReason {
    /// The peer closed (or reset) the connection.
    PeerClosed,
    /// Over the total or per-address connection cap: closed at accept. Also a connection
    /// that had not published yet, closed to make room for a newer one.
    OverCapacity,
    /// No accepted publish within [`ADMIT_DEADLINE`].
    AdmitTimeout,
    /// No media within [`MEDIA_IDLE_DEADLINE`].
    MediaIdle,
    /// A write did not finish within [`WRITE_DEADLINE`].
    WriteTimeout,
    /// The bytes were not RTMP we take (a protocol error, a limit, an unsupported codec).
    Malformed,
    /// The publish was refused (key, application, live elsewhere).
    PublishRefused,
    /// Taken over by a new publisher with the same key, or the server stopped it.
    Replaced,
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::PeerClosed,
        CloseReason::OverCapacity,
        CloseReason::AdmitTimeout,
        CloseReason::MediaIdle,
        CloseReason::WriteTimeout,
        CloseReason::Malformed,
        CloseReason::PublishRefused,
        CloseReason::Replaced,
    ];

    /// Closes a stranger can cause by the thousand (refusals before a publish is taken):
    /// logged one line and a summary per interval. The others end a publisher's connection
    /// and are logged every time.
    pub fn comes_in_floods(self) -> bool {
        matches!(
            self,
            CloseReason::OverCapacity
                | CloseReason::AdmitTimeout
                | CloseReason::Malformed
                | CloseReason::PublishRefused
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::OverCapacity => "over_capacity",
            CloseReason::AdmitTimeout => "admit_timeout",
            CloseReason::MediaIdle => "media_idle",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Malformed => "malformed",
            CloseReason::PublishRefused => "publish_refused",
            CloseReason::Replaced => "replaced",
        }
    }
}

/// Connection caps and the ingest counters, shared by every connection.
pub struct IngestLimits {
    pub connections: Arc<AddressSlots>,
    /// Bits of an IPv6 address the per-address cap keys on.
    pub ipv6_prefix: u8,
    closed: [AtomicU64; CloseReason::ALL.len()],
    pub refused_publishes: AtomicU64,
    /// Refusals and closes come in floods: one log line per reason per interval.
    pub log: FloodLog,
}

impl IngestLimits {
    pub fn new(max_connections: usize, max_per_address: usize, ipv6_prefix: u8) -> Self {
        Self {
            connections: AddressSlots::new(max_connections, max_per_address),
            ipv6_prefix,
            closed: Default::default(),
            refused_publishes: AtomicU64::new(0),
            log: FloodLog::new("rtmp"),
        }
    }

    /// A place for a new connection from `address` (counted by its network), or `None` at the
    /// per-address cap, or when every place is held by a publisher. When all places are
    /// taken, the oldest connection that has not published yet is closed to make room
    /// ([`Slot::evicted`]); a publisher [`Slot::confirm`]s its place once its key is taken.
    pub fn admit(&self, address: IpAddr) -> Option<Slot> {
        self.connections
            .take_making_room(fieldcast_core::address::network(address, self.ipv6_prefix))
            .ok()
    }

    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    pub fn count_close(&self, reason: CloseReason) {
        self.closed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason as usize].load(Ordering::Relaxed)
    }
}
