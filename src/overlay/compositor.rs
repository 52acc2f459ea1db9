//! Per frame: which rectangles `overlaycomposition` blends. Called on the output pipeline's
//! streaming thread just before the encoder, so a change of the live state is on the very
//! next encoded frame.
//!
//! Each layer is rendered once into a premultiplied BGRA rectangle and cached under its key
//! (what it shows); it is redrawn only when the key changes. Fades and slides change only the
//! rectangle's global alpha and position, on the frame clock, without redrawing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_video::{self as gst_video, VideoOverlayComposition, VideoOverlayRectangle};

use super::layout::{self, Rect};
use super::render::{self, View};
use super::scene::{Anchor, LayerKind, Transition};
use crate::commerce::ledger::now_ms;
use crate::commerce::live::SessionLive;
use crate::studio::StudioStats;

/// Upper bounds (ms) of the change-to-frame histogram buckets; the last is +Inf.
pub const UPDATE_BUCKETS_MS: [u64; 9] = [5, 10, 20, 33, 50, 66, 100, 200, 500];

/// Counters of all compositors, for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct OverlayCounters {
    pub frames: AtomicU64,
    pub redraws: AtomicU64,
    pub redraw_us: AtomicU64,
    /// From a change of the live state to the first frame composited with it.
    pub update_buckets: [AtomicU64; UPDATE_BUCKETS_MS.len() + 1],
    pub update_count: AtomicU64,
    pub update_us_sum: AtomicU64,
}

impl OverlayCounters {
    fn record_update(&self, elapsed: Duration) {
        let ms = elapsed.as_millis() as u64;
        let bucket = UPDATE_BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(UPDATE_BUCKETS_MS.len());
        self.update_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.update_count.fetch_add(1, Ordering::Relaxed);
        self.update_us_sum.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

struct Cached {
    key: String,
    place: Rect,
    rect: VideoOverlayRectangle,
    shown_at: Instant,
    /// Set while the layer fades or slides out after it has nothing left to show.
    leaving_since: Option<Instant>,
    kind: LayerKind,
    anchor: Anchor,
    transition_in: Transition,
    transition_out: Transition,
    transition: Duration,
}

pub struct Compositor {
    live: Arc<SessionLive>,
    stats: Arc<StudioStats>,
    width: u32,
    height: u32,
    watch_url: String,
    images_dir: PathBuf,
    cache: HashMap<String, Cached>,
    /// The last composition and the live-state version it was built from.
    last: Option<(u64, Option<VideoOverlayComposition>)>,
    /// The last composition depends on the clock (countdown, toast, a transition).
    time_dependent: bool,
    pub counters: Arc<OverlayCounters>,
}

impl Compositor {
    pub fn new(
        live: Arc<SessionLive>,
        stats: Arc<StudioStats>,
        width: u32,
        height: u32,
        watch_url: String,
        images_dir: PathBuf,
        counters: Arc<OverlayCounters>,
    ) -> Self {
        Self {
            live,
            stats,
            width,
            height,
            watch_url,
            images_dir,
            cache: HashMap::new(),
            last: None,
            time_dependent: false,
            counters,
        }
    }

    /// The composition for the frame being encoded now.
    pub fn compose(&mut self) -> Option<VideoOverlayComposition> {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        let version = self.live.version();
        if let Some((v, composition)) = &self.last
            && *v == version
            && !self.time_dependent
        {
            return composition.clone();
        }
        let now = Instant::now();
        let composition = self.build(now);
        if self.last.as_ref().is_none_or(|(v, _)| *v != version)
            && let Some(changed_at) = self.live.take_changed_at()
        {
            self.counters.record_update(now.saturating_duration_since(changed_at));
        }
        self.last = Some((version, composition.clone()));
        composition
    }

    fn build(&mut self, now: Instant) -> Option<VideoOverlayComposition> {
        let data = self.live.data();
        if data.scene.hidden {
            self.cache.clear();
            self.time_dependent = false;
            return None;
        }
        let view = View {
            now_ms: now_ms(),
            viewers: self.stats.viewers.load(Ordering::Relaxed),
            likes: data.likes,
            pinned: data.pinned.as_ref(),
            offers: &data.offers,
            toasts: &data.toasts,
            watch_url: &self.watch_url,
            images_dir: &self.images_dir,
        };
        let mut time_dependent = false;
        let mut present: Vec<(i32, String)> = Vec::new();
        for layer in data.scene.ordered() {
            if !layer.visible {
                continue;
            }
            time_dependent |= matches!(layer.kind, LayerKind::Countdown | LayerKind::Toast);
            let Some(key) = render::key(layer, &view) else { continue };
            let place = layout::place(layer, self.width, self.height);
            let cached = self.cache.get(&layer.id);
            let fresh = cached.is_none_or(|c| c.key != key || c.place != place || c.leaving_since.is_some());
            if fresh {
                let started = Instant::now();
                let Some(pixmap) = render::render(layer, &view, place.width, place.height) else { continue };
                let rect = to_rectangle(&pixmap, place);
                self.counters.redraws.fetch_add(1, Ordering::Relaxed);
                self.counters.redraw_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                // A new toast slides in anew; other layers keep their entrance time.
                let shown_at = match cached {
                    Some(c) if c.leaving_since.is_none() && layer.kind != LayerKind::Toast => c.shown_at,
                    _ => now,
                };
                self.cache.insert(
                    layer.id.clone(),
                    Cached {
                        key,
                        place,
                        rect,
                        shown_at,
                        leaving_since: None,
                        kind: layer.kind,
                        anchor: layer.anchor,
                        transition_in: layer.transition_in,
                        transition_out: layer.transition_out,
                        transition: Duration::from_millis(layer.transition_ms as u64),
                    },
                );
            }
            present.push((layer.z, layer.id.clone()));
        }
        drop(data);

        // Layers with nothing left to show leave with their transition, then go.
        for (id, cached) in self.cache.iter_mut() {
            if !present.iter().any(|(_, p)| p == id) {
                let since = *cached.leaving_since.get_or_insert(now);
                if cached.transition_out != Transition::None && now.duration_since(since) < cached.transition {
                    present.push((i32::MIN, id.clone()));
                }
            }
        }
        self.cache.retain(|id, _| present.iter().any(|(_, p)| p == id));

        let mut rects = Vec::with_capacity(present.len());
        for (_, id) in &present {
            let Some(cached) = self.cache.get(id) else { continue };
            let (rect, animating) = animate(cached, now, self.width);
            time_dependent |= animating;
            rects.push(rect);
        }
        self.time_dependent = time_dependent;
        if rects.is_empty() {
            return None;
        }
        VideoOverlayComposition::new(rects.iter()).ok()
    }
}

/// The rectangle as it should look now, and whether it is mid-transition.
fn animate(c: &Cached, now: Instant, frame_w: u32) -> (VideoOverlayRectangle, bool) {
    let length = c.transition.as_secs_f32().max(0.001);
    let (progress, transition) = match c.leaving_since {
        Some(since) => (1.0 - now.duration_since(since).as_secs_f32() / length, c.transition_out),
        None => (now.duration_since(c.shown_at).as_secs_f32() / length, c.transition_in),
    };
    let mut progress = progress.clamp(0.0, 1.0);
    // A toast leaves by itself at the end of its time.
    if c.kind == LayerKind::Toast && c.leaving_since.is_none() {
        let left = render::TOAST_SHOW_MS as f32 / 1000.0 - now.duration_since(c.shown_at).as_secs_f32();
        progress = progress.min((left / length).clamp(0.0, 1.0));
    }
    if transition == Transition::None || progress >= 1.0 {
        return (c.rect.clone(), c.kind == LayerKind::Toast);
    }
    let eased = 1.0 - (1.0 - progress) * (1.0 - progress);
    let mut rect = c.rect.copy();
    if let Some(r) = rect.get_mut() {
        match transition {
            Transition::Fade => r.set_global_alpha(eased),
            Transition::Slide => {
                // Slide in from the nearer side edge.
                let from_right = matches!(c.anchor, Anchor::TopRight | Anchor::Right | Anchor::BottomRight);
                let travel = (c.place.width as f32 + c.place.x.min(frame_w as i32) as f32) * (1.0 - eased);
                let x = if from_right { c.place.x + travel as i32 } else { c.place.x - travel as i32 };
                r.set_render_rectangle(x, c.place.y, c.place.width, c.place.height);
                r.set_global_alpha(eased.max(0.05));
            }
            Transition::None => {}
        }
    }
    (rect, true)
}

/// Premultiplied RGBA (tiny-skia) → premultiplied BGRA buffer with VideoMeta → rectangle.
fn to_rectangle(pixmap: &tiny_skia::Pixmap, place: Rect) -> VideoOverlayRectangle {
    let mut bgra = pixmap.data().to_vec();
    for px in bgra.chunks_exact_mut(4) {
        px.swap(0, 2);
    }
    let mut buffer = gst::Buffer::from_mut_slice(bgra);
    {
        let b = buffer.get_mut().expect("a new buffer has one owner");
        // Adding a VideoMeta to a fresh buffer of the right size cannot fail.
        let _ = gst_video::VideoMeta::add(b, gst_video::VideoFrameFlags::empty(), gst_video::VideoFormat::Bgra, pixmap.width(), pixmap.height());
    }
    VideoOverlayRectangle::new_raw(
        &buffer,
        place.x,
        place.y,
        pixmap.width(),
        pixmap.height(),
        gst_video::VideoOverlayFormatFlags::PREMULTIPLIED_ALPHA,
    )
}
