//! The WHIP event loop: one task, one UDP socket, every WebRTC publisher. It waits for a
//! datagram (routed to the publisher whose `Rtc` accepts it), a command, or the earliest str0m
//! timeout; then drains the touched publishers' output: datagrams to send, and media to
//! decode into their studios.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::ingest::health::PublisherWatch;
use crate::ingest::limits::MEDIA_IDLE_DEADLINE;
use crate::media::codecs::{AudioInput, VideoInput};
use crate::media::decode::PublisherDecode;
use crate::studio::{PublisherLink, StudioHandle};

/// A publisher that has not connected within this time is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// While the decoder waits for a keyframe, the publisher is asked at most this often.
const KEYFRAME_ASK_EVERY: Duration = Duration::from_millis(500);

/// How often publishers are checked for the ends above.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// Largest datagram we read.
const DATAGRAM_MAX: usize = 2048;

/// A publisher the server admitted (its key checked, the studio claimed).
pub struct WhipPublish {
    pub session_id: String,
    pub studio: StudioHandle,
    pub link: PublisherLink,
    /// Its address with the host part hidden, for the health view and the log.
    pub masked_address: String,
    /// What the ingest health view shows of it (`IngestBoard::publisher`, transport `whip`).
    pub watch: PublisherWatch,
}

/// What the loop is asked to do.
pub(crate) enum Command {
    Add(Box<Publisher>),
    End {
        session_id: String,
        publisher_id: String,
        reply: oneshot::Sender<bool>,
    },
}

/// One WebRTC publisher, owned by the loop.
pub(crate) struct Publisher {
    id: String,
    session_id: String,
    pub(super) studio: StudioHandle,
    pub(super) link: PublisherLink,
    masked_address: String,
    rtc: Rtc,
    decode: Option<PublisherDecode>,
    watch: PublisherWatch,
    created: Instant,
    connected: bool,
    /// The video m-line (learnt from its first media), for keyframe requests.
    video_mid: Option<Mid>,
    last_keyframe_ask: Option<Instant>,
    last_media: Instant,
    next_timeout: Instant,
    /// Why the loop ends it; set once.
    ended: Option<&'static str>,
}

impl Publisher {
    pub(super) fn new(
        id: String,
        admitted: WhipPublish,
        rtc: Rtc,
        decode: PublisherDecode,
    ) -> Self {
        let now = Instant::now();
        Self {
            id,
            session_id: admitted.session_id,
            studio: admitted.studio,
            link: admitted.link,
            masked_address: admitted.masked_address,
            rtc,
            decode: Some(decode),
            watch: admitted.watch,
            created: now,
            connected: false,
            video_mid: None,
            last_keyframe_ask: None,
            last_media: now,
            next_timeout: now,
            ended: None,
        }
    }

    /// Milliseconds since the publisher was created: audio and video on one timeline (their
    /// RTP clocks start at unrelated random values).
    fn timestamp_ms(&self, arrived: Instant) -> u64 {
        arrived.saturating_duration_since(self.created).as_millis() as u64
    }

    fn end(&mut self, why: &'static str) {
        if self.ended.is_none() {
            self.ended = Some(why);
        }
    }

    /// Runs str0m until it has nothing more to say now; datagrams go to `socket`.
    fn drain(&mut self, socket: &UdpSocket) {
        while self.ended.is_none() {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.next_timeout = at;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    // Never waits: a datagram the socket cannot take now is lost, as on a
                    // network; SRTP and the publisher's retransmissions cope.
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(event)) => self.event(event),
                Err(e) => {
                    tracing::warn!(session.id = %self.session_id, error = %e, "WHIP publisher failed");
                    self.end("error");
                }
            }
        }
        self.ask_for_keyframe();
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.last_media = Instant::now();
                tracing::info!(session.id = %self.session_id, peer = %self.masked_address, "publisher live over WHIP");
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.end("disconnected");
            }
            Event::MediaData(data) => self.media(data),
            Event::MediaIngressStats(stats) => {
                self.watch.link_quality(
                    stats.loss.map(|l| l as f64),
                    stats.rtt.map(|r| r.as_secs_f64() * 1000.0),
                );
            }
            _ => {}
        }
    }

    fn media(&mut self, data: str0m::media::MediaData) {
        self.last_media = Instant::now();
        self.link.presence.media_arrived();
        let ts = self.timestamp_ms(data.network_time);
        let codec = data.params.spec().codec;
        let Some(decode) = self.decode.as_mut() else {
            return;
        };
        let bytes = Bytes::copy_from_slice(&data.data);
        match codec {
            Codec::H264 | Codec::Vp8 => {
                self.video_mid = Some(data.mid);
                let input = if codec == Codec::H264 {
                    VideoInput::H264AnnexB
                } else {
                    VideoInput::Vp8
                };
                if decode.video_input() != Some(input) {
                    if let Err(e) = decode.set_video_config(input, None) {
                        tracing::error!(session.id = %self.session_id, error = %e, "WHIP video cannot be decoded");
                        self.end("undecodable");
                        return;
                    }
                    self.watch.codecs(Some(input.name()), None);
                }
                let keyframe = data.is_keyframe();
                let n = bytes.len();
                let decoded = decode.push_video(ts, 0, keyframe, bytes);
                let size = self.link.feed.last_source_size();
                self.watch.video_frame(ts, keyframe, 0, n, decoded, size);
            }
            Codec::Opus => {
                if decode.audio_input() != Some(AudioInput::Opus) {
                    if let Err(e) = decode.set_audio_config(AudioInput::Opus, None) {
                        tracing::error!(session.id = %self.session_id, error = %e, "WHIP audio cannot be decoded");
                        self.end("undecodable");
                        return;
                    }
                    self.watch.codecs(None, Some(AudioInput::Opus.name()));
                }
                self.watch.audio_frame(bytes.len());
                decode.push_audio(ts, bytes);
            }
            _ => {}
        }
    }

    /// Asks the publisher for a keyframe (PLI) while the decoder waits for one.
    fn ask_for_keyframe(&mut self) {
        let (Some(mid), Some(decode)) = (self.video_mid, self.decode.as_ref()) else {
            return;
        };
        if !self.connected || !decode.wants_keyframe() {
            return;
        }
        if self
            .last_keyframe_ask
            .is_some_and(|at| at.elapsed() < KEYFRAME_ASK_EVERY)
        {
            return;
        }
        if let Some(mut writer) = self.rtc.writer(mid)
            && writer
                .request_keyframe(None, KeyframeRequestKind::Pli)
                .is_ok()
        {
            self.last_keyframe_ask = Some(Instant::now());
        }
    }

    /// Ends it if it never connected, went silent, or its studio ended or let another
    /// publisher take over.
    fn reap(&mut self) {
        if !self.connected && self.created.elapsed() > CONNECT_TIMEOUT {
            self.end("never_connected");
        } else if self.connected && self.last_media.elapsed() > MEDIA_IDLE_DEADLINE {
            self.end("media_idle");
        } else if !self.studio.is_running() {
            self.end("studio_stopped");
        } else if self.link.presence.was_replaced() {
            self.end("replaced");
        }
    }

    /// Gives the studio back (the slate shows) and stops the decoder, off this thread.
    fn finish(mut self) {
        let why = self.ended.unwrap_or("ended");
        tracing::info!(session.id = %self.session_id, peer = %self.masked_address, reason = why, "WHIP publisher ended");
        self.rtc.disconnect();
        let decode = self.decode.take();
        let (studio, id) = (self.studio.clone(), self.link.id);
        tokio::spawn(async move {
            if let Some(decode) = decode {
                let _ = tokio::task::spawn_blocking(move || drop(decode)).await;
            }
            studio.detach_publisher(id).await;
        });
    }
}

/// `announce`: the address in our host candidate. Datagrams are handed to str0m as sent to
/// it, whatever the socket is bound to: str0m pairs them with the local candidate by that
/// address, and a socket bound to all interfaces (`0.0.0.0`, as in a container) would
/// otherwise match none, and no publisher would ever connect.
pub(crate) async fn run(
    socket: UdpSocket,
    announce: SocketAddr,
    mut commands: mpsc::Receiver<Command>,
    _commands_tx: mpsc::Sender<Command>,
) {
    let local = announce;
    let mut publishers: HashMap<String, Publisher> = HashMap::new();
    let mut routes: HashMap<SocketAddr, String> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut reap = tokio::time::interval(REAP_EVERY);
    loop {
        let next_timeout = publishers
            .values()
            .map(|p| p.next_timeout)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = received else { continue };
                let now = Instant::now();
                let Ok(contents) = (&buf[..n]).try_into() else { continue };
                let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: local, contents });
                let owner = routes
                    .get(&source)
                    .filter(|id| publishers.get(*id).is_some_and(|p| p.rtc.accepts(&input)))
                    .cloned()
                    .or_else(|| publishers.iter().find(|(_, p)| p.rtc.accepts(&input)).map(|(id, _)| id.clone()));
                if let Some(id) = owner
                    && let Some(p) = publishers.get_mut(&id)
                {
                    routes.insert(source, id);
                    if let Err(e) = p.rtc.handle_input(input) {
                        tracing::debug!(error = %e, "WHIP input refused");
                    }
                    p.drain(&socket);
                }
            }
            command = commands.recv() => match command {
                None => break,
                Some(Command::Add(mut p)) => {
                    p.drain(&socket);
                    publishers.insert(p.id.clone(), *p);
                }
                Some(Command::End { session_id, publisher_id, reply }) => {
                    let found = publishers
                        .get_mut(&publisher_id)
                        .filter(|p| p.session_id == session_id)
                        .map(|p| p.end("deleted"))
                        .is_some();
                    let _ = reply.send(found);
                }
            },
            _ = tokio::time::sleep_until(next_timeout.into()) => {
                let now = Instant::now();
                for p in publishers.values_mut().filter(|p| p.next_timeout <= now) {
                    let _ = p.rtc.handle_input(Input::Timeout(now));
                    p.drain(&socket);
                }
            }
            _ = reap.tick() => {
                for p in publishers.values_mut() {
                    p.reap();
                }
            }
        }
        let ended: Vec<String> = publishers
            .iter()
            .filter(|(_, p)| p.ended.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            if let Some(p) = publishers.remove(&id) {
                routes.retain(|_, owner| *owner != id);
                p.finish();
            }
        }
    }
}
