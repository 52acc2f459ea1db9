//! The server side of one RTMP publishing connection, sans-IO.
//!
//! How to drive it:
//! 1. Feed every received byte to [`ServerSession::handle_input`].
//! 2. Send [`ServerSession::take_output`] to the peer after every call.
//! 3. Drain [`ServerSession::poll_event`]. On [`SessionEvent::PublishRequested`] decide, then
//!    call [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`]. Audio and
//!    video are only reported once a publish was accepted; before that they are dropped.
//!
//! Any error from `handle_input` is final: flush the output and close the connection.
//! No time source is needed: RTMP has no timers on the server side we care about.

use std::collections::VecDeque;

use bytes::Bytes;

use super::amf0::{self, Amf0Error, Amf0Value};
use super::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, Message};
use crate::flv::{self, AudioTag, FlvError, VideoTag};

/// Size of C1/S1/C2/S2 in the handshake.
const HANDSHAKE_LEN: usize = 1536;

/// Chunk size we announce and send with.
const OUR_CHUNK_SIZE: u32 = 4096;

/// Acknowledgement window we ask the peer to use, and peer bandwidth we announce.
const WINDOW_ACK_SIZE: u32 = 2_500_000;

/// Longest stream key or application name taken; keys we issue are 32 characters.
pub const MAX_NAME_LEN: usize = 256;

/// Smallest acknowledgement window a peer may ask for: a smaller one would make every read
/// cost an acknowledgement.
const MIN_PEER_WINDOW: u32 = 4096;

/// The application name of the ingest URL: `rtmp://HOST:PORT/live/{stream_key}`.
pub const APP_NAME: &str = "live";

#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("RTMP version {0} is not supported (only plain RTMP 3)")]
    Version(u8),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error("malformed AMF0 in {context}: {source}")]
    Amf0 {
        context: &'static str,
        source: Amf0Error,
    },
    #[error("malformed {0} message")]
    Malformed(&'static str),
    #[error("command {0:?} is not supported by this server (publish only)")]
    Unsupported(String),
    #[error(transparent)]
    Flv(#[from] FlvError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The peer asked to publish on `app` with `stream_key` (query string removed).
    PublishRequested {
        app: String,
        stream_key: String,
    },
    Metadata(Amf0Value),
    Video {
        timestamp_ms: u32,
        tag: VideoTag,
    },
    Audio {
        timestamp_ms: u32,
        tag: AudioTag,
    },
    /// The peer stopped publishing (FCUnpublish / deleteStream).
    Unpublished,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Phase {
    WaitC0C1,
    WaitC2,
    Commands,
    AwaitingDecision,
    Publishing,
    Refused,
}

#[derive(Debug)]
pub struct ServerSession {
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    events: VecDeque<SessionEvent>,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    app: String,
    publish_stream_id: u32,
    publish_txn: f64,
    bytes_in: u64,
    last_ack: u64,
    peer_window: u32,
}

impl Default for ServerSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerSession {
    pub fn new() -> Self {
        Self {
            phase: Phase::WaitC0C1,
            inbuf: Vec::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            decoder: ChunkDecoder::default(),
            encoder: ChunkEncoder::default(),
            app: String::new(),
            publish_stream_id: 0,
            publish_txn: 0.0,
            bytes_in: 0,
            last_ack: 0,
            peer_window: WINDOW_ACK_SIZE,
        }
    }

    /// Bytes to send to the peer, in order. Call after every other method.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Bytes this connection's parser holds: input not yet parsed into whole chunks, and
    /// unfinished messages. Bounded by one chunk plus the chunk decoder's `MAX_BUFFERED`.
    pub fn held_bytes(&self) -> usize {
        self.inbuf.len() + self.decoder.buffered()
    }

    pub fn is_publishing(&self) -> bool {
        self.phase == Phase::Publishing
    }

    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        let result = self.handle_bytes(bytes);
        // Media we cannot take (another codec) is told to the publisher before the close.
        if let Err(RtmpError::Flv(e)) = &result
            && self.phase == Phase::Publishing
        {
            self.phase = Phase::Refused;
            self.on_status("error", "NetStream.Publish.Rejected", &e.to_string());
        }
        result
    }

    fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        self.bytes_in += bytes.len() as u64;
        self.inbuf.extend_from_slice(bytes);
        loop {
            match self.phase {
                Phase::WaitC0C1 => {
                    if self.inbuf.is_empty() {
                        return Ok(());
                    }
                    if self.inbuf[0] != 3 {
                        return Err(RtmpError::Version(self.inbuf[0]));
                    }
                    if self.inbuf.len() < 1 + HANDSHAKE_LEN {
                        return Ok(());
                    }
                    let c1: Vec<u8> = self.inbuf.drain(..1 + HANDSHAKE_LEN).skip(1).collect();
                    self.out.push(3);
                    // S1: time 0, zero, then random-looking bytes (content is not checked).
                    let mut s1 = vec![0u8; HANDSHAKE_LEN];
                    for (i, b) in s1.iter_mut().enumerate().skip(8) {
                        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
                    }
                    self.out.extend_from_slice(&s1);
                    // S2 echoes C1 (simple handshake).
                    self.out.extend_from_slice(&c1);
                    self.phase = Phase::WaitC2;
                }
                Phase::WaitC2 => {
                    if self.inbuf.len() < HANDSHAKE_LEN {
                        return Ok(());
                    }
                    self.inbuf.drain(..HANDSHAKE_LEN);
                    self.phase = Phase::Commands;
                }
                _ => break,
            }
        }
        let mut messages = Vec::new();
        let consumed = self.decoder.decode(&self.inbuf, &mut messages)?;
        self.inbuf.drain(..consumed);
        for message in messages {
            self.handle_message(message)?;
        }
        if self.bytes_in - self.last_ack >= self.peer_window as u64 {
            self.last_ack = self.bytes_in;
            let seq = (self.bytes_in & 0xFFFF_FFFF) as u32;
            self.encoder
                .write(&mut self.out, 2, 3, 0, 0, &seq.to_be_bytes());
        }
        Ok(())
    }

    /// Confirms a publish: the peer gets `NetStream.Publish.Start` and media is accepted.
    pub fn accept_publish(&mut self) {
        if self.phase != Phase::AwaitingDecision {
            return;
        }
        self.phase = Phase::Publishing;
        // User control: Stream Begin.
        let mut ctrl = vec![0, 0];
        ctrl.extend_from_slice(&self.publish_stream_id.to_be_bytes());
        self.encoder.write(&mut self.out, 2, 4, 0, 0, &ctrl);
        self.on_status("status", "NetStream.Publish.Start", "Publishing.");
    }

    /// Refuses a publish with a reason the publisher shows. Close the connection afterwards.
    pub fn reject_publish(&mut self, reason: &str) {
        self.phase = Phase::Refused;
        self.on_status("error", "NetStream.Publish.BadName", reason);
    }

    fn on_status(&mut self, level: &str, code: &str, description: &str) {
        let info = amf0::object([
            ("level", Amf0Value::String(level.into())),
            ("code", Amf0Value::String(code.into())),
            ("description", Amf0Value::String(description.into())),
        ]);
        let values = [
            Amf0Value::String("onStatus".into()),
            Amf0Value::Number(self.publish_txn.max(0.0)),
            Amf0Value::Null,
            info,
        ];
        self.send_command(5, self.publish_stream_id, &values);
    }

    fn send_command(&mut self, csid: u8, stream_id: u32, values: &[Amf0Value]) {
        let mut payload = Vec::new();
        for v in values {
            amf0::encode(v, &mut payload);
        }
        self.encoder
            .write(&mut self.out, csid, 20, stream_id, 0, &payload);
    }

    fn handle_message(&mut self, m: Message) -> Result<(), RtmpError> {
        match m.type_id {
            // Set Chunk Size is applied by the decoder itself.
            1 => Ok(()),
            2 => {
                let id = be_u32(&m.payload).ok_or(RtmpError::Malformed("abort"))?;
                self.decoder.abort(id);
                Ok(())
            }
            3 | 4 | 6 => Ok(()),
            5 => {
                let size = be_u32(&m.payload).ok_or(RtmpError::Malformed("window ack size"))?;
                self.peer_window = size.max(MIN_PEER_WINDOW);
                Ok(())
            }
            8 => {
                if self.phase == Phase::Publishing && !m.payload.is_empty() {
                    let tag = flv::parse_audio(Bytes::from(m.payload))?;
                    self.events.push_back(SessionEvent::Audio {
                        timestamp_ms: m.timestamp,
                        tag,
                    });
                }
                Ok(())
            }
            9 => {
                if self.phase == Phase::Publishing && !m.payload.is_empty() {
                    let tag = flv::parse_video(Bytes::from(m.payload))?;
                    self.events.push_back(SessionEvent::Video {
                        timestamp_ms: m.timestamp,
                        tag,
                    });
                }
                Ok(())
            }
            18 => {
                let values = amf0::decode_all(&m.payload).map_err(|source| RtmpError::Amf0 {
                    context: "data message",
                    source,
                })?;
                let mut values = values.into_iter();
                let mut name = values.next();
                if name.as_ref().and_then(Amf0Value::as_str) == Some("@setDataFrame") {
                    name = values.next();
                }
                if name.as_ref().and_then(Amf0Value::as_str) == Some("onMetaData")
                    && let Some(meta) = values.next()
                {
                    self.events.push_back(SessionEvent::Metadata(meta));
                }
                Ok(())
            }
            20 => self.handle_command(&m),
            // AMF3 commands and shared objects: not used by publishers we support.
            15 | 16 | 17 | 19 => Ok(()),
            // Aggregate messages and anything unknown: ignore rather than fail.
            _ => Ok(()),
        }
    }

    fn handle_command(&mut self, m: &Message) -> Result<(), RtmpError> {
        let values = amf0::decode_all(&m.payload).map_err(|source| RtmpError::Amf0 {
            context: "command",
            source,
        })?;
        let name = values
            .first()
            .and_then(Amf0Value::as_str)
            .ok_or(RtmpError::Malformed("command"))?;
        let txn = values.get(1).and_then(Amf0Value::as_number).unwrap_or(0.0);
        match name {
            "connect" => {
                self.app = values
                    .get(2)
                    .and_then(|o| o.get("app"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string();
                self.encoder
                    .write(&mut self.out, 2, 5, 0, 0, &WINDOW_ACK_SIZE.to_be_bytes());
                let mut bw = WINDOW_ACK_SIZE.to_be_bytes().to_vec();
                bw.push(2);
                self.encoder.write(&mut self.out, 2, 6, 0, 0, &bw);
                self.encoder
                    .write(&mut self.out, 2, 1, 0, 0, &OUR_CHUNK_SIZE.to_be_bytes());
                self.encoder.set_chunk_size(OUR_CHUNK_SIZE);
                let props = amf0::object([
                    ("fmsVer", Amf0Value::String("FMS/3,0,1,123".into())),
                    ("capabilities", Amf0Value::Number(31.0)),
                ]);
                let info = amf0::object([
                    ("level", Amf0Value::String("status".into())),
                    (
                        "code",
                        Amf0Value::String("NetConnection.Connect.Success".into()),
                    ),
                    (
                        "description",
                        Amf0Value::String("Connection succeeded.".into()),
                    ),
                    ("objectEncoding", Amf0Value::Number(0.0)),
                ]);
                self.send_command(
                    3,
                    0,
                    &[
                        Amf0Value::String("_result".into()),
                        Amf0Value::Number(txn),
                        props,
                        info,
                    ],
                );
            }
            // Answered only when the peer waits for an answer (a transaction id).
            "releaseStream" | "FCPublish" | "_checkbw" | "getStreamLength" if txn > 0.0 => {
                self.send_command(
                    3,
                    0,
                    &[
                        Amf0Value::String("_result".into()),
                        Amf0Value::Number(txn),
                        Amf0Value::Null,
                        Amf0Value::Undefined,
                    ],
                );
            }
            "createStream" => {
                self.send_command(
                    3,
                    0,
                    &[
                        Amf0Value::String("_result".into()),
                        Amf0Value::Number(txn),
                        Amf0Value::Null,
                        Amf0Value::Number(1.0),
                    ],
                );
            }
            "publish" => {
                if self.phase != Phase::Commands {
                    return Err(RtmpError::Malformed("second publish on one connection"));
                }
                let raw = values
                    .get(3)
                    .and_then(Amf0Value::as_str)
                    .ok_or(RtmpError::Malformed("publish"))?;
                if raw.len() > MAX_NAME_LEN || self.app.len() > MAX_NAME_LEN {
                    return Err(RtmpError::Malformed("publish: name longer than 256 bytes"));
                }
                let stream_key = raw.split('?').next().unwrap_or_default().to_string();
                self.publish_stream_id = m.stream_id;
                self.publish_txn = txn;
                self.phase = Phase::AwaitingDecision;
                self.events.push_back(SessionEvent::PublishRequested {
                    app: self.app.clone(),
                    stream_key,
                });
            }
            "FCUnpublish" | "deleteStream" | "closeStream" if self.phase == Phase::Publishing => {
                self.phase = Phase::Commands;
                self.events.push_back(SessionEvent::Unpublished);
            }
            "play" | "play2" => return Err(RtmpError::Unsupported(name.to_string())),
            _ => {}
        }
        Ok(())
    }
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal client: handshake plus commands, chunked with the default size.
    fn client_bytes(commands: &[Vec<Amf0Value>]) -> Vec<u8> {
        let mut bytes = vec![3];
        bytes.extend(std::iter::repeat_n(7u8, HANDSHAKE_LEN * 2));
        let enc = ChunkEncoder::default();
        for (i, cmd) in commands.iter().enumerate() {
            let mut payload = Vec::new();
            for v in cmd {
                amf0::encode(v, &mut payload);
            }
            let stream_id = if i >= 2 { 1 } else { 0 };
            enc.write(&mut bytes, 3, 20, stream_id, 0, &payload);
        }
        bytes
    }

    fn publish_flow(key: &str) -> Vec<u8> {
        client_bytes(&[
            vec![
                Amf0Value::String("connect".into()),
                Amf0Value::Number(1.0),
                amf0::object([("app", Amf0Value::String("live".into()))]),
            ],
            vec![
                Amf0Value::String("createStream".into()),
                Amf0Value::Number(2.0),
                Amf0Value::Null,
            ],
            vec![
                Amf0Value::String("publish".into()),
                Amf0Value::Number(3.0),
                Amf0Value::Null,
                Amf0Value::String(key.into()),
                Amf0Value::String("live".into()),
            ],
        ])
    }

    #[test]
    fn publish_flow_reports_the_stream_key() {
        let mut s = ServerSession::new();
        s.handle_input(&publish_flow("abc?x=1")).unwrap();
        assert!(s.take_output().len() > 1 + 2 * HANDSHAKE_LEN);
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::PublishRequested {
                app: "live".into(),
                stream_key: "abc".into()
            })
        );
        s.accept_publish();
        assert!(s.is_publishing());
        let out = s.take_output();
        assert!(out.windows(23).any(|w| w == b"NetStream.Publish.Start"));
    }

    #[test]
    fn media_before_accept_is_dropped() {
        let mut s = ServerSession::new();
        s.handle_input(&publish_flow("k")).unwrap();
        let mut bytes = Vec::new();
        ChunkEncoder::default().write(
            &mut bytes,
            6,
            9,
            1,
            0,
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65],
        );
        s.handle_input(&bytes).unwrap();
        assert!(matches!(
            s.poll_event(),
            Some(SessionEvent::PublishRequested { .. })
        ));
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn rejected_publish_tells_the_publisher_why() {
        let mut s = ServerSession::new();
        s.handle_input(&publish_flow("wrong")).unwrap();
        s.take_output();
        s.reject_publish("unknown stream key");
        let out = s.take_output();
        assert!(out.windows(25).any(|w| w == b"NetStream.Publish.BadName"));
        assert!(out.windows(18).any(|w| w == b"unknown stream key"));
        assert!(!s.is_publishing());
    }

    #[test]
    fn an_unsupported_codec_is_refused_with_a_status_the_publisher_shows() {
        let mut s = ServerSession::new();
        s.handle_input(&publish_flow("k")).unwrap();
        s.accept_publish();
        s.take_output();
        let mut bytes = Vec::new();
        // Enhanced RTMP VP9 sequence start (HEVC and AV1 are taken; VP9 is not).
        ChunkEncoder::default().write(
            &mut bytes,
            6,
            9,
            1,
            0,
            &[0x90, b'v', b'p', b'0', b'9', 1, 2, 3],
        );
        assert!(matches!(s.handle_input(&bytes), Err(RtmpError::Flv(_))));
        let out = s.take_output();
        assert!(out.windows(26).any(|w| w == b"NetStream.Publish.Rejected"));
        assert!(
            out.windows(4).any(|w| w == b"vp09"),
            "the description names the codec"
        );
    }

    #[test]
    fn truncated_handshake_waits_and_wrong_version_fails() {
        let mut s = ServerSession::new();
        s.handle_input(&[3, 0, 0, 0]).unwrap();
        assert!(s.take_output().is_empty());
        assert!(matches!(
            ServerSession::new().handle_input(&[6; 10]),
            Err(RtmpError::Version(6))
        ));
    }

    #[test]
    fn malformed_command_is_an_error_not_a_panic() {
        let mut bytes = vec![3];
        bytes.extend(std::iter::repeat_n(0u8, HANDSHAKE_LEN * 2));
        // A command whose string claims more bytes than follow.
        ChunkEncoder::default().write(&mut bytes, 3, 20, 0, 0, &[0x02, 0x00, 0x50, b'c']);
        assert!(matches!(
            ServerSession::new().handle_input(&bytes),
            Err(RtmpError::Amf0 { .. })
        ));
        // A @setDataFrame with a broken object.
        let mut bytes = vec![3];
        bytes.extend(std::iter::repeat_n(0u8, HANDSHAKE_LEN * 2));
        let mut payload = Vec::new();
        amf0::encode(&Amf0Value::String("@setDataFrame".into()), &mut payload);
        payload.extend_from_slice(&[0x08, 0, 0, 0, 1, 0x00, 0x05, b'w']);
        ChunkEncoder::default().write(&mut bytes, 4, 18, 1, 0, &payload);
        assert!(ServerSession::new().handle_input(&bytes).is_err());
    }

    #[test]
    fn every_prefix_and_bit_flip_of_a_session_is_handled_without_panic() {
        let mut bytes = publish_flow("key");
        let enc = ChunkEncoder::default();
        enc.write(
            &mut bytes,
            6,
            9,
            1,
            0,
            &[0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1f, 0xff, 0xe1, 0, 0],
        );
        enc.write(&mut bytes, 6, 8, 1, 0, &[0xAF, 0, 0x12, 0x10]);
        for cut in 0..bytes.len() {
            let mut s = ServerSession::new();
            let _ = s.handle_input(&bytes[..cut]);
        }
        let start = 1 + 2 * HANDSHAKE_LEN;
        for i in start..bytes.len() {
            for bit in [0x01u8, 0x80, 0xFF] {
                let mut fuzzed = bytes.clone();
                fuzzed[i] ^= bit;
                let mut s = ServerSession::new();
                if s.handle_input(&fuzzed).is_ok() {
                    s.accept_publish();
                    let _ = s.handle_input(&[0xC6, 1, 2, 3]);
                }
            }
        }
    }
}
