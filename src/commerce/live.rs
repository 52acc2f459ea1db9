//! The live state of each session, in memory: likes, the pinned product, offers with their
//! stock, purchase toasts and the overlay scene. The SSE stream and the overlays on the video
//! both read this one copy; the ledger, the likes endpoint and the operator API update it.
//!
//! Every change bumps a version. One publisher task per session turns the state into a JSON
//! snapshot at most [`MAX_UPDATES_PER_S`] times a second and puts it in a `watch` channel, so
//! a slow reader only ever gets the latest state and costs the others nothing. The overlay
//! compositor compares versions on every frame, so a change is on the next frame.
//!
//! Each published snapshot has a version of its own ([`Published`]): the time it was made in
//! Unix milliseconds, kept strictly increasing, so versions keep rising across a restart and a
//! cache never takes an old answer for a new one. A new version comes at least every
//! [`HEARTBEAT`], changed or not, so a reader waiting for "a version after N" always gets one
//! in bounded time, and every such answer may be cached (`control::live::state`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::ledger::{Buyer, Effect, offer_json};
use crate::config::ToastBuyer;
use crate::store::Store;
use crate::store::commerce::OfferRow;
use fieldcast_core::commerce::rules::broadcast_text;
use fieldcast_core::overlay::scene::Scene;
use fieldcast_core::time::now_ms;
use fieldcast_engine::overlay::feed::{LiveData, LiveFeed, Pinned, Toast};
use fieldcast_engine::studio::Studios;

/// Snapshots a second at most. Every viewer behind a cache reads each one, so this sets the
/// cache tier's work (`bench/audience.rs`); the overlays on the video do not wait for it.
pub const MAX_UPDATES_PER_S: u64 = 4;
/// An ended offer stays in the public state this long (the page shows "ended"), then only
/// the API lists it.
pub const RECENTLY_ENDED_MS: i64 = 10 * 60 * 1000;
/// Purchase toasts kept per session.
pub const TOAST_HISTORY: usize = 5;
/// How often the publisher looks at values nobody announces (the viewer count).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// A new version at least this often, even when nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// A published live state: its version and its JSON text (with `version` in it). Empty
/// (version 0) until the publisher made the first one.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub version: u64,
    pub json: Arc<str>,
}

pub struct SessionLive {
    pub session_id: String,
    data: Mutex<Arc<LiveData>>,
    version: AtomicU64,
    /// Likes counted, written or not: a counter of its own, so that a storm of likes never
    /// copies the rest of the state.
    likes: AtomicI64,
    /// Likes counted but not yet written to SQLite.
    pub pending_likes: AtomicI64,
    /// Orders confirmed since the server started (for `/metrics`).
    pub orders: AtomicU64,
    /// Answers of `GET …/state` since the server started: behind caches, about one per
    /// version and cache (for `/metrics`).
    pub state_answers: AtomicU64,
    /// When the oldest change not yet on a frame was made (the overlays measure from it).
    changed_at: Mutex<Option<Instant>>,
    dirty: watch::Sender<u64>,
    snapshot: watch::Sender<Published>,
    images: PathBuf,
}

impl SessionLive {
    /// The state now: the lock is held for an `Arc` clone only, so the compositor's rendering
    /// never holds up the ledger's updates.
    pub fn data(&self) -> Arc<LiveData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the state and announces it (to the overlays at once, to SSE coalesced).
    pub fn update(&self, change: impl FnOnce(&mut LiveData)) {
        {
            let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
            change(Arc::make_mut(&mut data));
        }
        self.announce();
    }

    /// Tells the overlays and the publisher that something changed.
    fn announce(&self) {
        self.changed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        self.version.fetch_add(1, Ordering::Release);
        self.dirty.send_modify(|v| *v += 1);
    }

    /// Takes the time of the oldest change since the last call.
    pub fn take_changed_at(&self) -> Option<Instant> {
        self.changed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.snapshot.subscribe()
    }

    pub fn add_likes(&self, count: i64) {
        self.pending_likes.fetch_add(count, Ordering::Relaxed);
        self.likes.fetch_add(count, Ordering::Relaxed);
        self.announce();
    }

    /// Every like counted.
    pub fn likes(&self) -> i64 {
        self.likes.load(Ordering::Relaxed)
    }

    /// Re-reads the pinned product and its image.
    pub fn reload_pinned(&self, store: &Store) {
        let pinned = load_pinned(store, &self.session_id, &self.images);
        self.update(|d| d.pinned = pinned);
    }
}

/// The overlays read the same copy the public state is made from.
impl LiveFeed for SessionLive {
    fn version(&self) -> u64 {
        SessionLive::version(self)
    }
    fn data(&self) -> Arc<LiveData> {
        SessionLive::data(self)
    }
    fn likes(&self) -> i64 {
        SessionLive::likes(self)
    }
    fn take_changed_at(&self) -> Option<Instant> {
        SessionLive::take_changed_at(self)
    }
}

impl SessionLive {
    fn new(session_id: &str, likes: i64, data: LiveData, images: PathBuf) -> Arc<Self> {
        let (dirty, _) = watch::channel(0);
        // Empty until a publisher builds the first snapshot.
        let (snapshot, _) = watch::channel(Published::default());
        Arc::new(SessionLive {
            session_id: session_id.to_string(),
            data: Mutex::new(Arc::new(data)),
            version: AtomicU64::new(1),
            likes: AtomicI64::new(likes),
            pending_likes: AtomicI64::new(0),
            orders: AtomicU64::new(0),
            state_answers: AtomicU64::new(0),
            changed_at: Mutex::new(None),
            dirty,
            snapshot,
            images,
        })
    }

    /// A live state outside any server (benchmarks, renderer tests): nothing publishes it.
    pub fn standalone(session_id: &str, likes: i64, data: LiveData) -> Arc<Self> {
        Self::new(session_id, likes, data, PathBuf::new())
    }
}

/// Where a product's image lives (PNG, scaled at upload).
pub fn image_path(images: &Path, product_id: &str) -> PathBuf {
    images.join(format!("{product_id}.png"))
}

fn load_pinned(store: &Store, session_id: &str, images: &Path) -> Option<Pinned> {
    let product = store
        .pinned(session_id)
        .ok()
        .flatten()
        .and_then(|id| store.product(&id).ok().flatten())?;
    let image = tiny_skia::Pixmap::load_png(image_path(images, &product.id))
        .ok()
        .map(Arc::new);
    Some(Pinned { product, image })
}

/// Every session's live state, loaded on first use. It reads the store (scene, pinned
/// product, offers, likes) and the studios (is the host on, how many watch); nothing else.
pub struct LiveHub {
    sessions: Mutex<HashMap<String, Arc<SessionLive>>>,
    /// Publishers are spawned here: changes also arrive from the ledger's own thread.
    runtime: tokio::runtime::Handle,
    store: Arc<Store>,
    studios: Arc<Studios>,
    /// Uploaded images (products' photos).
    images: PathBuf,
    /// What a purchase toast may show of the buyer.
    toast_buyer: ToastBuyer,
}

impl LiveHub {
    pub fn new(
        runtime: tokio::runtime::Handle,
        store: Arc<Store>,
        studios: Arc<Studios>,
        images: PathBuf,
        toast_buyer: ToastBuyer,
    ) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            runtime,
            store,
            studios,
            images,
            toast_buyer,
        }
    }

    /// The session's live state, loaded from the store and given a publisher on first use.
    pub fn session(&self, session_id: &str) -> Arc<SessionLive> {
        if let Some(live) = self.lock().get(session_id) {
            return live.clone();
        }
        // Loading reads SQL and decodes a PNG: not under the map's lock, which every request
        // and the ledger's effects take.
        let images = self.images.clone();
        let scene = self.store.load_scene(session_id).unwrap_or_else(|e| {
            tracing::error!(error = %e, "scene load failed");
            Scene::default()
        });
        let likes = self.store.likes(session_id).unwrap_or(0);
        let data = LiveData {
            pinned: load_pinned(&self.store, session_id, &images),
            offers: self.store.offers_of(session_id).unwrap_or_default(),
            toasts: VecDeque::new(),
            scene,
            image_revision: 0,
        };
        let live = SessionLive::new(session_id, likes, data, images);
        let mut sessions = self.lock();
        // Another caller may have loaded it meanwhile: theirs stands.
        if let Some(first) = sessions.get(session_id) {
            return first.clone();
        }
        // The publisher builds the first snapshot right away.
        let mut dirty_rx = live.dirty.subscribe();
        dirty_rx.mark_changed();
        sessions.insert(session_id.to_string(), live.clone());
        drop(sessions);
        self.runtime
            .spawn(publish(self.studios.clone(), live.clone(), dirty_rx));
        live
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<SessionLive>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A product changed (its price, name or photo): the sessions that pin it show it anew,
    /// on the video and in their state.
    pub fn product_changed(&self, product_id: &str) {
        for live in self.known() {
            let pinned = live.data().pinned.as_ref().map(|p| p.product.id.clone());
            if pinned.as_deref() == Some(product_id) {
                live.reload_pinned(&self.store);
            }
        }
    }

    pub fn known(&self) -> Vec<Arc<SessionLive>> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn forget(&self, session_id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session_id);
    }

    /// Applies what the ledger committed. Called on the ledger's thread, in commit order.
    pub fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                // Only inside a ledger batch; the ledger announces `Offers` instead.
                Effect::Changed { .. } => {}
                Effect::Offers { session_id, offers } => {
                    self.session(&session_id).update(|d| d.offers = offers);
                }
                Effect::Purchase {
                    session_id,
                    buyer,
                    quantity,
                } => {
                    let text = toast(&buyer, quantity, self.toast_buyer);
                    let live = self.session(&session_id);
                    live.orders.fetch_add(1, Ordering::Relaxed);
                    live.update(|d| {
                        d.toasts.push_back(Toast {
                            text,
                            at_ms: now_ms(),
                            at: Instant::now(),
                        });
                        while d.toasts.len() > TOAST_HISTORY {
                            d.toasts.pop_front();
                        }
                    });
                }
            }
        }
    }
}

async fn publish(studios: Arc<Studios>, live: Arc<SessionLive>, mut dirty: watch::Receiver<u64>) {
    let pause = Duration::from_millis(1000 / MAX_UPDATES_PER_S);
    // The last published state without its version, and when it was published.
    let (mut content, mut published_at) = (String::new(), Instant::now());
    loop {
        let woke = tokio::select! {
            changed = dirty.changed() => changed.is_ok(),
            _ = tokio::time::sleep(POLL_EVERY) => true,
        };
        // Stop once the hub forgot the session (deleted) and nothing else holds it.
        if !woke || Arc::strong_count(&live) == 1 {
            return;
        }
        dirty.mark_unchanged();
        let text = snapshot(&studios, &live).to_string();
        if text == content && published_at.elapsed() < HEARTBEAT {
            continue;
        }
        let version = next_version(live.snapshot.borrow().version, now_ms());
        live.snapshot.send_replace(Published {
            version,
            json: Arc::from(with_number(&text, "version", version)),
        });
        (content, published_at) = (text, Instant::now());
        // Coalesce: at most MAX_UPDATES_PER_S snapshots a second.
        tokio::time::sleep(pause).await;
    }
}

/// A JSON object's text with one more number at its end (`version` on a snapshot,
/// `server_time_ms` on an answer), without serializing the object again.
pub fn with_number(object: &str, key: &str, value: impl std::fmt::Display) -> String {
    match object.strip_suffix('}') {
        Some(head) if head.len() > 1 => format!("{head},\"{key}\":{value}}}"),
        Some(head) => format!("{head}\"{key}\":{value}}}"),
        None => object.to_string(),
    }
}

/// The offers a viewer needs now: every one not yet ended, and those ended in the last
/// [`RECENTLY_ENDED_MS`]. The ended history is the API's (`GET …/offers`).
pub fn public_offers(offers: &[OfferRow], now_ms: i64) -> impl Iterator<Item = &OfferRow> {
    offers
        .iter()
        .filter(move |o| o.ends_at > now_ms - RECENTLY_ENDED_MS)
}

/// The version after `last`: the time now in Unix ms, or `last + 1` if the clock has not
/// moved past it (two snapshots in one millisecond, or a clock set back).
fn next_version(last: u64, now_ms: i64) -> u64 {
    (now_ms.max(0) as u64).max(last + 1)
}

/// The whole public state of a session, from the live copy.
pub fn snapshot(studios: &Studios, live: &SessionLive) -> Value {
    let now = now_ms();
    let data = live.data();
    // What the picture is: the host (or the demo's test picture), the slate while the host
    // is away, or nothing: the show ended.
    let picture = match studios.get(&live.session_id) {
        None => "ended",
        Some(h)
            if h.stats.publisher_connected.load(Ordering::Relaxed)
                || h.stats.pattern_is_the_show =>
        {
            "host"
        }
        Some(_) => "slate",
    };
    json!({
        "session_id": live.session_id,
        "picture": picture,
        "viewers": studios.viewers(&live.session_id),
        "likes": live.likes(),
        "pinned": data.pinned.as_ref().map(|p| super::views::product_json(&p.product)),
        "offers": public_offers(&data.offers, now).map(|o| offer_json(o, now)).collect::<Vec<_>>(),
        "toasts": data.toasts.iter().map(|t| json!({"text": t.text, "at": t.at_ms / 1000})).collect::<Vec<_>>(),
        "overlays_hidden": data.scene.hidden,
    })
}

/// Longest city a toast shows; a longer one is cut with an ellipsis.
const TOAST_CITY_CHARS: usize = 24;
/// Longest first name a toast shows; a longer one is shown as its initial.
const TOAST_NAME_CHARS: usize = 12;

/// "Aygul in Kashgar just bought 2": what the operator's `toast_buyer` allows of the buyer,
/// first name only (or an initial) and city only, each cleaned by [`broadcast_text`]: a
/// stranger's text goes on the broadcast.
fn toast(buyer: &Buyer, quantity: i64, shows: ToastBuyer) -> String {
    let name = broadcast_text(&buyer.name, usize::MAX);
    let first = name.split(' ').next().unwrap_or_default();
    let who = match first.chars().count() {
        _ if shows != ToastBuyer::NameAndCity => "Someone".to_string(),
        0 => "Someone".to_string(),
        n if n > TOAST_NAME_CHARS => format!("{}.", first.chars().next().unwrap_or('?')),
        _ => first.to_string(),
    };
    let city = buyer
        .city
        .as_deref()
        .map(|c| broadcast_text(c, TOAST_CITY_CHARS))
        .filter(|c| !c.is_empty() && shows != ToastBuyer::Nothing);
    match city {
        Some(city) => format!("{who} in {city} just bought {quantity}"),
        None => format!("{who} just bought {quantity}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_state_keeps_running_and_recently_ended_offers_only() {
        let now = 1_800_000_000_000;
        let offer = |id: &str, ends_at: i64| OfferRow {
            id: id.into(),
            session_id: "s".into(),
            product_id: "p".into(),
            unit_amount: 100,
            allocated: 5,
            available: 5,
            sold: 0,
            per_buyer_limit: None,
            starts_at: now - 3_600_000,
            ends_at,
            ended_early: false,
            created_at: now - 3_600_000,
        };
        let offers = [
            offer("running", now + 60_000),
            offer("just-ended", now - 60_000),
            offer("ended-at-the-edge", now - RECENTLY_ENDED_MS + 1),
            offer("history", now - RECENTLY_ENDED_MS),
            offer("old-history", now - 3_000_000),
        ];
        let kept: Vec<&str> = public_offers(&offers, now).map(|o| o.id.as_str()).collect();
        assert_eq!(kept, ["running", "just-ended", "ended-at-the-edge"]);
    }

    fn buyer(name: &str, city: Option<&str>) -> Buyer {
        Buyer {
            name: name.into(),
            phone: "+8613800000000".into(),
            address: "1 Road".into(),
            city: city.map(Into::into),
        }
    }

    #[test]
    fn versions_follow_the_clock_and_never_repeat_or_go_back() {
        assert_eq!(next_version(0, 1_700_000_000_000), 1_700_000_000_000);
        assert_eq!(
            next_version(1_700_000_000_000, 1_700_000_000_000),
            1_700_000_000_001
        );
        // A clock set back: still after the last one.
        assert_eq!(
            next_version(1_700_000_000_500, 1_699_999_999_000),
            1_700_000_000_501
        );
        assert_eq!(next_version(5, -1), 6);
    }

    #[test]
    fn a_toast_shows_what_the_operator_allows_and_nothing_unsanitised() {
        let b = buyer("Aygul\u{7} Tursun", Some("Kash\u{0}gar\u{202E}"));
        assert_eq!(
            toast(&b, 2, ToastBuyer::NameAndCity),
            "Aygul in Kash gar just bought 2"
        );
        assert_eq!(
            toast(&b, 2, ToastBuyer::City),
            "Someone in Kash gar just bought 2"
        );
        assert_eq!(toast(&b, 2, ToastBuyer::Nothing), "Someone just bought 2");
        let long = buyer("\u{1B}\u{1B}", Some(&"x".repeat(500)));
        let text = toast(&long, 1, ToastBuyer::NameAndCity);
        assert!(text.starts_with("Someone in xxxxxxxx"), "{text}");
        assert!(text.chars().count() < 60, "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}
