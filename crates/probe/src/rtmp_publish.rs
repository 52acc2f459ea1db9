//! An Enhanced RTMP publisher of HEVC (`hvc1`) or AV1 (`av01`), as OBS 30 sends them:
//! GStreamer encodes a steady test picture (x265enc or av1enc), and this module writes the
//! E-RTMP video tags around each access unit itself, because Debian's ffmpeg 5.1 and
//! GStreamer 1.22 cannot write E-RTMP. The handshake, chunking and AMF0 are the project's own
//! sans-IO codecs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use fieldcast_engine::ingest::rtmp::amf0::{self, Amf0Value};
use fieldcast_engine::ingest::rtmp::chunk::{ChunkDecoder, ChunkEncoder};

/// The codecs only Enhanced RTMP carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnhancedCodec {
    Hevc,
    Av1,
}

impl EnhancedCodec {
    fn fourcc(self) -> &'static [u8; 4] {
        match self {
            EnhancedCodec::Hevc => b"hvc1",
            EnhancedCodec::Av1 => b"av01",
        }
    }

    /// The encoder and the caps that give access units with a configuration record.
    fn encoder(self, kbps: u32, keyint: u32) -> String {
        match self {
            EnhancedCodec::Hevc => format!(
                "x265enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={keyint} \
                 ! h265parse ! video/x-h265,stream-format=hvc1,alignment=au"
            ),
            EnhancedCodec::Av1 => format!(
                "av1enc usage-profile=realtime cpu-used=9 target-bitrate={kbps} \
                 keyframe-max-dist={keyint} threads=2 \
                 ! av1parse ! video/x-av1,stream-format=obu-stream,alignment=tu"
            ),
        }
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct EnhancedPublish {
    pub codec: EnhancedCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The picture's one colour, `0xAARRGGBB` (with the `solid-color` pattern).
    pub argb: u32,
    /// videotestsrc's pattern: `solid-color` for a test that checks the colour, a moving
    /// one (`smpte` scrolled) for a benchmark that measures decoding.
    pub pattern: &'static str,
    pub kbps: u32,
    pub duration: Duration,
}

impl EnhancedPublish {
    pub fn new(codec: EnhancedCodec, duration: Duration) -> Self {
        Self {
            codec,
            width: 640,
            height: 360,
            fps: 25,
            argb: 0xFF20A040,
            pattern: "solid-color",
            kbps: 600,
            duration,
        }
    }
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct PublishReport {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
}

/// Publishes to `rtmp://{rtmp}/live/{stream_key}` until `duration` has passed. An error when
/// the server refuses the publish (with its words) or closes the connection.
pub fn publish(
    rtmp: SocketAddr,
    stream_key: &str,
    options: &EnhancedPublish,
) -> anyhow::Result<PublishReport> {
    gst::init()?;
    let mut connection = Connection::open(rtmp, stream_key)?;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern={pattern} horizontal-speed=4 foreground-color={argb} \
         ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 \
         ! {encoder} ! appsink name=out sync=false max-buffers=60",
        argb = options.argb,
        pattern = options.pattern,
        w = options.width,
        h = options.height,
        fps = options.fps,
        encoder = options.codec.encoder(options.kbps, options.fps),
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .context("no appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let result = (|| {
        let fourcc = options.codec.fourcc();
        let started = Instant::now();
        let mut report = PublishReport::default();
        let mut sent_config = false;
        while started.elapsed() < options.duration {
            let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(2)) else {
                bail!("the encoder gave nothing for 2 s");
            };
            let buffer = sample.buffer().context("a sample without a buffer")?;
            let map = buffer.map_readable()?;
            let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            let pts = buffer.pts().unwrap_or_default();
            let dts = buffer.dts().unwrap_or(pts);
            let timestamp = dts.mseconds() as u32;
            if !sent_config {
                if !keyframe {
                    continue;
                }
                let record = configuration_record(options.codec, &sample, map.as_slice());
                let mut tag = vec![0x80 | (1 << 4)];
                tag.extend_from_slice(fourcc);
                tag.extend_from_slice(&record);
                connection.video(timestamp, &tag)?;
                sent_config = true;
            }
            // [IsExHeader | frame type | CodedFrames] [FourCC] (SI24 composition time) data
            let frame_type: u8 = if keyframe { 1 } else { 2 };
            let mut tag = vec![0x80 | (frame_type << 4) | 1];
            tag.extend_from_slice(fourcc);
            if options.codec == EnhancedCodec::Hevc {
                let cts = pts.mseconds().saturating_sub(dts.mseconds()) as u32;
                tag.extend_from_slice(&cts.to_be_bytes()[1..]);
            }
            tag.extend_from_slice(map.as_slice());
            connection.video(timestamp, &tag)?;
            report.frames += 1;
            report.keyframes += keyframe as u64;
            report.bytes += map.len() as u64;
        }
        Ok(report)
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The sequence start's record: the encoder's `codec_data` (`hvcC`), or for AV1 an `av1C`
/// made from the keyframe's sequence header OBU when the caps carry none.
fn configuration_record(codec: EnhancedCodec, sample: &gst::Sample, keyframe: &[u8]) -> Vec<u8> {
    let codec_data = sample
        .caps()
        .and_then(|c| c.structure(0))
        .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
        .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()));
    if let Some(record) = codec_data {
        return record;
    }
    match codec {
        EnhancedCodec::Hevc => Vec::new(),
        EnhancedCodec::Av1 => {
            // marker|version, profile 0 level 4.0 (idx 8), 4:2:0, no presentation delay.
            let mut record = vec![0x81, 0x08, 0x0C, 0x00];
            if let Some(obu) = sequence_header_obu(keyframe) {
                record.extend_from_slice(obu);
            }
            record
        }
    }
}

/// The first sequence header OBU (type 1) of a temporal unit whose OBUs carry sizes.
fn sequence_header_obu(tu: &[u8]) -> Option<&[u8]> {
    let mut pos = 0;
    while pos < tu.len() {
        let header = tu[pos];
        let obu_type = (header >> 3) & 0x0F;
        let extension = header & 0x04 != 0;
        if header & 0x02 == 0 {
            return None;
        }
        let mut at = pos + 1 + extension as usize;
        let (size, leb_len) = leb128(tu.get(at..)?)?;
        at += leb_len;
        let end = at.checked_add(size)?;
        if end > tu.len() {
            return None;
        }
        if obu_type == 1 {
            return Some(&tu[pos..end]);
        }
        pos = end;
    }
    None
}

fn leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, b) in bytes.iter().take(8).enumerate() {
        value |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// An RTMP connection that has published.
struct Connection {
    stream: TcpStream,
    encoder: ChunkEncoder,
}

const CHUNK_SIZE: u32 = 4096;
const STREAM_ID: u32 = 1;

impl Connection {
    fn open(rtmp: SocketAddr, stream_key: &str) -> anyhow::Result<Self> {
        let mut stream = TcpStream::connect_timeout(&rtmp, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        // C0 C1; S0 S1 S2; C2 echoes S1.
        let mut c0c1 = vec![3u8];
        c0c1.extend(std::iter::repeat_n(0u8, 1536));
        stream.write_all(&c0c1)?;
        let mut s = vec![0u8; 1 + 1536 * 2];
        stream.read_exact(&mut s).context("the RTMP handshake")?;
        stream.write_all(&s[1..1 + 1536])?;

        let mut encoder = ChunkEncoder::default();
        let mut out = Vec::new();
        encoder.write(&mut out, 2, 1, 0, 0, &CHUNK_SIZE.to_be_bytes());
        encoder.set_chunk_size(CHUNK_SIZE);
        let tc_url = Amf0Value::String(format!("rtmp://{rtmp}/live"));
        let fourccs = Amf0Value::StrictArray(
            ["hvc1", "av01", "avc1"]
                .iter()
                .map(|s| Amf0Value::String(s.to_string()))
                .collect(),
        );
        command(
            &encoder,
            &mut out,
            0,
            &[
                Amf0Value::String("connect".into()),
                Amf0Value::Number(1.0),
                amf0::object([
                    ("app", Amf0Value::String("live".into())),
                    ("type", Amf0Value::String("nonprivate".into())),
                    ("flashVer", Amf0Value::String("FMLE/3.0".into())),
                    ("tcUrl", tc_url),
                    ("fourCcList", fourccs),
                ]),
            ],
        );
        command(
            &encoder,
            &mut out,
            0,
            &[
                Amf0Value::String("createStream".into()),
                Amf0Value::Number(2.0),
                Amf0Value::Null,
            ],
        );
        command(
            &encoder,
            &mut out,
            STREAM_ID,
            &[
                Amf0Value::String("publish".into()),
                Amf0Value::Number(3.0),
                Amf0Value::Null,
                Amf0Value::String(stream_key.into()),
                Amf0Value::String("live".into()),
            ],
        );
        stream.write_all(&out)?;

        // Until the server says NetStream.Publish.Start, or why not.
        let mut decoder = ChunkDecoder::default();
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if Instant::now() > deadline {
                bail!("the server did not accept the publish within 10 s");
            }
            let n = stream
                .read(&mut buf)
                .context("waiting for the publish answer")?;
            if n == 0 {
                bail!("the server closed the connection before accepting the publish");
            }
            pending.extend_from_slice(&buf[..n]);
            let mut messages = Vec::new();
            let used = decoder
                .decode(&pending, &mut messages)
                .map_err(|e| anyhow!("the server's RTMP: {e}"))?;
            pending.drain(..used);
            for m in messages {
                if m.type_id == 1 && m.payload.len() >= 4 {
                    let size = u32::from_be_bytes([
                        m.payload[0],
                        m.payload[1],
                        m.payload[2],
                        m.payload[3],
                    ]);
                    decoder
                        .set_chunk_size(size)
                        .map_err(|e| anyhow!("the server's chunk size: {e}"))?;
                }
                if m.type_id != 20 {
                    continue;
                }
                let values = amf0::decode_all(&m.payload).unwrap_or_default();
                let Some(info) = values.iter().find(|v| v.get("code").is_some()) else {
                    continue;
                };
                let code = info
                    .get("code")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default();
                if !code.starts_with("NetStream.Publish") {
                    continue;
                }
                if code == "NetStream.Publish.Start" {
                    return Ok(Self { stream, encoder });
                }
                let description = info
                    .get("description")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default();
                bail!("publish refused: {code}: {description}");
            }
        }
    }

    fn video(&mut self, timestamp: u32, tag: &[u8]) -> anyhow::Result<()> {
        let mut out = Vec::with_capacity(tag.len() + 64);
        self.encoder
            .write(&mut out, 6, 9, STREAM_ID, timestamp, tag);
        self.stream
            .write_all(&out)
            .context("the server closed the connection")
    }
}

fn command(encoder: &ChunkEncoder, out: &mut Vec<u8>, stream_id: u32, values: &[Amf0Value]) {
    let mut payload = Vec::new();
    for v in values {
        amf0::encode(v, &mut payload);
    }
    encoder.write(out, 3, 20, stream_id, 0, &payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sequence_header_among_sized_obus() {
        // A temporal delimiter (type 2, size 0), then a sequence header (type 1) of 2 bytes.
        let tu = [0x12, 0x00, 0x0A, 0x02, 0xAA, 0xBB, 0x32, 0x01, 0x00];
        assert_eq!(sequence_header_obu(&tu), Some(&tu[2..6]));
        assert_eq!(sequence_header_obu(&[0x12, 0x05]), None);
    }
}
