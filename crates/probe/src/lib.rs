//! Fieldcast's probe: real viewers and real load for a running server, and the kit `tests/`
//! and `bench/` share. Nothing here is in the `fieldcast` binary.
//!
//! - [`whep`]: a WHEP client on str0m that decodes what it gets with GStreamer
//!   (`fieldcast-probe watch`), and the signalling the swarm reuses;
//! - [`swarm`]: many WHEP viewers on one thread, without decoding (`fieldcast-probe swarm`);
//! - [`hls_load`]: many LL-HLS clients doing blocking reloads (`fieldcast-probe hls-swarm`);
//! - [`nginx`]: the nginx cache configuration the docs show, filled in for a test's setup;
//! - [`rtmp_publish`]: an Enhanced RTMP publisher of HEVC or AV1, which no Debian tool is.

pub mod hls_load;
pub mod link;
pub mod nginx;
pub mod rtmp_publish;
pub mod swarm;
pub mod whep;
