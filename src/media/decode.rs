//! A publisher's decode pipeline: parsed H.264/AAC from RTMP in, raw frames at the output
//! size out, pushed into the studio's [`OutputFeed`].
//!
//! Caps come from the sequence headers (no flvdemux); PTS = DTS + composition time.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::arrival;
use super::output::{OutputFeed, Source};
use super::{
    MediaError, OutputFormat, PUBLISHER_DECODE, app_sink, app_src, format_vars, play, watch_bus,
};

/// Publisher timestamps are moved this far forward so a negative composition offset can
/// never produce a negative PTS.
const TIMELINE_OFFSET_MS: u64 = 1_000;

pub struct PublisherDecode {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    have_video_config: bool,
    have_audio_config: bool,
    waiting_for_keyframe: bool,
    /// First publisher timestamp seen; the pipeline's timeline starts there.
    base_ms: Option<u64>,
    pub failed: Arc<AtomicBool>,
}

impl PublisherDecode {
    pub fn start(label: &str, format: &OutputFormat, feed: OutputFeed) -> Result<Self, MediaError> {
        let pipeline = PUBLISHER_DECODE.launch(&format_vars(format))?;
        let video = app_src(&pipeline, "video")?;
        let audio = app_src(&pipeline, "audio")?;
        forward(
            &app_sink(&pipeline, "video_out")?,
            feed.clone(),
            true,
            Source::Publisher,
        );
        forward(
            &app_sink(&pipeline, "audio_out")?,
            feed,
            false,
            Source::Publisher,
        );
        let failed = Arc::new(AtomicBool::new(false));
        watch_bus(
            &pipeline,
            format!("publisher-decode {label}"),
            failed.clone(),
        );
        play(&pipeline, PUBLISHER_DECODE.name)?;
        Ok(Self {
            pipeline,
            video,
            audio,
            have_video_config: false,
            have_audio_config: false,
            waiting_for_keyframe: true,
            base_ms: None,
            failed,
        })
    }

    fn clock_time(&mut self, timestamp_ms: u64) -> gst::ClockTime {
        let base = *self.base_ms.get_or_insert(timestamp_ms);
        gst::ClockTime::from_mseconds((timestamp_ms + TIMELINE_OFFSET_MS).saturating_sub(base))
    }

    /// The AVCDecoderConfigurationRecord from the sequence header; may change mid-stream.
    pub fn set_video_config(&mut self, record: Bytes) {
        let caps = gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .field("codec_data", gst::Buffer::from_slice(record))
            .build();
        self.video.set_caps(Some(&caps));
        self.have_video_config = true;
        self.waiting_for_keyframe = true;
    }

    pub fn push_video(
        &mut self,
        timestamp_ms: u64,
        composition_ms: i32,
        keyframe: bool,
        data: Bytes,
    ) {
        if !self.have_video_config {
            return;
        }
        if self.waiting_for_keyframe {
            if !keyframe {
                return;
            }
            self.waiting_for_keyframe = false;
        }
        let dts = self.clock_time(timestamp_ms);
        let pts = gst::ClockTime::from_nseconds(
            (dts.nseconds() as i64 + composition_ms as i64 * 1_000_000).max(0) as u64,
        );
        let mut buffer = gst::Buffer::from_slice(data);
        {
            let b = buffer.get_mut().expect("a new buffer has one owner");
            b.set_dts(dts);
            b.set_pts(pts);
            arrival::stamp(b, Instant::now());
            if !keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        let _ = self.video.push_buffer(buffer);
    }

    /// The AudioSpecificConfig from the AAC sequence header.
    pub fn set_audio_config(&mut self, config: Bytes) {
        let caps = gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "raw")
            .field("codec_data", gst::Buffer::from_slice(config))
            .build();
        self.audio.set_caps(Some(&caps));
        self.have_audio_config = true;
    }

    pub fn push_audio(&mut self, timestamp_ms: u64, data: Bytes) {
        if !self.have_audio_config {
            return;
        }
        let pts = self.clock_time(timestamp_ms);
        let mut buffer = gst::Buffer::from_slice(data);
        buffer
            .get_mut()
            .expect("a new buffer has one owner")
            .set_pts(pts);
        let _ = self.audio.push_buffer(buffer);
    }
}

impl Drop for PublisherDecode {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Hands every decoded buffer to the studio's output, by reference.
pub(crate) fn forward(appsink: &gst_app::AppSink, feed: OutputFeed, video: bool, source: Source) {
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer_owned() {
                    if video {
                        feed.push_video(buffer, source);
                    } else {
                        feed.push_audio(buffer, source);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
