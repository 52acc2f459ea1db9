//! The stamped publisher of the latency benchmarks: a moving test picture with the
//! wall-clock time code (crates/engine/src/media/time_code.rs) written into each frame just before its
//! encoder, FLV over RTMP by GStreamer's rtmp2sink, to one server or several at once.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fieldcast_engine::media::time_code;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video::prelude::*;

#[derive(Clone, Copy, PartialEq)]
pub enum PublisherKind {
    ZeroLatency,
    ObsLike,
    /// x264 zerolatency with a keyframe every second (what `hls_fragment 1s` needs).
    OneSecondKeyframes,
}

impl PublisherKind {
    pub fn label(self) -> &'static str {
        match self {
            PublisherKind::ZeroLatency => "x264 zerolatency publisher",
            PublisherKind::ObsLike => "OBS-like publisher (veryfast, B-frames, lookahead)",
            PublisherKind::OneSecondKeyframes => "x264 zerolatency publisher, 1 s keyframes",
        }
    }
    pub fn encoder(self) -> &'static str {
        match self {
            PublisherKind::ZeroLatency => {
                "x264enc tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max=60"
            }
            PublisherKind::OneSecondKeyframes => {
                "x264enc tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max=30"
            }
            // OBS's x264 defaults: veryfast, 2 s keyframes, B-frames, no tune; x264's own
            // lookahead and frame threads stay on.
            PublisherKind::ObsLike => {
                "x264enc speed-preset=veryfast bitrate=2500 key-int-max=60 bframes=2 b-adapt=true"
            }
        }
    }
}

/// The stamped publisher: a moving test picture, the time code written into each frame just
/// before the encoder, FLV over RTMP by GStreamer's rtmp2sink.
pub struct Publisher {
    pipeline: gst::Pipeline,
    /// Frame made → its encoded frame out of the encoder, in ms.
    pub encoder_ms: Arc<Mutex<Vec<f64>>>,
    /// Frame made → its FLV tag out of the muxer to rtmp2sink (audio interleaving included).
    pub sent_ms: Arc<Mutex<Vec<f64>>>,
}

/// The running time of a buffer's timestamp (DTS when `dts` and it has one) on `pad`.
pub fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef, dts: bool) -> Option<u64> {
    let ts = if dts {
        buffer.dts().or(buffer.pts())
    } else {
        buffer.pts()
    }?;
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(ts).map(|t| t.nseconds())
}

/// Adds a buffer probe on `element`'s src pad.
fn on_buffers(
    pipeline: &gst::Pipeline,
    element: &str,
    f: impl Fn(&gst::Pad, &mut gst::Buffer) + Send + Sync + 'static,
) {
    let pad = pipeline
        .by_name(element)
        .and_then(|e| e.static_pad("src"))
        .unwrap_or_else(|| panic!("no {element} src pad"));
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            f(pad, buffer);
        }
        gst::PadProbeReturn::Ok
    });
}

impl Publisher {
    pub fn start(url: &str, kind: PublisherKind) -> Publisher {
        Self::start_to(&[url], kind)
    }

    /// One encode, sent to every URL (the same frames reach each server at the same time).
    pub fn start_to(urls: &[&str], kind: PublisherKind) -> Publisher {
        let sinks: String = urls
            .iter()
            .map(|url| format!(" t. ! queue ! rtmp2sink location={url}"))
            .collect();
        let description = format!(
            "videotestsrc is-live=true pattern=ball motion=sweep \
             ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
             ! identity name=stamp ! {} ! video/x-h264,profile=main ! h264parse \
             ! identity name=encoded ! flvmux name=mux streamable=true \
             ! identity name=sent ! tee name=t {sinks} \
             audiotestsrc is-live=true wave=sine freq=440 volume=0.1 \
             ! audioconvert ! audioresample ! avenc_aac ! aacparse ! mux.",
            kind.encoder()
        );
        let pipeline = gst::parse::launch(&description)
            .expect("publisher pipeline")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        // Running time of the picture → when it was made; then encoded DTS → when made.
        let made: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let encoded: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let encoder_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
        let sent_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
        let made_in = made.clone();
        on_buffers(&pipeline, "stamp", move |pad, buffer| {
            let Some(info) = pad
                .current_caps()
                .and_then(|c| gstreamer_video::VideoInfo::from_caps(&c).ok())
            else {
                return;
            };
            let buffer = buffer.make_mut();
            if let Some(rt) = running_time(pad, buffer, false) {
                made_in.lock().unwrap().insert(rt, Instant::now());
            }
            if let Ok(mut frame) =
                gstreamer_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info)
            {
                let stride = frame.plane_stride()[0] as usize;
                if let Ok(y) = frame.plane_data_mut(0) {
                    time_code::write(y, stride, time_code::ORIGIN_720P, time_code::now_ms());
                }
            }
        });
        let (encoded_in, out) = (encoded.clone(), encoder_ms.clone());
        on_buffers(&pipeline, "encoded", move |pad, buffer| {
            let made_at =
                running_time(pad, buffer, false).and_then(|rt| made.lock().unwrap().remove(&rt));
            if let (Some(at), Some(dts)) = (made_at, running_time(pad, buffer, true)) {
                out.lock().unwrap().push(at.elapsed().as_secs_f64() * 1e3);
                encoded_in.lock().unwrap().insert(dts, at);
            }
        });
        let out = sent_ms.clone();
        on_buffers(&pipeline, "sent", move |pad, buffer| {
            if let Some(at) =
                running_time(pad, buffer, true).and_then(|rt| encoded.lock().unwrap().remove(&rt))
            {
                out.lock().unwrap().push(at.elapsed().as_secs_f64() * 1e3);
            }
        });
        pipeline
            .set_state(gst::State::Playing)
            .expect("publisher playing");
        Publisher {
            pipeline,
            encoder_ms,
            sent_ms,
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
