//! What the event loop is sent and what it counts: viewer commands and media frames, the
//! capacities of their bounded queues, and the counters `/metrics` reads.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::viewer;
use crate::histogram::LatencyHistogram;
use crate::media::EncodedPacket;

/// Frames (a video frame's packets, or one audio packet) queued from all studios to the event
/// loop. When the loop falls this far behind, new ones are dropped (counted), never buffered
/// without bound: ~6 s of one studio (30 video frames and 50 audio packets a second).
pub const MEDIA_QUEUE_FRAMES: usize = 512;

/// Most packets of one video frame held back for its marker (a 720p keyframe at 2.5 Mb/s
/// is a few dozen).
pub(crate) const MAX_FRAME_PACKETS: usize = 512;

/// A video frame's packets, or one audio packet, from one studio: the event loop wakes once
/// for each.
pub(crate) type MediaFrame = (Arc<str>, Vec<EncodedPacket>);

/// Viewer commands (add/remove) queued to the event loop.
pub const COMMAND_QUEUE: usize = 256;

pub(crate) enum Command {
    /// A new viewer; `added` is answered once the loop holds it, so the answer goes out
    /// only when the viewer's first connectivity check will find it.
    Add {
        viewer: Box<viewer::Viewer>,
        added: tokio::sync::oneshot::Sender<()>,
    },
    Remove {
        session_id: String,
        viewer_id: String,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// The server is stopping: every viewer's session is closed (DTLS close_notify).
    EndAll {
        reply: tokio::sync::oneshot::Sender<usize>,
    },
}

/// Upper bounds (ms) of the server-added latency histogram's buckets; the last is +Inf.
pub const SERVER_LATENCY_BUCKETS_MS: [f64; 19] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 66.0, 100.0,
    200.0, 500.0,
];

/// Counters exported on `/metrics`.
#[derive(Debug)]
pub struct EgressCounters {
    pub packets_in: AtomicU64,
    pub packets_dropped_queue: AtomicU64,
    pub packets_sent: AtomicU64,
    pub packets_dropped_viewer: AtomicU64,
    pub viewers: AtomicU64,
    /// Viewers the loop ended itself, by [`Ended`].
    pub reaped: [AtomicU64; 3],
    /// From an RTMP video message arriving to the first RTP packet of its frame leaving.
    pub server_latency: LatencyHistogram,
}

impl Default for EgressCounters {
    fn default() -> Self {
        Self {
            packets_in: AtomicU64::new(0),
            packets_dropped_queue: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            packets_dropped_viewer: AtomicU64::new(0),
            viewers: AtomicU64::new(0),
            reaped: Default::default(),
            server_latency: LatencyHistogram::new(&SERVER_LATENCY_BUCKETS_MS),
        }
    }
}
