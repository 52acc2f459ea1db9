//! RTMP ingest: the listener, one task per connection, and the sans-IO protocol core
//! (`rtmp/`) with FLV tag parsing (`flv`), and what it sees of each publisher (`health`).

pub mod flv;
pub mod health;
pub mod limits;
pub mod rtmp;
mod server;

pub use rtmp::session::APP_NAME;
pub use server::serve;
