//! RTMP ingest: the listener, one task per connection, and what it sees of each publisher
//! (`health`). The sans-IO protocol core and the FLV tag parsers are `fieldcast-core`'s.

pub mod health;
pub mod limits;
mod server;

/// The protocol core and the tag parsers live in `fieldcast-core` (sans-IO, no runtime).
pub use fieldcast_core::{flv, rtmp};

pub use rtmp::session::APP_NAME;
pub use server::{Ingest, PublishRefused, Publishers, serve};
