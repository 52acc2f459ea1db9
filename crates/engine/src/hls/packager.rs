//! Cuts the studio's encoded stream into HLS segments and Low-Latency HLS parts, in memory.
//!
//! - Segments end on a grid of the segment target (1 s) from where HLS started. The frame
//!   before a segment is due asks the encoder for a keyframe from the streaming thread, so the
//!   very next frame is one, whatever viewers' keyframe requests did to the encoder's own count
//!   and whatever the publisher's frame rate. A segment is therefore listed before it is made
//!   (the plain playlist names the segment being made, with its duration), and each segment's
//!   listed duration is the grid's: their sum never drifts from the timestamps. A segment that
//!   could not end on the grid (a stall) is listed as it was, and the grid starts again there.
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
pub use super::window::{
    Chunk, PART_HOLD_BACK, PART_SEGMENTS, PART_TARGET, PartEntry, SEGMENTS_KEPT, SegmentEntry,
    Snapshot,
};

/// A part closes at the first frame past this.
const PART_CLOSE: Duration = Duration::from_millis(225);

struct OpenPart {
    start: u64,
    independent: bool,
    bytes: Vec<u8>,
}

/// The segment grid: segment `index` (counted from `origin`, a running time in ns) is due
/// to end at `origin + (index + 1) × target`.
#[derive(Debug, Clone, Copy, Default)]
struct Grid {
    origin: u64,
    index: u64,
}

/// The packager of one studio (its state is behind the stream's lock).
pub struct Packager {
    ts: TsWriter,
    segment_target: Duration,
    epoch: u64,
    segments: VecDeque<SegmentEntry>,
    /// Running time (ns) the open segment began at.
    segment_start: u64,
    grid: Grid,
    /// The last video frame's running time, and the usual gap between frames (ns): when the
    /// next frame is expected.
    last_pts: u64,
    frame_gap: u64,
    part: Option<OpenPart>,
    next_msn: u64,
    next_part: u64,
    /// When (running time) the encoder was asked for this segment's closing keyframe.
    asked: Option<u64>,
    /// `PART-HOLD-BACK` of its low-latency playlist, in seconds.
    part_hold_back: f64,
}

/// What a frame did to the window.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Progress {
    /// A part or segment closed: publish a new snapshot.
    pub published: bool,
    /// The next frame closes the segment: ask the encoder for a keyframe now, from this
    /// thread, before the encoder takes that frame.
    pub want_keyframe: bool,
    /// This frame began a segment, with this media sequence number.
    pub cut: Option<u64>,
}

/// A segment ends on the grid when its closing keyframe is within a frame of it, and never
/// more than this (frames that came late on a starved machine put it off the grid).
const ON_GRID_MAX: u64 = 50_000_000;
/// Frame gaps are taken within these bounds (a stall is no frame rate).
const FRAME_GAP_MIN: u64 = 1_000_000;
const FRAME_GAP_MAX: u64 = 200_000_000;

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
            grid: Grid::default(),
            last_pts: 0,
            frame_gap: 33_333_333,
            part: None,
            // Media sequence numbers start at the clock; names also carry the run (`epoch`),
            // so a later run never reuses a name a cache may still hold.
            next_msn: now,
            next_part: 0,
            asked: None,
            part_hold_back: PART_HOLD_BACK,
        }
    }

    /// Sets the low-latency playlist's `PART-HOLD-BACK` (seconds).
    pub fn set_part_hold_back(&mut self, seconds: f64) {
        self.part_hold_back = seconds;
    }

    /// Forgets the window (HLS stopped): the next run starts at a keyframe, with new names.
    pub fn reset(&mut self) {
        self.segments.clear();
        self.part = None;
        self.asked = None;
        self.epoch = unix_seconds().max(self.epoch + 1);
        self.next_msn = self.next_msn.max(self.epoch);
        self.next_part = 0;
    }

    /// One H.264 access unit at running time `pts` (ns).
    pub fn video(&mut self, access_unit: &[u8], pts: u64, keyframe: bool) -> Progress {
        let mut progress = Progress::default();
        if self.part.is_some() && pts > self.last_pts {
            // A moving average over about 8 frames: one late frame does not move the grid.
            let gap = (pts - self.last_pts).clamp(FRAME_GAP_MIN, FRAME_GAP_MAX) as i64;
            let average = self.frame_gap as i64;
            self.frame_gap = (average + (gap - average) / 8) as u64;
        }
        self.last_pts = pts;
        match &self.part {
            None if !keyframe => return progress,
            None => {
                self.grid = Grid {
                    origin: pts,
                    index: 0,
                };
                progress.cut = Some(self.next_msn);
                self.open_segment(pts);
                progress.published = true;
            }
            Some(part) => {
                let due = self.due();
                let half_frame = self.frame_gap / 2;
                let in_part = Duration::from_nanos(pts.saturating_sub(part.start));
                // The keyframe asked for closes the segment, and so does any keyframe within
                // half a frame of the grid (or past it).
                if keyframe && (self.asked.is_some() || pts + half_frame >= due) {
                    self.close_part(pts);
                    self.close_segment(pts, due);
                    progress.cut = Some(self.next_msn);
                    self.open_segment(pts);
                    progress.published = true;
                } else if keyframe || in_part >= PART_CLOSE {
                    self.close_part(pts);
                    self.open_part(pts, keyframe);
                    progress.published = true;
                }
                // The next frame is expected at or past the grid (within half a frame): it
                // must be a keyframe. Asked again if no keyframe came for half a segment.
                let due = self.due();
                let next = pts + self.frame_gap + self.frame_gap / 2;
                let again = self
                    .asked
                    .is_some_and(|at| pts >= at + self.segment_target.as_nanos() as u64 / 2);
                if (self.asked.is_none() && next >= due) || again {
                    self.asked = Some(pts);
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

    /// One access unit of a rendition that follows another's segments (the light one
    /// follows the main one): a segment begins at a keyframe where the leader began one
    /// (`cut`, its media sequence number), and nowhere else. Parts close as the leader's do.
    pub fn follow(
        &mut self,
        access_unit: &[u8],
        pts: u64,
        keyframe: bool,
        cut: Option<u64>,
    ) -> Progress {
        let mut progress = Progress::default();
        self.last_pts = pts;
        match (&self.part, cut.filter(|_| keyframe)) {
            (None, None) => return progress,
            (None, Some(msn)) => {
                self.next_msn = msn;
                self.open_segment(pts);
                progress.published = true;
            }
            (Some(_), Some(msn)) => {
                self.close_part(pts);
                self.close_followed(pts);
                if msn != self.next_msn {
                    tracing::debug!(
                        expected = self.next_msn,
                        msn,
                        "light rendition missed a segment start"
                    );
                }
                self.next_msn = msn;
                self.open_segment(pts);
                progress.published = true;
            }
            (Some(part), None) => {
                let in_part = Duration::from_nanos(pts.saturating_sub(part.start));
                if keyframe || in_part >= PART_CLOSE {
                    self.close_part(pts);
                    self.open_part(pts, keyframe);
                    progress.published = true;
                }
            }
        }
        if let Some(part) = &mut self.part {
            self.ts
                .video(&mut part.bytes, access_unit, timestamp_90k(pts), keyframe);
        }
        progress
    }

    /// Closes a follower's segment at `pts`, listed as long as it was.
    fn close_followed(&mut self, pts: u64) {
        if let Some(segment) = self.seal(pts) {
            segment.listed = segment
                .whole
                .as_ref()
                .map_or(segment.listed, |w| w.duration);
        }
    }

    /// Makes the open segment whole (its parts joined), ending at `pts`.
    fn seal(&mut self, pts: u64) -> Option<&mut SegmentEntry> {
        let start = self.segment_start;
        let segment = self.segments.back_mut()?;
        let mut whole = Vec::with_capacity(segment.parts.iter().map(|p| p.chunk.bytes.len()).sum());
        for part in &segment.parts {
            whole.extend_from_slice(&part.chunk.bytes);
        }
        let whole = Bytes::from(whole);
        // Its parts become views of the whole: they stay available as long as the segment
        // does, at no cost in memory.
        let mut offset = 0;
        for part in &mut segment.parts {
            let len = part.chunk.bytes.len();
            part.chunk.bytes = whole.slice(offset..offset + len);
            offset += len;
        }
        segment.whole = Some(Chunk {
            bytes: whole,
            duration: Duration::from_nanos(pts.saturating_sub(start)),
            made: SystemTime::now(),
        });
        Some(segment)
    }

    /// The run's name part (segment and part URIs carry it).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Takes another packager's run (a follower names its run as its leader does).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// When (running time, ns) the open segment is due to end.
    fn due(&self) -> u64 {
        self.grid.origin + (self.grid.index + 1) * self.segment_target.as_nanos() as u64
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
            listed: self.segment_target,
            started: SystemTime::now(),
            parts: Vec::new(),
            whole: None,
        });
        self.next_msn += 1;
        self.segment_start = pts;
        self.asked = None;
        self.open_part(pts, true);
        // The window: complete segments beyond the kept number go, and their parts with
        // them. Only the last few segments' parts are listed (the playlist's part window),
        // but a player that fell a little behind may still ask for a part its older playlist
        // named: a 404 there makes hls.js switch renditions, up as readily as down.
        while self.segments.len() > SEGMENTS_KEPT + 1 {
            self.segments.pop_front();
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

    /// Closes the open segment at `pts`; it was due at `due`. Within a frame of it (at most
    /// [`ON_GRID_MAX`]), the segment keeps the grid's duration it was listed with and the
    /// grid goes on; otherwise it is listed as long as it was (from where the grid had it
    /// begin) and the grid starts again at `pts`.
    fn close_segment(&mut self, pts: u64, due: u64) {
        let target = self.segment_target.as_nanos() as u64;
        let on_grid = pts.abs_diff(due) <= self.frame_gap.min(ON_GRID_MAX);
        let nominal_start = due.saturating_sub(target);
        let Some(segment) = self.seal(pts) else {
            return;
        };
        if !on_grid {
            segment.listed = Duration::from_nanos(pts.saturating_sub(nominal_start));
        }
        if on_grid {
            self.grid.index += 1;
        } else {
            self.grid = Grid {
                origin: pts,
                index: 0,
            };
        }
    }

    /// The window as requests see it, with both playlists rendered.
    pub fn snapshot(&self) -> Snapshot {
        let segments: Vec<SegmentEntry> = self.segments.iter().cloned().collect();
        let target_duration = self
            .segments
            .iter()
            .flat_map(|s| [Some(s.listed), s.whole.as_ref().map(|c| c.duration)])
            .flatten()
            .map(|d| d.as_secs_f64().round() as u64)
            .chain([self.segment_target.as_secs_f64().round() as u64])
            .max()
            .unwrap_or(2)
            .max(1);
        let mut snapshot = Snapshot {
            epoch: self.epoch,
            segments,
            next_part: self.next_part,
            target_duration,
            part_hold_back: self.part_hold_back,
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

    /// Feeds frames `from..from + frames` at 30 fps to a packager standing in for the
    /// encoder too: a keyframe every `keyint` frames, at any frame in `forced` (a viewer's
    /// request), and at the frame after the packager asked for one. Returns the frames that
    /// asked.
    fn feed(p: &mut Packager, from: u64, frames: u64, keyint: u64, forced: &[u64]) -> Vec<u64> {
        let pts: Vec<u64> = (from..from + frames)
            .map(|i| i * 1_000_000_000 / 30)
            .collect();
        feed_at(p, from, &pts, keyint, forced)
    }

    /// Like [`feed`], with each frame's running time given (`pts[k]` is frame `from + k`).
    fn feed_at(p: &mut Packager, from: u64, pts: &[u64], keyint: u64, forced: &[u64]) -> Vec<u64> {
        let mut asked = Vec::new();
        let mut ask_pending = false;
        for (k, &pts) in pts.iter().enumerate() {
            let i = from + k as u64;
            let key = i.is_multiple_of(keyint) || forced.contains(&i) || ask_pending;
            let progress = p.video(&[0, 0, 0, 1, 0x65, 1, 2, 3], pts, key);
            p.audio(&[0xFF, 0xF1, 0, 0, 0, 0, 0], pts);
            ask_pending = progress.want_keyframe;
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
        for segment in &s.segments[..4] {
            let whole = segment.whole.as_ref().unwrap();
            assert!((whole.duration.as_secs_f64() - 2.0).abs() < 0.01);
            assert_eq!(segment.listed, Duration::from_secs(2));
            assert_eq!(whole.bytes.len() % 188, 0);
            // Its parts are views of the whole segment, one after the other.
            assert_eq!(
                segment
                    .parts
                    .iter()
                    .flat_map(|p| p.chunk.bytes.iter().copied())
                    .collect::<Vec<u8>>(),
                whole.bytes[..]
            );
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
        // The segment being made is listed with the grid's duration already.
        assert_eq!(s.edge().unwrap().listed, Duration::from_secs(2));
    }

    #[test]
    fn a_viewers_keyframe_starts_an_independent_part_and_the_segment_still_ends_on_the_grid() {
        let mut p = Packager::new(Duration::from_secs(2));
        // A viewer's keyframe at frame 20 restarts the encoder's count: its next natural
        // keyframe would be at 80 (2.67 s). The frame before 2 s asks for one.
        let asked = feed(&mut p, 0, 62, 1000, &[0, 20]);
        assert_eq!(asked, vec![59]);
        let s = p.snapshot();
        assert!(
            s.segments[0]
                .parts
                .iter()
                .any(|p| p.independent && p.number > 0)
        );
        let first = &s.segments[0];
        let whole = first.whole.as_ref().unwrap();
        assert!((whole.duration.as_secs_f64() - 2.0).abs() < 0.001);
        assert_eq!(first.listed, Duration::from_secs(2));
    }

    #[test]
    fn at_25_fps_with_jitter_segments_end_on_the_grid_and_the_listed_durations_never_drift() {
        let mut p = Packager::new(Duration::from_secs(1));
        // 25 fps (the encoder's own count of 30 frames would be 1.2 s), each frame up to 9 ms
        // early or late, and a viewer's keyframe now and then.
        let frames = 25 * 19;
        let pts: Vec<u64> = (0..frames)
            .map(|i| i * 40_000_000 + 11_000_000 + (i * 7_919 % 19) * 1_000_000)
            .collect();
        feed_at(&mut p, 0, &pts, 30, &[37, 111, 203, 204, 349]);
        let s = p.snapshot();
        let complete: Vec<&SegmentEntry> =
            s.segments.iter().filter(|s| s.whole.is_some()).collect();
        assert_eq!(complete.len(), 18);
        let mut listed = Duration::ZERO;
        for segment in &complete {
            assert_eq!(segment.listed, Duration::from_secs(1));
            let actual = segment.whole.as_ref().unwrap().duration.as_secs_f64();
            assert!(
                (actual - 1.0).abs() <= 0.04 + 0.019,
                "a segment of {actual} s"
            );
            listed += segment.listed;
        }
        // The listed durations add up to the time the segments span, within a frame.
        let span: f64 = complete
            .iter()
            .map(|s| s.whole.as_ref().unwrap().duration.as_secs_f64())
            .sum();
        assert!(
            (span - listed.as_secs_f64()).abs() < 0.04,
            "{span} against {listed:?}"
        );
    }

    #[test]
    fn a_stall_is_listed_as_long_as_it_was_and_the_grid_starts_again_after_it() {
        let mut p = Packager::new(Duration::from_secs(1));
        // 2 s of 30 fps, then no picture for 1.5 s, then 3 s more.
        let mut pts: Vec<u64> = (0..60).map(|i| i * 1_000_000_000 / 30).collect();
        let resume = 3_500_000_000;
        pts.extend((0..90).map(|i| resume + i * 1_000_000_000 / 30));
        let asked = feed_at(&mut p, 0, &pts, 1000, &[0]);
        let s = p.snapshot();
        let listed: Vec<f64> = s
            .segments
            .iter()
            .filter(|s| s.whole.is_some())
            .map(|s| s.listed.as_secs_f64())
            .collect();
        // 0–1 s on the grid; the next one was due at 2 s, and the keyframe its last frame
        // asked for is the first frame back, at 3.5 s; then the grid starts there.
        assert_eq!(listed, vec![1.0, 2.5, 1.0, 1.0], "asked at {asked:?}");
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
    fn the_segment_being_made_reads_as_its_parts_so_far_and_then_as_the_whole() {
        let mut p = Packager::new(Duration::from_secs(1));
        feed(&mut p, 0, 45, 30, &[]);
        let s = p.snapshot();
        let edge = s.edge().unwrap();
        assert!(s.in_progress(edge.msn).is_some());
        assert!(s.in_progress(edge.msn - 1).is_none());
        let (so_far, complete) = s.segment_from(edge.msn, 0).unwrap();
        assert!(!complete);
        let so_far: Vec<u8> = so_far.concat();
        let first_part = edge.parts[0].chunk.bytes.len();
        let (rest, _) = s.segment_from(edge.msn, first_part + 10).unwrap();
        assert_eq!(rest.concat(), so_far[first_part + 10..]);
        let msn = edge.msn;
        feed(&mut p, 45, 20, 30, &[]);
        let s = p.snapshot();
        let (whole, complete) = s.segment_from(msn, 0).unwrap();
        assert!(complete);
        assert_eq!(whole.concat()[..so_far.len()], so_far[..]);
        assert_eq!(whole.concat(), s.segment(msn).unwrap().bytes[..]);
        assert!(s.segment_from(msn + 5, 0).is_none());
    }

    #[test]
    fn the_window_is_bounded_and_a_restart_never_reuses_a_name() {
        let mut p = Packager::new(Duration::from_secs(2));
        feed(&mut p, 0, 30 * 60, 60, &[]);
        let s = p.snapshot();
        assert_eq!(s.segments.len(), SEGMENTS_KEPT + 1);
        // Every kept segment's parts are still served; only the last ones' are listed.
        assert!(s.segments.iter().all(|s| !s.parts.is_empty()));
        let oldest_part = s.segments[0].parts[0].number;
        assert!(s.part(oldest_part).is_some());
        let listed = s.low_latency.clone();
        let listed = std::str::from_utf8(&listed).unwrap();
        assert!(!listed.contains(&format!("p{}.{oldest_part}.ts", s.epoch)));
        let with_parts = s
            .segments
            .iter()
            .filter(|seg| {
                let first = seg.parts[0].number;
                listed.contains(&format!("\"p{}.{first}.ts\"", s.epoch))
            })
            .count();
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

    #[test]
    fn the_playlists_list_what_the_window_holds() {
        let mut p = Packager::new(Duration::from_secs(2));
        for i in 0..140u64 {
            p.video(&[0, 0, 0, 1, 0x65], i * 33_333_333, i % 60 == 0);
        }
        let s = p.snapshot();
        let plain = String::from_utf8(s.plain.to_vec()).unwrap();
        let ll = String::from_utf8(s.low_latency.to_vec()).unwrap();
        let first = s.segments[0].msn;
        assert!(plain.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"));
        assert!(plain.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n")));
        // Two complete segments and the one being made.
        assert_eq!(plain.matches("#EXTINF:2.00000,").count(), 3);
        assert!(
            plain.ends_with(&format!("s{}.{}.ts\n", s.epoch, first + 2)),
            "{plain}"
        );
        assert!(!plain.contains("EXT-X-PART"));
        assert!(ll.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.750\n"));
        assert!(ll.contains("#EXT-X-PART-INF:PART-TARGET=0.25000\n"));
        assert_eq!(ll.matches("#EXTINF:").count(), 2);
        assert_eq!(ll.matches(",INDEPENDENT=YES").count(), 3);
        let hint = format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p{}.{}.ts\"\n",
            s.epoch, s.next_part
        );
        assert!(ll.ends_with(&hint), "{ll}");
        // Each part is listed once, in order, before its segment's EXTINF.
        let numbers: Vec<u64> = ll
            .lines()
            .filter_map(|l| l.split(&format!("URI=\"p{}.", s.epoch)).nth(1))
            .filter_map(|r| r.split('.').next()?.parse().ok())
            .collect();
        assert_eq!(numbers, (0..=s.next_part).collect::<Vec<_>>());
    }
}
