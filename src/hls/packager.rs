//! Cuts the studio's encoded stream into HLS segments and Low-Latency HLS parts, in memory.
//!
//! - A segment begins at a keyframe, once the one before it has lasted about the segment
//!   target (the encoder's keyframe interval). If the encoder's keyframe is late (a viewer's
//!   keyframe request restarted its count), the packager asks for one.
//! - A part closes after about 233 ms of video, or where a keyframe begins (that part is
//!   `INDEPENDENT`). Parts are named by one counter across segments, so the part the
//!   playlist hints at exists whatever segment it lands in.
//! - The window holds [`SEGMENTS_KEPT`] segments; parts are kept for the last
//!   [`PART_SEGMENTS`] of them (the playlist lists no older ones).
//!
//! Every change publishes a new [`Snapshot`]: both playlists rendered once, and the bytes
//! requests are answered from. Requests never take the packager's lock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::ts::{TsWriter, timestamp_90k};

/// Target duration of a part; a part closes at the first frame past [`PART_CLOSE`] (7
/// frames, 233 ms, at 30 fps).
pub const PART_TARGET: Duration = Duration::from_millis(250);
const PART_CLOSE: Duration = Duration::from_millis(225);
/// `PART-HOLD-BACK`: three part targets, as the specification recommends.
pub const PART_HOLD_BACK: f64 = 0.75;
/// Complete segments kept (20 s at 1 s segments): the plain playlist lists them all.
pub const SEGMENTS_KEPT: usize = 20;
/// Segments whose parts are kept and listed (and the one being made).
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
    /// Plain HLS: complete segments only.
    pub plain: Bytes,
    /// Low-Latency HLS: parts, server control, the preload hint.
    pub low_latency: Bytes,
    /// Target duration in whole seconds.
    pub target_duration: u64,
}

impl Snapshot {
    /// The segment being made, or the last one (the live edge), by media sequence number.
    pub fn edge(&self) -> Option<&SegmentEntry> {
        self.segments.last()
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

    pub fn part(&self, number: u64) -> Option<&PartEntry> {
        self.segments
            .iter()
            .rev()
            .flat_map(|s| s.parts.iter())
            .find(|p| p.number == number)
    }
}

struct OpenPart {
    start: u64,
    independent: bool,
    bytes: Vec<u8>,
}

/// The packager of one studio (its state is behind the stream's lock).
pub struct Packager {
    ts: TsWriter,
    segment_target: Duration,
    epoch: u64,
    segments: VecDeque<SegmentEntry>,
    /// Running time (ns) the open segment began at.
    segment_start: u64,
    part: Option<OpenPart>,
    next_msn: u64,
    next_part: u64,
    /// Asked the encoder for this segment's closing keyframe already.
    asked: bool,
}

/// What a frame did to the window.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Progress {
    /// A part or segment closed: publish a new snapshot.
    pub published: bool,
    /// The segment is due and no keyframe came: ask the encoder for one.
    pub want_keyframe: bool,
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Packager {
    /// `segment_target`: the encoder's keyframe interval.
    pub fn new(segment_target: Duration) -> Self {
        let now = unix_seconds();
        Self {
            ts: TsWriter::default(),
            segment_target,
            epoch: now,
            segments: VecDeque::new(),
            segment_start: 0,
            part: None,
            // Media sequence numbers start at the clock; names also carry the run (`epoch`),
            // so a later run never reuses a name a cache may still hold.
            next_msn: now,
            next_part: 0,
            asked: false,
        }
    }

    /// Forgets the window (HLS stopped): the next run starts at a keyframe, with new names.
    pub fn reset(&mut self) {
        self.segments.clear();
        self.part = None;
        self.asked = false;
        self.epoch = unix_seconds().max(self.epoch + 1);
        self.next_msn = self.next_msn.max(self.epoch);
        self.next_part = 0;
    }

    /// One H.264 access unit at running time `pts` (ns).
    pub fn video(&mut self, access_unit: &[u8], pts: u64, keyframe: bool) -> Progress {
        let mut progress = Progress::default();
        match &self.part {
            None if !keyframe => return progress,
            None => self.open_segment(pts),
            Some(part) => {
                let in_segment = Duration::from_nanos(pts.saturating_sub(self.segment_start));
                let in_part = Duration::from_nanos(pts.saturating_sub(part.start));
                if keyframe && in_segment + PART_TARGET / 2 >= self.segment_target {
                    self.close_part(pts);
                    self.close_segment(pts);
                    self.open_segment(pts);
                    progress.published = true;
                } else if keyframe || in_part >= PART_CLOSE {
                    self.close_part(pts);
                    self.open_part(pts, keyframe);
                    progress.published = true;
                }
                if !keyframe && in_segment >= self.segment_target && !self.asked {
                    self.asked = true;
                    progress.want_keyframe = true;
                }
            }
        }
        if let Some(part) = &mut self.part {
            self.ts
                .video(&mut part.bytes, access_unit, timestamp_90k(pts), keyframe);
        }
        progress
    }

    /// One ADTS frame at running time `pts` (ns); it joins the part being made.
    pub fn audio(&mut self, adts: &[u8], pts: u64) {
        if let Some(part) = &mut self.part {
            self.ts.audio(&mut part.bytes, adts, timestamp_90k(pts));
        }
    }

    fn open_segment(&mut self, pts: u64) {
        self.segments.push_back(SegmentEntry {
            msn: self.next_msn,
            started: SystemTime::now(),
            parts: Vec::new(),
            whole: None,
        });
        self.next_msn += 1;
        self.segment_start = pts;
        self.asked = false;
        self.open_part(pts, true);
        // The window: complete segments beyond the kept number go; parts of segments
        // beyond the part window go (their whole segment stays).
        while self.segments.len() > SEGMENTS_KEPT + 1 {
            self.segments.pop_front();
        }
        let keep_parts_from = self.segments.len().saturating_sub(PART_SEGMENTS + 1);
        for segment in self.segments.iter_mut().take(keep_parts_from) {
            segment.parts = Vec::new();
        }
    }

    fn open_part(&mut self, pts: u64, independent: bool) {
        let mut bytes = Vec::with_capacity(128 * 1024);
        self.ts.tables(&mut bytes);
        self.part = Some(OpenPart {
            start: pts,
            independent,
            bytes,
        });
    }

    fn close_part(&mut self, pts: u64) {
        let Some(part) = self.part.take() else { return };
        let Some(segment) = self.segments.back_mut() else {
            return;
        };
        segment.parts.push(PartEntry {
            number: self.next_part,
            independent: part.independent,
            chunk: Chunk {
                bytes: Bytes::from(part.bytes),
                duration: Duration::from_nanos(pts.saturating_sub(part.start)),
                made: SystemTime::now(),
            },
        });
        self.next_part += 1;
    }

    fn close_segment(&mut self, pts: u64) {
        let Some(segment) = self.segments.back_mut() else {
            return;
        };
        let mut whole = Vec::with_capacity(segment.parts.iter().map(|p| p.chunk.bytes.len()).sum());
        for part in &segment.parts {
            whole.extend_from_slice(&part.chunk.bytes);
        }
        segment.whole = Some(Chunk {
            bytes: Bytes::from(whole),
            duration: Duration::from_nanos(pts.saturating_sub(self.segment_start)),
            made: SystemTime::now(),
        });
    }

    /// The window as requests see it, with both playlists rendered.
    pub fn snapshot(&self) -> Snapshot {
        let segments: Vec<SegmentEntry> = self.segments.iter().cloned().collect();
        let target_duration = self
            .segments
            .iter()
            .filter_map(|s| s.whole.as_ref())
            .map(|c| c.duration.as_secs_f64().round() as u64)
            .chain([self.segment_target.as_secs_f64().round() as u64])
            .max()
            .unwrap_or(2)
            .max(1);
        let mut snapshot = Snapshot {
            epoch: self.epoch,
            segments,
            next_part: self.next_part,
            target_duration,
            ..Snapshot::default()
        };
        snapshot.plain = Bytes::from(super::playlist::plain(&snapshot));
        snapshot.low_latency = Bytes::from(super::playlist::low_latency(&snapshot));
        snapshot
    }
}

/// A shared snapshot.
pub type Published = Arc<Snapshot>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of 30 fps video with a keyframe every `keyint` frames (and at any
    /// frame in `forced`), and a 21.3 ms audio frame alongside.
    fn feed(p: &mut Packager, from: u64, frames: u64, keyint: u64, forced: &[u64]) -> Vec<u64> {
        let mut asked = Vec::new();
        for i in from..from + frames {
            let key = i % keyint == 0 || forced.contains(&i);
            let pts = i * 1_000_000_000 / 30;
            let progress = p.video(&[0, 0, 0, 1, 0x65, 1, 2, 3], pts, key);
            p.audio(&[0xFF, 0xF1, 0, 0, 0, 0, 0], pts);
            if progress.want_keyframe {
                asked.push(i);
            }
        }
        asked
    }

    #[test]
    fn segments_start_at_keyframes_and_parts_last_about_233_ms() {
        let mut p = Packager::new(Duration::from_secs(2));
        // Starts at the first keyframe: frames before it are not kept.
        feed(&mut p, 55, 5 + 60 * 5, 60, &[]);
        let s = p.snapshot();
        assert_eq!(s.segments.len(), 5, "4 complete + the one being made");
        for (i, segment) in s.segments[..4].iter().enumerate() {
            let whole = segment.whole.as_ref().unwrap();
            assert!((whole.duration.as_secs_f64() - 2.0).abs() < 0.01);
            assert_eq!(whole.bytes.len() % 188, 0);
            // The oldest segment's parts are out of the part window.
            assert_eq!(segment.parts.is_empty(), i == 0);
            if i == 0 {
                continue;
            }
            assert_eq!(
                segment
                    .parts
                    .iter()
                    .map(|p| p.chunk.bytes.len())
                    .sum::<usize>(),
                whole.bytes.len()
            );
            assert!(
                segment
                    .parts
                    .iter()
                    .all(|p| p.chunk.duration <= PART_TARGET)
            );
            assert!(segment.parts[0].independent);
            assert!(segment.parts[1..].iter().all(|p| !p.independent));
        }
        let numbers: Vec<u64> = s
            .segments
            .iter()
            .flat_map(|s| s.parts.iter().map(|p| p.number))
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(s.next_part, numbers.last().unwrap() + 1);
    }

    #[test]
    fn a_forced_keyframe_starts_an_independent_part_and_the_packager_asks_for_the_late_one() {
        let mut p = Packager::new(Duration::from_secs(2));
        // A viewer's keyframe at frame 20 restarts the encoder's count: its next natural
        // keyframe would be at 80 (2.67 s). The packager asks at 2 s.
        let asked = feed(&mut p, 0, 62, 1000, &[0, 20]);
        assert_eq!(asked, vec![60]);
        let s = p.snapshot();
        let parts = &s.segments[0].parts;
        assert!(parts.iter().any(|p| p.independent && p.number > 0));
        // The encoder answers with a keyframe at 62: the segment closes there.
        feed(&mut p, 62, 3, 1000, &[62]);
        let s = p.snapshot();
        let first = s.segments[0].whole.as_ref().unwrap();
        assert!((first.duration.as_secs_f64() - 62.0 / 30.0).abs() < 0.01);
    }

    #[test]
    fn blocking_reloads_wait_for_the_part_or_a_later_segment() {
        let mut p = Packager::new(Duration::from_secs(2));
        feed(&mut p, 0, 70, 60, &[]);
        let s = p.snapshot();
        let edge = s.edge().unwrap().msn;
        let complete = s.edge().unwrap().parts.len() as u64;
        assert!(s.reached(edge - 1, None));
        assert!(s.reached(edge - 1, Some(40)));
        assert!(s.reached(edge, Some(complete - 1)));
        assert!(!s.reached(edge, Some(complete)));
        assert!(!s.reached(edge, None));
        assert!(!s.reached(edge + 1, Some(0)));
    }

    #[test]
    fn the_window_is_bounded_and_a_restart_never_reuses_a_name() {
        let mut p = Packager::new(Duration::from_secs(2));
        feed(&mut p, 0, 30 * 60, 60, &[]);
        let s = p.snapshot();
        assert_eq!(s.segments.len(), SEGMENTS_KEPT + 1);
        let with_parts = s.segments.iter().filter(|s| !s.parts.is_empty()).count();
        assert_eq!(with_parts, PART_SEGMENTS + 1);
        let last_msn = s.edge().unwrap().msn;
        let epoch = s.epoch;
        p.reset();
        feed(&mut p, 2000, 5, 60, &[2000]);
        let s = p.snapshot();
        assert!(s.edge().unwrap().msn > last_msn);
        assert!(s.epoch > epoch);
        assert_eq!(s.segments.len(), 1);
    }
}
