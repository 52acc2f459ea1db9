//! What a publisher may send, and how each is decoded: the caps its appsrc gets and the
//! elements that turn it into raw frames. One table for every way in (RTMP, SRT, WHIP).

use bytes::Bytes;
use gstreamer as gst;

use fieldcast_core::flv::VideoCodec;

/// A publisher's video as it reaches the decode pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoInput {
    /// H.264 access units of length-prefixed NAL units; the `avcC` record as `codec_data`
    /// (RTMP).
    H264Avc,
    /// HEVC access units of length-prefixed NAL units; the `hvcC` record as `codec_data`
    /// (Enhanced RTMP `hvc1`).
    H265Hvc1,
    /// AV1 temporal units of OBUs; the `av1C` record as `codec_data` (Enhanced RTMP `av01`).
    Av1,
    /// H.264 access units with start codes, parameter sets in band (WHIP, depacketized).
    H264AnnexB,
    /// VP8 frames (WHIP, depacketized).
    Vp8,
}

/// A publisher's audio as it reaches the decode pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioInput {
    /// Raw AAC frames; the AudioSpecificConfig as `codec_data` (RTMP).
    AacRaw,
    /// Opus packets (WHIP), 48 kHz.
    Opus,
}

impl From<VideoCodec> for VideoInput {
    fn from(codec: VideoCodec) -> Self {
        match codec {
            VideoCodec::Avc => VideoInput::H264Avc,
            VideoCodec::Hevc => VideoInput::H265Hvc1,
            VideoCodec::Av1 => VideoInput::Av1,
        }
    }
}

impl VideoInput {
    /// The name operators and publishers see.
    pub fn name(self) -> &'static str {
        match self {
            VideoInput::H264Avc | VideoInput::H264AnnexB => "H.264",
            VideoInput::H265Hvc1 => "HEVC",
            VideoInput::Av1 => "AV1",
            VideoInput::Vp8 => "VP8",
        }
    }

    /// The elements between the appsrc and the scaler; the decoder is named `decoder`.
    /// Slice threads where the decoder has them: no frame of added delay.
    pub(crate) fn decode_chain(self) -> &'static str {
        match self {
            VideoInput::H264Avc | VideoInput::H264AnnexB => {
                "h264parse ! avdec_h264 name=decoder thread-type=slice"
            }
            VideoInput::Vp8 => "vp8dec name=decoder threads=2",
            VideoInput::H265Hvc1 => "h265parse ! avdec_h265 name=decoder thread-type=slice",
            VideoInput::Av1 => "av1parse ! av1dec name=decoder",
        }
    }

    /// The appsrc's caps, with the publisher's configuration record.
    pub(crate) fn caps(self, record: Option<&Bytes>) -> gst::Caps {
        let mut caps = match self {
            VideoInput::H264Avc => gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au"),
            VideoInput::H265Hvc1 => gst::Caps::builder("video/x-h265")
                .field("stream-format", "hvc1")
                .field("alignment", "au"),
            VideoInput::Av1 => gst::Caps::builder("video/x-av1")
                .field("stream-format", "obu-stream")
                .field("alignment", "tu"),
            VideoInput::H264AnnexB => gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au"),
            VideoInput::Vp8 => gst::Caps::builder("video/x-vp8"),
        };
        if let Some(record) = record {
            caps = caps.field("codec_data", gst::Buffer::from_slice(record.clone()));
        }
        caps.build()
    }
}

impl AudioInput {
    pub fn name(self) -> &'static str {
        match self {
            AudioInput::AacRaw => "AAC",
            AudioInput::Opus => "Opus",
        }
    }

    pub(crate) fn decode_chain(self) -> &'static str {
        match self {
            AudioInput::AacRaw => "aacparse ! avdec_aac",
            AudioInput::Opus => "opusdec plc=true",
        }
    }

    pub(crate) fn caps(self, config: Option<&Bytes>) -> gst::Caps {
        let mut caps = match self {
            AudioInput::AacRaw => gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4i32)
                .field("stream-format", "raw"),
            AudioInput::Opus => gst::Caps::builder("audio/x-opus")
                .field("channel-mapping-family", 0i32)
                .field("rate", 48000i32)
                .field("channels", 2i32),
        };
        if let Some(config) = config {
            caps = caps.field("codec_data", gst::Buffer::from_slice(config.clone()));
        }
        caps.build()
    }
}

/// The first element of `chain` that this machine's GStreamer does not have.
pub(crate) fn missing_element(chain: &str) -> Option<String> {
    chain
        .split('!')
        .filter_map(|segment| segment.split_whitespace().next())
        .find(|name| gst::ElementFactory::find(name).is_none())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_names_a_decoder() {
        for input in [
            VideoInput::H264Avc,
            VideoInput::H265Hvc1,
            VideoInput::Av1,
            VideoInput::H264AnnexB,
            VideoInput::Vp8,
        ] {
            assert!(input.decode_chain().contains("name=decoder"), "{input:?}");
        }
        assert_eq!(VideoInput::from(VideoCodec::Hevc).name(), "HEVC");
    }
}
