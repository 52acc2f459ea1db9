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
                Ok(VideoTag::Frame {
                    keyframe: frame_type == 1,
                    composition_ms: si24(&payload[5..8]),
                    data: payload.slice(8..),
                })
            }
            3 => Ok(VideoTag::Frame {
                keyframe: frame_type == 1,
                composition_ms: 0,
                data: payload.slice(5..),
            }),
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
        1 => Ok(VideoTag::Frame {
            keyframe: frame_type == 1,
            composition_ms: si24(&payload[2..5]),
            data: payload.slice(5..),
        }),
        _ => Ok(VideoTag::EndOfSequence),
    }
}

fn avc_config(record: Bytes) -> Result<VideoTag, FlvError> {
    // configurationVersion(1) profile(1) compat(1) level(1) lengthSizeMinusOne(1) numSps(1)...
    if record.len() < 7 || record[0] != 1 || record[4] & 0x03 != 3 {
        return Err(FlvError::BadAvcConfig);
    }
    Ok(VideoTag::SequenceHeader(record))
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
        let tag = parse_video(Bytes::from_static(&[0x93, b'a', b'v', b'c', b'1', 0xAA])).unwrap();
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
}
