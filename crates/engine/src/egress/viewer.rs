//! One WHEP viewer: its str0m session, the negotiated payload types, its own sequence
//! numbers around the studio's shared payloads, and which rendition it gets (moved by its
//! bandwidth estimate, see `adapt.rs`, at a keyframe of the rendition it moves to).

use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::bwe::{Bitrate, BweKind};
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::RtpWrite;
use str0m::{Event, IceConnectionState, Rtc};

use super::adapt::{self, Adaptation};
use crate::media::{EncodedPacket, PacketKind, Rendition};
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
    /// The rendition on the viewer's screen: none until its first keyframe.
    showing: Option<Rendition>,
    /// The rendition it should get; it moves at that rendition's next keyframe.
    wanted: Rendition,
    /// When the wanted rendition was last asked for a keyframe (while moving).
    asked_at: Instant,
    adaptation: Adaptation,
    /// Whether it is counted in its studio's `light_viewers`.
    counted_light: bool,
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
    /// The loop ended it itself (and counted why).
    pub ended_by_loop: bool,
}

impl Viewer {
    pub fn new(id: String, studio: StudioHandle, rtc: Rtc, ufrag: String, pending: Slot) -> Self {
        let now = Instant::now();
        let main_need = adapt::need_bps(studio.format.bitrate_kbps, adapt::AUDIO_KBPS);
        Self {
            showing: None,
            wanted: Rendition::Main,
            asked_at: now,
            adaptation: Adaptation::new(main_need, now),
            counted_light: false,
            id,
            studio,
            rtc,
            ufrag,
            pending: Some(pending),
            last_heard: now,
            video: None,
            audio: None,
            next_timeout: now,
            connected_at: None,
            created_at: now,
            dead: false,
            ended_by_loop: false,
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
                self.adaptation.joined(Instant::now());
                self.studio.request_keyframe_of(self.wanted);
            }
            Event::KeyframeRequest(_) => self
                .studio
                .request_keyframe_of(self.showing.unwrap_or(self.wanted)),
            Event::EgressBitrateEstimate(BweKind::Twcc {
                estimate,
                can_probe,
            }) => {
                tracing::trace!(viewer.id = %self.id, estimate_kbps = estimate.as_u64() / 1000, can_probe, "bandwidth estimate");
                self.adaptation.observe(estimate.as_u64(), Instant::now());
                self.adapt();
            }
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

    /// Moves the viewer if its estimate says so (called on each estimate and on the loop's
    /// reap tick), and asks again for the keyframe of a move that has waited a second.
    pub fn adapt(&mut self) {
        if self.connected_at.is_none() {
            return;
        }
        let now = Instant::now();
        if let Some(next) = self.adaptation.decide(self.wanted, now) {
            tracing::info!(
                viewer.id = %self.id,
                from = self.wanted.name(),
                to = next.name(),
                estimate_kbps = self.adaptation.estimate().unwrap_or(0) / 1000,
                "viewer moves rendition"
            );
            self.wanted = next;
            self.asked_at = now;
            self.recount();
            self.configure_bwe();
            self.studio.request_keyframe_of(next);
        } else if self.showing.is_some_and(|s| s != self.wanted)
            && now.saturating_duration_since(self.asked_at) >= std::time::Duration::from_secs(1)
        {
            self.asked_at = now;
            self.studio.request_keyframe_of(self.wanted);
        }
    }

    /// Keeps the studio's count of light viewers true to this one.
    fn recount(&mut self) {
        let light = self.wanted == Rendition::Light || self.showing == Some(Rendition::Light);
        if light != self.counted_light {
            self.counted_light = light;
            let counter = &self.studio.stats.light_viewers;
            if light {
                counter.fetch_add(1, Ordering::Relaxed);
            } else {
                counter.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes one shared packet into this viewer's session. Returns false if it was held back.
    pub fn write(&mut self, packet: &EncodedPacket) -> bool {
        if !self.rtc.is_connected() {
            return false;
        }
        let track = match packet.kind {
            PacketKind::Video => {
                if self.showing != Some(packet.rendition) {
                    // Video starts, or moves to the wanted rendition, at its keyframe.
                    if packet.rendition != self.wanted || !packet.keyframe_start {
                        return false;
                    }
                    self.showing = Some(packet.rendition);
                    self.recount();
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

    /// Takes the viewer out of its studio's counts; call once, when it is removed.
    pub fn leave(&mut self) {
        if self.connected_at.is_some() {
            self.studio.stats.viewers.fetch_sub(1, Ordering::Relaxed);
        }
        if self.counted_light {
            self.counted_light = false;
            self.studio
                .stats
                .light_viewers
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Sets what the viewer's bandwidth estimator aims for: enough to probe for the main
    /// rendition with a margin. On the light rendition, the viewer's path is also kept busy
    /// up to what a move back up needs, with padding (RTX) that the estimate caps: an estimate
    /// only grows with what is sent, and the light rendition alone would never show that the
    /// path has recovered.
    pub fn configure_bwe(&mut self) {
        let main_need = adapt::need_bps(self.studio.format.bitrate_kbps, adapt::AUDIO_KBPS);
        let up = (main_need as f64 * adapt::UP_MARGIN) as u64;
        let minimum = match self.wanted {
            Rendition::Main => Bitrate::ZERO,
            Rendition::Light => Bitrate::bps(up),
        };
        self.rtc
            .bwe()
            .set_bitrate(minimum, Bitrate::bps(up * 6 / 5));
    }
}
