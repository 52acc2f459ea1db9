//! What WHEP viewers may cost before they are watching: each offer costs an ICE agent and a
//! DTLS session, so viewers that have not connected yet ("pending") are capped per client
//! address and in total, and each holds a slot until it connects or is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Default for `whep_max_pending`: viewers not yet connected, from everyone.
pub const DEFAULT_MAX_PENDING: usize = 256;

/// Default for `whep_max_pending_per_address`: viewers not yet connected from one address (a
/// household or an office behind one NAT opening the page together).
pub const DEFAULT_MAX_PENDING_PER_ADDRESS: usize = 8;

/// Default for `max_viewers_per_session`: WebRTC viewers of one session. BENCHMARKS.md has
/// what a machine holds; past the cap a viewer is answered 503 with `Retry-After`.
pub const DEFAULT_MAX_VIEWERS_PER_SESSION: usize = 500;

#[derive(Debug)]
pub struct PendingLimits {
    pub max_total: usize,
    pub max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why an offer was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingRefusal {
    Address,
    Total,
}

/// A pending viewer's place; freed when dropped (at connect, or when the viewer goes).
#[derive(Debug)]
pub struct PendingSlot {
    limits: Arc<PendingLimits>,
    address: IpAddr,
}

impl PendingLimits {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            open: Mutex::default(),
        })
    }

    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<PendingSlot, PendingRefusal> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_address = open.by_address.get(&address).copied().unwrap_or(0);
        if from_address >= self.max_per_address {
            return Err(PendingRefusal::Address);
        }
        if open.total >= self.max_total {
            return Err(PendingRefusal::Total);
        }
        open.total += 1;
        open.by_address.insert(address, from_address + 1);
        Ok(PendingSlot {
            limits: self.clone(),
            address,
        })
    }

    pub fn pending(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for PendingSlot {
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
    fn pending_viewers_are_capped_per_address_and_in_total() {
        let limits = PendingLimits::new(3, 2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), PendingRefusal::Address);
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), PendingRefusal::Total);
        drop(a1);
        assert_eq!(limits.pending(), 2);
        assert!(limits.admit(b).is_ok());
    }
}
