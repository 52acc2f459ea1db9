//! Fieldcast's media engine: everything a frame touches between a publisher and a viewer.
//!
//! - [`ingest`]: the RTMP listener, one task per publisher, and what it sees of each
//!   publisher's health. Which session a stream key opens is asked of [`ingest::Publishers`].
//! - [`studio`]: one owner task per live session, holding its pipeline; others hold a
//!   [`studio::StudioHandle`].
//! - [`media`]: the GStreamer pipelines: the publisher's decode, the slate and test pattern,
//!   the one encode (H.264 + Opus, and AAC for HLS) and its output to the viewers.
//! - [`overlay`]: the overlays drawn in Rust and blended into every frame before the encoder,
//!   from a live-state snapshot ([`overlay::feed`]).
//! - [`egress`]: WebRTC (WHEP) viewers on one UDP port, each with a bounded queue.
//! - [`hls`]: HLS and LL-HLS from the same encode, in memory.
//! - [`restream`]: the composited output pushed to other RTMP(S) servers, from the HLS
//!   segments (no extra encode), each destination with its own retries.
//! - [`slots`], [`flood_log`], [`histogram`] and [`process`]: per-address connection slots
//!   (with room made by the oldest unproven ones), one log line per flood, latency
//!   histograms, and the open-file limit.
//!
//! The engine knows nothing of SQL, HTTP or selling; the server (`fieldcast`) wires it up.

pub mod egress;
pub mod flood_log;
pub mod histogram;
pub mod hls;
pub mod ingest;
pub mod media;
pub mod overlay;
pub mod process;
pub mod restream;
pub mod slots;
pub mod studio;
