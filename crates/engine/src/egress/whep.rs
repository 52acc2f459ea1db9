//! WHEP offer/answer: one str0m `Rtc` per viewer, ICE-lite, RTP mode, offering only what every
//! browser decodes without a transcode: H.264 constrained baseline 42e01f
//! (packetization-mode=1) and Opus.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::Pt;
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc, RtcConfig};

use str0m::config::DtlsCert;

use super::viewer::Viewer;
use crate::slots::Slot;
use crate::studio::StudioHandle;

/// Payload types we propose; the offer's own numbers win after negotiation.
const H264_PT: u8 = 102;
const H264_PROFILE_LEVEL: u32 = 0x42e01f;

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

pub(crate) fn rtc_config() -> RtcConfig {
    let mut config = RtcConfig::new()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        // Only the mid (BUNDLE demux): the studio's one encoding cannot follow any viewer's
        // bandwidth, so transport-cc feedback and send-time stamps would cost every viewer
        // datagrams and bytes for nothing.
        .clear_extension_map()
        .set_extension(4, Extension::RtpMid)
        .clear_codecs()
        .enable_opus(true, false)
        .set_send_buffer_video(1000);
    config
        .codec_config()
        .add_h264(Pt::from(H264_PT), None, true, H264_PROFILE_LEVEL);
    config
}

/// Answers a WHEP offer: parses it, negotiates H.264 and Opus, and returns the session with
/// our host candidate at `announce`, and the answer. Any offer text gets an error, not a
/// panic (fuzzed in tests/mutation.rs).
pub fn negotiate(offer_sdp: &str, announce: SocketAddr) -> Result<(Rtc, String), WhepError> {
    if offer_sdp.len() > MAX_OFFER_BYTES {
        return Err(WhepError::BadSdp(format!(
            "larger than {MAX_OFFER_BYTES} bytes"
        )));
    }
    let offer =
        SdpOffer::from_sdp_string(offer_sdp).map_err(|e| WhepError::BadSdp(e.to_string()))?;
    let mut rtc: Rtc = rtc_config()
        .set_dtls_cert(dtls_cert()?)
        .build(Instant::now());
    let candidate = Candidate::host(announce, "udp").map_err(|e| WhepError::Rtc(e.to_string()))?;
    rtc.add_local_candidate(candidate);
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
    announce: SocketAddr,
    pending: Slot,
) -> Result<(Answer, Viewer), WhepError> {
    let (rtc, sdp) = negotiate(offer_sdp, announce)?;
    let ufrag = fieldcast_core::stun::sdp_ufrag(&sdp)
        .ok_or_else(|| WhepError::Rtc("the answer has no ICE ufrag".into()))?
        .to_string();
    let viewer_id = random_id();
    let viewer = Viewer::new(viewer_id.clone(), studio, rtc, ufrag, pending);
    Ok((Answer { viewer_id, sdp }, viewer))
}

fn random_id() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
