//! What the packager publishes and requests are answered from: the window of segments and
//! parts ([`Snapshot`]), immutable once published, and the constants that shape it.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// Target duration of a part; the packager closes one a little before it (7 frames, 233 ms,
/// at 30 fps).
pub const PART_TARGET: Duration = Duration::from_millis(250);
/// `PART-HOLD-BACK`: three part targets, as the specification recommends.
pub const PART_HOLD_BACK: f64 = 0.75;
/// The light rendition's: six part targets. Its players are on weak links, where a part that
/// comes late (a lost packet's retransmission, a keyframe's larger part) would empty three
/// parts of buffer. (hls.js still stalled in parts mode there, for another reason: the watch
/// page plays the light rendition in whole segments. This is for other low-latency players.)
pub const LIGHT_PART_HOLD_BACK: f64 = 1.5;
/// Complete segments kept (20 s at 1 s segments): the plain playlist lists them all.
pub const SEGMENTS_KEPT: usize = 20;
/// Segments whose parts the low-latency playlist lists (and the one being made). Parts stay
/// served as long as their segment is kept.
pub const PART_SEGMENTS: usize = 3;

/// One part, or one whole segment: immutable once published.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub bytes: Bytes,
    pub duration: Duration,
    /// When it was complete (`Last-Modified`).
    pub made: SystemTime,
}

#[derive(Debug, Clone)]
pub struct PartEntry {
    /// The part's number (its URI), counted across segments.
    pub number: u64,
    pub independent: bool,
    pub chunk: Chunk,
}

#[derive(Debug, Clone)]
pub struct SegmentEntry {
    pub msn: u64,
    /// Its `EXTINF`: the grid's segment target, listed before the segment is complete (a
    /// segment that missed the grid gets its own duration once complete).
    pub listed: Duration,
    /// Wall-clock time of its first frame (`EXT-X-PROGRAM-DATE-TIME`).
    pub started: SystemTime,
    /// Its complete parts (emptied once the segment is older than the part window).
    pub parts: Vec<PartEntry>,
    /// The whole segment, once complete.
    pub whole: Option<Chunk>,
}

/// What requests see: the playlists and the media, as of one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The run these names belong to (unix seconds at start), in the segment and part URIs.
    pub epoch: u64,
    pub segments: Vec<SegmentEntry>,
    /// The number the next part will have (the preload hint).
    pub next_part: u64,
    /// Plain HLS: the segments, the one being made last.
    pub plain: Bytes,
    /// Low-Latency HLS: parts, server control, the preload hint.
    pub low_latency: Bytes,
    /// Target duration in whole seconds.
    pub target_duration: u64,
    /// `PART-HOLD-BACK`, in seconds.
    pub part_hold_back: f64,
}

impl Snapshot {
    /// The segment being made, or the last one (the live edge), by media sequence number.
    pub fn edge(&self) -> Option<&SegmentEntry> {
        self.segments.last()
    }

    /// The last complete part: its segment's media sequence number and its index in that
    /// segment (a rendition report's `LAST-MSN` and `LAST-PART`).
    pub fn last_part(&self) -> Option<(u64, u64)> {
        self.segments
            .iter()
            .rev()
            .find(|s| !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() as u64 - 1))
    }

    pub fn has_complete_segment(&self) -> bool {
        self.segments.iter().any(|s| s.whole.is_some())
    }

    /// Whether a blocking reload for segment `msn` (and part `part`, if given) may be
    /// answered: that part (or segment) is complete, or a later segment has begun.
    pub fn reached(&self, msn: u64, part: Option<u64>) -> bool {
        let Some(edge) = self.edge() else {
            return false;
        };
        if edge.msn > msn {
            // Segment msn is complete (or gone from the window: the client is far behind).
            return true;
        }
        if edge.msn < msn {
            return false;
        }
        match part {
            Some(part) => (edge.parts.len() as u64) > part || edge.whole.is_some(),
            None => edge.whole.is_some(),
        }
    }

    pub fn segment(&self, msn: u64) -> Option<&Chunk> {
        self.segments
            .iter()
            .find(|s| s.msn == msn)
            .and_then(|s| s.whole.as_ref())
    }

    /// The segment being made, if it is `msn`.
    pub fn in_progress(&self, msn: u64) -> Option<&SegmentEntry> {
        self.edge().filter(|s| s.msn == msn && s.whole.is_none())
    }

    /// Segment `msn` from byte `from` on, as far as it is made: the rest of the whole
    /// segment once complete, else the rest of its complete parts (a segment is its parts one
    /// after the other). `None` when the window no longer holds it.
    pub fn segment_from(&self, msn: u64, from: usize) -> Option<(Vec<Bytes>, bool)> {
        let segment = self.segments.iter().find(|s| s.msn == msn)?;
        if let Some(whole) = &segment.whole {
            return Some((vec![whole.bytes.slice(from.min(whole.bytes.len())..)], true));
        }
        let mut offset = 0;
        let mut rest = Vec::new();
        for part in &segment.parts {
            let bytes = &part.chunk.bytes;
            let end = offset + bytes.len();
            if end > from {
                rest.push(bytes.slice(from.saturating_sub(offset)..));
            }
            offset = end;
        }
        Some((rest, false))
    }

    pub fn part(&self, number: u64) -> Option<&PartEntry> {
        self.segments
            .iter()
            .rev()
            .flat_map(|s| s.parts.iter())
            .find(|p| p.number == number)
    }
}
