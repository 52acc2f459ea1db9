//! FLV audio/video tag bodies as RTMP carries them: AVC (classic and Enhanced RTMP `avc1`)
//! and AAC. Pure parsing; the payload bytes are shared, not copied.

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    /// AVCDecoderConfigurationRecord (the `codec_data` of `video/x-h264,stream-format=avc`).
    SequenceHeader(Bytes),
    /// One access unit of length-prefixed NAL units.
    Frame {
        keyframe: bool,
        composition_ms: i32,
        data: Bytes,
    },
    EndOfSequence,
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
    #[error("video codec {0} is not supported; send H.264 (AVC)")]
    VideoCodec(String),
    #[error("audio format {0} is not supported; send AAC")]
    AudioCodec(u8),
    #[error("{0} tag truncated")]
    Truncated(&'static str),
    #[error("AVC sequence header is malformed")]
    BadAvcConfig,
}

fn si24(b: &[u8]) -> i32 {
    let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
    ((v << 8) as i32) >> 8
}

pub fn parse_video(payload: Bytes) -> Result<VideoTag, FlvError> {
    let Some(&first) = payload.first() else {
        return Err(FlvError::Empty("video"));
    };
    let frame_type = (first >> 4) & 0x07;
    if first & 0x80 != 0 {
        // Enhanced RTMP: [1|frame type|packet type] [FourCC] ...
        let packet_type = first & 0x0F;
        if payload.len() < 5 {
            return Err(FlvError::Truncated("video"));
        }
        let fourcc = &payload[1..5];
        if fourcc != b"avc1" {
            return Err(FlvError::VideoCodec(
                String::from_utf8_lossy(fourcc).into_owned(),
            ));
        }
        return match packet_type {
            0 => avc_config(payload.slice(5..)),
            1 => {
                if payload.len() < 8 {
                    return Err(FlvError::Truncated("video"));
                }
                check_nal_lengths(&payload[8..])?;
                Ok(VideoTag::Frame {
                    keyframe: frame_type == 1,
                    composition_ms: si24(&payload[5..8]),
                    data: payload.slice(8..),
                })
            }
            3 => {
                check_nal_lengths(&payload[5..])?;
                Ok(VideoTag::Frame {
                    keyframe: frame_type == 1,
                    composition_ms: 0,
                    data: payload.slice(5..),
                })
            }
            2 => Ok(VideoTag::EndOfSequence),
            other => Err(FlvError::VideoCodec(format!("avc1 packet type {other}"))),
        };
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

/// An AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1): configurationVersion 1, profile,
/// compatibility, level, 4-byte NAL lengths, then its SPS and PPS lists, every length within
/// the record and at least one SPS.
fn avc_config(record: Bytes) -> Result<VideoTag, FlvError> {
    if record.len() < 7 || record[0] != 1 || record[4] & 0x03 != 3 {
        return Err(FlvError::BadAvcConfig);
    }
    let sps_count = (record[5] & 0x1F) as usize;
    if sps_count == 0 {
        return Err(FlvError::BadAvcConfig);
    }
    let mut pos = 6;
    let parameter_sets = |count: usize, pos: &mut usize| -> Result<(), FlvError> {
        for _ in 0..count {
            let len = record
                .get(*pos..*pos + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or(FlvError::BadAvcConfig)?;
            *pos += 2;
            if len == 0 || record.len() - *pos < len {
                return Err(FlvError::BadAvcConfig);
            }
            *pos += len;
        }
        Ok(())
    };
    parameter_sets(sps_count, &mut pos)?;
    let pps_count = *record.get(pos).ok_or(FlvError::BadAvcConfig)? as usize;
    pos += 1;
    parameter_sets(pps_count, &mut pos)?;
    Ok(VideoTag::SequenceHeader(record))
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
    fn enhanced_rtmp_avc1_is_accepted_and_hevc_refused() {
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
        let err = parse_video(Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2]));
        assert_eq!(err, Err(FlvError::VideoCodec("hvc1".into())));
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
            Err(FlvError::BadAvcConfig)
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
            Ok(VideoTag::SequenceHeader(_))
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
                Err(FlvError::BadAvcConfig)
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
}
