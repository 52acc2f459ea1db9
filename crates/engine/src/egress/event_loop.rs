//! The egress event loop: one task, one UDP socket (and ICE-TCP connections), all viewers.
//!
//! It waits on these: a datagram, from UDP or a TCP frame (routed to the viewer whose `Rtc`
//! accepts it),
//! studio frames (a video frame's packets arrive together and are written to every viewer
//! of that studio), or the earliest str0m timeout. After each, it drains the touched
//! viewers' output into one batch of datagrams sent with `sendmmsg` (each viewer's run of
//! one frame as one GSO message). Sends never wait: what the socket cannot take is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::queues::{Command, EgressCounters, MediaFrame};
use super::send::Outbox;
use super::tcp::{TcpEvent, TcpPeers};
use super::viewer::Viewer;

/// Studio frames taken per wake-up before the touched viewers are flushed.
const MEDIA_BATCH: usize = 64;

/// Most due str0m timeouts one flush runs for a viewer.
const FLUSH_DUE_ROUNDS: usize = 64;

/// A viewer that has not connected within this time is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A viewer heard from for this long has lost consent (RFC 7675: browsers check every ~5 s).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often viewers are checked for the ends above and for a stopped studio.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// Why the loop ended a viewer itself, as `/metrics` labels it.
#[derive(Debug, Clone, Copy)]
pub enum Ended {
    NeverConnected = 0,
    ConsentExpired = 1,
    StudioStopped = 2,
}

impl Ended {
    pub const ALL: [Ended; 3] = [
        Ended::NeverConnected,
        Ended::ConsentExpired,
        Ended::StudioStopped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Ended::NeverConnected => "never_connected",
            Ended::ConsentExpired => "consent_expired",
            Ended::StudioStopped => "studio_stopped",
        }
    }
}

/// Largest datagram we read.
const DATAGRAM_MAX: usize = 2048;

/// Where datagrams come from, and what routes them to viewers.
struct Routing {
    viewers: HashMap<String, Viewer>,
    routes: HashMap<SocketAddr, String>,
    by_ufrag: HashMap<String, String>,
}

impl Routing {
    /// Hands one datagram to the viewer it is for, if any. O(1): by the source once known;
    /// else (a new address, or one a new viewer now uses) by the ICE ufrag of its STUN check,
    /// and the source is routed anew.
    fn receive(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) -> Option<&mut Viewer> {
        let contents = bytes.try_into().ok()?;
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let viewers = &self.viewers;
        let accepts = |id: &&String| viewers.get(*id).is_some_and(|v| v.rtc.accepts(&input));
        let routed = self.routes.get(&source).filter(accepts).cloned();
        let id = match routed {
            Some(id) => id,
            None => {
                let id = fieldcast_core::stun::local_ufrag(bytes)
                    .and_then(|ufrag| self.by_ufrag.get(ufrag))
                    .filter(accepts)
                    .cloned()?;
                self.routes.insert(source, id.clone());
                id
            }
        };
        let viewer = self.viewers.get_mut(&id)?;
        viewer.last_heard = Instant::now();
        if let Err(e) = viewer.rtc.handle_input(input) {
            tracing::debug!(viewer.id = %viewer.id, error = %e, "viewer input rejected");
            viewer.dead = true;
        }
        Some(viewer)
    }
}

/// The loop's ways in: the UDP socket, and ICE-TCP connections' frames if it listens on TCP,
/// with the addresses in our candidates. Datagrams are handed to str0m as sent to those,
/// whatever the sockets are bound to: str0m pairs them with the local candidate by that
/// address, and a socket bound to all interfaces (`0.0.0.0`, as in a container, with
/// `public_ip`) would otherwise match none, and no viewer would ever connect.
pub(crate) struct Sockets {
    pub udp: UdpSocket,
    pub tcp: Option<mpsc::Receiver<TcpEvent>>,
    pub announce: super::whep::Announce,
}

pub(crate) async fn run(
    sockets: Sockets,
    mut commands: mpsc::Receiver<Command>,
    mut media: mpsc::Receiver<MediaFrame>,
    counters: Arc<EgressCounters>,
) {
    let socket = sockets.udp;
    let local = sockets.announce.udp;
    let tcp_local = sockets.announce.tcp;
    let mut tcp_events = sockets.tcp;
    let mut tcp = TcpPeers::default();
    let mut routing = Routing {
        viewers: HashMap::new(),
        routes: HashMap::new(),
        by_ufrag: HashMap::new(),
    };
    let mut reap = tokio::time::interval(REAP_EVERY);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut batch = Vec::with_capacity(MEDIA_BATCH);
    let mut outbox = Outbox::default();
    // Publisher frames written to viewers and not yet sent: when their RTMP message arrived.
    let mut frames_arrived: Vec<Instant> = Vec::new();
    loop {
        let Routing {
            viewers, by_ufrag, ..
        } = &mut routing;
        let now = Instant::now();
        let next = viewers
            .values()
            .map(|v| v.next_timeout)
            .min()
            .unwrap_or(now + Duration::from_millis(500));
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next.max(now)));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = received else { continue };
                if let Some(viewer) = routing.receive(Protocol::Udp, source, local, &buf[..n]) {
                    flush(&mut outbox, &tcp, viewer);
                }
            }
            event = async { tcp_events.as_mut()?.recv().await }, if tcp_events.is_some() => {
                match event {
                    Some(TcpEvent::Opened(peer, tx)) => tcp.opened(peer, tx),
                    Some(TcpEvent::Closed(peer)) => tcp.closed(&peer),
                    Some(TcpEvent::Frame(peer, frame)) => {
                        let destination = tcp_local.unwrap_or(local);
                        if let Some(viewer) = routing.receive(Protocol::Tcp, peer, destination, &frame) {
                            flush(&mut outbox, &tcp, viewer);
                        }
                    }
                    None => tcp_events = None,
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return };
                match command {
                    Command::Add { viewer, added } => {
                        let mut viewer = *viewer;
                        flush(&mut outbox, &tcp, &mut viewer);
                        counters.viewers.fetch_add(1, Ordering::Relaxed);
                        by_ufrag.insert(viewer.ufrag.clone(), viewer.id.clone());
                        viewers.insert(viewer.id.clone(), viewer);
                        let _ = added.send(());
                    }
                    Command::Remove { session_id, viewer_id, reply } => {
                        let found = viewers.get(&viewer_id).is_some_and(|v| v.session_id() == session_id);
                        if found && let Some(viewer) = viewers.get_mut(&viewer_id) {
                            viewer.rtc.disconnect();
                            flush(&mut outbox, &tcp, viewer);
                            viewer.dead = true;
                            viewer.ended_by_loop = true;
                        }
                        let _ = reply.send(found);
                    }
                    Command::EndAll { reply } => {
                        for viewer in viewers.values_mut() {
                            viewer.rtc.disconnect();
                            flush(&mut outbox, &tcp, viewer);
                            viewer.dead = true;
                            viewer.ended_by_loop = true;
                        }
                        let _ = reply.send(viewers.len());
                    }
                }
            }
            received = media.recv_many(&mut batch, MEDIA_BATCH) => {
                if received == 0 { return; }
                let mut touched: Vec<Arc<str>> = Vec::new();
                for (session, packets) in batch.drain(..) {
                    // The frame counts for the server-added latency only if some viewer took it.
                    let mut written = false;
                    for viewer in viewers.values_mut().filter(|v| *v.session_id() == *session) {
                        for packet in &packets {
                            written |= viewer.write(packet);
                        }
                    }
                    if written {
                        frames_arrived.extend(packets.iter().filter_map(|p| p.arrived_at));
                    }
                    if !touched.contains(&session) {
                        touched.push(session);
                    }
                }
                // Only the viewers of studios that sent something have new output (`flush`
                // runs str0m's due timeout, which releases what was just written).
                for viewer in viewers.values_mut().filter(|v| touched.iter().any(|s| **s == *v.session_id())) {
                    flush(&mut outbox, &tcp, viewer);
                }
            }
            _ = sleep => {
                let now = Instant::now();
                for viewer in viewers.values_mut().filter(|v| v.next_timeout <= now) {
                    if viewer.rtc.handle_input(Input::Timeout(now)).is_err() {
                        viewer.dead = true;
                    }
                    flush(&mut outbox, &tcp, viewer);
                }
            }
            _ = reap.tick() => {
                let now = Instant::now();
                for viewer in viewers.values_mut().filter(|v| !v.dead) {
                    let ended = if viewer.connected_at.is_none() && now.duration_since(viewer.created_at) > CONNECT_TIMEOUT {
                        Some(Ended::NeverConnected)
                    } else if now.duration_since(viewer.last_heard) > CONSENT_TIMEOUT {
                        Some(Ended::ConsentExpired)
                    } else if !viewer.studio.is_running() {
                        Some(Ended::StudioStopped)
                    } else {
                        viewer.adapt();
                        None
                    };
                    if let Some(reason) = ended {
                        // A clean end (DTLS close_notify) where the viewer can still hear it.
                        viewer.rtc.disconnect();
                        flush(&mut outbox, &tcp, viewer);
                        viewer.dead = true;
                        viewer.ended_by_loop = true;
                        counters.reaped[reason as usize].fetch_add(1, Ordering::Relaxed);
                        tracing::info!(viewer.id = %viewer.id, reason = reason.label(), "viewer ended");
                    }
                }
            }
        }
        // One batched send for everything this wake-up produced. A full socket drops the
        // rest; viewers recover by NACK (served from str0m's buffer) or a keyframe on PLI.
        let sent = outbox.flush(&socket);
        // str0m may hold a written packet for a later wake-up (its pacer): a frame counts as
        // gone with the first send after it was written.
        if !frames_arrived.is_empty() && sent.sent > 0 {
            let now = Instant::now();
            for at in frames_arrived.drain(..) {
                counters
                    .server_latency
                    .observe(now.saturating_duration_since(at));
            }
        }
        counters
            .packets_sent
            .fetch_add(sent.sent as u64, Ordering::Relaxed);
        counters
            .packets_dropped_viewer
            .fetch_add(sent.dropped as u64, Ordering::Relaxed);
        if routing
            .viewers
            .values()
            .any(|v| v.dead || !v.rtc.is_alive())
        {
            let Routing {
                viewers,
                routes,
                by_ufrag,
            } = &mut routing;
            viewers.retain(|_, v| {
                let keep = !v.dead && v.rtc.is_alive();
                if !keep {
                    // A viewer that never connected and that str0m gave up on first (its own
                    // ICE timeout can come just before the loop's) ended the same way.
                    if v.connected_at.is_none() && !v.ended_by_loop {
                        counters.reaped[Ended::NeverConnected as usize]
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    v.leave();
                    counters.viewers.fetch_sub(1, Ordering::Relaxed);
                    tracing::info!(session.id = %v.session_id(), viewer.id = %v.id, "viewer left");
                }
                keep
            });
            routes.retain(|_, id| viewers.contains_key(id));
            by_ufrag.retain(|_, id| viewers.contains_key(id));
            tcp.retain(|peer| routes.contains_key(peer));
        }
    }
}

/// Drains a viewer's output: transmits (queued for one batched send), events, and its next
/// timeout.
fn flush(outbox: &mut Outbox, tcp: &TcpPeers, viewer: &mut Viewer) {
    // What this viewer queues is its studio's, for the per-session counters.
    outbox.owner(&viewer.studio.stats);
    let now = Instant::now();
    // str0m hands out queued packets a few per timeout: while its timeout is already due,
    // run it again, so everything ready leaves now, this viewer's packets together.
    let mut due_rounds = 0;
    loop {
        match viewer.rtc.poll_output() {
            Ok(Output::Timeout(at)) if at <= now && due_rounds < FLUSH_DUE_ROUNDS => {
                due_rounds += 1;
                if viewer.rtc.handle_input(Input::Timeout(now)).is_err() {
                    viewer.dead = true;
                }
            }
            Ok(Output::Timeout(at)) => {
                viewer.next_timeout = at;
                return;
            }
            Ok(Output::Transmit(t)) if t.proto == Protocol::Tcp => {
                if tcp.send(&t.destination, t.contents.into()) {
                    outbox.sent_elsewhere();
                } else {
                    outbox.dropped_elsewhere();
                }
            }
            Ok(Output::Transmit(t)) => outbox.push(t.destination, t.contents.into()),
            Ok(Output::Event(event)) => viewer.handle_event(event),
            Err(e) => {
                tracing::debug!(viewer.id = %viewer.id, error = %e, "viewer session failed");
                viewer.dead = true;
                viewer.next_timeout = Instant::now() + Duration::from_secs(1);
                return;
            }
        }
    }
}
