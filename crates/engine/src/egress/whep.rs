//! WHEP offer/answer: one str0m `Rtc` per viewer, ICE-lite, RTP mode, offering only what every
//! browser decodes without a transcode: H.264 constrained baseline 42e01f
//! (packetization-mode=1) and Opus. Host candidates on UDP and, where it listens, on TCP
//! (RFC 6544 passive). Transport-wide congestion control feedback feeds each viewer's
//! bandwidth estimate, which picks its rendition.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::Pt;
use str0m::net::TcpType;
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc, RtcConfig};

use str0m::config::DtlsCert;

use super::viewer::Viewer;
use crate::slots::Slot;
use crate::studio::StudioHandle;

/// Payload types we propose; the offer's own numbers win after negotiation.
const H264_PT: u8 = 102;
/// Retransmissions (RFC 4588), and the padding a viewer's bandwidth estimator probes with.
const H264_RTX_PT: u8 = 103;
const H264_PROFILE_LEVEL: u32 = 0x42e01f;

pub use super::adapt::AUDIO_KBPS;

/// Where viewers reach the egress: the UDP socket, and the TCP listener if there is one.
#[derive(Debug, Clone, Copy)]
pub struct Announce {
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
}

/// Largest SDP offer accepted (browsers send 4–8 KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    #[error("the SDP offer is malformed: {0}")]
    BadSdp(String),
    #[error(
        "the offer has no media we can send: offer H.264 (profile 42e01f, packetization-mode=1) or Opus, receive-only"
    )]
    NoCommonCodec,
    #[error("the egress loop has stopped")]
    Stopped,
    #[error("too many viewers are connecting from this address; try again in a few seconds")]
    PendingFromAddress,
    #[error("too many viewers are connecting; try again in a few seconds")]
    PendingTotal,
    #[error("this show's WebRTC audience is full ({0} viewers); try again later")]
    SessionFull(usize),
    #[error("WebRTC setup failed: {0}")]
    Rtc(String),
}

pub struct Answer {
    pub viewer_id: String,
    pub sdp: String,
}

/// A DTLS certificate is made this often, not per offer: making one costs a key generation.
const CERT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

/// The process's DTLS certificate, made again once it is an hour old.
static CERT: std::sync::Mutex<Option<(DtlsCert, Instant)>> = std::sync::Mutex::new(None);

pub(crate) fn dtls_cert() -> Result<DtlsCert, WhepError> {
    let mut cert = CERT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((c, made)) = cert.as_ref()
        && made.elapsed() < CERT_LIFETIME
    {
        return Ok(c.clone());
    }
    // The process's crypto provider, for every `Rtc` (idempotent; Egress::start sets it too).
    str0m::crypto::from_feature_flags().install_process_default();
    let made = str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| WhepError::Rtc("no DTLS certificate could be made".into()))?;
    *cert = Some((made.clone(), Instant::now()));
    Ok(made)
}

/// The session setup of a viewer whose main rendition needs `main_need` bps.
pub(crate) fn rtc_config(main_need: u64) -> RtcConfig {
    let mut config = RtcConfig::new()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        // The mid (BUNDLE demux) and the transport-wide sequence number, whose feedback
        // drives the viewer's bandwidth estimate. It starts above what the main rendition
        // needs: every viewer starts on it and moves down only on evidence.
        .clear_extension_map()
        .set_extension(3, Extension::TransportSequenceNumber)
        .set_extension(4, Extension::RtpMid)
        .enable_bwe(Some(Bitrate::bps(
            (main_need as f64 * super::adapt::UP_MARGIN) as u64,
        )))
        .clear_codecs()
        .enable_opus(true, false)
        .set_send_buffer_video(1000);
    config.codec_config().add_h264(
        Pt::from(H264_PT),
        Some(Pt::from(H264_RTX_PT)),
        true,
        H264_PROFILE_LEVEL,
    );
    config
}

/// Answers a WHEP offer: parses it, negotiates H.264 and Opus, and returns the session with
/// our host candidates at `announce`, and the answer. Any offer text gets an error, not a
/// panic (fuzzed in tests/mutation.rs).
pub fn negotiate(
    offer_sdp: &str,
    announce: Announce,
    main_need: u64,
) -> Result<(Rtc, String), WhepError> {
    if offer_sdp.len() > MAX_OFFER_BYTES {
        return Err(WhepError::BadSdp(format!(
            "larger than {MAX_OFFER_BYTES} bytes"
        )));
    }
    let offer =
        SdpOffer::from_sdp_string(offer_sdp).map_err(|e| WhepError::BadSdp(e.to_string()))?;
    let mut rtc: Rtc = rtc_config(main_need)
        .set_dtls_cert(dtls_cert()?)
        .build(Instant::now());
    let bad = |e: str0m::error::IceError| WhepError::Rtc(e.to_string());
    let udp = Candidate::host(announce.udp, "udp").map_err(bad)?;
    rtc.add_local_candidate(udp);
    if let Some(tcp) = announce.tcp {
        // Passive: the viewer connects (RFC 6544); UDP's candidate ranks above it.
        let tcp = Candidate::builder()
            .tcp()
            .host(tcp)
            .tcptype(TcpType::Passive)
            .build()
            .map_err(bad)?;
        rtc.add_local_candidate(tcp);
    }
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| WhepError::BadSdp(e.to_string()))?;
    let has_media = rtc
        .codec_config()
        .params()
        .iter()
        .any(|p| matches!(p.spec().codec, Codec::H264 | Codec::Opus) && p.pt() != Pt::from(0));
    let sdp = answer.to_sdp_string();
    let sendable = sdp
        .lines()
        .any(|l| l.starts_with("m=") && !l.starts_with("m=application") && !l.contains(" 0 "));
    if !has_media || !sendable {
        return Err(WhepError::NoCommonCodec);
    }
    Ok((rtc, sdp))
}

/// Accepts an offer for a studio: returns the answer and the viewer to hand to the event loop.
pub(crate) fn accept_offer(
    studio: StudioHandle,
    offer_sdp: &str,
    announce: Announce,
    pending: Slot,
) -> Result<(Answer, Viewer), WhepError> {
    let main_need = super::adapt::need_bps(studio.format.bitrate_kbps, AUDIO_KBPS);
    let (rtc, sdp) = negotiate(offer_sdp, announce, main_need)?;
    let ufrag = fieldcast_core::stun::sdp_ufrag(&sdp)
        .ok_or_else(|| WhepError::Rtc("the answer has no ICE ufrag".into()))?
        .to_string();
    let viewer_id = random_id();
    let mut viewer = Viewer::new(viewer_id.clone(), studio, rtc, ufrag, pending);
    viewer.configure_bwe();
    Ok((Answer { viewer_id, sdp }, viewer))
}

fn random_id() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
