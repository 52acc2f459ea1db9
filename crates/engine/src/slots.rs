//! Places held per client address and in total: RTMP and HTTP connections, WHEP viewers not
//! yet connected, live-state (SSE) streams. Taking a place is refused at a cap; the place is
//! given back when its [`Slot`] drops, whatever ends the thing that held it.
//!
//! A place may be taken *provisionally* ([`AddressSlots::take_making_room`]): when every
//! place is taken, a provisional one is evicted to make room, and its holder is told through
//! [`Slot::evicted`]. The one evicted is the oldest of the address holding the most
//! provisional places, so strangers who open many connections and reopen each one at once
//! evict each other, not a newcomer from an address of its own. A holder that proves itself
//! (an RTMP publisher whose stream key was accepted) calls [`Slot::confirm`] and is never
//! evicted.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

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
    /// Places that can still be evicted, by address, oldest first.
    provisional: HashMap<IpAddr, BTreeSet<u64>>,
    members: HashMap<u64, Member>,
    next: u64,
}

#[derive(Debug)]
struct Member {
    address: IpAddr,
    evicted: Option<Arc<Notify>>,
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
    id: u64,
    evicted: Option<Arc<Notify>>,
}

impl AddressSlots {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            open: Mutex::default(),
        })
    }

    /// A place for `address`, refused at either cap.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Result<Slot, SlotRefusal> {
        self.take_with(address, true, false)
    }

    /// A place under the total cap only: for a trusted proxy, which is many clients.
    pub fn take_unlimited_address(self: &Arc<Self>, address: IpAddr) -> Result<Slot, SlotRefusal> {
        self.take_with(address, false, false)
    }

    /// A provisional place for `address`: when all places are taken, the oldest provisional
    /// place is evicted to make room (refused only when none is provisional, or at the
    /// per-address cap). Until [`Slot::confirm`], this place can be evicted in turn.
    pub fn take_making_room(self: &Arc<Self>, address: IpAddr) -> Result<Slot, SlotRefusal> {
        self.take_with(address, true, true)
    }

    fn take_with(
        self: &Arc<Self>,
        address: IpAddr,
        per_address: bool,
        provisional: bool,
    ) -> Result<Slot, SlotRefusal> {
        let mut open = self.lock();
        let from_address = open.by_address.get(&address).copied().unwrap_or(0);
        if per_address && from_address >= self.max_per_address {
            return Err(SlotRefusal::Address);
        }
        if open.total >= self.max_total {
            let evict = if provisional {
                open.most_provisional()
            } else {
                None
            };
            let Some(evict) = evict else {
                return Err(SlotRefusal::Total);
            };
            if let Some(member) = open.release(evict)
                && let Some(evicted) = member.evicted
            {
                evicted.notify_one();
            }
        }
        let id = open.next;
        open.next += 1;
        open.total += 1;
        *open.by_address.entry(address).or_default() += 1;
        let evicted = provisional.then(|| Arc::new(Notify::new()));
        if provisional {
            open.provisional.entry(address).or_default().insert(id);
        }
        open.members.insert(
            id,
            Member {
                address,
                evicted: evicted.clone(),
            },
        );
        Ok(Slot {
            slots: self.clone(),
            id,
            evicted,
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

impl Open {
    /// The oldest provisional place of the address that holds the most (ties: the oldest
    /// place). Linear in the addresses holding provisional places.
    fn most_provisional(&self) -> Option<u64> {
        self.provisional
            .values()
            .filter_map(|ids| Some((ids.len(), std::cmp::Reverse(*ids.first()?))))
            .max()
            .map(|(_, std::cmp::Reverse(oldest))| oldest)
    }

    fn unmark_provisional(&mut self, id: u64, address: IpAddr) {
        if let Some(ids) = self.provisional.get_mut(&address) {
            ids.remove(&id);
            if ids.is_empty() {
                self.provisional.remove(&address);
            }
        }
    }

    /// Gives a place back; `None` when it already was (evicted).
    fn release(&mut self, id: u64) -> Option<Member> {
        let member = self.members.remove(&id)?;
        self.unmark_provisional(id, member.address);
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_address.get_mut(&member.address) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&member.address);
            }
        }
        Some(member)
    }
}

impl Slot {
    /// The holder proved itself: this place is never evicted.
    pub fn confirm(&self) {
        let mut open = self.slots.lock();
        if let Some(address) = open.members.get(&self.id).map(|m| m.address) {
            open.unmark_provisional(self.id, address);
        }
    }

    /// Resolves when this provisional place was evicted to make room (its holder should
    /// close); never, for a place that cannot be.
    pub async fn evicted(&self) {
        match &self.evicted {
            Some(evicted) => evicted.notified().await,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().release(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        [127, 0, 0, last].into()
    }

    #[test]
    fn places_are_capped_per_address_and_in_total_and_come_back_on_drop() {
        let slots = AddressSlots::new(3, 2);
        let (a, b) = (ip(2), ip(3));
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert_eq!(slots.take(a).unwrap_err(), SlotRefusal::Address);
        let _b1 = slots.take(b).unwrap();
        assert_eq!(slots.take(b).unwrap_err(), SlotRefusal::Total);
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(slots.take(b).is_ok(), "a place came back");
        assert!(
            slots.take_unlimited_address(a).is_ok(),
            "past the address cap, within the total"
        );
    }

    #[tokio::test]
    async fn strangers_with_many_places_evict_each_other_and_not_a_newcomer() {
        let slots = AddressSlots::new(5, 8);
        let squatters: Vec<_> = (0..4)
            .map(|_| slots.take_making_room(ip(9)).unwrap())
            .collect();
        let host = slots.take_making_room(ip(1)).unwrap();
        // The squatter's address reopens again and again: each time one of its own goes.
        let mut again = Vec::new();
        for _ in 0..20 {
            again.push(slots.take_making_room(ip(9)).unwrap());
        }
        assert_eq!(slots.open(), 5);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), host.evicted())
                .await
                .is_err(),
            "the newcomer from its own address keeps its place"
        );
        drop((squatters, again));
    }

    #[tokio::test]
    async fn a_full_house_evicts_its_oldest_unconfirmed_place_and_never_a_confirmed_one() {
        let slots = AddressSlots::new(3, 8);
        let publisher = slots.take_making_room(ip(1)).unwrap();
        publisher.confirm();
        let stranger_old = slots.take_making_room(ip(2)).unwrap();
        let stranger_new = slots.take_making_room(ip(3)).unwrap();
        // Full: a newcomer takes the oldest stranger's place.
        let newcomer = slots.take_making_room(ip(4)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), stranger_old.evicted())
            .await
            .expect("the oldest stranger is told");
        assert_eq!(slots.open(), 3);
        drop(stranger_old);
        assert_eq!(slots.open(), 3, "an evicted place is not given back twice");
        // Then the next oldest; the confirmed publisher never.
        let _another = slots.take_making_room(ip(5)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), stranger_new.evicted())
            .await
            .expect("the next oldest stranger is told");
        newcomer.confirm();
        _another.confirm();
        drop(stranger_new);
        assert_eq!(
            slots.take_making_room(ip(7)).unwrap_err(),
            SlotRefusal::Total,
            "every place is confirmed: nothing to evict"
        );
        drop(publisher);
        assert_eq!(slots.open(), 2);
    }
}
