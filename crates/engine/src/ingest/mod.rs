//! RTMP ingest: the listener, one task per connection, and what it sees of each publisher
//! (`health`). The sans-IO protocol core and the FLV tag parsers are `fieldcast-core`'s.

pub mod health;
pub mod limits;
mod server;

/// The protocol core and the tag parsers live in `fieldcast-core` (sans-IO, no runtime).
pub use fieldcast_core::{flv, rtmp};

pub use rtmp::session::APP_NAME;
pub use server::{Ingest, serve};

use crate::studio::StudioHandle;

/// Who may publish: the server looks a stream key up and puts its session on air. Called off
/// the async workers, so it may read a database.
pub trait Publishers: Send + Sync + 'static {
    /// The session a stream key publishes to (its id) and its studio, on air.
    fn admit(&self, stream_key: &str) -> Result<(String, StudioHandle), PublishRefused>;
}

/// Why a publish was refused, in words the publisher may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefused {
    /// No session has this stream key.
    UnknownKey,
    /// The key is known but the studio could not be had (the server logged why).
    Unavailable,
}
