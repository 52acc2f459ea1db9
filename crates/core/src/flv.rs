//! FLV audio/video tag bodies as RTMP carries them: AVC (classic and Enhanced RTMP `avc1`),
//! HEVC (`hvc1`) and AV1 (`av01`) over Enhanced RTMP, and AAC. Pure parsing; the payload
//! bytes are shared, not copied.

use bytes::Bytes;

/// The video codecs an RTMP publisher may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264: classic FLV codec id 7, or Enhanced RTMP `avc1`.
    Avc,
    /// H.265, Enhanced RTMP `hvc1` (OBS 30's HEVC output).
    Hevc,
    /// AV1, Enhanced RTMP `av01`.
    Av1,
}

impl VideoCodec {
    /// The name shown to operators and publishers.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Avc => "H.264",
            VideoCodec::Hevc => "HEVC",
            VideoCodec::Av1 => "AV1",
        }
    }

    /// Its Enhanced RTMP FourCC.
    pub fn fourcc(self) -> &'static str {
        match self {
            VideoCodec::Avc => "avc1",
            VideoCodec::Hevc => "hvc1",
            VideoCodec::Av1 => "av01",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    /// The decoder configuration record: AVCDecoderConfigurationRecord (`avcC`),
    /// HEVCDecoderConfigurationRecord (`hvcC`) or AV1CodecConfigurationRecord (`av1C`); the
    /// `codec_data` of the decoder's caps.
    SequenceHeader {
        codec: VideoCodec,
        record: Bytes,
    },
    /// One access unit: length-prefixed NAL units (H.264, HEVC), or one temporal unit of
    /// OBUs (AV1).
    Frame {
        keyframe: bool,
        composition_ms: i32,
        data: Bytes,
    },
    EndOfSequence,
    /// Carries no picture: Enhanced RTMP metadata (HDR colour information) or a command
    /// frame.
    Info,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AudioTag {
    /// AudioSpecificConfig (the `codec_data` of raw AAC).
    SequenceHeader(Bytes),
    Frame(Bytes),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlvError {
    #[error("empty {0} tag")]
    Empty(&'static str),
    #[error("video codec {0} is not supported; send H.264, HEVC or AV1")]
    VideoCodec(String),
    #[error("audio format {0} is not supported; send AAC")]
    AudioCodec(u8),
    #[error("{0} tag truncated")]
    Truncated(&'static str),
    #[error("{0} sequence header is malformed")]
    BadConfig(&'static str),
}

fn si24(b: &[u8]) -> i32 {
    let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
    ((v << 8) as i32) >> 8
}

/// Enhanced RTMP video packet types (the low nibble after the `IsExHeader` bit).
mod packet_type {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    /// Coded frames without a composition time (it is zero).
    pub const CODED_FRAMES_X: u8 = 3;
    pub const METADATA: u8 = 4;
}

/// FLV video frame type 5: a command frame (no picture).
const COMMAND_FRAME: u8 = 5;

pub fn parse_video(payload: Bytes) -> Result<VideoTag, FlvError> {
    let Some(&first) = payload.first() else {
        return Err(FlvError::Empty("video"));
    };
    let frame_type = (first >> 4) & 0x07;
    if first & 0x80 != 0 {
        return parse_enhanced_video(payload, frame_type, first & 0x0F);
    }
    let codec = first & 0x0F;
    if codec != 7 {
        return Err(FlvError::VideoCodec(format!("FLV codec id {codec}")));
    }
    if payload.len() < 5 {
        return Err(FlvError::Truncated("video"));
    }
    match payload[1] {
        0 => avc_config(payload.slice(5..)),
        1 => {
            check_nal_lengths(&payload[5..])?;
            Ok(VideoTag::Frame {
                keyframe: frame_type == 1,
                composition_ms: si24(&payload[2..5]),
                data: payload.slice(5..),
            })
        }
        _ => Ok(VideoTag::EndOfSequence),
    }
}

/// Enhanced RTMP (v1): `[1|frame type|packet type] [FourCC] [body]`.
fn parse_enhanced_video(payload: Bytes, frame_type: u8, packet: u8) -> Result<VideoTag, FlvError> {
    if payload.len() < 5 {
        return Err(FlvError::Truncated("video"));
    }
    let fourcc = &payload[1..5];
    let Some(codec) = [VideoCodec::Avc, VideoCodec::Hevc, VideoCodec::Av1]
        .into_iter()
        .find(|c| c.fourcc().as_bytes() == fourcc)
    else {
        return Err(FlvError::VideoCodec(
            String::from_utf8_lossy(fourcc).into_owned(),
        ));
    };
    if packet == packet_type::METADATA || frame_type == COMMAND_FRAME {
        return Ok(VideoTag::Info);
    }
    let keyframe = frame_type == 1;
    let body = payload.slice(5..);
    match (packet, codec) {
        (packet_type::SEQUENCE_START, VideoCodec::Avc) => avc_config(body),
        (packet_type::SEQUENCE_START, VideoCodec::Hevc) => hevc_config(body),
        (packet_type::SEQUENCE_START, VideoCodec::Av1) => av1_config(body),
        (packet_type::SEQUENCE_END, _) => Ok(VideoTag::EndOfSequence),
        // H.264 and HEVC frames carry a composition time; AV1 frames have none.
        (packet_type::CODED_FRAMES, VideoCodec::Avc | VideoCodec::Hevc) => {
            if body.len() < 3 {
                return Err(FlvError::Truncated("video"));
            }
            check_nal_lengths(&body[3..])?;
            Ok(VideoTag::Frame {
                keyframe,
                composition_ms: si24(&body[..3]),
                data: body.slice(3..),
            })
        }
        (packet_type::CODED_FRAMES_X, VideoCodec::Avc | VideoCodec::Hevc) => {
            check_nal_lengths(&body)?;
            Ok(VideoTag::Frame {
                keyframe,
                composition_ms: 0,
                data: body,
            })
        }
        (packet_type::CODED_FRAMES, VideoCodec::Av1) => {
            if body.is_empty() {
                return Err(FlvError::Truncated("video"));
            }
            Ok(VideoTag::Frame {
                keyframe,
                composition_ms: 0,
                data: body,
            })
        }
        (other, codec) => Err(FlvError::VideoCodec(format!(
            "{} packet type {other}",
            codec.fourcc()
        ))),
    }
}

/// Reads `count` parameter sets, each a 16-bit length and that many bytes, from `pos`; every
/// one non-empty and within `record`.
fn parameter_sets(
    record: &[u8],
    count: usize,
    pos: &mut usize,
    what: &'static str,
) -> Result<(), FlvError> {
    for _ in 0..count {
        let len = record
            .get(*pos..*pos + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or(FlvError::BadConfig(what))?;
        *pos += 2;
        if len == 0 || record.len() - *pos < len {
            return Err(FlvError::BadConfig(what));
        }
        *pos += len;
    }
    Ok(())
}

/// An AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1): configurationVersion 1, profile,
/// compatibility, level, 4-byte NAL lengths, then its SPS and PPS lists, every length within
/// the record and at least one SPS.
fn avc_config(record: Bytes) -> Result<VideoTag, FlvError> {
    const WHAT: &str = "AVC";
    if record.len() < 7 || record[0] != 1 || record[4] & 0x03 != 3 {
        return Err(FlvError::BadConfig(WHAT));
    }
    let sps_count = (record[5] & 0x1F) as usize;
    if sps_count == 0 {
        return Err(FlvError::BadConfig(WHAT));
    }
    let mut pos = 6;
    parameter_sets(&record, sps_count, &mut pos, WHAT)?;
    let pps_count = *record.get(pos).ok_or(FlvError::BadConfig(WHAT))? as usize;
    pos += 1;
    parameter_sets(&record, pps_count, &mut pos, WHAT)?;
    Ok(VideoTag::SequenceHeader {
        codec: VideoCodec::Avc,
        record,
    })
}

/// An HEVCDecoderConfigurationRecord (ISO 14496-15 8.3.3.1): configurationVersion 1, 22 bytes
/// of profile, level and format fields (4-byte NAL lengths), then its arrays of parameter
/// sets, every length within the record and at least one array.
fn hevc_config(record: Bytes) -> Result<VideoTag, FlvError> {
    const WHAT: &str = "HEVC";
    if record.len() < 23 || record[0] != 1 || record[21] & 0x03 != 3 || record[22] == 0 {
        return Err(FlvError::BadConfig(WHAT));
    }
    let mut pos = 23;
    for _ in 0..record[22] {
        // [array_completeness|reserved|NAL unit type] [numNalus: 16 bits]
        let count = record
            .get(pos + 1..pos + 3)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or(FlvError::BadConfig(WHAT))?;
        pos += 3;
        parameter_sets(&record, count, &mut pos, WHAT)?;
    }
    Ok(VideoTag::SequenceHeader {
        codec: VideoCodec::Hevc,
        record,
    })
}

/// An AV1CodecConfigurationRecord (`av1C`): marker and version `0x81`, profile and level,
/// tier and colour fields, then the configuration OBUs (the sequence header).
fn av1_config(record: Bytes) -> Result<VideoTag, FlvError> {
    if record.len() < 4 || record[0] != 0x81 {
        return Err(FlvError::BadConfig("AV1"));
    }
    Ok(VideoTag::SequenceHeader {
        codec: VideoCodec::Av1,
        record,
    })
}

/// Checks that a frame's NAL units (4-byte big-endian lengths) tile it exactly.
fn check_nal_lengths(data: &[u8]) -> Result<(), FlvError> {
    let mut pos = 0usize;
    while pos < data.len() {
        let len = data
            .get(pos..pos + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or(FlvError::Truncated("video NAL length"))?;
        pos += 4;
        if len > data.len() - pos {
            return Err(FlvError::Truncated("video NAL unit"));
        }
        pos += len;
    }
    Ok(())
}

pub fn parse_audio(payload: Bytes) -> Result<AudioTag, FlvError> {
    let Some(&first) = payload.first() else {
        return Err(FlvError::Empty("audio"));
    };
    let format = first >> 4;
    if format != 10 {
        return Err(FlvError::AudioCodec(format));
    }
    match payload.get(1) {
        None => Err(FlvError::Truncated("audio")),
        Some(0) if payload.len() >= 4 => Ok(AudioTag::SequenceHeader(payload.slice(2..))),
        Some(0) => Err(FlvError::Truncated("audio")),
        Some(_) => Ok(AudioTag::Frame(payload.slice(2..))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_avc_frame_carries_composition_time() {
        let tag = parse_video(Bytes::from_static(&[
            0x27, 1, 0xFF, 0xFF, 0xDE, 0, 0, 0, 1, 0x41,
        ]))
        .unwrap();
        assert_eq!(
            tag,
            VideoTag::Frame {
                keyframe: false,
                composition_ms: -34,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41])
            }
        );
    }

    #[test]
    fn enhanced_rtmp_avc1_hvc1_and_av01_are_accepted_and_vp09_refused() {
        let tag = parse_video(Bytes::from_static(&[
            0x93, b'a', b'v', b'c', b'1', 0, 0, 0, 1, 0xAA,
        ]))
        .unwrap();
        assert!(matches!(
            tag,
            VideoTag::Frame {
                keyframe: true,
                composition_ms: 0,
                ..
            }
        ));
        // HEVC coded frames carry a composition time; AV1's do not.
        let tag = parse_video(Bytes::from_static(&[
            0x91, b'h', b'v', b'c', b'1', 0, 0, 40, 0, 0, 0, 2, 0x26, 0x01,
        ]))
        .unwrap();
        assert_eq!(
            tag,
            VideoTag::Frame {
                keyframe: true,
                composition_ms: 40,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x26, 0x01])
            }
        );
        let tag = parse_video(Bytes::from_static(&[
            0xA1, b'a', b'v', b'0', b'1', 0x12, 0, 0x32,
        ]))
        .unwrap();
        assert_eq!(
            tag,
            VideoTag::Frame {
                keyframe: false,
                composition_ms: 0,
                data: Bytes::from_static(&[0x12, 0, 0x32])
            }
        );
        let av1c = parse_video(Bytes::from_static(&[
            0x90, b'a', b'v', b'0', b'1', 0x81, 0x08, 0x0C, 0, 0x0A, 0x0B,
        ]));
        assert!(matches!(
            av1c,
            Ok(VideoTag::SequenceHeader {
                codec: VideoCodec::Av1,
                ..
            })
        ));
        // Metadata and command frames carry no picture.
        let meta = parse_video(Bytes::from_static(&[0x94, b'h', b'v', b'c', b'1', 2, 0]));
        assert_eq!(meta, Ok(VideoTag::Info));
        let err = parse_video(Bytes::from_static(&[0x90, b'v', b'p', b'0', b'9', 1, 2]));
        assert_eq!(err, Err(FlvError::VideoCodec("vp09".into())));
        assert_eq!(
            err.unwrap_err().to_string(),
            "video codec vp09 is not supported; send H.264, HEVC or AV1"
        );
    }

    #[test]
    fn malformed_tags_are_errors() {
        assert_eq!(parse_video(Bytes::new()), Err(FlvError::Empty("video")));
        assert_eq!(
            parse_video(Bytes::from_static(&[0x17, 0])),
            Err(FlvError::Truncated("video"))
        );
        assert_eq!(
            parse_video(Bytes::from_static(&[0x17, 0, 0, 0, 0, 1])),
            Err(FlvError::BadConfig("AVC"))
        );
        assert_eq!(
            parse_audio(Bytes::from_static(&[0x2F, 1])),
            Err(FlvError::AudioCodec(2))
        );
        assert_eq!(
            parse_audio(Bytes::from_static(&[0xAF])),
            Err(FlvError::Truncated("audio"))
        );
    }

    #[test]
    fn avc_records_and_nal_lengths_that_run_past_the_end_are_errors() {
        // One SPS of 4 bytes, one PPS of 2 bytes: valid.
        let good = [
            0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1F, 1, 0, 2,
            0x68, 0xEE,
        ];
        assert!(matches!(
            parse_video(Bytes::copy_from_slice(&good)),
            Ok(VideoTag::SequenceHeader {
                codec: VideoCodec::Avc,
                ..
            })
        ));
        // The SPS claims 40 bytes; the PPS count is missing; no SPS at all.
        let mut sps_past_end = good;
        sps_past_end[12] = 40;
        let no_pps = &good[..17];
        let mut no_sps = good;
        no_sps[10] = 0xE0;
        for bad in [&sps_past_end[..], no_pps, &no_sps[..]] {
            assert_eq!(
                parse_video(Bytes::copy_from_slice(bad)),
                Err(FlvError::BadConfig("AVC"))
            );
        }
        // A NAL unit that claims more than the frame holds, and a cut length prefix.
        assert_eq!(
            parse_video(Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 9, 0x41])),
            Err(FlvError::Truncated("video NAL unit"))
        );
        assert_eq!(
            parse_video(Bytes::from_static(&[
                0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41, 0, 0
            ])),
            Err(FlvError::Truncated("video NAL length"))
        );
    }

    #[test]
    fn hevc_records_are_checked_array_by_array() {
        // 22 bytes of profile/level fields (4-byte NAL lengths), then one array (VPS) of one
        // 3-byte NAL unit.
        let mut record = vec![1u8];
        record.extend([0u8; 20]);
        record.push(0xFF);
        record.extend([1, 0x20, 0, 1, 0, 3, 0x40, 0x01, 0x0C]);
        let mut tag = vec![0x90, b'h', b'v', b'c', b'1'];
        tag.extend(&record);
        assert!(matches!(
            parse_video(Bytes::from(tag.clone())),
            Ok(VideoTag::SequenceHeader {
                codec: VideoCodec::Hevc,
                ..
            })
        ));
        // The NAL unit claims 9 bytes; two-byte NAL lengths; no arrays; cut short.
        let mut past_end = tag.clone();
        past_end[5 + 27] = 9;
        let mut short_lengths = tag.clone();
        short_lengths[5 + 21] = 0xFD;
        let mut no_arrays = tag.clone();
        no_arrays[5 + 22] = 0;
        let cut = &tag[..5 + 25];
        for bad in [&past_end[..], &short_lengths, &no_arrays, cut] {
            assert_eq!(
                parse_video(Bytes::copy_from_slice(bad)),
                Err(FlvError::BadConfig("HEVC"))
            );
        }
    }
}
