//! WebRTC egress: WHEP viewers served by str0m in RTP mode, ICE-lite, from one UDP socket (and
//! an ICE-TCP listener) and one event loop. Each studio's packets are encoded and packetized
//! once per rendition; per viewer only the RTP header, SRTP and the send remain, and the choice
//! of rendition by its bandwidth estimate.

pub mod adapt;
pub mod admission;
mod event_loop;
mod queues;
mod send;
mod tcp;
mod viewer;
pub mod whep;

pub use event_loop::{CONNECT_TIMEOUT, CONSENT_TIMEOUT, Ended};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::media::output::PacketSink;
use crate::media::{EncodedPacket, PacketKind};
use crate::slots::{AddressSlots, SlotRefusal};
use crate::studio::StudioHandle;

pub use queues::{COMMAND_QUEUE, EgressCounters, MEDIA_QUEUE_FRAMES, SERVER_LATENCY_BUCKETS_MS};
pub use whep::{Announce, WhepError};

use queues::{Command, MAX_FRAME_PACKETS, MediaFrame};

#[derive(Clone)]
pub struct Egress {
    commands: mpsc::Sender<Command>,
    media: mpsc::Sender<MediaFrame>,
    /// The addresses announced in answers' host candidates (UDP, and TCP if it listens).
    pub announce: Announce,
    /// The UDP socket's address, and the ICE-TCP listener's.
    pub local: SocketAddr,
    pub local_tcp: Option<SocketAddr>,
    pub counters: Arc<EgressCounters>,
    /// Viewers not connected yet, capped per address and in total.
    pub pending: Arc<AddressSlots>,
}

impl Egress {
    /// Binds the one UDP socket (and the ICE-TCP listener, given `tcp_bind`) and starts the
    /// event loop on a thread of its own, with its own runtime: ingest parsing, the API and SQL
    /// run on the shared runtime's workers and can never delay a packet.
    pub async fn start(
        bind: SocketAddr,
        tcp_bind: Option<SocketAddr>,
        public_ip: Option<std::net::IpAddr>,
        pending: Arc<AddressSlots>,
    ) -> std::io::Result<Self> {
        str0m::crypto::from_feature_flags().install_process_default();
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let listener = match tcp_bind {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Some(listener)
            }
            None => None,
        };
        let local_tcp = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let public =
            |addr: SocketAddr| SocketAddr::new(public_ip.unwrap_or(addr.ip()), addr.port());
        let announce = Announce {
            udp: public(local),
            tcp: local_tcp.map(public),
        };
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (media, media_rx) = mpsc::channel(MEDIA_QUEUE_FRAMES);
        let counters = Arc::new(EgressCounters::default());
        let loop_counters = counters.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("egress".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let udp = match tokio::net::UdpSocket::from_std(socket) {
                        Ok(socket) => socket,
                        Err(e) => return tracing::error!(error = %e, "egress socket unusable"),
                    };
                    let tcp = match listener.map(tokio::net::TcpListener::from_std) {
                        Some(Ok(listener)) => {
                            let (events, events_rx) = mpsc::channel(MEDIA_QUEUE_FRAMES);
                            tokio::spawn(tcp::accept(listener, events));
                            Some(events_rx)
                        }
                        Some(Err(e)) => {
                            return tracing::error!(error = %e, "ICE-TCP listener unusable");
                        }
                        None => None,
                    };
                    let sockets = event_loop::Sockets { udp, tcp, announce };
                    event_loop::run(sockets, command_rx, media_rx, loop_counters).await
                })
            })?;
        Ok(Self {
            commands,
            media,
            announce,
            local,
            local_tcp,
            counters,
            pending,
        })
    }

    /// The sink a studio's payloaders call for every packet (from a GStreamer thread). It
    /// hands a video frame's packets over together, at the frame's last (marker) packet; each
    /// rendition's frames are gathered apart (their payloaders run on different threads).
    pub fn packet_sink(&self, session_id: &str) -> PacketSink {
        let media = self.media.clone();
        let session: Arc<str> = Arc::from(session_id);
        let counters = self.counters.clone();
        let frames: [std::sync::Mutex<Vec<EncodedPacket>>; 2] = Default::default();
        Arc::new(move |packet| {
            counters.packets_in.fetch_add(1, Ordering::Relaxed);
            let packets = if packet.kind == PacketKind::Video {
                let mut frame = frames[packet.rendition as usize]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
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

    /// Answers a WHEP offer from `client` and hands the new viewer to the event loop. Refused
    /// before any work when the studio has `max_viewers` or the pending caps are reached.
    pub async fn add_viewer(
        &self,
        studio: StudioHandle,
        offer_sdp: &str,
        client: std::net::IpAddr,
        max_viewers: usize,
    ) -> Result<whep::Answer, WhepError> {
        if studio.stats.viewers.load(Ordering::Relaxed) >= max_viewers {
            return Err(WhepError::SessionFull(max_viewers));
        }
        let slot = self.pending.take(client).map_err(|refusal| match refusal {
            SlotRefusal::Address => WhepError::PendingFromAddress,
            SlotRefusal::Total => WhepError::PendingTotal,
        })?;
        // Parsing the offer and setting up ICE and DTLS is CPU work: off the async workers.
        let announce = self.announce;
        let offer_sdp = offer_sdp.to_string();
        let (answer, viewer) = tokio::task::spawn_blocking(move || {
            whep::accept_offer(studio, &offer_sdp, announce, slot)
        })
        .await
        .map_err(|e| WhepError::Rtc(e.to_string()))??;
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

    /// Closes every viewer's session cleanly (shutdown). Returns how many there were.
    pub async fn end_all(&self) -> usize {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::EndAll { reply }).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
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
