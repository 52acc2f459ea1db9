//! The RTMP listener and one task per connection: a thin loop around the sans-IO
//! [`ServerSession`] that checks the stream key, attaches the publisher to its studio and
//! feeds the publisher's decode pipeline.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::health::IngestBoard;
use super::health::PublisherWatch;
use super::limits::IngestLimits;
use super::limits::{ADMIT_DEADLINE, CloseReason, MEDIA_IDLE_DEADLINE, WRITE_DEADLINE};
use crate::media::codecs::AudioInput;
use crate::media::decode::PublisherDecode;
use crate::studio::{PublisherLink, StudioHandle};
use fieldcast_core::flv::{AudioTag, VideoTag};
use fieldcast_core::ids::redact;
use fieldcast_core::rtmp::session::{APP_NAME, ServerSession, SessionEvent};

/// Bytes read per socket read.
const READ_BUFFER: usize = 64 * 1024;

/// What every RTMP connection shares: who may publish, the caps, and the health board.
#[derive(Clone)]
pub struct Ingest {
    pub publishers: std::sync::Arc<dyn Publishers>,
    pub limits: std::sync::Arc<IngestLimits>,
    pub board: std::sync::Arc<IngestBoard>,
}

pub async fn serve(listener: TcpListener, app: Ingest) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let limits = &app.limits;
            let Some(slot) = limits.admit(peer.ip()) else {
                // Closed at once: an over-cap client costs an accept and a close.
                let reason = CloseReason::OverCapacity;
                limits.count_close(reason);
                limits.log.event(reason.label(), || {
                    tracing::warn!(peer = %mask(peer), reason = reason.label(), "RTMP connection over the cap; closed at accept");
                });
                return;
            };
            let mut connection = Connection {
                app: app.clone(),
                slot,
                peer,
                publisher: None,
                decode: None,
                watch: None,
                last_ts: None,
            };
            let (reason, detail) = connection.run(stream).await;
            connection.finish().await;
            limits.count_close(reason);
            let log = || {
                tracing::warn!(peer = %mask(peer), reason = reason.label(), "RTMP connection closed: {detail}");
            };
            if reason.comes_in_floods() {
                limits.log.event(reason.label(), log);
            } else if reason != CloseReason::PeerClosed {
                log();
            }
        });
    }
}

/// Logs never carry a full viewer or publisher address.
pub(crate) fn mask(peer: SocketAddr) -> String {
    super::health::mask_address(peer.ip())
}

struct Connection {
    app: Ingest,
    /// Its place among the connections: provisional until its stream key is accepted.
    slot: crate::slots::Slot,
    peer: SocketAddr,
    publisher: Option<(StudioHandle, PublisherLink)>,
    decode: Option<PublisherDecode>,
    /// What the ingest health endpoint shows of this publisher.
    watch: Option<PublisherWatch>,
    /// Last publisher timestamp, extended past 32 bits.
    last_ts: Option<u64>,
}

/// How a connection ended: the reason `/metrics` counts, and words for the log.
type Closed = (CloseReason, String);

impl Connection {
    /// Serves the connection until it ends. Every wait has a deadline: the publish must be
    /// accepted within [`ADMIT_DEADLINE`] of the accept, then media must keep arriving
    /// ([`MEDIA_IDLE_DEADLINE`]), and every write must finish within [`WRITE_DEADLINE`].
    async fn run(&mut self, mut stream: TcpStream) -> Closed {
        let mut session = ServerSession::new();
        let mut buf = vec![0u8; READ_BUFFER];
        let admit_by = Instant::now() + ADMIT_DEADLINE;
        let mut last_media = Instant::now();
        loop {
            let (deadline, on_timeout) = if session.is_publishing() {
                (last_media + MEDIA_IDLE_DEADLINE, CloseReason::MediaIdle)
            } else {
                (admit_by, CloseReason::AdmitTimeout)
            };
            let presence = self
                .publisher
                .as_ref()
                .map(|(_, link)| link.presence.clone());
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => read,
                _ = self.slot.evicted() => return (
                    CloseReason::OverCapacity,
                    "closed before publishing, to make room for a newer connection".into(),
                ),
                _ = async {
                    match &presence {
                        Some(p) => p.replaced.notified().await,
                        None => std::future::pending().await,
                    }
                } => return (CloseReason::Replaced, "a new connection took the stream key over".into()),
            };
            let n = match read {
                Err(_) => {
                    let what = if on_timeout == CloseReason::MediaIdle {
                        format!("no media for {} s", MEDIA_IDLE_DEADLINE.as_secs())
                    } else {
                        format!("not publishing within {} s", ADMIT_DEADLINE.as_secs())
                    };
                    return (on_timeout, what);
                }
                Ok(Err(e)) => return (CloseReason::PeerClosed, e.to_string()),
                Ok(Ok(0)) => return (CloseReason::PeerClosed, "closed by the peer".into()),
                Ok(Ok(n)) => n,
            };
            let was_publishing = session.is_publishing();
            let input = session.handle_input(&buf[..n]);
            let mut refused = None;
            while let Some(event) = session.poll_event() {
                if matches!(
                    event,
                    SessionEvent::Video { .. } | SessionEvent::Audio { .. }
                ) {
                    last_media = Instant::now();
                    if let Some((_, link)) = &self.publisher {
                        link.presence.media_arrived();
                    }
                }
                if let Err(reason) = self.handle_event(&mut session, event).await {
                    refused = Some(reason);
                    break;
                }
            }
            if !was_publishing && session.is_publishing() {
                // Just accepted: the media deadline runs from now.
                last_media = Instant::now();
            }
            let out = session.take_output();
            if !out.is_empty() {
                match tokio::time::timeout(WRITE_DEADLINE, stream.write_all(&out)).await {
                    Err(_) => {
                        return (
                            CloseReason::WriteTimeout,
                            format!("the peer read nothing for {} s", WRITE_DEADLINE.as_secs()),
                        );
                    }
                    Ok(Err(e)) => return (CloseReason::PeerClosed, e.to_string()),
                    Ok(Ok(())) => {}
                }
            }
            if let Err(e) = input {
                return (CloseReason::Malformed, format!("malformed RTMP: {e}"));
            }
            if let Some(reason) = refused {
                self.app
                    .limits
                    .refused_publishes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = tokio::time::timeout(WRITE_DEADLINE, stream.shutdown()).await;
                return (
                    CloseReason::PublishRefused,
                    format!("publish refused: {reason}"),
                );
            }
        }
    }

    async fn handle_event(
        &mut self,
        session: &mut ServerSession,
        event: SessionEvent,
    ) -> Result<(), String> {
        match event {
            SessionEvent::PublishRequested { app, stream_key } => {
                match self.admit(&app, &stream_key).await {
                    Ok(()) => {
                        session.accept_publish();
                        Ok(())
                    }
                    Err(reason) => {
                        session.reject_publish(&reason);
                        Err(reason)
                    }
                }
            }
            SessionEvent::Video { timestamp_ms, tag } => {
                let ts = self.extend(timestamp_ms);
                if let (Some(decode), Some(watch)) = (self.decode.as_mut(), &self.watch) {
                    match tag {
                        VideoTag::SequenceHeader { codec, record } => {
                            watch.video_config(codec, &record);
                            // This machine cannot decode it: the publisher is told which.
                            decode
                                .set_video_config(codec.into(), Some(record))
                                .map_err(|e| {
                                    format!("{} cannot be decoded here: {e}", codec.name())
                                })?;
                        }
                        VideoTag::Frame {
                            keyframe,
                            composition_ms,
                            data,
                        } => {
                            let bytes = data.len();
                            let decoded = decode.push_video(ts, composition_ms, keyframe, data);
                            let size = self
                                .publisher
                                .as_ref()
                                .and_then(|(_, link)| link.feed.last_source_size());
                            watch.video_frame(ts, keyframe, composition_ms, bytes, decoded, size);
                        }
                        VideoTag::EndOfSequence | VideoTag::Info => {}
                    }
                }
                Ok(())
            }
            SessionEvent::Audio { timestamp_ms, tag } => {
                let ts = self.extend(timestamp_ms);
                if let (Some(decode), Some(watch)) = (self.decode.as_mut(), &self.watch) {
                    match tag {
                        AudioTag::SequenceHeader(config) => {
                            watch.audio_config(&config);
                            decode
                                .set_audio_config(AudioInput::AacRaw, Some(config))
                                .map_err(|e| format!("AAC cannot be decoded here: {e}"))?;
                        }
                        AudioTag::Frame(data) => {
                            watch.audio_frame(data.len());
                            decode.push_audio(ts, data);
                        }
                    }
                }
                Ok(())
            }
            SessionEvent::Metadata(meta) => {
                let dim = |k| meta.get(k).and_then(|v| v.as_number()).unwrap_or(0.0) as u32;
                tracing::info!(
                    peer = %mask(self.peer),
                    width = dim("width"),
                    height = dim("height"),
                    fps = dim("framerate"),
                    "publisher metadata"
                );
                Ok(())
            }
            SessionEvent::Unpublished => {
                self.finish().await;
                Ok(())
            }
        }
    }

    /// Checks the key and claims the studio. The error is shown to the publisher.
    async fn admit(&mut self, app: &str, stream_key: &str) -> Result<(), String> {
        if app != APP_NAME {
            return Err(format!(
                "unknown application {app:?}: publish to rtmp://HOST:PORT/{APP_NAME}/STREAM_KEY"
            ));
        }
        // The lookup may read the database: off the async workers.
        let publishers = self.app.publishers.clone();
        let key = stream_key.to_string();
        let admitted = tokio::task::spawn_blocking(move || publishers.admit(&key))
            .await
            .unwrap_or(Err(PublishRefused::Unavailable));
        let (session_id, studio) = match admitted {
            Ok(admitted) => admitted,
            Err(PublishRefused::UnknownKey) => {
                let peer = self.peer;
                self.app.limits.log.event("unknown_key", || {
                    tracing::warn!(peer = %mask(peer), stream_key = %redact(stream_key), "unknown stream key refused");
                });
                return Err("unknown stream key".into());
            }
            Err(PublishRefused::Unavailable) => return Err("server error; try again".into()),
        };
        // A valid key: this connection is a publisher, never closed to make room.
        self.slot.confirm();
        let link = studio
            .attach_publisher(MEDIA_IDLE_DEADLINE)
            .await
            .map_err(|e| e.to_string())?;
        let decode = PublisherDecode::start(&session_id, &link.format, link.feed.clone());
        match decode {
            Ok(decode) => self.decode = Some(decode),
            Err(e) => {
                studio.detach_publisher(link.id).await;
                tracing::error!(session.id = %session_id, error = %e, "publisher decode did not start");
                return Err("server error; try again".into());
            }
        }
        tracing::info!(session.id = %session_id, peer = %mask(self.peer), "publisher live");
        self.watch = Some(
            self.app
                .board
                .publisher(&session_id, mask(self.peer), "rtmp"),
        );
        self.publisher = Some((studio, link));
        Ok(())
    }

    fn extend(&mut self, ts: u32) -> u64 {
        let ts = ts as u64;
        let extended = match self.last_ts {
            None => ts,
            Some(last) => {
                let epoch = last & !0xFFFF_FFFF;
                let candidate = epoch | ts;
                if candidate + (1 << 31) < last {
                    candidate + (1 << 32)
                } else {
                    candidate
                }
            }
        };
        self.last_ts = Some(extended);
        extended
    }

    /// Releases the studio: the slate takes over for the viewers.
    async fn finish(&mut self) {
        self.watch = None;
        if let Some(decode) = self.decode.take() {
            let _ = tokio::task::spawn_blocking(move || drop(decode)).await;
        }
        if let Some((studio, link)) = self.publisher.take() {
            studio.detach_publisher(link.id).await;
        }
    }
}

/// Who may publish: the server looks a stream key up and puts its session on air. Called off
/// the async workers, so it may read a database.
pub trait Publishers: Send + Sync + 'static {
    /// The session a stream key publishes to (its id) and its studio, on air.
    fn admit(&self, stream_key: &str) -> Result<(String, StudioHandle), PublishRefused>;
}

/// Why a publish was refused, in words the publisher may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefused {
    /// No session has this stream key.
    UnknownKey,
    /// The key is known but the studio could not be had (the server logged why).
    Unavailable,
}
