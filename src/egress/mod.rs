//! WebRTC egress: WHEP viewers served by str0m in RTP mode, ICE-lite, from one UDP socket and
//! one event loop. Each studio's packets are encoded and packetized once; per viewer only the
//! RTP header, SRTP and the send remain.

pub mod client;
mod event_loop;
mod send;
pub mod swarm;
mod viewer;
pub mod whep;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::histogram::LatencyHistogram;
use crate::media::output::PacketSink;
use crate::media::{EncodedPacket, PacketKind};
use crate::studio::StudioHandle;

pub use whep::WhepError;

/// Frames (a video frame's packets, or one audio packet) queued from all studios to the event
/// loop. When the loop falls this far behind, new ones are dropped (counted), never buffered
/// without bound: ~6 s of one studio (30 video frames and 50 audio packets a second).
pub const MEDIA_QUEUE_FRAMES: usize = 512;

/// Most packets of one video frame held back for its marker (a 720p keyframe at 2.5 Mb/s
/// is a few dozen).
const MAX_FRAME_PACKETS: usize = 512;

/// A video frame's packets, or one audio packet, from one studio: the event loop wakes once
/// for each.
pub(crate) type MediaFrame = (Arc<str>, Vec<EncodedPacket>);

/// Viewer commands (add/remove) queued to the event loop.
pub const COMMAND_QUEUE: usize = 256;

pub(crate) enum Command {
    /// A new viewer; `added` is answered once the loop holds it, so the answer goes out
    /// only when the viewer's first connectivity check will find it.
    Add {
        viewer: Box<viewer::Viewer>,
        added: tokio::sync::oneshot::Sender<()>,
    },
    Remove {
        session_id: String,
        viewer_id: String,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
}

/// Upper bounds (ms) of the server-added latency histogram's buckets; the last is +Inf.
pub const SERVER_LATENCY_BUCKETS_MS: [f64; 19] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 66.0, 100.0,
    200.0, 500.0,
];

/// Counters exported on `/metrics`.
#[derive(Debug)]
pub struct EgressCounters {
    pub packets_in: AtomicU64,
    pub packets_dropped_queue: AtomicU64,
    pub packets_sent: AtomicU64,
    pub packets_dropped_viewer: AtomicU64,
    pub viewers: AtomicU64,
    /// From an RTMP video message arriving to the first RTP packet of its frame leaving.
    pub server_latency: LatencyHistogram,
}

impl Default for EgressCounters {
    fn default() -> Self {
        Self {
            packets_in: AtomicU64::new(0),
            packets_dropped_queue: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            packets_dropped_viewer: AtomicU64::new(0),
            viewers: AtomicU64::new(0),
            server_latency: LatencyHistogram::new(&SERVER_LATENCY_BUCKETS_MS),
        }
    }
}

#[derive(Clone)]
pub struct Egress {
    commands: mpsc::Sender<Command>,
    media: mpsc::Sender<MediaFrame>,
    /// The address announced in answers' host candidates.
    pub announce: SocketAddr,
    pub local: SocketAddr,
    pub counters: Arc<EgressCounters>,
}

impl Egress {
    /// Binds the one UDP socket and starts the event loop on the current runtime.
    pub async fn start(
        bind: SocketAddr,
        public_ip: Option<std::net::IpAddr>,
    ) -> std::io::Result<Self> {
        str0m::crypto::from_feature_flags().install_process_default();
        let socket = tokio::net::UdpSocket::bind(bind).await?;
        let local = socket.local_addr()?;
        let announce = SocketAddr::new(public_ip.unwrap_or(local.ip()), local.port());
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (media, media_rx) = mpsc::channel(MEDIA_QUEUE_FRAMES);
        let counters = Arc::new(EgressCounters::default());
        tokio::spawn(event_loop::run(
            socket,
            command_rx,
            media_rx,
            counters.clone(),
        ));
        Ok(Self {
            commands,
            media,
            announce,
            local,
            counters,
        })
    }

    /// The sink a studio's payloaders call for every packet (from a GStreamer thread). It
    /// hands a video frame's packets over together, at the frame's last (marker) packet.
    pub fn packet_sink(&self, session_id: &str) -> PacketSink {
        let media = self.media.clone();
        let session: Arc<str> = Arc::from(session_id);
        let counters = self.counters.clone();
        let frame: std::sync::Mutex<Vec<EncodedPacket>> = Default::default();
        Arc::new(move |packet| {
            counters.packets_in.fetch_add(1, Ordering::Relaxed);
            let packets = if packet.kind == PacketKind::Video {
                let mut frame = frame.lock().unwrap_or_else(|e| e.into_inner());
                let last = packet.marker;
                frame.push(packet);
                // A frame ends at its marker; a runaway one (no marker) goes out in pieces.
                if !last && frame.len() < MAX_FRAME_PACKETS {
                    return;
                }
                std::mem::take(&mut *frame)
            } else {
                vec![packet]
            };
            let n = packets.len() as u64;
            if media.try_send((session.clone(), packets)).is_err() {
                counters
                    .packets_dropped_queue
                    .fetch_add(n, Ordering::Relaxed);
            }
        })
    }

    /// Answers a WHEP offer and hands the new viewer to the event loop.
    pub async fn add_viewer(
        &self,
        studio: StudioHandle,
        offer_sdp: &str,
    ) -> Result<whep::Answer, WhepError> {
        let (answer, viewer) = whep::accept_offer(studio, offer_sdp, self.announce)?;
        let (added, held) = tokio::sync::oneshot::channel();
        let command = Command::Add {
            viewer: Box::new(viewer),
            added,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| WhepError::Stopped)?;
        // Before this, a viewer's first STUN check could reach the loop ahead of the viewer,
        // be ignored, and cost it a 250 ms retransmission.
        held.await.map_err(|_| WhepError::Stopped)?;
        Ok(answer)
    }

    /// Ends a viewer's session. Returns false when no such viewer exists.
    pub async fn remove_viewer(&self, session_id: &str, viewer_id: &str) -> bool {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let command = Command::Remove {
            session_id: session_id.to_string(),
            viewer_id: viewer_id.to_string(),
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}
