//! A publisher's decode pipeline: parsed video and audio in (H.264, HEVC or AV1; AAC), raw
//! frames at the output size out, pushed into the studio's [`OutputFeed`].
//!
//! Caps come from the sequence headers (no flvdemux); PTS = DTS + composition time. A
//! sequence header of another codec rebuilds the pipeline for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::arrival;
use super::codecs::{AudioInput, VideoInput, missing_element};
use super::output::{OutputFeed, Source};
use super::{
    MediaError, OutputFormat, PUBLISHER_DECODE, app_sink, app_src, format_vars, play, watch_bus,
};

/// Publisher timestamps are moved this far forward so a negative composition offset can
/// never produce a negative PTS.
const TIMELINE_OFFSET_MS: u64 = 1_000;

/// A decode pipeline that takes video and gives no picture for this long (a decoder error on
/// a corrupt stream, a stream it cannot follow) is rebuilt: only this publisher's input
/// restarts, the slate shows meanwhile, and pictures return from the next keyframe.
pub const DECODE_STALL: Duration = Duration::from_secs(2);

/// Publisher decode pipelines rebuilt after an error or a stall, for `/metrics`.
pub static PIPELINE_RESTARTS: AtomicU64 = AtomicU64::new(0);

/// One running decode pipeline.
struct Pipe {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    failed: Arc<AtomicBool>,
    /// When the decoder last gave a picture.
    decoded_at: Arc<Mutex<Option<Instant>>>,
    /// Sets the picture size handed to the studio.
    size: gst::Element,
    /// What its appsrcs take.
    inputs: (VideoInput, AudioInput),
}

impl Pipe {
    fn start(
        label: &str,
        format: &OutputFormat,
        feed: &OutputFeed,
        inputs: (VideoInput, AudioInput),
    ) -> Result<Self, MediaError> {
        let (video_input, audio_input) = inputs;
        for chain in [video_input.decode_chain(), audio_input.decode_chain()] {
            if let Some(element) = missing_element(chain) {
                return Err(MediaError::MissingElement {
                    package: super::debian_package(&element),
                    element,
                });
            }
        }
        let mut vars = format_vars(format);
        vars.push(("video_decode", video_input.decode_chain().into()));
        vars.push(("audio_decode", audio_input.decode_chain().into()));
        let pipeline = PUBLISHER_DECODE.launch(&vars)?;
        let video = app_src(&pipeline, "video")?;
        let audio = app_src(&pipeline, "audio")?;
        let wired = wire_outputs(&pipeline, PUBLISHER_DECODE.name, label, feed)?;
        play(&pipeline, PUBLISHER_DECODE.name)?;
        Ok(Self {
            pipeline,
            video,
            audio,
            failed: wired.failed,
            decoded_at: wired.decoded_at,
            size: wired.size,
            inputs,
        })
    }
}

/// The raw side of a decode pipeline, shared by every way in: what it tells its owner.
pub(crate) struct Wired {
    /// Set when the pipeline posts an error.
    pub failed: Arc<AtomicBool>,
    /// When the last picture came out.
    pub decoded_at: Arc<Mutex<Option<Instant>>>,
    /// The capsfilter that sets the picture size handed to the studio.
    pub size: gst::Element,
}

/// Wires a decode pipeline's raw side to the studio: the `video_out` and `audio_out`
/// appsinks forward every buffer, the element named `raw` (the first after the decoder)
/// reports the publisher's picture size, and the `size` capsfilter follows the output.
pub(crate) fn wire_outputs(
    pipeline: &gst::Pipeline,
    name: &'static str,
    label: &str,
    feed: &OutputFeed,
) -> Result<Wired, MediaError> {
    let video_out = app_sink(pipeline, "video_out")?;
    let decoded_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    if let Some(pad) = video_out.static_pad("sink") {
        let decoded_at = decoded_at.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            *decoded_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            gst::PadProbeReturn::Ok
        });
    }
    let size = pipeline.by_name("size").ok_or_else(|| MediaError::Build {
        name,
        reason: "no capsfilter named size".into(),
    })?;
    // The decoder announces the publisher's picture size before its first frame: the
    // studio may turn to it (`auto`), and the scaler then targets the output size.
    let raw = pipeline
        .by_name("raw")
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| MediaError::Build {
            name,
            reason: "no element named raw after the decoder".into(),
        })?;
    {
        let feed = feed.clone();
        let size = size.clone();
        raw.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data
                && let gst::EventView::Caps(caps) = event.view()
                && let Some((w, h)) = caps_size(caps.caps())
            {
                feed.source_size(w, h);
                follow_output(&size, &feed.format());
            }
            gst::PadProbeReturn::Ok
        });
    }
    follow_output(&size, &feed.format());
    forward(&video_out, feed.clone(), true, Source::Publisher);
    forward(
        &app_sink(pipeline, "audio_out")?,
        feed.clone(),
        false,
        Source::Publisher,
    );
    let failed = Arc::new(AtomicBool::new(false));
    watch_bus(pipeline, format!("{name} {label}"), failed.clone());
    Ok(Wired {
        failed,
        decoded_at,
        size,
    })
}

/// Width and height of raw or encoded video caps.
pub(crate) fn caps_size(caps: &gst::CapsRef) -> Option<(u32, u32)> {
    let s = caps.structure(0)?;
    let w = s.get::<i32>("width").ok()?;
    let h = s.get::<i32>("height").ok()?;
    (w > 0 && h > 0).then_some((w as u32, h as u32))
}

/// Points a `size` capsfilter at the output size (the scaler renegotiates on its next frame).
pub(crate) fn follow_output(size: &gst::Element, format: &OutputFormat) {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", format.width as i32)
        .field("height", format.height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let current = size.property::<Option<gst::Caps>>("caps");
    if current.as_ref() != Some(&caps) {
        size.set_property("caps", &caps);
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

pub struct PublisherDecode {
    label: String,
    format: OutputFormat,
    feed: OutputFeed,
    pipe: Pipe,
    /// The publisher's last configuration records, applied again to a rebuilt pipeline.
    video_config: Option<(VideoInput, Option<Bytes>)>,
    audio_config: Option<(AudioInput, Option<Bytes>)>,
    waiting_for_keyframe: bool,
    /// First publisher timestamp seen; the pipeline's timeline starts there.
    base_ms: Option<u64>,
    /// The first video pushed since the decoder last gave a picture (None: all answered).
    unanswered_since: Option<Instant>,
}

impl PublisherDecode {
    /// Starts decoding H.264 and AAC; a configuration of another codec rebuilds it.
    pub fn start(label: &str, format: &OutputFormat, feed: OutputFeed) -> Result<Self, MediaError> {
        let pipe = Pipe::start(
            label,
            format,
            &feed,
            (VideoInput::H264Avc, AudioInput::AacRaw),
        )?;
        Ok(Self {
            label: label.to_string(),
            format: *format,
            feed,
            pipe,
            video_config: None,
            audio_config: None,
            waiting_for_keyframe: true,
            base_ms: None,
            unanswered_since: None,
        })
    }

    /// Rebuilds the pipeline when it failed, or when video pushed into it has given no
    /// picture for [`DECODE_STALL`]. Returns true when it did: the next push must then be a
    /// keyframe. Only frames actually pushed start the stall clock, so a publisher that
    /// sends no keyframe for a while waits on the slate instead of restarting in a loop.
    fn restart_if_unhealthy(&mut self) -> bool {
        let decoded_at = *self
            .pipe
            .decoded_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(since) = self.unanswered_since
            && decoded_at.is_some_and(|at| at >= since)
        {
            self.unanswered_since = None;
        }
        let stalled = self
            .unanswered_since
            .is_some_and(|since| since.elapsed() > DECODE_STALL);
        let failed = self.pipe.failed.load(Ordering::Relaxed);
        if !(stalled || failed) {
            return false;
        }
        match self.rebuild(self.pipe.inputs) {
            Ok(()) => {
                PIPELINE_RESTARTS.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    publisher = %self.label,
                    reason = if failed { "decoder error" } else { "no picture for 2 s" },
                    "publisher decode restarted; pictures return at the next keyframe"
                );
                true
            }
            Err(e) => {
                tracing::error!(publisher = %self.label, error = %e, "publisher decode could not restart");
                false
            }
        }
    }

    /// Replaces the pipeline with a new one for `inputs`, configured as the last one was.
    fn rebuild(&mut self, inputs: (VideoInput, AudioInput)) -> Result<(), MediaError> {
        let pipe = Pipe::start(&self.label, &self.format, &self.feed, inputs)?;
        let old = std::mem::replace(&mut self.pipe, pipe);
        // Stopping a pipeline can take a moment: not on the connection's task.
        std::thread::spawn(move || drop(old));
        if let Some((input, record)) = self.video_config.clone() {
            self.pipe.video.set_caps(Some(&input.caps(record.as_ref())));
            self.waiting_for_keyframe = true;
        }
        if let Some((input, config)) = self.audio_config.clone() {
            self.pipe.audio.set_caps(Some(&input.caps(config.as_ref())));
        }
        self.unanswered_since = None;
        Ok(())
    }

    fn clock_time(&mut self, timestamp_ms: u64) -> gst::ClockTime {
        let base = *self.base_ms.get_or_insert(timestamp_ms);
        gst::ClockTime::from_mseconds((timestamp_ms + TIMELINE_OFFSET_MS).saturating_sub(base))
    }

    /// The video's codec and configuration record (from the sequence header); may change
    /// mid-stream. An error when this machine cannot decode the codec: the publisher is
    /// told, with the codec and the package to install named.
    pub fn set_video_config(
        &mut self,
        input: VideoInput,
        record: Option<Bytes>,
    ) -> Result<(), MediaError> {
        self.video_config = Some((input, record.clone()));
        if input != self.pipe.inputs.0 {
            return self.rebuild((input, self.pipe.inputs.1));
        }
        self.pipe.video.set_caps(Some(&input.caps(record.as_ref())));
        self.waiting_for_keyframe = true;
        Ok(())
    }

    /// Hands one access unit to the decoder; false when it was dropped (no sequence header
    /// yet, waiting for a keyframe, or the decoder refused it).
    pub fn push_video(
        &mut self,
        timestamp_ms: u64,
        composition_ms: i32,
        keyframe: bool,
        data: Bytes,
    ) -> bool {
        if self.video_config.is_none() {
            return false;
        }
        if self.restart_if_unhealthy() {
            self.waiting_for_keyframe = true;
        }
        // The operator turned the output: scale to the new size from the next frame.
        let output = self.feed.format();
        if output != self.format {
            self.format = output;
            follow_output(&self.pipe.size, &output);
        }
        if self.waiting_for_keyframe {
            if !keyframe {
                return false;
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
        let taken = self.pipe.video.push_buffer(buffer).is_ok();
        self.unanswered_since.get_or_insert_with(Instant::now);
        taken
    }

    /// The video codec configured so far (none before the first configuration).
    pub fn video_input(&self) -> Option<VideoInput> {
        self.video_config.as_ref().map(|(input, _)| *input)
    }

    pub fn audio_input(&self) -> Option<AudioInput> {
        self.audio_config.as_ref().map(|(input, _)| *input)
    }

    /// Whether the decoder waits for a keyframe (after a start, a new configuration or a
    /// restart): a WebRTC publisher is then asked for one.
    pub fn wants_keyframe(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// The audio's codec and configuration (the AudioSpecificConfig of AAC).
    pub fn set_audio_config(
        &mut self,
        input: AudioInput,
        config: Option<Bytes>,
    ) -> Result<(), MediaError> {
        self.audio_config = Some((input, config.clone()));
        if input != self.pipe.inputs.1 {
            return self.rebuild((self.pipe.inputs.0, input));
        }
        self.pipe.audio.set_caps(Some(&input.caps(config.as_ref())));
        Ok(())
    }

    pub fn push_audio(&mut self, timestamp_ms: u64, data: Bytes) {
        if self.audio_config.is_none() {
            return;
        }
        let pts = self.clock_time(timestamp_ms);
        let mut buffer = gst::Buffer::from_slice(data);
        buffer
            .get_mut()
            .expect("a new buffer has one owner")
            .set_pts(pts);
        let _ = self.pipe.audio.push_buffer(buffer);
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
                        if let Some(size) = sample.caps().and_then(caps_size) {
                            feed.push_video(buffer, source, size);
                        }
                    } else {
                        feed.push_audio(buffer, source);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
