//! What the ingest path sees of each session's publisher, for `GET
//! /api/v1/sessions/{id}/ingest` and the console: connected or not, since when and from
//! where (masked), codec, profile, picture size, frame rate, bitrate over the last 5 s,
//! keyframe interval, B-frames, dropped frames and reconnects.
//!
//! Each connection records into its session's entry as media arrives: a few integer updates
//! under an uncontended lock per message, in constant memory (a ring of frame timestamps and
//! 100 ms byte buckets), whatever the publisher sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use fieldcast_core::flv::VideoCodec;

/// Bitrate is averaged over this window.
const WINDOW_MS: u64 = 5_000;
/// Width of one byte bucket.
const BUCKET_MS: u64 = 100;
const BUCKETS: usize = (WINDOW_MS / BUCKET_MS) as usize;
/// Frame timestamps kept for the frame rate.
const FRAME_RING: usize = 64;

/// Every session's ingest, by session id. Entries live as long as the server (a few
/// integers each) so reconnects are counted across connections.
#[derive(Default)]
pub struct IngestBoard {
    sessions: Mutex<HashMap<String, Arc<Mutex<SessionIngest>>>>,
}

#[derive(Default)]
struct SessionIngest {
    /// Publishes accepted since the server started; every one after the first is a reconnect.
    publishes: u64,
    publisher: Option<Publisher>,
    last_left_ms: Option<i64>,
}

struct Publisher {
    generation: u64,
    since_ms: i64,
    started: Instant,
    address: String,
    transport: &'static str,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    size: Option<(u32, u32)>,
    /// Bytes per 100 ms bucket: (bucket number since `started`, bytes).
    bytes: [(u64, u64); BUCKETS],
    /// Publisher timestamps (ms) of the last video frames, oldest overwritten first.
    frame_ts: [u64; FRAME_RING],
    frames: u64,
    last_keyframe_ms: Option<u64>,
    keyframe_interval_ms: Option<u64>,
    b_frames: u64,
    dropped: u64,
    /// WHIP: the link's loss (0–1) and round-trip time.
    loss: Option<f64>,
    rtt_ms: Option<f64>,
}

#[derive(Clone)]
struct VideoConfig {
    codec: &'static str,
    profile: String,
    level: String,
}

#[derive(Clone, Copy)]
struct AudioConfig {
    codec: &'static str,
    sample_rate: u32,
    channels: u8,
}

/// What `GET /api/v1/sessions/{id}/ingest` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestView {
    /// A publisher is connected and its publish was accepted.
    pub connected: bool,
    /// When it connected (Unix ms).
    pub since_ms: Option<i64>,
    /// Its address with the host part hidden (`203.0.x.x`).
    pub address: Option<String>,
    /// How it publishes: `rtmp`, `srt` or `whip`.
    pub transport: Option<&'static str>,
    pub video: Option<VideoView>,
    pub audio: Option<AudioView>,
    /// Audio and video payload over the last 5 s (or since it connected, if sooner).
    pub bitrate_kbps: Option<u64>,
    /// Video frames received from this publisher.
    pub frames: u64,
    /// Frames not decoded: before the first keyframe (after a start or a decoder restart), or
    /// before any sequence header.
    pub dropped_frames: u64,
    /// Publishes accepted for this session since the server started, less the first.
    pub reconnects: u64,
    /// WHIP: packets lost on the publisher's link, in percent (from the receiver reports).
    pub loss_percent: Option<f64>,
    /// WHIP: the round-trip time to the publisher, where its reports tell it.
    pub rtt_ms: Option<f64>,
    /// When the last publisher left (Unix ms), if one did.
    pub last_left_ms: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoView {
    /// `H.264`, `HEVC` or `AV1`.
    pub codec: &'static str,
    /// From the sequence header: `Baseline`, `Constrained Baseline`, `Main`, `High`, … for
    /// H.264; `Main`, `Main 10`, … for HEVC; `Main`, `High`, `Professional` for AV1.
    pub profile: String,
    /// `3.1`, `4.0`, …
    pub level: String,
    /// The decoded picture size, once the decoder has reported it.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// From the publisher's timestamps over its last 64 frames.
    pub fps: Option<f64>,
    /// Between its last two keyframes.
    pub keyframe_interval_s: Option<f64>,
    /// Frames whose presentation time differs from their decode time (reordered frames).
    pub b_frames: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AudioView {
    /// `AAC` (RTMP, SRT) or `Opus` (WHIP).
    pub codec: &'static str,
    /// 0 where the stream does not say (SRT, until decoded).
    pub sample_rate: u32,
    pub channels: u8,
}

/// One connection's handle on its session's entry; it marks the publisher gone when dropped.
pub struct PublisherWatch {
    entry: Arc<Mutex<SessionIngest>>,
    generation: u64,
}

impl IngestBoard {
    /// Per session: (session id, publisher connected, reconnects), for `/metrics`.
    pub fn summary(&self) -> Vec<(String, bool, u64)> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .iter()
            .map(|(id, entry)| {
                let e = entry.lock().unwrap_or_else(|e| e.into_inner());
                (
                    id.clone(),
                    e.publisher.is_some(),
                    e.publishes.saturating_sub(1),
                )
            })
            .collect()
    }

    fn entry(&self, session_id: &str) -> Arc<Mutex<SessionIngest>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.entry(session_id.to_string()).or_default().clone()
    }

    /// A publish was accepted: from now on this connection is the session's publisher.
    /// A publisher's connection was accepted; `transport` is `rtmp`, `srt` or `whip`.
    pub fn publisher(
        &self,
        session_id: &str,
        masked_address: String,
        transport: &'static str,
    ) -> PublisherWatch {
        let entry = self.entry(session_id);
        let generation = {
            let mut e = entry.lock().unwrap_or_else(|e| e.into_inner());
            e.publishes += 1;
            e.publisher = Some(Publisher {
                generation: e.publishes,
                since_ms: unix_ms(),
                started: Instant::now(),
                address: masked_address,
                transport,
                video: None,
                audio: None,
                size: None,
                bytes: [(u64::MAX, 0); BUCKETS],
                frame_ts: [0; FRAME_RING],
                frames: 0,
                last_keyframe_ms: None,
                keyframe_interval_ms: None,
                b_frames: 0,
                dropped: 0,
                loss: None,
                rtt_ms: None,
            });
            e.publishes
        };
        PublisherWatch { entry, generation }
    }

    /// The session's ingest as it is now.
    pub fn view(&self, session_id: &str) -> IngestView {
        let entry = self.entry(session_id);
        let e = entry.lock().unwrap_or_else(|e| e.into_inner());
        let reconnects = e.publishes.saturating_sub(1);
        let Some(p) = &e.publisher else {
            return IngestView {
                connected: false,
                since_ms: None,
                address: None,
                transport: None,
                video: None,
                audio: None,
                bitrate_kbps: None,
                frames: 0,
                dropped_frames: 0,
                reconnects,
                loss_percent: None,
                rtt_ms: None,
                last_left_ms: e.last_left_ms,
            };
        };
        IngestView {
            connected: true,
            since_ms: Some(p.since_ms),
            address: Some(p.address.clone()),
            transport: Some(p.transport),
            video: p.video.clone().map(|v| VideoView {
                codec: v.codec,
                profile: v.profile,
                level: v.level,
                width: p.size.map(|s| s.0),
                height: p.size.map(|s| s.1),
                fps: p.fps(),
                keyframe_interval_s: p.keyframe_interval_ms.map(|ms| ms as f64 / 1000.0),
                b_frames: p.b_frames,
            }),
            audio: p.audio.map(|a| AudioView {
                codec: a.codec,
                sample_rate: a.sample_rate,
                channels: a.channels,
            }),
            bitrate_kbps: Some(p.bitrate_kbps()),
            frames: p.frames,
            dropped_frames: p.dropped,
            reconnects,
            loss_percent: p.loss.map(|l| (l * 1000.0).round() / 10.0),
            rtt_ms: p.rtt_ms.map(|r| r.round()),
            last_left_ms: e.last_left_ms,
        }
    }
}

impl Publisher {
    fn bucket_now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 / BUCKET_MS
    }

    fn add_bytes(&mut self, n: usize) {
        let now = self.bucket_now();
        let slot = &mut self.bytes[(now % BUCKETS as u64) as usize];
        if slot.0 != now {
            *slot = (now, 0);
        }
        slot.1 += n as u64;
    }

    fn bitrate_kbps(&self) -> u64 {
        let now = self.bucket_now();
        let bytes: u64 = self
            .bytes
            .iter()
            .filter(|(bucket, _)| *bucket != u64::MAX && now - *bucket < BUCKETS as u64)
            .map(|(_, b)| b)
            .sum();
        let window_ms = (self.started.elapsed().as_millis() as u64).clamp(BUCKET_MS, WINDOW_MS);
        bytes * 8 / window_ms
    }

    fn fps(&self) -> Option<f64> {
        let n = (self.frames as usize).min(FRAME_RING);
        if n < 2 {
            return None;
        }
        let newest = self.frame_ts[((self.frames - 1) % FRAME_RING as u64) as usize];
        let oldest = self.frame_ts[((self.frames - n as u64) % FRAME_RING as u64) as usize];
        let span = newest.checked_sub(oldest).filter(|s| *s > 0)?;
        Some(((n - 1) as f64 * 1000.0 / span as f64 * 100.0).round() / 100.0)
    }
}

impl PublisherWatch {
    fn with(&self, f: impl FnOnce(&mut Publisher)) {
        let mut e = self.entry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = e
            .publisher
            .as_mut()
            .filter(|p| p.generation == self.generation)
        {
            f(p);
        }
    }

    /// A decoder configuration record (already checked by the FLV parser): `avcC`, `hvcC`
    /// or `av1C`.
    pub fn video_config(&self, codec: VideoCodec, record: &[u8]) {
        let config = match (codec, record) {
            (VideoCodec::Avc, &[_, profile_idc, compatibility, level_idc, ..]) => VideoConfig {
                codec: codec.name(),
                profile: avc_profile_name(profile_idc, compatibility & 0x40 != 0).into(),
                level: format!("{}.{}", level_idc / 10, level_idc % 10),
            },
            // general_profile_idc in the low 5 bits of byte 1; general_level_idc (30 × the
            // level) at byte 12.
            (VideoCodec::Hevc, _) if record.len() >= 13 => VideoConfig {
                codec: codec.name(),
                profile: hevc_profile_name(record[1] & 0x1F).into(),
                level: format!("{}.{}", record[12] / 30, record[12] % 30 / 3),
            },
            // seq_profile (3 bits) and seq_level_idx (5 bits) in byte 1: level 2.0 + idx / 4.
            (VideoCodec::Av1, &[_, profile_level, ..]) => VideoConfig {
                codec: codec.name(),
                profile: av1_profile_name(profile_level >> 5).into(),
                level: format!(
                    "{}.{}",
                    2 + (profile_level & 0x1F) / 4,
                    (profile_level & 0x1F) % 4
                ),
            },
            _ => return,
        };
        self.with(|p| p.video = Some(config));
    }

    /// An AudioSpecificConfig: object type (5 bits), frequency index (4), channels (4).
    pub fn audio_config(&self, config: &[u8]) {
        if let [a, b, ..] = *config {
            const RATES: [u32; 13] = [
                96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
                7350,
            ];
            let index = ((a & 0x07) << 1 | b >> 7) as usize;
            let sample_rate = RATES.get(index).copied().unwrap_or(0);
            let channels = (b >> 3) & 0x0F;
            self.with(|p| {
                p.audio = Some(AudioConfig {
                    codec: "AAC",
                    sample_rate,
                    channels,
                })
            });
        }
    }

    /// A video frame: its publisher timestamp, whether it was handed to the decoder, and the
    /// decoder's last reported picture size.
    pub fn video_frame(
        &self,
        timestamp_ms: u64,
        keyframe: bool,
        composition_ms: i32,
        bytes: usize,
        decoded: bool,
        size: Option<(u32, u32)>,
    ) {
        self.with(|p| {
            p.add_bytes(bytes);
            p.frame_ts[(p.frames % FRAME_RING as u64) as usize] = timestamp_ms;
            p.frames += 1;
            if composition_ms != 0 {
                p.b_frames += 1;
            }
            if !decoded {
                p.dropped += 1;
            }
            if keyframe {
                if let Some(last) = p.last_keyframe_ms
                    && timestamp_ms > last
                {
                    p.keyframe_interval_ms = Some(timestamp_ms - last);
                }
                p.last_keyframe_ms = Some(timestamp_ms);
            }
            if size.is_some() {
                p.size = size;
            }
        });
    }

    pub fn audio_frame(&self, bytes: usize) {
        self.with(|p| p.add_bytes(bytes));
    }

    /// The codecs of a publisher whose stream carries no configuration record (WHIP).
    pub fn codecs(&self, video: Option<&'static str>, audio: Option<&'static str>) {
        self.stream_bytes(0, (video, audio), None);
    }

    /// Loss (fraction of packets, 0–1) and round-trip time (ms) of a WebRTC publisher's
    /// link, from the receiver reports str0m makes.
    pub fn link_quality(&self, loss: Option<f64>, rtt_ms: Option<f64>) {
        self.with(|p| {
            if loss.is_some() {
                p.loss = loss;
            }
            if rtt_ms.is_some() {
                p.rtt_ms = rtt_ms;
            }
        });
    }

    /// Bytes of a multiplexed stream (SRT's MPEG-TS), the codecs its decoders found, and the
    /// decoder's last reported picture size. Frames are not counted: the stream is not
    /// parsed here.
    pub fn stream_bytes(
        &self,
        bytes: usize,
        codecs: (Option<&'static str>, Option<&'static str>),
        size: Option<(u32, u32)>,
    ) {
        self.with(|p| {
            p.add_bytes(bytes);
            if let (Some(codec), None) = (codecs.0, &p.video) {
                p.video = Some(VideoConfig {
                    codec,
                    profile: String::new(),
                    level: String::new(),
                });
            }
            if let (Some(codec), None) = (codecs.1, &p.audio) {
                p.audio = Some(AudioConfig {
                    codec,
                    sample_rate: 0,
                    channels: 0,
                });
            }
            if size.is_some() {
                p.size = size;
            }
        });
    }
}

impl Drop for PublisherWatch {
    fn drop(&mut self) {
        let mut e = self.entry.lock().unwrap_or_else(|e| e.into_inner());
        if e.publisher.as_ref().map(|p| p.generation) == Some(self.generation) {
            e.publisher = None;
            e.last_left_ms = Some(unix_ms());
        }
    }
}

fn hevc_profile_name(profile_idc: u8) -> &'static str {
    match profile_idc {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Range Extensions",
        _ => "other",
    }
}

fn av1_profile_name(seq_profile: u8) -> &'static str {
    match seq_profile {
        0 => "Main",
        1 => "High",
        2 => "Professional",
        _ => "other",
    }
}

fn avc_profile_name(profile_idc: u8, constrained: bool) -> &'static str {
    match profile_idc {
        66 if constrained => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        _ => "other",
    }
}

/// A publisher's address with its host part hidden (`203.0.x.x`; `v6`), as the health view
/// and the logs show it.
pub fn mask_address(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(ip) => {
            let o = ip.octets();
            format!("{}.{}.x.x", o[0], o[1])
        }
        std::net::IpAddr::V6(_) => "v6".into(),
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_is_described_and_a_replaced_one_does_not_clear_its_successor() {
        let board = IngestBoard::default();
        let first = board.publisher("s", "127.0.x.x".into(), "rtmp");
        first.video_config(VideoCodec::Avc, &[1, 100, 0, 31, 0xFF, 0xE1]);
        first.audio_config(&[0x12, 0x10]);
        for i in 0..40u64 {
            let keyframe = i % 20 == 0;
            first.video_frame(i * 40, keyframe, 80, 1000, i > 0, Some((1280, 720)));
        }
        let view = board.view("s");
        assert!(view.connected);
        let video = view.video.expect("video");
        assert_eq!(
            (video.profile.as_str(), video.level.as_str()),
            ("High", "3.1")
        );
        assert_eq!((video.width, video.height), (Some(1280), Some(720)));
        assert_eq!(video.fps, Some(25.0));
        assert_eq!(video.keyframe_interval_s, Some(0.8));
        assert_eq!(video.b_frames, 40);
        let audio = view.audio.expect("audio");
        assert_eq!((audio.sample_rate, audio.channels), (44100, 2));
        assert_eq!(view.dropped_frames, 1);
        assert!(view.bitrate_kbps.unwrap() > 0);

        let second = board.publisher("s", "127.0.x.x".into(), "rtmp");
        drop(first);
        let view = board.view("s");
        assert!(
            view.connected,
            "the old connection left after the new one came"
        );
        assert_eq!(view.reconnects, 1);
        assert_eq!(view.frames, 0);
        drop(second);
        let view = board.view("s");
        assert!(!view.connected);
        assert!(view.last_left_ms.is_some());
    }
}
