//! Fieldcast: a live-commerce media server. RTMP in, composited H.264 + Opus out to browsers
//! over WebRTC (WHEP). See DESIGN.md for the path of a frame.

pub mod app;
pub mod commerce;
pub mod config;
pub mod connections;
pub mod control;
pub mod demo;
pub mod files;
pub mod record;
pub mod server;
pub mod shows;
pub mod store;
