//! Fieldcast's sans-IO cores: protocol and format logic with no I/O, no clock of its own and
//! no runtime. Bytes (and, where it matters, the time) go in; values, events and bytes come
//! out. The server drives them from its own tasks; tests drive them with plain `#[test]`s.
//!
//! - [`rtmp`]: the RTMP publish side: handshake, chunk stream, AMF0 commands, a session that
//!   turns a publisher's bytes into events (`connect`, `publish`, media) and bytes to send.
//! - [`flv`]: the audio and video tag bodies RTMP carries (AVC classic, Enhanced RTMP
//!   `avc1`, `hvc1` and `av01`, AAC).
//! - [`srt`]: the stream key in an SRT publisher's `streamid`.
//! - [`commerce`]: the records of selling and its rules (offer states, whether an order may
//!   be taken, a network's share, phone numbers).
//! - [`overlay`]: the scene of overlay layers and their layout on a frame.
//! - [`stun`]: the few STUN fields the WebRTC egress reads to route a packet.
//! - [`address`]: which network a client address counts as for per-address limits.
//! - [`ids`] and [`time`]: random identifiers, and the wall clock for callers to pass in.
//!
//! `tests/mutation.rs` runs every parser here through 10,000 seeded mutations in the dev
//! profile, where arithmetic overflow panics.

pub mod address;
pub mod commerce;
pub mod flv;
pub mod ids;
pub mod overlay;
pub mod rtmp;
pub mod srt;
pub mod stun;
pub mod time;
