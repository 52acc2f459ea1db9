//! WHIP ingest (RFC 9725): a publisher's SDP offer answered by str0m (ICE-lite, frame mode:
//! str0m depacketizes), its media decoded into the same studio as RTMP's. One UDP socket and
//! one event loop on a thread of their own serve every WHIP publisher; the HTTP side (the
//! stream key as bearer token, the publisher policy) is the server's.
//!
//! Codecs: H.264 (constrained baseline and the profiles browsers send, packetization-mode 1)
//! and VP8 video, Opus audio. The loop asks for a keyframe (PLI) whenever the decoder waits
//! for one, and str0m sends receiver reports and transport-cc feedback, so the publisher's
//! congestion control follows the link.

mod event_loop;

use event_loop::Command;
pub use event_loop::WhipPublish;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::Pt;
use str0m::{Candidate, Rtc, RtcConfig};
use tokio::sync::{mpsc, oneshot};

use crate::media::decode::PublisherDecode;

/// Largest SDP offer accepted (browsers send 4–8 KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Commands queued to the WHIP loop.
const COMMANDS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    #[error("the SDP offer is malformed: {0}")]
    BadSdp(String),
    #[error("the offer sends no media Fieldcast decodes: send H.264 or VP8 video, and Opus audio")]
    NoCommonCodec,
    #[error("the WHIP loop has stopped")]
    Stopped,
    #[error("WebRTC setup failed: {0}")]
    Rtc(String),
}

pub struct Answer {
    pub publisher_id: String,
    pub sdp: String,
}

#[derive(Clone)]
pub struct Whip {
    commands: mpsc::Sender<Command>,
    /// The address announced in answers' host candidates.
    pub announce: SocketAddr,
    pub local: SocketAddr,
}

impl Whip {
    /// Binds the WHIP UDP socket and starts its loop on a thread of its own.
    pub async fn start(bind: SocketAddr, public_ip: Option<IpAddr>) -> std::io::Result<Self> {
        str0m::crypto::from_feature_flags().install_process_default();
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let announce = SocketAddr::new(public_ip.unwrap_or(local.ip()), local.port());
        let (commands, command_rx) = mpsc::channel(COMMANDS);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let loop_commands = commands.clone();
        std::thread::Builder::new()
            .name("whip".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::UdpSocket::from_std(socket) {
                        Ok(socket) => {
                            event_loop::run(socket, announce, command_rx, loop_commands).await
                        }
                        Err(e) => tracing::error!(error = %e, "WHIP socket unusable"),
                    }
                })
            })?;
        Ok(Self {
            commands,
            announce,
            local,
        })
    }

    /// Answers an admitted publisher's offer and hands it to the loop. On an error the
    /// publisher is detached from the studio again.
    pub async fn publish(
        &self,
        offer_sdp: &str,
        admitted: WhipPublish,
    ) -> Result<Answer, WhipError> {
        let negotiated = negotiate(offer_sdp, self.announce);
        let (rtc, sdp) = match negotiated {
            Ok(n) => n,
            Err(e) => {
                admitted.studio.detach_publisher(admitted.link.id).await;
                return Err(e);
            }
        };
        // Starting a pipeline takes milliseconds of blocking work: off the async workers.
        let (label, format, feed) = (
            admitted.session_id.clone(),
            admitted.link.format,
            admitted.link.feed.clone(),
        );
        let decode =
            tokio::task::spawn_blocking(move || PublisherDecode::start(&label, &format, feed))
                .await
                .map_err(|e| WhipError::Rtc(e.to_string()))
                .and_then(|r| r.map_err(|e| WhipError::Rtc(e.to_string())));
        let decode = match decode {
            Ok(d) => d,
            Err(e) => {
                admitted.studio.detach_publisher(admitted.link.id).await;
                return Err(e);
            }
        };
        let publisher_id = random_id();
        let publisher = event_loop::Publisher::new(publisher_id.clone(), admitted, rtc, decode);
        if let Err(mpsc::error::SendError(Command::Add(p))) =
            self.commands.send(Command::Add(Box::new(publisher))).await
        {
            p.studio.detach_publisher(p.link.id).await;
            return Err(WhipError::Stopped);
        }
        Ok(Answer { publisher_id, sdp })
    }

    /// Ends a publisher (`DELETE` on its resource): the studio shows the slate.
    pub async fn end(&self, session_id: &str, publisher_id: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .commands
            .send(Command::End {
                session_id: session_id.to_string(),
                publisher_id: publisher_id.to_string(),
                reply,
            })
            .await;
        sent.is_ok() && rx.await.unwrap_or(false)
    }
}

fn rtc_config() -> RtcConfig {
    let mut config = RtcConfig::new()
        .set_ice_lite(true)
        .set_stats_interval(Some(Duration::from_secs(1)))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true);
    // Constrained baseline and the baseline/main/high profiles phones' encoders offer, all
    // packetization-mode 1; the decoder takes any of them.
    for (pt, profile_level) in [
        (102u8, 0x42e01f_u32),
        (104, 0x42001f),
        (106, 0x4d001f),
        (108, 0x64001f),
    ] {
        config
            .codec_config()
            .add_h264(Pt::from(pt), None, true, profile_level);
    }
    config
}

/// Answers a WHIP offer: every m-line the publisher sends with a codec we decode is received;
/// the answer carries our host candidate at `announce`. Any offer text gets an error, not a
/// panic.
pub fn negotiate(offer_sdp: &str, announce: SocketAddr) -> Result<(Rtc, String), WhipError> {
    if offer_sdp.len() > MAX_OFFER_BYTES {
        return Err(WhipError::BadSdp(format!(
            "larger than {MAX_OFFER_BYTES} bytes"
        )));
    }
    let offer =
        SdpOffer::from_sdp_string(offer_sdp).map_err(|e| WhipError::BadSdp(e.to_string()))?;
    let cert = crate::egress::whep::dtls_cert().map_err(|e| WhipError::Rtc(e.to_string()))?;
    let mut rtc = rtc_config().set_dtls_cert(cert).build(Instant::now());
    let candidate = Candidate::host(announce, "udp").map_err(|e| WhipError::Rtc(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| WhipError::BadSdp(e.to_string()))?;
    let sdp = answer.to_sdp_string();
    // At least one m-line that we receive with a codec we decode.
    let decodable = rtc
        .codec_config()
        .params()
        .iter()
        .any(|p| matches!(p.spec().codec, Codec::H264 | Codec::Vp8 | Codec::Opus));
    let receiving = sdp.lines().any(|l| l == "a=recvonly" || l == "a=sendrecv")
        && sdp
            .lines()
            .any(|l| l.starts_with("m=") && !l.starts_with("m=application") && !l.contains(" 0 "));
    if !decodable || !receiving {
        return Err(WhipError::NoCommonCodec);
    }
    Ok((rtc, sdp))
}

fn random_id() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
