//! The demo session's built-in source: a moving test picture with a clock, and a tone. It
//! feeds the studio as the filler, so a real publisher on the same key takes over the picture
//! and the pattern returns when the publisher leaves.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::decode::forward;
use super::output::{OutputFeed, Source};
use super::{MediaError, OutputFormat, TEST_PATTERN, app_sink, format_vars, play, watch_bus};

pub struct TestPattern {
    pipeline: gst::Pipeline,
    /// The size it draws at; the studio starts it again when the output turns.
    pub format: OutputFormat,
}

impl TestPattern {
    pub fn start(label: &str, format: &OutputFormat, feed: OutputFeed) -> Result<Self, MediaError> {
        let pipeline = TEST_PATTERN.launch(&format_vars(format))?;
        forward(
            &app_sink(&pipeline, "video_out")?,
            feed.clone(),
            true,
            Source::Filler,
        );
        forward(
            &app_sink(&pipeline, "audio_out")?,
            feed,
            false,
            Source::Filler,
        );
        watch_bus(
            &pipeline,
            format!("test-pattern {label}"),
            Arc::new(AtomicBool::new(false)),
        );
        play(&pipeline, TEST_PATTERN.name)?;
        Ok(Self {
            pipeline,
            format: *format,
        })
    }
}

impl Drop for TestPattern {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
