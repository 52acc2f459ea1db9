//! Fieldcast's sans-IO cores: protocol and format logic with no I/O, no clock of its own and
//! no runtime. Bytes (and, where it matters, the time) go in; values, events and bytes come
//! out. The server drives them from its own tasks; tests drive them with plain `#[test]`s.
//!
//! - [`rtmp`]: the RTMP publish side: handshake, chunk stream, AMF0 commands, a session that
//!   turns a publisher's bytes into events (`connect`, `publish`, media) and bytes to send.
//! - [`flv`]: the audio and video tag bodies RTMP carries (AVC classic and Enhanced RTMP
//!   `avc1`, AAC).
//!
//! `tests/mutation.rs` runs every parser here through 10,000 seeded mutations in the dev
//! profile, where arithmetic overflow panics.

pub mod flv;
pub mod rtmp;
