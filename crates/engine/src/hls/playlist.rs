//! The playlists of a studio's HLS: per rendition, two media playlists, plain (whole
//! segments, the one being made last, for any player and any cache) and Low-Latency (RFC
//! 8216bis: parts, blocking reload, a preload hint, a report on the other rendition); over
//! both, the multivariant playlist.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::window::{PART_SEGMENTS, PART_TARGET, SegmentEntry, Snapshot};

/// URI of a whole segment, relative to the playlist. Like a part's, it names the run: a
/// restarted server counts media sequence numbers from the clock again, and a cache must
/// never answer a new segment with an old one.
pub fn segment_uri(epoch: u64, msn: u64) -> String {
    format!("s{epoch}.{msn}.ts")
}

/// URI of a part, relative to the playlist.
pub fn part_uri(epoch: u64, number: u64) -> String {
    format!("p{epoch}.{number}.ts")
}

fn head(out: &mut String, version: u8, target_duration: u64) {
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{target_duration}\n"
    );
}

fn segment(out: &mut String, epoch: u64, segment: &SegmentEntry, duration: Duration) {
    let _ = write!(
        out,
        "#EXTINF:{:.5},\n{}\n",
        duration.as_secs_f64(),
        segment_uri(epoch, segment.msn)
    );
}

/// Plain HLS: the segments of the window, the one being made last. That one is listed
/// before it is complete (its duration is the grid's, see `packager.rs`) and sent as it is
/// made, so a player that starts three segments from the end starts a segment nearer the
/// live edge.
pub fn plain(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(1024);
    head(&mut out, 3, snapshot.target_duration);
    if let Some(first) = snapshot.segments.first() {
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.msn);
    }
    for s in &snapshot.segments {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(s.started));
        segment(&mut out, snapshot.epoch, s, s.listed);
    }
    out
}

/// Low-Latency HLS: the window with the parts of its last segments, the one being made
/// last, and a hint at the next part.
pub fn low_latency(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    head(&mut out, 6, snapshot.target_duration);
    let _ = write!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={:.5}\n",
        snapshot.part_hold_back,
        PART_TARGET.as_secs_f64()
    );
    if let Some(first) = snapshot.segments.first() {
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.msn);
    }
    // Parts are listed for the last few segments only; older ones stay served.
    let list_parts_from = snapshot.segments.len().saturating_sub(PART_SEGMENTS + 1);
    for (i, s) in snapshot.segments.iter().enumerate() {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(s.started));
        let parts = if i >= list_parts_from {
            &s.parts[..]
        } else {
            &[]
        };
        for part in parts {
            let _ = writeln!(
                out,
                "#EXT-X-PART:DURATION={:.5},URI=\"{}\"{}",
                part.chunk.duration.as_secs_f64(),
                part_uri(snapshot.epoch, part.number),
                if part.independent {
                    ",INDEPENDENT=YES"
                } else {
                    ""
                }
            );
        }
        // Complete segments only, each as long as its parts: a low-latency player times
        // the parts it has played against the segment that replaces them.
        if let Some(whole) = &s.whole {
            segment(&mut out, snapshot.epoch, s, whole.duration);
        }
    }
    if !snapshot.segments.is_empty() {
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            part_uri(snapshot.epoch, snapshot.next_part)
        );
    }
    out
}

/// One segment of a recording, as its playlist lists it.
#[derive(Debug, Clone)]
pub struct RecordedSegment {
    pub uri: String,
    pub duration: Duration,
    /// Wall-clock time of its first frame.
    pub started: SystemTime,
    /// It follows a restart of the stream (a new timeline).
    pub discontinuity: bool,
}

/// A recording's playlist head: an `EVENT` playlist grows while the show is live, and a
/// finished recording is one `VOD` playlist (`complete`). Segments follow with
/// [`recorded_segment`]; a complete one ends with `#EXT-X-ENDLIST`.
pub fn recording_head(target_duration: u64, complete: bool) -> String {
    let mut out = String::new();
    head(&mut out, 3, target_duration);
    let kind = if complete { "VOD" } else { "EVENT" };
    let _ = write!(
        out,
        "#EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    out
}

pub fn recorded_segment(out: &mut String, s: &RecordedSegment) {
    if s.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    let _ = write!(
        out,
        "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.5},\n{}\n",
        iso8601(s.started),
        s.duration.as_secs_f64(),
        s.uri
    );
}

/// A finished recording: every segment, and the end.
pub fn recording(segments: &[RecordedSegment]) -> String {
    let longest = segments
        .iter()
        .map(|s| s.duration.as_secs_f64().round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = recording_head(longest, true);
    for s in segments {
        recorded_segment(&mut out, s);
    }
    out.push_str(ENDLIST);
    out
}

/// Ends a playlist: no more segments follow.
pub const ENDLIST: &str = "#EXT-X-ENDLIST\n";

/// One variant of the multivariant playlist.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Its media playlist, relative to the multivariant one.
    pub uri: String,
    /// Peak and average bits per second, audio and container included.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// RFC 6381 codecs, e.g. `avc1.42e01f,mp4a.40.2`.
    pub codecs: String,
}

/// The multivariant playlist: every variant with what a player picks by.
pub fn multivariant(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},FRAME-RATE={:.3},CODECS=\"{}\"\n{}\n",
            v.bandwidth, v.average_bandwidth, v.width, v.height, v.fps as f64, v.codecs, v.uri
        );
    }
    out
}

/// A rendition report (RFC 8216bis 4.4.5.4): where another rendition's live edge is, so a
/// player switching to it asks for the right part at once.
pub fn rendition_report(uri: &str, (msn, part): (u64, u64)) -> String {
    format!("#EXT-X-RENDITION-REPORT:URI=\"{uri}\",LAST-MSN={msn},LAST-PART={part}\n")
}

/// `2026-12-01T21:05:08.123Z`.
pub fn iso8601(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multivariant_playlist_lists_each_variant_with_what_players_pick_by() {
        let v = |uri: &str, bandwidth, width, height, codecs: &str| Variant {
            uri: uri.into(),
            bandwidth,
            average_bandwidth: bandwidth * 9 / 10,
            width,
            height,
            fps: 30,
            codecs: codecs.into(),
        };
        let text = multivariant(&[
            v("ll.m3u8", 2_900_000, 1280, 720, "avc1.42c01f,mp4a.40.2"),
            v("light/ll.m3u8", 800_000, 640, 360, "avc1.42c01e,mp4a.40.2"),
        ]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2900000,AVERAGE-BANDWIDTH=2610000,RESOLUTION=1280x720,FRAME-RATE=30.000,CODECS=\"avc1.42c01f,mp4a.40.2\"\nll.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=720000,RESOLUTION=640x360,FRAME-RATE=30.000,CODECS=\"avc1.42c01e,mp4a.40.2\"\nlight/ll.m3u8\n"
        );
        assert_eq!(
            rendition_report("../ll.m3u8", (7, 2)),
            "#EXT-X-RENDITION-REPORT:URI=\"../ll.m3u8\",LAST-MSN=7,LAST-PART=2\n"
        );
    }

    #[test]
    fn dates_are_iso_8601_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_158_508_123);
        assert_eq!(iso8601(t), "2026-12-01T20:55:08.123Z");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000Z");
    }
}
