//! Places held per client address and in total: RTMP connections, WHEP viewers not yet
//! connected, live-state (SSE) streams. Taking a place is refused at a cap; the place is
//! given back when its [`Slot`] drops, whatever ends the thing that held it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct AddressSlots {
    pub max_total: usize,
    pub max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Which cap refused a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    Address,
    Total,
}

/// One place taken; given back on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<AddressSlots>,
    address: IpAddr,
}

impl AddressSlots {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            open: Mutex::default(),
        })
    }

    pub fn take(self: &Arc<Self>, address: IpAddr) -> Result<Slot, SlotRefusal> {
        let mut open = self.lock();
        let from_address = open.by_address.get(&address).copied().unwrap_or(0);
        if from_address >= self.max_per_address {
            return Err(SlotRefusal::Address);
        }
        if open.total >= self.max_total {
            return Err(SlotRefusal::Total);
        }
        open.total += 1;
        open.by_address.insert(address, from_address + 1);
        Ok(Slot {
            slots: self.clone(),
            address,
        })
    }

    /// Places taken now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // A short lock with no panics inside; a poisoned one is still consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
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
    fn places_are_capped_per_address_and_in_total_and_come_back_on_drop() {
        let slots = AddressSlots::new(3, 2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert_eq!(slots.take(a).unwrap_err(), SlotRefusal::Address);
        let _b1 = slots.take(b).unwrap();
        assert_eq!(slots.take(b).unwrap_err(), SlotRefusal::Total);
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(slots.take(b).is_ok(), "a place came back");
    }
}
