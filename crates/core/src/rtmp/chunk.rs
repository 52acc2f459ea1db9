//! RTMP chunk stream: splits the byte stream into chunks and reassembles messages.
//!
//! Drive [`ChunkDecoder::decode`] with the bytes that arrived; it consumes what forms whole
//! chunks and returns complete messages. Every length on the wire is checked against a limit
//! before anything is allocated.

use std::collections::HashMap;

/// Largest chunk size a peer may set. The spec allows 2^31-1; no encoder needs more than this.
pub const MAX_CHUNK_SIZE: u32 = 1 << 24;

/// Largest message we reassemble. A 1080p keyframe at a high bitrate is well under this.
pub const MAX_MESSAGE_LEN: u32 = 8 << 20;

/// Most chunk streams one connection may keep state for. Publishers use four or five.
pub const MAX_CHUNK_STREAMS: usize = 64;

/// Most bytes of unfinished messages one connection holds, over all its chunk streams: a
/// publisher interleaves one audio and one video message at a time.
pub const MAX_BUFFERED: usize = 2 * MAX_MESSAGE_LEN as usize;

/// Chunk size both sides start with (RTMP spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChunkError {
    #[error("chunk size {0} is outside 1..={MAX_CHUNK_SIZE}")]
    ChunkSize(u32),
    #[error("message length {0} exceeds the limit of {MAX_MESSAGE_LEN} bytes")]
    MessageTooLong(u32),
    #[error("chunk stream {0} continues a message it never started")]
    UnknownChunkStream(u32),
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams in use")]
    TooManyChunkStreams,
    #[error(
        "a header mid-message declares {declared} bytes for a message of {was} bytes, \
         {reassembled} of them already received"
    )]
    LengthChanged {
        declared: u32,
        was: u32,
        reassembled: usize,
    },
    #[error("more than {MAX_BUFFERED} bytes of unfinished messages")]
    TooMuchBuffered,
}

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    /// Milliseconds, extended past 32 bits on wrap-around by the caller if it cares.
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// What a chunk stream remembers between chunks. It exists once a fmt 0 header started it.
#[derive(Debug, Default)]
struct StreamState {
    timestamp: u32,
    /// Timestamp delta of the last header (fmt 1/2), re-applied by fmt 3 on a new message.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// Bytes of the message being reassembled; empty between messages.
    partial: Vec<u8>,
}

#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    streams: HashMap<u32, StreamState>,
    /// Bytes held in `partial` over all streams (bounded by [`MAX_BUFFERED`]).
    buffered: usize,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            buffered: 0,
        }
    }
}

impl ChunkDecoder {
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::ChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Bytes of unfinished messages held, over all chunk streams.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Drops a partly received message (Abort message, type 2).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            self.buffered -= s.partial.len();
            s.partial = Vec::new();
        }
    }

    /// Decodes as many whole chunks from the front of `buf` as are there. Returns the number of
    /// bytes consumed; complete messages are appended to `out`. A chunk whose bytes have not all
    /// arrived yet is left in `buf` for the next call.
    pub fn decode(&mut self, buf: &[u8], out: &mut Vec<Message>) -> Result<usize, ChunkError> {
        let mut consumed = 0;
        loop {
            match self.decode_one(&buf[consumed..])? {
                None => return Ok(consumed),
                Some((n, message)) => {
                    consumed += n;
                    if let Some(m) = message {
                        // A Set Chunk Size takes effect on the very next chunk.
                        if m.type_id == 1 && m.payload.len() >= 4 {
                            let size = u32::from_be_bytes([
                                m.payload[0],
                                m.payload[1],
                                m.payload[2],
                                m.payload[3],
                            ]) & 0x7FFF_FFFF;
                            self.set_chunk_size(size)?;
                        }
                        out.push(m);
                    }
                }
            }
        }
    }

    /// Parses one chunk. `Ok(None)` means more bytes are needed; then nothing is changed, so
    /// the same chunk is parsed again, from its header, once more bytes arrived. The header is
    /// read and checked before any state changes, and the payload is appended in place: a
    /// chunk costs work in proportion to its own size, never to the message it belongs to.
    fn decode_one(&mut self, buf: &[u8]) -> Result<Option<(usize, Option<Message>)>, ChunkError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3F {
            0 => match buf.get(1) {
                Some(&b) => (64 + b as u32, 2),
                None => return Ok(None),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + b1 as u32 + 256 * b2 as u32, 3),
                _ => return Ok(None),
            },
            id => (id as u32, 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        if buf.len() < pos + header_len {
            return Ok(None);
        }
        let prev = self.streams.get(&csid);
        match prev {
            None if fmt != 0 => return Err(ChunkError::UnknownChunkStream(csid)),
            None if self.streams.len() >= MAX_CHUNK_STREAMS => {
                return Err(ChunkError::TooManyChunkStreams);
            }
            _ => {}
        }
        let h = &buf[pos..pos + header_len];
        let be24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        // What this chunk declares, over what the stream had (fmt 3 declares nothing).
        let prev_length = prev.map_or(0, |s| s.length);
        let have = prev.map_or(0, |s| s.partial.len());
        let length = if fmt <= 1 {
            be24(&h[3..6])
        } else {
            prev_length
        };
        let mut raw_ts = if fmt <= 2 { be24(&h[0..3]) } else { 0 };
        let extended = if fmt <= 2 {
            raw_ts == 0xFF_FFFF
        } else {
            prev.is_some_and(|s| s.extended)
        };
        pos += header_len;
        // Extended timestamp: present on every chunk of a stream whose header used it.
        if extended {
            let Some(b) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            raw_ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            pos += 4;
        }
        if length > MAX_MESSAGE_LEN {
            return Err(ChunkError::MessageTooLong(length));
        }
        // A header in the middle of a message must not change its length: a shorter one would
        // leave more reassembled than declared, a longer one would grow a message under way.
        if have > 0 && length != prev_length {
            return Err(ChunkError::LengthChanged {
                declared: length,
                was: prev_length,
                reassembled: have,
            });
        }
        let take = (length as usize - have).min(self.chunk_size as usize);
        let Some(payload) = buf.get(pos..pos + take) else {
            return Ok(None);
        };
        if self.buffered + take > MAX_BUFFERED {
            return Err(ChunkError::TooMuchBuffered);
        }
        pos += take;

        let state = self.streams.entry(csid).or_default();
        match fmt {
            0 => {
                state.type_id = h[6];
                state.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
            }
            1 => state.type_id = h[6],
            _ => {}
        }
        state.length = length;
        state.extended = extended;
        if have == 0 {
            match fmt {
                0 => state.timestamp = raw_ts,
                1 | 2 => {
                    state.delta = raw_ts;
                    state.timestamp = state.timestamp.wrapping_add(raw_ts);
                }
                _ => state.timestamp = state.timestamp.wrapping_add(state.delta),
            }
        }
        state.partial.extend_from_slice(payload);
        self.buffered += take;
        let message = if state.partial.len() == length as usize {
            self.buffered -= state.partial.len();
            Some(Message {
                csid,
                type_id: state.type_id,
                stream_id: state.stream_id,
                timestamp: state.timestamp,
                payload: std::mem::take(&mut state.partial),
            })
        } else {
            None
        };
        Ok(Some((pos, message)))
    }
}

/// Writes messages as chunks with our outgoing chunk size.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkEncoder {
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// Appends `payload` as one message on chunk stream `csid` (2..=63), always with a full
    /// (fmt 0) header first and fmt 3 continuations.
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        csid: u8,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
    ) {
        let ts = timestamp.min(0xFF_FFFF);
        let extended = timestamp >= 0xFF_FFFF;
        out.push(csid & 0x3F);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        for (i, chunk) in payload.chunks(self.chunk_size as usize).enumerate() {
            if i > 0 {
                out.push(0xC0 | (csid & 0x3F));
                if extended {
                    out.extend_from_slice(&timestamp.to_be_bytes());
                }
            }
            out.extend_from_slice(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(chunk_size: u32, payload_len: usize) {
        let mut enc = ChunkEncoder::default();
        enc.set_chunk_size(chunk_size);
        let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
        let mut bytes = Vec::new();
        enc.write(&mut bytes, 6, 9, 1, 0x0100_0000, &payload);
        enc.write(&mut bytes, 6, 9, 1, 40, &payload);
        let mut dec = ChunkDecoder::default();
        dec.set_chunk_size(chunk_size).unwrap();
        let mut out = Vec::new();
        // Feed one byte at a time to exercise partial chunks.
        let mut pending = Vec::new();
        for b in bytes {
            pending.push(b);
            let n = dec.decode(&pending, &mut out).unwrap();
            pending.drain(..n);
        }
        assert!(pending.is_empty());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload, payload);
        assert_eq!(out[0].timestamp, 0x0100_0000);
        assert_eq!(out[1].timestamp, 40);
        assert_eq!(out[1].type_id, 9);
    }

    #[test]
    fn messages_survive_chunking_and_byte_by_byte_delivery() {
        roundtrip(128, 1000);
        roundtrip(4096, 10_000);
        roundtrip(1, 17);
    }

    #[test]
    fn huge_chunk_size_is_refused() {
        let mut dec = ChunkDecoder::default();
        assert_eq!(
            dec.set_chunk_size(0x7FFF_FFFF),
            Err(ChunkError::ChunkSize(0x7FFF_FFFF))
        );
        // As a Set Chunk Size message on the wire.
        let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
        bytes.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        let mut out = Vec::new();
        assert_eq!(
            dec.decode(&bytes, &mut out),
            Err(ChunkError::ChunkSize(0x7FFF_FFFF))
        );
    }

    #[test]
    fn message_length_past_the_limit_is_refused() {
        // fmt 0, csid 3, length 0xFFFFFF.
        let bytes = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
        let mut out = Vec::new();
        assert_eq!(
            ChunkDecoder::default().decode(&bytes, &mut out),
            Err(ChunkError::MessageTooLong(0xFF_FFFF))
        );
    }

    #[test]
    fn continuation_on_an_unknown_chunk_stream_is_refused() {
        let mut out = Vec::new();
        // fmt 3 on csid 5, never introduced.
        assert_eq!(
            ChunkDecoder::default().decode(&[0xC5, 1, 2, 3], &mut out),
            Err(ChunkError::UnknownChunkStream(5))
        );
        // fmt 1 on a three-byte csid.
        assert_eq!(
            ChunkDecoder::default().decode(&[0x41, 0x10, 0x01, 0, 0, 0, 0, 0, 1, 9, 0], &mut out),
            Err(ChunkError::UnknownChunkStream(64 + 0x10 + 256))
        );
    }

    #[test]
    fn too_many_chunk_streams_are_refused() {
        let mut dec = ChunkDecoder::default();
        let mut out = Vec::new();
        let mut result = Ok(0);
        for b in 0..=200u8 {
            // fmt 0 on two-byte csid 64+b, length 1.
            let bytes = [0x00, b, 0, 0, 0, 0, 0, 1, 20, 0, 0, 0, 0, 0x05];
            result = dec.decode(&bytes, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(ChunkError::TooManyChunkStreams));
    }

    #[test]
    fn truncated_chunks_wait_for_more_bytes() {
        let mut dec = ChunkDecoder::default();
        let mut out = Vec::new();
        assert_eq!(dec.decode(&[0x03, 0, 0], &mut out), Ok(0));
        assert_eq!(dec.decode(&[0x00], &mut out), Ok(0));
        assert!(out.is_empty());
    }

    /// fmt 0 on csid 4: timestamp 0, `length`, type 9, stream 1.
    fn fmt0(length: u32) -> Vec<u8> {
        let l = length.to_be_bytes();
        vec![0x04, 0, 0, 0, l[1], l[2], l[3], 9, 1, 0, 0, 0]
    }

    #[test]
    fn a_shorter_or_longer_length_mid_message_is_refused() {
        for declared in [100u32, 300, 2000] {
            let mut dec = ChunkDecoder::default();
            let mut out = Vec::new();
            let mut bytes = fmt0(1000);
            bytes.extend(std::iter::repeat_n(0xAB, 128));
            bytes.extend(fmt0(declared));
            bytes.extend(std::iter::repeat_n(0xAB, 128));
            assert_eq!(
                dec.decode(&bytes, &mut out),
                Err(ChunkError::LengthChanged {
                    declared,
                    was: 1000,
                    reassembled: 128
                })
            );
            assert!(out.is_empty());
        }
        // The same length again mid-message is no change.
        let mut dec = ChunkDecoder::default();
        let mut out = Vec::new();
        let mut bytes = fmt0(200);
        bytes.extend(std::iter::repeat_n(1, 128));
        bytes.extend(fmt0(200));
        bytes.extend(std::iter::repeat_n(2, 72));
        assert_eq!(dec.decode(&bytes, &mut out), Ok(bytes.len()));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload.len(), 200);
    }

    #[test]
    fn unfinished_messages_are_bounded_over_all_chunk_streams() {
        let mut dec = ChunkDecoder::default();
        let mut out = Vec::new();
        dec.set_chunk_size(1 << 20).unwrap();
        let mut result = Ok(0);
        let mut streams = 0;
        'outer: for csid in 3u8..40 {
            let l = MAX_MESSAGE_LEN.to_be_bytes();
            let mut bytes = vec![csid, 0, 0, 0, l[1], l[2], l[3], 9, 1, 0, 0, 0];
            bytes.extend(std::iter::repeat_n(0, 1 << 20));
            for _ in 0..3 {
                bytes.push(0xC0 | csid);
                bytes.extend(std::iter::repeat_n(0, 1 << 20));
            }
            result = dec.decode(&bytes, &mut out);
            if result.is_err() {
                break 'outer;
            }
            streams += 1;
        }
        assert_eq!(result, Err(ChunkError::TooMuchBuffered));
        assert_eq!(
            streams,
            MAX_BUFFERED / (4 << 20),
            "{streams} half messages held"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn an_8_mib_message_in_128_byte_chunks_is_reassembled_in_one_buffer() {
        let payload: Vec<u8> = (0..MAX_MESSAGE_LEN).map(|i| (i % 251) as u8).collect();
        let mut bytes = Vec::new();
        ChunkEncoder::default().write(&mut bytes, 4, 9, 1, 0, &payload);
        let mut dec = ChunkDecoder::default();
        let mut out = Vec::new();
        // In reads of 64 KiB, as the connection reads.
        let mut pending: Vec<u8> = Vec::new();
        for piece in bytes.chunks(64 * 1024) {
            pending.extend_from_slice(piece);
            let n = dec.decode(&pending, &mut out).unwrap();
            pending.drain(..n);
            assert!(pending.len() < 128 + 12, "at most one chunk waits");
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].payload == payload);
        assert_eq!(dec.buffered, 0);
    }
}
