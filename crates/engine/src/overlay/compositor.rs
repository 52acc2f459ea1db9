//! Per frame: which layers to blend, where and how opaque, and the blending itself. Called
//! on the output pipeline's streaming thread just before the encoder, so a change of the
//! live state is on the very next encoded frame.
//!
//! Each layer is rendered once (tiny-skia, premultiplied) and converted once into blendable
//! Y/U/V/alpha planes, cached under its key (what it shows); it is redrawn only when the key
//! changes. Fades and slides change only the opacity and position, on the frame clock.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_video::{self as gst_video, VideoFrameExt};

use super::blend::{self, I420, YuvOverlay};
use super::feed::LiveFeed;
use super::layout::{self, Rect};
use super::onscreen::{Screen, ScreenChange, ScreenLog};
use super::render::{self, View};
use super::scene::{Anchor, LayerKind, Transition};
use crate::histogram::LatencyHistogram;
use crate::studio::StudioStats;
use fieldcast_core::time::now_ms;

/// Upper bounds (ms) of the change-to-frame histogram buckets; the last is +Inf.
pub const UPDATE_BUCKETS_MS: [f64; 9] = [5.0, 10.0, 20.0, 33.0, 50.0, 66.0, 100.0, 200.0, 500.0];

/// One layer on one frame.
#[derive(Debug, Clone)]
pub struct Placed {
    pub overlay: Arc<YuvOverlay>,
    pub x: i32,
    pub y: i32,
    pub opacity: f32,
}

/// Counters of all compositors, for `/metrics` and the benchmarks.
#[derive(Debug)]
pub struct OverlayCounters {
    pub frames: AtomicU64,
    pub redraws: AtomicU64,
    pub redraw_us: AtomicU64,
    /// From a change of the live state to the first frame composited with it.
    pub update_to_frame: LatencyHistogram,
}

impl Default for OverlayCounters {
    fn default() -> Self {
        Self {
            frames: AtomicU64::new(0),
            redraws: AtomicU64::new(0),
            redraw_us: AtomicU64::new(0),
            update_to_frame: LatencyHistogram::new(&UPDATE_BUCKETS_MS),
        }
    }
}

struct Cached {
    key: String,
    place: Rect,
    overlay: Arc<YuvOverlay>,
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
    live: Arc<dyn LiveFeed>,
    stats: Arc<StudioStats>,
    width: u32,
    height: u32,
    watch_url: String,
    images_dir: PathBuf,
    cache: HashMap<String, Cached>,
    /// Layers that had nothing to draw, by the key they had then.
    unrenderable: HashMap<String, String>,
    /// The last frame's layers and the live-state version they were built from.
    last: Option<(u64, Arc<[Placed]>)>,
    /// The last composition depends on the clock (countdown, toast, a transition).
    time_dependent: bool,
    pub counters: Arc<OverlayCounters>,
    /// What the layers showed at the last build, and whether that is not logged yet.
    screen: Screen,
    screen_changed: bool,
    screen_log: Option<Arc<dyn ScreenLog>>,
}

impl Compositor {
    pub fn new(
        live: Arc<dyn LiveFeed>,
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
            unrenderable: HashMap::new(),
            last: None,
            time_dependent: false,
            counters,
            screen: Screen::default(),
            screen_changed: false,
            screen_log: None,
        }
    }

    /// Hands every change of what the layers show to `log`, with the frame's times.
    pub fn with_screen_log(mut self, log: Arc<dyn ScreenLog>) -> Self {
        self.screen_log = Some(log);
        self
    }

    /// Blends the current layers onto one raw frame (I420 at the studio's size). A frame
    /// with nothing to draw is left untouched (and uncopied).
    pub fn apply(&mut self, buffer: &mut gst::Buffer, info: &gst_video::VideoInfo) {
        if (info.width(), info.height()) != (self.width, self.height) {
            // The output turned: every layer is placed (and drawn) anew.
            self.width = info.width();
            self.height = info.height();
            self.last = None;
        }
        let layers = self.compose();
        if self.screen_changed {
            self.screen_changed = false;
            if let Some(log) = &self.screen_log {
                log.shown(ScreenChange {
                    screen: self.screen.clone(),
                    at_ms: now_ms(),
                    pts_ns: buffer.pts().map(|t| t.nseconds()),
                });
            }
        }
        if layers.is_empty() {
            return;
        }
        let Ok(mut frame) =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), info)
        else {
            return;
        };
        let (y_stride, u_stride, v_stride) = (
            frame.plane_stride()[0] as usize,
            frame.plane_stride()[1] as usize,
            frame.plane_stride()[2] as usize,
        );
        let (width, height) = (frame.width(), frame.height());
        let [y, u, v, _] = frame.planes_data_mut();
        let mut planes = I420 {
            width,
            height,
            y,
            y_stride,
            u,
            u_stride,
            v,
            v_stride,
        };
        for layer in layers.iter() {
            blend::blend(&mut planes, &layer.overlay, layer.x, layer.y, layer.opacity);
        }
    }

    /// The layers for the frame being encoded now.
    pub fn compose(&mut self) -> Arc<[Placed]> {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        let version = self.live.version();
        if let Some((v, layers)) = &self.last
            && *v == version
            && !self.time_dependent
        {
            return layers.clone();
        }
        let now = Instant::now();
        let composition = self.build(now);
        if self.last.as_ref().is_none_or(|(v, _)| *v != version)
            && let Some(changed_at) = self.live.take_changed_at()
        {
            self.counters
                .update_to_frame
                .observe(now.saturating_duration_since(changed_at));
        }
        self.last = Some((version, composition.clone()));
        composition
    }

    fn build(&mut self, now: Instant) -> Arc<[Placed]> {
        let data = self.live.data();
        if data.scene.hidden {
            self.cache.clear();
            self.time_dependent = false;
            self.note_screen(Screen {
                hidden: true,
                ..Screen::default()
            });
            return Arc::from([]);
        }
        let view = View {
            now_ms: now_ms(),
            viewers: self.stats.viewers.load(Ordering::Relaxed),
            likes: self.live.likes(),
            pinned: data.pinned.as_ref(),
            offers: &data.offers,
            toasts: &data.toasts,
            watch_url: &self.watch_url,
            images_dir: &self.images_dir,
            image_revision: data.image_revision,
        };
        let mut time_dependent = false;
        let mut present: Vec<(i32, String)> = Vec::new();
        let mut screen = Screen::default();
        for layer in data.scene.ordered() {
            if !layer.visible {
                continue;
            }
            time_dependent |= matches!(layer.kind, LayerKind::Countdown | LayerKind::Toast);
            let Some(key) = render::key(layer, &view) else {
                continue;
            };
            let place = layout::place(layer, self.width, self.height);
            let cached = self.cache.get(&layer.id);
            let fresh = cached
                .is_none_or(|c| c.key != key || c.place != place || c.leaving_since.is_some());
            if fresh {
                let started = Instant::now();
                if self.unrenderable.get(&layer.id) == Some(&key) {
                    continue;
                }
                let Some(pixmap) = render::render(layer, &view, place.width, place.height) else {
                    // Nothing to draw (an image layer without its picture yet): not tried
                    // again until what it shows changes.
                    self.unrenderable.insert(layer.id.clone(), key);
                    continue;
                };
                self.unrenderable.remove(&layer.id);
                let overlay = Arc::new(YuvOverlay::from_premultiplied_rgba(
                    pixmap.data(),
                    pixmap.width(),
                    pixmap.height(),
                ));
                self.counters.redraws.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .redraw_us
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                // A new toast slides in anew; other layers keep their entrance time.
                let shown_at = match cached {
                    Some(c) if c.leaving_since.is_none() && layer.kind != LayerKind::Toast => {
                        c.shown_at
                    }
                    _ => now,
                };
                self.cache.insert(
                    layer.id.clone(),
                    Cached {
                        key,
                        place,
                        overlay,
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
            screen.add(layer, &view);
        }
        drop(data);
        self.note_screen(screen);

        // Layers with nothing left to show leave with their transition, then go.
        for (id, cached) in self.cache.iter_mut() {
            if !present.iter().any(|(_, p)| p == id) {
                let since = *cached.leaving_since.get_or_insert(now);
                if cached.transition_out != Transition::None
                    && now.duration_since(since) < cached.transition
                {
                    present.push((i32::MIN, id.clone()));
                }
            }
        }
        self.cache
            .retain(|id, _| present.iter().any(|(_, p)| p == id));

        let mut placed = Vec::with_capacity(present.len());
        for (_, id) in &present {
            let Some(cached) = self.cache.get(id) else {
                continue;
            };
            let (layer, animating) = animate(cached, now, self.width);
            time_dependent |= animating;
            placed.push(layer);
        }
        self.time_dependent = time_dependent;
        Arc::from(placed)
    }
}

impl Compositor {
    fn note_screen(&mut self, screen: Screen) {
        if screen != self.screen {
            self.screen = screen;
            self.screen_changed = true;
        }
    }
}

/// Where and how opaque the layer is now, and whether it is mid-transition.
fn animate(c: &Cached, now: Instant, frame_w: u32) -> (Placed, bool) {
    let length = c.transition.as_secs_f32().max(0.001);
    let (progress, transition) = match c.leaving_since {
        Some(since) => (
            1.0 - now.duration_since(since).as_secs_f32() / length,
            c.transition_out,
        ),
        None => (
            now.duration_since(c.shown_at).as_secs_f32() / length,
            c.transition_in,
        ),
    };
    let mut progress = progress.clamp(0.0, 1.0);
    // A toast leaves by itself at the end of its time.
    if c.kind == LayerKind::Toast && c.leaving_since.is_none() {
        let left =
            render::TOAST_SHOW_MS as f32 / 1000.0 - now.duration_since(c.shown_at).as_secs_f32();
        progress = progress.min((left / length).clamp(0.0, 1.0));
    }
    let mut placed = Placed {
        overlay: c.overlay.clone(),
        x: c.place.x,
        y: c.place.y,
        opacity: 1.0,
    };
    if transition == Transition::None || progress >= 1.0 {
        return (placed, c.kind == LayerKind::Toast);
    }
    let eased = 1.0 - (1.0 - progress) * (1.0 - progress);
    match transition {
        Transition::Fade => placed.opacity = eased,
        Transition::Slide => {
            // Slide in from the nearer side edge.
            let from_right = matches!(
                c.anchor,
                Anchor::TopRight | Anchor::Right | Anchor::BottomRight
            );
            let travel =
                (c.place.width as f32 + c.place.x.min(frame_w as i32) as f32) * (1.0 - eased);
            placed.x = if from_right {
                c.place.x + travel as i32
            } else {
                c.place.x - travel as i32
            };
            placed.opacity = eased.max(0.05);
        }
        Transition::None => {}
    }
    (placed, true)
}
