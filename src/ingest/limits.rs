//! What one RTMP client may cost the server: how many connections it holds, how long each
//! phase may take, and the counters `/metrics` shows for what was refused or closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
pub enum CloseReason {
    /// The peer closed (or reset) the connection.
    PeerClosed,
    /// Over the total or per-address connection cap: closed at accept.
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
#[derive(Debug)]
pub struct IngestLimits {
    pub max_connections: usize,
    pub max_per_address: usize,
    open: Mutex<Open>,
    closed: [AtomicU64; CloseReason::ALL.len()],
    pub refused_publishes: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; its slot is given back when it is dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    limits: &'a IngestLimits,
    address: IpAddr,
}

impl IngestLimits {
    pub fn new(max_connections: usize, max_per_address: usize) -> Self {
        Self {
            max_connections,
            max_per_address,
            open: Mutex::default(),
            closed: Default::default(),
            refused_publishes: AtomicU64::new(0),
        }
    }

    /// A slot for a new connection from `address`, or `None` when a cap is reached.
    pub fn admit(&self, address: IpAddr) -> Option<Slot<'_>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_address = open.by_address.get(&address).copied().unwrap_or(0);
        if open.total >= self.max_connections || from_address >= self.max_per_address {
            return None;
        }
        open.total += 1;
        open.by_address.insert(address, from_address + 1);
        Some(Slot {
            limits: self,
            address,
        })
    }

    pub fn open_connections(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    pub fn count_close(&self, reason: CloseReason) {
        let i = CloseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.closed[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) -> u64 {
        let i = CloseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.closed[i].load(Ordering::Relaxed)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_total_and_slots_come_back() {
        let limits = IngestLimits::new(3, 2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none(), "third from one address");
        let _b1 = limits.admit(b).unwrap();
        assert!(limits.admit(b).is_none(), "fourth in total");
        drop(a1);
        assert_eq!(limits.open_connections(), 2);
        assert!(limits.admit(b).is_some(), "a slot came back");
    }
}
