//! One WHEP viewer: its str0m session, the negotiated payload types and its own sequence
//! numbers around the studio's shared payloads.

use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::RtpWrite;
use str0m::{Event, IceConnectionState, Rtc};

use crate::media::{EncodedPacket, PacketKind};
use crate::slots::Slot;
use crate::studio::StudioHandle;

/// One negotiated outgoing track.
struct Track {
    mid: Mid,
    pt: Pt,
    /// Next sequence number; starts below 2^16 so the SRTP rollover counter starts at 0.
    seq: u64,
}

pub(crate) struct Viewer {
    pub id: String,
    pub studio: StudioHandle,
    pub rtc: Rtc,
    video: Option<Track>,
    audio: Option<Track>,
    /// Video is held back until the first keyframe.
    video_started: bool,
    pub next_timeout: Instant,
    pub connected_at: Option<Instant>,
    pub created_at: Instant,
    /// When a datagram from the viewer was last taken: consent (RFC 7675) expires without.
    pub last_heard: Instant,
    /// The ICE ufrag of our answer: a first STUN check from a new address is routed by it.
    pub ufrag: String,
    /// Its place among the pending viewers, until it connects.
    pub pending: Option<Slot>,
    pub dead: bool,
}

impl Viewer {
    pub fn new(id: String, studio: StudioHandle, rtc: Rtc, ufrag: String, pending: Slot) -> Self {
        let now = Instant::now();
        Self {
            id,
            studio,
            rtc,
            ufrag,
            pending: Some(pending),
            last_heard: now,
            video: None,
            audio: None,
            video_started: false,
            next_timeout: now,
            connected_at: None,
            created_at: now,
            dead: false,
        }
    }

    pub fn session_id(&self) -> &str {
        &self.studio.session_id
    }

    /// Reacts to one str0m event.
    pub fn handle_event(&mut self, event: Event) {
        match event {
            Event::MediaAdded(added) => {
                let codec = match added.kind {
                    MediaKind::Video => Codec::H264,
                    MediaKind::Audio => Codec::Opus,
                };
                let Some(pt) = self.negotiated_pt(added.mid, codec) else {
                    tracing::debug!(viewer.id = %self.id, "media line without a usable codec");
                    return;
                };
                let track = Some(Track {
                    mid: added.mid,
                    pt,
                    seq: rand::random::<u16>() as u64 / 2,
                });
                match added.kind {
                    MediaKind::Video => self.video = track,
                    MediaKind::Audio => self.audio = track,
                }
            }
            Event::Connected => {
                self.connected_at = Some(Instant::now());
                self.pending = None;
                tracing::info!(
                    session.id = %self.session_id(),
                    viewer.id = %self.id,
                    setup_ms = self.created_at.elapsed().as_millis() as u64,
                    "viewer connected"
                );
                self.studio.stats.viewers.fetch_add(1, Ordering::Relaxed);
                self.studio.request_keyframe();
            }
            Event::KeyframeRequest(_) => self.studio.request_keyframe(),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                self.dead = true;
            }
            _ => {}
        }
    }

    fn negotiated_pt(&self, mid: Mid, codec: Codec) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let config = self.rtc.codec_config();
        media.remote_pts().iter().copied().find(|pt| {
            config
                .find(|p| p.pt() == *pt && p.spec().codec == codec)
                .is_some()
        })
    }

    /// Writes one shared packet into this viewer's session. Returns false if it was held back.
    pub fn write(&mut self, packet: &EncodedPacket) -> bool {
        if !self.rtc.is_connected() {
            return false;
        }
        let track = match packet.kind {
            PacketKind::Video => {
                if !self.video_started {
                    if !packet.keyframe_start {
                        return false;
                    }
                    self.video_started = true;
                }
                self.video.as_mut()
            }
            PacketKind::Audio => self.audio.as_mut(),
        };
        let Some(track) = track else { return false };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(track.mid, None) else {
            return false;
        };
        stream.write_rtp(
            RtpWrite::new(
                track.pt,
                track.seq.into(),
                packet.timestamp,
                packet.packetized_at,
                packet.payload.clone(),
            )
            .marker(packet.marker)
            .nackable(packet.kind == PacketKind::Video),
        );
        track.seq += 1;
        true
    }

    /// Takes the viewer out of its studio's count; call once, when it is removed.
    pub fn leave(&mut self) {
        if self.connected_at.is_some() {
            self.studio.stats.viewers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
