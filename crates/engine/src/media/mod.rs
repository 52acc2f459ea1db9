//! GStreamer: pipelines built from the descriptions in `pipelines/`, the studio's output
//! (encode once, packetize once), publisher decode, the slate and the test pattern.
//!
//! GStreamer callbacks never block on async code: they push to appsrcs (bounded, leaky) or
//! call a non-blocking packet sink.

pub mod arrival;
pub mod codecs;
pub mod decode;
pub mod frame_clock;
pub mod output;
pub mod packet;
pub mod test_pattern;
pub mod time_code;
pub mod ts_decode;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

pub use packet::{EncodedPacket, LIGHT_BITRATE_KBPS, LIGHT_SHORT_SIDE, PacketKind, Rendition};

/// Output rendition of a studio (DESIGN.md: 1280×720 @ 30 fps, or 720×1280 held upright).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputFormat {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// Frames between forced keyframes: at most 2 s. One second: HLS segments begin at
    /// keyframes, and a 1 s segment takes seconds off a plain HLS player's delay, for 1–2 %
    /// more bitrate at the same SSIM (BENCHMARKS.md, "HLS").
    pub keyint: u32,
}

impl Default for OutputFormat {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2500,
            keyint: 30,
        }
    }
}

impl OutputFormat {
    /// The same rendition held upright (`portrait`) or on its side: the long side stays.
    pub fn oriented(self, portrait: bool) -> Self {
        let (long, short) = (self.width.max(self.height), self.width.min(self.height));
        let (width, height) = if portrait {
            (short, long)
        } else {
            (long, short)
        };
        Self {
            width,
            height,
            ..self
        }
    }

    /// The light rendition of this output: the same aspect with a short side of
    /// [`LIGHT_SHORT_SIDE`] (640×360 from 1280×720, 360×640 upright), at
    /// [`LIGHT_BITRATE_KBPS`]. Sizes stay even (I420).
    pub fn light(self) -> Self {
        let (long, short) = (
            self.width.max(self.height),
            self.width.min(self.height).max(1),
        );
        let short_light = LIGHT_SHORT_SIDE.min(short);
        let long_light = ((long as u64 * short_light as u64 / short as u64) as u32 + 1) & !1;
        let (width, height) = if self.height > self.width {
            (short_light, long_light)
        } else {
            (long_light, short_light)
        };
        Self {
            width,
            height,
            bitrate_kbps: LIGHT_BITRATE_KBPS.min(self.bitrate_kbps),
            ..self
        }
    }

    /// Scaled caps of the light rendition (any raw format: the scaler keeps I420).
    pub fn light_caps(&self) -> gst::Caps {
        let light = self.light();
        gst::Caps::builder("video/x-raw")
            .field("width", light.width as i32)
            .field("height", light.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build()
    }

    /// Raw I420 caps at this size, square pixels.
    pub fn raw_video_caps(&self) -> gst::Caps {
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", self.width as i32)
            .field("height", self.height as i32)
            .field("framerate", gst::Fraction::new(self.fps as i32, 1))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build()
    }
}

/// A session's output orientation. Live commerce is mostly 9:16: `auto` follows the aspect of
/// the first publisher's picture (and stays for the show, so a host reconnecting from another
/// device does not flip every viewer's layout).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// 1280×720.
    Landscape,
    /// 720×1280.
    Portrait,
    #[default]
    Auto,
}

impl Orientation {
    pub fn as_str(self) -> &'static str {
        match self {
            Orientation::Landscape => "landscape",
            Orientation::Portrait => "portrait",
            Orientation::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "landscape" => Some(Orientation::Landscape),
            "portrait" => Some(Orientation::Portrait),
            "auto" => Some(Orientation::Auto),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer could not start: {0}")]
    Init(String),
    #[error("GStreamer element `{element}` is missing: install the Debian package {package}")]
    MissingElement {
        element: String,
        package: &'static str,
    },
    #[error("pipeline {name}: {reason}")]
    Build { name: &'static str, reason: String },
    #[error("pipeline {name} did not start: {reason}")]
    State { name: &'static str, reason: String },
}

/// A pipeline description from `pipelines/`, with its name for messages.
pub struct Description {
    pub name: &'static str,
    pub text: &'static str,
}

pub const PUBLISHER_DECODE: Description = Description {
    name: "publisher-decode",
    text: include_str!("../../pipelines/publisher-decode.pipeline"),
};
pub const STUDIO_OUTPUT: Description = Description {
    name: "studio-output",
    text: include_str!("../../pipelines/studio-output.pipeline"),
};
pub const SLATE: Description = Description {
    name: "slate",
    text: include_str!("../../pipelines/slate.pipeline"),
};
pub const TEST_PATTERN: Description = Description {
    name: "test-pattern",
    text: include_str!("../../pipelines/test-pattern.pipeline"),
};

pub const TS_DECODE: Description = Description {
    name: "ts-decode",
    text: include_str!("../../pipelines/ts-decode.pipeline"),
};

pub const RESTREAM: Description = Description {
    name: "restream",
    text: include_str!("../../pipelines/restream.pipeline"),
};

pub const ALL: [&Description; 6] = [
    &PUBLISHER_DECODE,
    &TS_DECODE,
    &RESTREAM,
    &STUDIO_OUTPUT,
    &SLATE,
    &TEST_PATTERN,
];

/// The Debian package that provides a GStreamer element we use.
pub fn debian_package(element: &str) -> &'static str {
    match element {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "avdec_h264" | "avdec_h265" | "avdec_aac" | "avenc_aac" => "gstreamer1.0-libav",
        "h264parse" | "h265parse" | "av1parse" | "av1dec" | "rtmp2sink" | "rtmp2src"
        | "tsdemux" => "gstreamer1.0-plugins-bad",
        // Debian packages the pango plugin with the X ones.
        "textoverlay" | "clockoverlay" | "timeoverlay" => "gstreamer1.0-x",
        "rtph264pay" | "rtpopuspay" | "aacparse" | "rtph264depay" | "rtpopusdepay" | "vp8dec"
        | "flvmux" => "gstreamer1.0-plugins-good",
        _ => "gstreamer1.0-plugins-base",
    }
}

impl Description {
    /// The launch text with `#` comment lines removed and `{placeholders}` filled in.
    pub fn render(&self, vars: &[(&str, String)]) -> String {
        let mut text: String = self
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for (key, value) in vars {
            text = text.replace(&format!("{{{key}}}"), value);
        }
        text
    }

    /// Element factory names used by the description.
    pub fn elements(&self) -> Vec<String> {
        let text = self.render(&[]);
        let mut names = Vec::new();
        for segment in text.split(['!', '\n']) {
            let Some(first) = segment.split_whitespace().next() else {
                continue;
            };
            // Caps filters (`video/x-raw,...`) are not elements, nor `{placeholders}`, nor
            // properties on a line of their own, nor links to a named element (`mux.`).
            if first.contains('/')
                || first.contains('=')
                || first.starts_with('{')
                || first.ends_with('.')
            {
                continue;
            }
            if !names.iter().any(|n| n == first) {
                names.push(first.to_string());
            }
        }
        names
    }

    pub fn launch(&self, vars: &[(&str, String)]) -> Result<gst::Pipeline, MediaError> {
        let text = self.render(vars);
        let element = gst::parse::launch(&text).map_err(|e| MediaError::Build {
            name: self.name,
            reason: e.to_string(),
        })?;
        element
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::Build {
                name: self.name,
                reason: "description is not a pipeline".into(),
            })
    }
}

/// Initializes GStreamer and checks that every element of every pipeline is installed, and
/// the decoders of H.264 and AAC, which every RTMP publisher sends. Other codecs' elements
/// are checked when a publisher sends them.
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))?;
    let defaults = [
        codecs::VideoInput::H264Avc.decode_chain(),
        codecs::AudioInput::AacRaw.decode_chain(),
    ];
    for description in ALL {
        for element in description.elements() {
            if gst::ElementFactory::find(&element).is_none() {
                return Err(MediaError::MissingElement {
                    package: debian_package(&element),
                    element,
                });
            }
        }
    }
    if let Some(element) = defaults.iter().find_map(|c| codecs::missing_element(c)) {
        return Err(MediaError::MissingElement {
            package: debian_package(&element),
            element,
        });
    }
    Ok(())
}

pub(crate) fn app_src(pipeline: &gst::Pipeline, name: &str) -> Result<gst_app::AppSrc, MediaError> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| MediaError::Build {
            name: "pipeline",
            reason: format!("no appsrc named {name}"),
        })
}

pub(crate) fn app_sink(
    pipeline: &gst::Pipeline,
    name: &str,
) -> Result<gst_app::AppSink, MediaError> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| MediaError::Build {
            name: "pipeline",
            reason: format!("no appsink named {name}"),
        })
}

/// Logs bus errors and warnings where they happen, keeping the element path and debug text,
/// and sets `failed` on an error so the owner can notice.
pub(crate) fn watch_bus(
    pipeline: &gst::Pipeline,
    label: String,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Error(err) => {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(
                    pipeline = %label,
                    element = %msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                    debug = ?err.debug(),
                    "pipeline error: {}",
                    err.error()
                );
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!(
                    pipeline = %label,
                    element = %msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                    "pipeline warning: {}",
                    w.error()
                );
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}

pub(crate) fn play(pipeline: &gst::Pipeline, name: &'static str) -> Result<(), MediaError> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| MediaError::State {
            name,
            reason: e.to_string(),
        })?;
    Ok(())
}

pub(crate) fn format_vars(format: &OutputFormat) -> Vec<(&'static str, String)> {
    let rtp_offset = rand::random::<u32>() >> 1;
    vec![
        ("width", format.width.to_string()),
        ("height", format.height.to_string()),
        ("bitrate_kbps", format.bitrate_kbps.to_string()),
        ("keyint", format.keyint.to_string()),
        (
            "light_bitrate_kbps",
            format.light().bitrate_kbps.to_string(),
        ),
        // Both payloaders stamp RTP time from the frames' running time plus this offset
        // (the light one a tick later): a viewer moved from one encode to the other sees its
        // RTP timestamps go on, never back.
        ("rtp_offset", rtp_offset.to_string()),
        ("light_rtp_offset", (rtp_offset + 1).to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_list_their_elements() {
        let elements = STUDIO_OUTPUT.elements();
        for e in [
            "appsrc",
            "identity",
            "x264enc",
            "rtph264pay",
            "opusenc",
            "appsink",
        ] {
            assert!(
                elements.iter().any(|x| x == e),
                "{e} missing from {elements:?}"
            );
        }
        assert!(!elements.iter().any(|x| x.starts_with("video/")));
        assert_eq!(debian_package("x264enc"), "gstreamer1.0-plugins-ugly");
        // Elements on lines of their own, after a link to a named one (`mux.`), count too.
        assert_eq!(
            RESTREAM.elements(),
            [
                "appsrc",
                "tsdemux",
                "h264parse",
                "queue",
                "aacparse",
                "flvmux",
                "rtmp2sink"
            ]
        );
    }
}
