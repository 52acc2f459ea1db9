//! What WHEP viewers may cost before they are watching: each offer costs an ICE agent and a
//! DTLS session, so viewers that have not connected yet ("pending") are capped per client
//! address and in total (a [`crate::slots::Slot`] each, until it connects or is dropped),
//! and each session has a viewer cap.

/// Default for `whep_max_pending`: viewers not yet connected, from everyone.
pub const DEFAULT_MAX_PENDING: usize = 256;

/// Default for `whep_max_pending_per_address`: viewers not yet connected from one address (a
/// household or an office behind one NAT opening the page together).
pub const DEFAULT_MAX_PENDING_PER_ADDRESS: usize = 8;

/// Default for `max_viewers_per_session`: WebRTC viewers of one session. BENCHMARKS.md has
/// what a machine holds; past the cap a viewer is answered 503 with `Retry-After`.
pub const DEFAULT_MAX_VIEWERS_PER_SESSION: usize = 500;
