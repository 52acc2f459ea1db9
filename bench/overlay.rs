//! Overlay cost per 720p frame, side by side in one run, for a scene of a product card, two
//! counters and a countdown:
//! - none: the frames pass untouched;
//! - fieldcast: the studio's compositor blending in place (crates/engine/src/overlay/blend.rs);
//! - overlaycomposition: the same layers, rendered by the same renderer, handed to
//!   GStreamer's `overlaycomposition` as one cached composition (its generic blender).
//!
//! Twice: blend only (`videotestsrc ▶ … ▶ fakesink`) and with the studio's x264enc. CPU time
//! is the process's (getrusage). Each variant runs several times, alternating; medians.
//! Run: `cargo bench --bench overlay` (or `make bench`); `-- --quick` for fewer frames.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldcast::commerce::live::SessionLive;
use fieldcast_core::commerce::records::{OfferRow, ProductRow};
use fieldcast_core::overlay::scene::{LayerKind, Metric, Scene, template};
use fieldcast_engine::overlay::compositor::{Compositor, OverlayCounters};
use fieldcast_engine::overlay::feed::{LiveData, Pinned};
use fieldcast_engine::studio::StudioStats;
use gstreamer as gst;
use gstreamer::prelude::*;

mod harness;

use harness::self_cpu;

fn scene_live() -> Arc<SessionLive> {
    let now = fieldcast_core::time::now_ms();
    let product = ProductRow {
        id: "prod_bench".into(),
        name: "Rose jam 玫瑰花酱".into(),
        translations: "{}".into(),
        unit_amount: 3500,
        currency: "CNY".into(),
        unit: "jar".into(),
        origin: Some("Kashgar".into()),
        harvest_date: None,
        description: None,
        created_at: 0,
        image_hash: None,
    };
    let offer = OfferRow {
        id: "offer_bench".into(),
        session_id: "s".into(),
        product_id: "prod_bench".into(),
        unit_amount: 2900,
        allocated: 100,
        available: 60,
        sold: 40,
        per_buyer_limit: None,
        starts_at: now - 1000,
        ends_at: now + 3_600_000,
        ended_early: false,
        created_at: 0,
    };
    let mut counter_a = template(LayerKind::Counter, "counter-a".into());
    counter_a.content.metrics = vec![Metric::Viewers, Metric::Likes];
    let mut counter_b = template(LayerKind::Counter, "counter-b".into());
    counter_b.content.metrics = vec![Metric::Sold];
    counter_b.offset = [0.025, 0.14];
    counter_b.size = [0.12, 0.075];
    let layers = if std::env::var("NO_COUNTDOWN").is_ok() {
        vec![
            template(LayerKind::ProductCard, "card".into()),
            counter_a,
            counter_b,
        ]
    } else {
        vec![
            template(LayerKind::ProductCard, "card".into()),
            counter_a,
            counter_b,
            template(LayerKind::Countdown, "countdown".into()),
        ]
    };
    SessionLive::standalone(
        "bench",
        1234,
        LiveData {
            pinned: Some(Pinned {
                product,
                image: None,
            }),
            offers: vec![offer],
            toasts: VecDeque::new(),
            scene: Scene {
                layers,
                hidden: false,
            },
            image_revision: 0,
        },
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    None,
    Fieldcast,
    OverlayComposition,
}

/// The scene's layers as one GStreamer composition (rendered by our renderer).
fn gst_composition(live: &SessionLive) -> gstreamer_video::VideoOverlayComposition {
    use fieldcast_engine::overlay::{layout, render};
    let data = live.data();
    let view = render::View {
        now_ms: fieldcast_core::time::now_ms(),
        viewers: 0,
        likes: live.likes(),
        pinned: data.pinned.as_ref(),
        offers: &data.offers,
        toasts: &data.toasts,
        watch_url: "",
        images_dir: std::path::Path::new("/nonexistent"),
        image_revision: 0,
    };
    let mut rects = Vec::new();
    for layer in data.scene.ordered() {
        let place = layout::place(layer, 1280, 720);
        let Some(pixmap) = render::render(layer, &view, place.width, place.height) else {
            continue;
        };
        let mut bgra = pixmap.data().to_vec();
        for px in bgra.chunks_exact_mut(4) {
            px.swap(0, 2);
        }
        let mut buffer = gst::Buffer::from_mut_slice(bgra);
        gstreamer_video::VideoMeta::add(
            buffer.get_mut().unwrap(),
            gstreamer_video::VideoFrameFlags::empty(),
            gstreamer_video::VideoFormat::Bgra,
            pixmap.width(),
            pixmap.height(),
        )
        .unwrap();
        rects.push(gstreamer_video::VideoOverlayRectangle::new_raw(
            &buffer,
            place.x,
            place.y,
            pixmap.width(),
            pixmap.height(),
            gstreamer_video::VideoOverlayFormatFlags::PREMULTIPLIED_ALPHA,
        ));
    }
    gstreamer_video::VideoOverlayComposition::new(rects.iter()).unwrap()
}

/// Runs `frames` 720p frames through the pipeline; returns CPU ms per frame.
fn run(frames: u32, encode: bool, variant: Variant) -> f64 {
    let tail = if encode {
        "x264enc tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max=60 bframes=0 sliced-threads=true ! fakesink"
    } else {
        "fakesink"
    };
    let text = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
         ! identity name=overlay ! overlaycomposition name=gstoverlay ! {tail}"
    );
    let pipeline = gst::parse::launch(&text)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let composition =
        (variant == Variant::OverlayComposition).then(|| gst_composition(&scene_live()));
    pipeline
        .by_name("gstoverlay")
        .unwrap()
        .connect("draw", false, move |_| Some(composition.clone().to_value()));
    if variant == Variant::Fieldcast {
        let compositor = Compositor::new(
            scene_live(),
            Arc::new(StudioStats::default()),
            1280,
            720,
            "http://127.0.0.1:8080/watch/bench".into(),
            std::env::temp_dir(),
            Arc::new(OverlayCounters::default()),
        );
        let info =
            gstreamer_video::VideoInfo::builder(gstreamer_video::VideoFormat::I420, 1280, 720)
                .build()
                .unwrap();
        let compositor = Mutex::new(compositor);
        let timings = APPLY_TIMINGS.get_or_init(|| Mutex::new(Vec::new()));
        pipeline
            .by_name("overlay")
            .unwrap()
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() {
                    let started = std::time::Instant::now();
                    compositor.lock().unwrap().apply(buffer, &info);
                    timings.lock().unwrap().push(started.elapsed());
                }
                gst::PadProbeReturn::Ok
            });
    }
    let bus = pipeline.bus().unwrap();
    let before = self_cpu();
    pipeline.set_state(gst::State::Playing).unwrap();
    let _ = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(300),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    (self_cpu() - before) * 1000.0 / frames as f64
}

/// Wall time of every `Compositor::apply` call (compose + copy-on-write + blend).
static APPLY_TIMINGS: std::sync::OnceLock<Mutex<Vec<Duration>>> = std::sync::OnceLock::new();

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    gst::init().unwrap();
    // Load fonts before measuring.
    drop(fieldcast_engine::overlay::text::engine());
    let (frames, rounds) = if quick { (150, 3) } else { (600, 5) };
    println!(
        "overlay benchmark: 1280x720 frames, {frames} per run, median of {rounds} alternating runs"
    );
    println!();
    println!(
        "| chain | no overlays | fieldcast blend | overlaycomposition | fieldcast cost | overlaycomposition cost | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for encode in [false, true] {
        let (mut none, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            none.push(run(frames, encode, Variant::None));
            ours.push(run(frames, encode, Variant::Fieldcast));
            theirs.push(run(frames, encode, Variant::OverlayComposition));
            std::thread::sleep(Duration::from_millis(100));
        }
        let (a, b, c) = (median(none), median(ours), median(theirs));
        let chain = if encode {
            "source ▶ overlays ▶ x264enc"
        } else {
            "source ▶ overlays (blend only)"
        };
        println!(
            "| {chain} | {a:.2} ms | {b:.2} ms | {c:.2} ms | {:.2} ms/frame | {:.2} ms/frame | {:.2}× |",
            b - a,
            c - a,
            (b - a).max(0.001) / (c - a).max(0.001)
        );
    }
    println!();
    println!("(CPU milliseconds per 1280x720 frame; cost = the column minus \"no overlays\")");
    let mut timings = APPLY_TIMINGS
        .get()
        .map(|t| t.lock().unwrap().clone())
        .unwrap_or_default();
    timings.sort();
    if !timings.is_empty() {
        let mean = timings.iter().sum::<Duration>() / timings.len() as u32;
        let p99 = timings[(timings.len() - 1) * 99 / 100];
        println!();
        println!(
            "fieldcast Compositor::apply per frame (compose + copy-on-write + blend), {} frames: mean {:.3} ms, p99 {:.3} ms",
            timings.len(),
            mean.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
}
