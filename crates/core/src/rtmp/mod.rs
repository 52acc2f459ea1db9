//! The RTMP protocol core, sans-IO: bytes in, events and bytes out.

pub mod amf0;
pub mod chunk;
pub mod session;
