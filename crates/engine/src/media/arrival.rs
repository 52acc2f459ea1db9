//! When a publisher's video message arrived, carried on its buffers through decode, overlay,
//! encode and payloading as a `GstReferenceTimestampMeta`, so the egress loop can tell how
//! long the server held each frame (`fieldcast_server_latency_seconds` on `/metrics`).
//!
//! GStreamer's decoders, encoders and payloaders copy metas without tags from their input
//! frame to what they make of it, so the stamp follows the frame through reordering and
//! packetization; frames from the slate or the test pattern carry none.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gstreamer as gst;

/// The monotonic origin stamps count nanoseconds from: a minute before the first use, so an
/// arrival taken just before that first use is still after it.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(60)).unwrap_or(now)
    })
}

fn reference() -> &'static gst::Caps {
    static CAPS: OnceLock<gst::Caps> = OnceLock::new();
    CAPS.get_or_init(|| gst::Caps::new_empty_simple("timestamp/x-fieldcast-arrival"))
}

/// Marks `buffer` as having arrived at `at`.
pub fn stamp(buffer: &mut gst::BufferRef, at: Instant) {
    let since = at.saturating_duration_since(epoch());
    gst::ReferenceTimestampMeta::add(
        buffer,
        reference(),
        gst::ClockTime::from_nseconds(since.as_nanos() as u64),
        gst::ClockTime::NONE,
    );
}

/// When the frame `buffer` was made from arrived, if it came from a publisher.
pub fn arrived_at(buffer: &gst::BufferRef) -> Option<Instant> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|meta| meta.reference() == reference().as_ref())
        .map(|meta| epoch() + Duration::from_nanos(meta.timestamp().nseconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::with_size(16).unwrap();
        assert_eq!(arrived_at(&buffer), None);
        let at = Instant::now();
        stamp(buffer.get_mut().unwrap(), at);
        let back = arrived_at(&buffer).unwrap();
        assert!(back.max(at) - back.min(at) < Duration::from_micros(1));
    }
}
