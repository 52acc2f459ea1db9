//! Ingest: the RTMP listener and one task per connection, the SRT listener (`srt`), and what
//! is seen of each publisher (`health`). The sans-IO protocol core and the FLV tag parsers are `fieldcast-core`'s.

pub mod health;
pub mod limits;
mod server;
pub mod srt;
pub mod whip;

/// The protocol core and the tag parsers live in `fieldcast-core` (sans-IO, no runtime).
pub use fieldcast_core::{flv, rtmp};

pub use rtmp::session::APP_NAME;
pub use server::{Ingest, PublishRefused, Publishers, serve};
