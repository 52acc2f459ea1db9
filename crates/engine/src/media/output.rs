//! The studio's output pipeline: it owns the output timeline from go-live to the end of the
//! show. Sources (a publisher's decode, the test pattern) push raw buffers into it through an
//! [`OutputFeed`]; when none has pushed for a moment, the filler thread pushes the slate and
//! silence, so viewers keep a running picture with no reconnect.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::arrival;
use super::frame_clock::FrameClock;
use super::packet::{EncodedPacket, PacketKind, Rendition, h264_starts_keyframe, parse_rtp};
use super::{
    MediaError, OutputFormat, SLATE, STUDIO_OUTPUT, app_sink, app_src, format_vars, play, watch_bus,
};

/// No video from any source for this long: the slate takes over.
pub const SLATE_AFTER: Duration = Duration::from_millis(250);
/// No audio for this long: silence fills in.
pub const SILENCE_AFTER: Duration = Duration::from_millis(200);
/// Audio timestamps that fall this far behind arrival time jump forward to it; audio that
/// would be stamped this far ahead of its arrival is dropped.
const AUDIO_RESYNC: Duration = Duration::from_millis(80);
/// Duration of one silence buffer.
const SILENCE_CHUNK: Duration = Duration::from_millis(20);

/// Called, from a GStreamer streaming thread, for every packet the payloaders produce. It
/// must not block.
pub type PacketSink = Arc<dyn Fn(EncodedPacket) + Send + Sync>;

/// Called with every output frame and its layout, on the streaming thread, just before the
/// encoder: the overlays blend into it (copying it first only when they draw something).
pub type OverlayHook = Box<dyn FnMut(&mut gst::Buffer, &gstreamer_video::VideoInfo) + Send>;

/// Who pushed a buffer. A publisher outranks the filler (test pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Publisher,
    Filler,
}

struct FeedState {
    start: Instant,
    /// Monotonic nanoseconds since `start` of the last video/audio buffer from a real source.
    last_video: AtomicU64,
    last_audio: AtomicU64,
    publisher_attached: AtomicBool,
    audio_clock: Mutex<AudioClock>,
    /// Video timestamps on the output's frame grid (taken under `format`).
    video_clock: Mutex<FrameClock>,
    /// The output picture now. Held while a frame is checked and pushed, so a resize never
    /// lets a frame of the old size through under the new caps.
    format: Mutex<OutputFormat>,
    /// Set while the orientation is `auto` and no publisher picture has decided it yet.
    follow_source: AtomicBool,
    /// The last publisher picture size reported.
    source: Mutex<Option<(u32, u32)>>,
}

#[derive(Default)]
struct AudioClock {
    /// Running time the next audio buffer continues from, if audio is flowing.
    next: Option<gst::ClockTime>,
}

impl FeedState {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// A cloneable handle that sources push raw frames and audio through.
#[derive(Clone)]
pub struct OutputFeed {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    /// The light rendition's scaler caps, turned with the output.
    light_size: gst::Element,
    audio: gst_app::AppSrc,
    state: Arc<FeedState>,
}

impl OutputFeed {
    /// Marks a publisher as attached (the filler stops) or gone (the filler resumes).
    pub fn set_publisher_attached(&self, attached: bool) {
        self.state
            .publisher_attached
            .store(attached, Ordering::Relaxed);
    }

    /// The output rendition now (its size follows the session's orientation).
    pub fn format(&self) -> OutputFormat {
        *self.state.format.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns the output upright or on its side. The encoder starts a new keyframe at the new
    /// size with the next frame; sources still at the old size are dropped until they follow
    /// (the slate fills in meanwhile). Returns whether the size changed.
    pub fn orient(&self, portrait: bool) -> bool {
        let mut format = self.state.format.lock().unwrap_or_else(|e| e.into_inner());
        let next = format.oriented(portrait);
        if next == *format {
            return false;
        }
        self.video.set_caps(Some(&next.raw_video_caps()));
        self.light_size.set_property("caps", next.light_caps());
        *format = next;
        true
    }

    /// The last publisher picture size reported, if any.
    pub fn last_source_size(&self) -> Option<(u32, u32)> {
        *self.state.source.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// While set, the next publisher picture size decides the orientation (`auto`).
    pub fn follow_source(&self, follow: bool) {
        self.state.follow_source.store(follow, Ordering::Relaxed);
    }

    /// A publisher's decoder reports its picture size (before its first frame reaches the
    /// output). Under `auto`, the first one turns the output to match.
    pub fn source_size(&self, width: u32, height: u32) {
        *self.state.source.lock().unwrap_or_else(|e| e.into_inner()) = Some((width, height));
        if self.state.follow_source.swap(false, Ordering::Relaxed) {
            let portrait = height > width;
            if self.orient(portrait) {
                tracing::info!(
                    width,
                    height,
                    portrait,
                    "output orientation follows the publisher"
                );
            }
        }
    }

    fn accepts(&self, source: Source) -> bool {
        source == Source::Publisher || !self.state.publisher_attached.load(Ordering::Relaxed)
    }

    fn running_time(&self) -> gst::ClockTime {
        self.pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO)
    }

    /// Pushes one raw frame (I420, `size` = its width and height). The memory is shared, not
    /// copied. A frame not at the output size (a source catching up with a turn) is dropped.
    pub fn push_video(&self, mut buffer: gst::Buffer, source: Source, size: (u32, u32)) {
        if !self.accepts(source) {
            return;
        }
        if self.push_video_now(&mut buffer, size) {
            self.state
                .last_video
                .store(self.state.now_ns(), Ordering::Relaxed);
        }
    }

    fn push_video_now(&self, buffer: &mut gst::Buffer, size: (u32, u32)) -> bool {
        // The format lock is held across the push on purpose: `orient` changes the caps under
        // it, so a frame checked at the old size can never be queued behind the new caps. It
        // costs a queue insert: this appsrc is leaky (it never waits) and has no callbacks,
        // so the push cannot block or call back into this code.
        let format = self.state.format.lock().unwrap_or_else(|e| e.into_inner());
        if (format.width, format.height) != size {
            return false;
        }
        let arrival = self.running_time().nseconds();
        let stamped = self
            .state
            .video_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stamp(arrival);
        // A frame of a burst that would run more than a frame ahead of its arrival: dropped,
        // though its source did deliver it.
        let Some(pts) = stamped else { return true };
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_dts(gst::ClockTime::NONE);
        }
        // A full queue drops (leaky); a flushing or stopped pipeline is not an error here.
        let _ = self.video.push_buffer(buffer.clone());
        true
    }

    /// Pushes raw S16LE 48 kHz stereo audio.
    pub fn push_audio(&self, mut buffer: gst::Buffer, source: Source) {
        if !self.accepts(source) {
            return;
        }
        self.state
            .last_audio
            .store(self.state.now_ns(), Ordering::Relaxed);
        self.push_audio_now(&mut buffer);
    }

    fn push_audio_now(&self, buffer: &mut gst::Buffer) {
        let samples = buffer.size() as u64 / 4;
        let duration = gst::ClockTime::from_nseconds(samples * 1_000_000_000 / 48_000);
        let arrival = self.running_time();
        let pts = {
            let mut clock = self
                .state
                .audio_clock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let resync = AUDIO_RESYNC.as_nanos() as u64;
            let pts = match clock.next {
                // Audio stamped this far ahead of its arrival (a burst after a stall that the
                // silence already filled, or a publisher whose clock runs fast) would have to
                // go back in time: it is dropped, and the clock holds, so timestamps only go
                // forward.
                Some(next) if arrival.nseconds() + resync < next.nseconds() => return,
                // Within the bound either side: continuous.
                Some(next) if arrival.nseconds() < next.nseconds() + resync => next,
                // Behind its arrival (a gap): it jumps forward.
                _ => arrival,
            };
            clock.next = Some(pts + duration);
            pts
        };
        {
            let b = buffer.make_mut();
            b.set_pts(pts);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(duration);
        }
        let _ = self.audio.push_buffer(buffer.clone());
    }
}

/// The running output pipeline of one studio.
pub struct StudioOutput {
    pipeline: gst::Pipeline,
    feed: OutputFeed,
    light: Arc<LightEncode>,
    encoder_sink: gst_app::AppSink,
    stop: Arc<AtomicBool>,
    filler: Option<JoinHandle<()>>,
    pub failed: Arc<AtomicBool>,
}

impl StudioOutput {
    pub fn start(
        label: &str,
        format: OutputFormat,
        sink: PacketSink,
        overlay: Option<OverlayHook>,
    ) -> Result<Self, MediaError> {
        let pipeline = STUDIO_OUTPUT.launch(&format_vars(&format))?;
        if let Some(hook) = overlay {
            connect_overlay(&pipeline, hook)?;
        }
        let video = app_src(&pipeline, "video")?;
        let audio = app_src(&pipeline, "audio")?;
        video.set_caps(Some(&format.raw_video_caps()));
        audio.set_caps(Some(&raw_audio_caps()));
        let light_size = element(&pipeline, "light_size")?;
        light_size.set_property("caps", format.light_caps());
        let video_rtp = app_sink(&pipeline, "video_rtp")?;
        let light_rtp = app_sink(&pipeline, "light_rtp")?;
        let audio_rtp = app_sink(&pipeline, "audio_rtp")?;
        connect_packets(&video_rtp, PacketKind::Video, Rendition::Main, sink.clone());
        connect_packets(
            &light_rtp,
            PacketKind::Video,
            Rendition::Light,
            sink.clone(),
        );
        connect_packets(&audio_rtp, PacketKind::Audio, Rendition::Main, sink);
        let light = LightEncode {
            valve: element(&pipeline, "light")?,
            encoder: element(&pipeline, "light_encoder")?,
            due: Default::default(),
            open: AtomicBool::new(false),
        };
        light.watch_due()?;

        let failed = Arc::new(AtomicBool::new(false));
        watch_bus(&pipeline, format!("studio-output {label}"), failed.clone());
        let slate = render_slate(&format)?;

        let state = Arc::new(FeedState {
            start: Instant::now(),
            last_video: AtomicU64::new(0),
            last_audio: AtomicU64::new(0),
            publisher_attached: AtomicBool::new(false),
            audio_clock: Mutex::new(AudioClock::default()),
            video_clock: Mutex::new(FrameClock::new(format.fps)),
            format: Mutex::new(format),
            follow_source: AtomicBool::new(false),
            source: Mutex::new(None),
        });
        let feed = OutputFeed {
            pipeline: pipeline.clone(),
            video,
            light_size,
            audio,
            state,
        };
        play(&pipeline, STUDIO_OUTPUT.name)?;

        let stop = Arc::new(AtomicBool::new(false));
        let filler = {
            let feed = feed.clone();
            let stop = stop.clone();
            let frame_interval = Duration::from_nanos(1_000_000_000 / format.fps as u64);
            std::thread::Builder::new()
                .name(format!("filler-{label}"))
                .spawn(move || run_filler(feed, (format, slate), frame_interval, stop))
                .map_err(|e| MediaError::Build {
                    name: "filler",
                    reason: e.to_string(),
                })?
        };
        Ok(Self {
            pipeline,
            feed,
            light: Arc::new(light),
            encoder_sink: video_rtp,
            stop,
            filler: Some(filler),
            failed,
        })
    }

    pub fn feed(&self) -> OutputFeed {
        self.feed.clone()
    }

    /// Connects the HLS branches: `video` gets each H.264 access unit (Annex B) of either
    /// rendition with its running time in ns and whether it is a keyframe, `audio` each ADTS
    /// frame with its running time. They run on streaming threads and must not block. The
    /// returned switch opens (`true`) or closes the branches' valves; they start closed.
    /// Opening also starts the light encode (HLS lists both renditions); closing leaves that
    /// to [`StudioOutput::light`]'s owner, since WebRTC viewers may still watch it.
    pub fn connect_hls(
        &self,
        video: impl Fn(Rendition, &[u8], u64, bool, Option<(u32, u32)>) + Send + Sync + 'static,
        audio: impl Fn(&[u8], u64) + Send + Sync + 'static,
    ) -> Result<HlsSwitch, MediaError> {
        let on_sample = |appsink: &gst_app::AppSink, deliver: HlsDeliver| {
            appsink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |appsink| {
                        let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        // Running time, not the buffer's timestamp: an encoder may offset
                        // its timestamps (x264enc by 1000 hours) and its segment with them.
                        if let Some(buffer) = sample.buffer()
                            && let Some(pts) = buffer.pts()
                            && let Some(segment) = sample.segment()
                            && let Some(segment) = segment.downcast_ref::<gst::ClockTime>()
                            && let Some(running) = segment.to_running_time(pts)
                            && let Ok(map) = buffer.map_readable()
                        {
                            let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                            // A keyframe carries the picture size (the output may have turned).
                            let size = keyframe
                                .then(|| {
                                    sample.caps()?.structure(0).map(|s| {
                                        (s.get::<i32>("width").ok(), s.get::<i32>("height").ok())
                                    })
                                })
                                .flatten()
                                .and_then(|(w, h)| Some((w? as u32, h? as u32)));
                            deliver(&map, running.nseconds(), keyframe, size);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        };
        let video = Arc::new(video);
        let main = video.clone();
        on_sample(
            &app_sink(&self.pipeline, "hls_h264")?,
            Box::new(move |bytes, pts, keyframe, size| {
                main(Rendition::Main, bytes, pts, keyframe, size)
            }),
        );
        on_sample(
            &app_sink(&self.pipeline, "hls_light_h264")?,
            Box::new(move |bytes, pts, keyframe, size| {
                video(Rendition::Light, bytes, pts, keyframe, size)
            }),
        );
        on_sample(
            &app_sink(&self.pipeline, "hls_aac")?,
            Box::new(move |bytes, pts, _, _| audio(bytes, pts)),
        );
        let valves = ["hls_video", "hls_light_video", "hls_audio"]
            .into_iter()
            .map(|name| element(&self.pipeline, name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HlsSwitch {
            valves,
            light: self.light.clone(),
        })
    }

    /// The light rendition's encode: started and stopped by the studio's owner.
    pub fn light(&self) -> Arc<LightEncode> {
        self.light.clone()
    }

    /// What makes the encoder's next frame a keyframe. Its `ask` must be called from the
    /// thread that delivered a frame to an HLS appsink (no queue sits between the encoder and
    /// them, and x264 in zerolatency has no frame delay): the event is in the encoder before
    /// the next frame is.
    pub fn next_keyframe(&self) -> Result<NextKeyframe, MediaError> {
        element(&self.pipeline, "encoder")?
            .static_pad("src")
            .map(NextKeyframe)
            .ok_or_else(|| MediaError::Build {
                name: STUDIO_OUTPUT.name,
                reason: "no encoder with a src pad".into(),
            })
    }

    /// Asks the encoder for a keyframe (with SPS/PPS) as soon as possible.
    pub fn force_keyframe(&self) {
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        self.encoder_sink.send_event(event);
    }
}

/// The encoder's output pad, to ask for a keyframe at its next frame.
pub struct NextKeyframe(gst::Pad);

impl NextKeyframe {
    pub fn ask(&self) {
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        self.0.send_event(event);
    }
}

/// What an HLS appsink hands each buffer to: bytes, running time (ns), keyframe, and on a
/// keyframe the picture size.
type HlsDeliver = Box<dyn Fn(&[u8], u64, bool, Option<(u32, u32)>) + Send + Sync>;

/// Opens and closes the studio's HLS branches.
pub struct HlsSwitch {
    valves: Vec<gst::Element>,
    light: Arc<LightEncode>,
}

impl HlsSwitch {
    pub fn set(&self, open: bool) {
        if open {
            self.light.set_open(true);
        }
        for valve in &self.valves {
            valve.set_property("drop", !open);
        }
    }
}

/// The light rendition's encode: its valve, and its encoder for keyframes.
pub struct LightEncode {
    valve: gst::Element,
    encoder: gst::Element,
    /// Running times (ns) of frames that must be keyframes (the main encode's segment
    /// starts), in order; a probe on the encoder's input takes them.
    due: Arc<Mutex<std::collections::VecDeque<u64>>>,
    open: AtomicBool,
}

impl LightEncode {
    /// Starts (with a keyframe) or stops the light encode. Returns whether it changed.
    pub fn set_open(&self, open: bool) -> bool {
        if self.open.swap(open, Ordering::AcqRel) == open {
            return false;
        }
        self.valve.set_property("drop", !open);
        if open {
            // The encoder resumes after a gap: its next frame must not refer to old ones.
            self.keyframe();
        }
        tracing::debug!(open, "light rendition encode");
        true
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// A keyframe (with SPS/PPS) at the light encoder's next frame.
    pub fn keyframe(&self) {
        if let Some(pad) = self.encoder.static_pad("src") {
            pad.send_event(
                gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                    .all_headers(true)
                    .build(),
            );
        }
    }

    /// A keyframe at the light encoder's first frame at or after `running_time` (ns), the
    /// start of a main segment: the two renditions' keyframes (and HLS segments) then start at
    /// the same frame.
    pub fn keyframe_at(&self, running_time: u64) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        due.push_back(running_time);
        // Never more than a few: the light encode may be stopped.
        while due.len() > 8 {
            due.pop_front();
        }
    }

    /// Asks for a keyframe, just before the encoder takes a frame at or past a due time (a
    /// probe on its input pad, in its streaming thread: the request is in the encoder before
    /// the frame is).
    fn watch_due(&self) -> Result<(), MediaError> {
        let sink = self.encoder.static_pad("sink");
        let src = self.encoder.static_pad("src");
        let (Some(sink), Some(src)) = (sink, src) else {
            return Err(MediaError::Build {
                name: STUDIO_OUTPUT.name,
                reason: "the light encoder has no pads".into(),
            });
        };
        let due = self.due.clone();
        sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_ref() else {
                return gst::PadProbeReturn::Ok;
            };
            let running = buffer.pts().and_then(|pts| {
                let segment = pad.sticky_event::<gst::event::Segment>(0)?;
                segment
                    .segment()
                    .downcast_ref::<gst::ClockTime>()?
                    .to_running_time(pts)
            });
            let Some(running) = running.map(|r| r.nseconds()) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut due = due.lock().unwrap_or_else(|e| e.into_inner());
            let mut now = false;
            while due.front().is_some_and(|at| *at <= running) {
                due.pop_front();
                now = true;
            }
            drop(due);
            if now {
                src.send_event(
                    gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                        .all_headers(true)
                        .build(),
                );
            }
            gst::PadProbeReturn::Ok
        });
        Ok(())
    }
}

impl Drop for StudioOutput {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(filler) = self.filler.take() {
            let _ = filler.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Runs `hook` on every frame leaving the `overlay` element (a pad probe: no extra thread,
/// no queue, the frame goes on to the encoder right after), with the layout of the caps the
/// frame travels under.
fn connect_overlay(pipeline: &gst::Pipeline, hook: OverlayHook) -> Result<(), MediaError> {
    let pad = pipeline
        .by_name("overlay")
        .and_then(|e| e.static_pad("src"))
        .ok_or_else(|| MediaError::Build {
            name: STUDIO_OUTPUT.name,
            reason: "no element named overlay".into(),
        })?;
    // Only the streaming thread takes this lock: it is never contended.
    let state: Mutex<(OverlayHook, Option<(gst::Caps, gstreamer_video::VideoInfo)>)> =
        Mutex::new((hook, None));
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let (hook, layout) = &mut *guard;
        if layout.as_ref().is_none_or(|(c, _)| *c != caps) {
            *layout = gstreamer_video::VideoInfo::from_caps(&caps)
                .ok()
                .map(|info| (caps, info));
        }
        if let Some((_, video_info)) = layout {
            hook(buffer, video_info);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

pub(crate) fn raw_audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("rate", 48_000i32)
        .field("channels", 2i32)
        .field("layout", "interleaved")
        .build()
}

fn element(pipeline: &gst::Pipeline, name: &str) -> Result<gst::Element, MediaError> {
    pipeline.by_name(name).ok_or_else(|| MediaError::Build {
        name: STUDIO_OUTPUT.name,
        reason: format!("no element named {name}"),
    })
}

fn connect_packets(
    appsink: &gst_app::AppSink,
    kind: PacketKind,
    rendition: Rendition,
    sink: PacketSink,
) {
    // RTP timestamp of the frame whose first packet went last: the next one starts a frame.
    let mut frame_timestamp = None;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(map) = buffer.map_readable() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if let Some(rtp) = parse_rtp(&map) {
                    let keyframe_start =
                        kind == PacketKind::Video && h264_starts_keyframe(rtp.payload);
                    let starts_frame =
                        frame_timestamp.replace(rtp.timestamp) != Some(rtp.timestamp);
                    let arrived_at = if kind == PacketKind::Video && starts_frame {
                        arrival::arrived_at(buffer)
                    } else {
                        None
                    };
                    sink(EncodedPacket {
                        kind,
                        rendition,
                        timestamp: rtp.timestamp,
                        marker: rtp.marker,
                        keyframe_start,
                        payload: Arc::from(rtp.payload),
                        packetized_at: Instant::now(),
                        arrived_at,
                    });
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Renders the slate picture once.
fn render_slate(format: &OutputFormat) -> Result<gst::Buffer, MediaError> {
    let pipeline = SLATE.launch(&format_vars(format))?;
    let sink = app_sink(&pipeline, "slate")?;
    play(&pipeline, SLATE.name)?;
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(5));
    let _ = pipeline.set_state(gst::State::Null);
    sample
        .and_then(|s| s.buffer_owned())
        .ok_or(MediaError::Build {
            name: SLATE.name,
            reason: "rendered no frame".into(),
        })
}

/// Pushes the slate at the frame rate while no source pushes video, and silence while none
/// pushes audio. The slate is rendered again when the output turns.
fn run_filler(
    feed: OutputFeed,
    mut slate: (OutputFormat, gst::Buffer),
    frame_interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let silence_bytes = (48_000 * 4 * SILENCE_CHUNK.as_millis() / 1000) as usize;
    let silence = gst::Buffer::from_mut_slice(vec![0u8; silence_bytes]);
    let mut next_frame = Instant::now();
    let mut next_silence = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let now_ns = feed.state.now_ns();
        let video_idle = now_ns.saturating_sub(feed.state.last_video.load(Ordering::Relaxed));
        if video_idle >= SLATE_AFTER.as_nanos() as u64 {
            if now >= next_frame {
                let format = feed.format();
                if format != slate.0 {
                    match render_slate(&format) {
                        Ok(buffer) => slate = (format, buffer),
                        Err(e) => tracing::error!(error = %e, "slate not rendered"),
                    }
                }
                feed.push_video_now(&mut slate.1.clone(), (slate.0.width, slate.0.height));
                next_frame += frame_interval;
                if next_frame < now {
                    next_frame = now + frame_interval;
                }
            }
        } else {
            next_frame = now;
        }
        let audio_idle = now_ns.saturating_sub(feed.state.last_audio.load(Ordering::Relaxed));
        if audio_idle >= SILENCE_AFTER.as_nanos() as u64 {
            while next_silence <= now {
                feed.push_audio_now(&mut silence.clone());
                next_silence += SILENCE_CHUNK;
            }
        } else {
            next_silence = now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
