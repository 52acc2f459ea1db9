//! A publisher's MPEG-TS decode pipeline (SRT): the transport stream in as it arrives, raw
//! frames at the output size out, pushed into the studio's [`OutputFeed`]. `decodebin` finds
//! the streams and their decoders (H.264 or HEVC, AAC); the codecs it chose are reported.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::decode::{DECODE_STALL, PIPELINE_RESTARTS, Wired, follow_output, wire_outputs};
use super::output::OutputFeed;
use super::{MediaError, OutputFormat, TS_DECODE, app_src, format_vars, play};

/// The codecs `decodebin` chose, by the decoders it added: (video, audio).
pub type SeenCodecs = Arc<Mutex<(Option<&'static str>, Option<&'static str>)>>;

struct Pipe {
    pipeline: gst::Pipeline,
    ts: gst_app::AppSrc,
    wired: Wired,
}

impl Pipe {
    fn start(
        label: &str,
        format: &OutputFormat,
        feed: &OutputFeed,
        seen: &SeenCodecs,
    ) -> Result<Self, MediaError> {
        let pipeline = TS_DECODE.launch(&format_vars(format))?;
        let ts = app_src(&pipeline, "ts")?;
        let wired = wire_outputs(&pipeline, TS_DECODE.name, label, feed)?;
        let decoder = pipeline
            .by_name("decoder")
            .ok_or_else(|| MediaError::Build {
                name: TS_DECODE.name,
                reason: "no decodebin named decoder".into(),
            })?;
        // Decoders with slice threads add no frame of delay; and each one names its codec.
        {
            let seen = seen.clone();
            decoder.connect("deep-element-added", false, move |values| {
                let element = values.get(2).and_then(|v| v.get::<gst::Element>().ok())?;
                let factory = element.factory()?;
                let name = factory.name();
                if name.starts_with("avdec_h26") && element.has_property("thread-type") {
                    element.set_property_from_str("thread-type", "slice");
                }
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                match name.as_str() {
                    "avdec_h264" => seen.0 = Some("H.264"),
                    "avdec_h265" => seen.0 = Some("HEVC"),
                    "avdec_aac" => seen.1 = Some("AAC"),
                    "opusdec" => seen.1 = Some("Opus"),
                    "avdec_mp3" | "mpg123audiodec" => seen.1 = Some("MP3"),
                    _ => {}
                }
                None
            });
        }
        // Each raw stream goes to its branch; a second stream of a kind is left unlinked.
        let raw_video = pipeline.by_name("raw").and_then(|e| e.static_pad("sink"));
        let raw_audio = pipeline
            .by_name("raw_audio")
            .and_then(|e| e.static_pad("sink"));
        decoder.connect_pad_added(move |_, pad| {
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(kind) = caps.structure(0).map(|s| s.name().to_string()) else {
                return;
            };
            let target = if kind.starts_with("video/x-raw") {
                raw_video.as_ref()
            } else if kind.starts_with("audio/x-raw") {
                raw_audio.as_ref()
            } else {
                None
            };
            if let Some(target) = target.filter(|t| !t.is_linked()) {
                let _ = pad.link(target);
            }
        });
        play(&pipeline, TS_DECODE.name)?;
        Ok(Self {
            pipeline,
            ts,
            wired,
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

pub struct TsDecode {
    label: String,
    format: OutputFormat,
    feed: OutputFeed,
    pipe: Pipe,
    seen: SeenCodecs,
    /// The first bytes pushed since the decoder last gave a picture (None: all answered).
    unanswered_since: Option<Instant>,
}

impl TsDecode {
    pub fn start(label: &str, format: &OutputFormat, feed: OutputFeed) -> Result<Self, MediaError> {
        let seen = SeenCodecs::default();
        let pipe = Pipe::start(label, format, &feed, &seen)?;
        Ok(Self {
            label: label.to_string(),
            format: *format,
            feed,
            pipe,
            seen,
            unanswered_since: None,
        })
    }

    /// The codecs found so far: (video, audio).
    pub fn codecs(&self) -> (Option<&'static str>, Option<&'static str>) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands transport stream bytes to the demuxer. A pipeline that failed, or that gave
    /// pictures and then none for [`DECODE_STALL`] while bytes came, is rebuilt first:
    /// pictures return at the next keyframe. Before its first picture it waits as long as the
    /// publisher's keyframe interval takes.
    pub fn push(&mut self, data: Bytes) {
        let decoded_at = *self
            .pipe
            .wired
            .decoded_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(since) = self.unanswered_since
            && decoded_at.is_some_and(|at| at >= since)
        {
            self.unanswered_since = None;
        }
        let stalled = decoded_at.is_some()
            && self
                .unanswered_since
                .is_some_and(|since| since.elapsed() > DECODE_STALL);
        if stalled || self.pipe.wired.failed.load(Ordering::Relaxed) {
            match Pipe::start(&self.label, &self.format, &self.feed, &self.seen) {
                Ok(pipe) => {
                    let old = std::mem::replace(&mut self.pipe, pipe);
                    std::thread::spawn(move || drop(old));
                    PIPELINE_RESTARTS.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(publisher = %self.label, "SRT publisher decode restarted");
                }
                Err(e) => {
                    tracing::error!(publisher = %self.label, error = %e, "SRT publisher decode could not restart");
                }
            }
            self.unanswered_since = None;
        }
        let output = self.feed.format();
        if output != self.format {
            self.format = output;
            follow_output(&self.pipe.wired.size, &output);
        }
        let _ = self.pipe.ts.push_buffer(gst::Buffer::from_slice(data));
        self.unanswered_since.get_or_insert_with(Instant::now);
    }
}
