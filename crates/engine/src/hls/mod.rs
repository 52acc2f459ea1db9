//! HLS and Low-Latency HLS from the studio's own encode: the same H.264 the WebRTC viewers
//! get, AAC audio (one small extra encode), MPEG-TS segments and parts kept in memory.
//!
//! HLS runs only while someone asked for it in the last minute ([`IDLE_AFTER`], the setting
//! `hls_idle`): the first request opens the studio's HLS valves (and asks for a keyframe to
//! start at); the studio's owner closes them again once nobody has asked for that long (see
//! `studio/owner.rs`).
//!
//! - `packager.rs` cuts segments and parts and publishes [`window::Snapshot`]s;
//! - `window.rs` is what a snapshot holds: the segments and parts requests are answered from;
//! - `playlist.rs` writes the two playlists;
//! - `ts.rs` writes MPEG-TS.
//!
//! The HTTP side is the server's `control/hls.rs`. The load generator (`fieldcast-probe
//! hls-swarm`) and the nginx cache configuration the tests run are `fieldcast-probe`'s.

pub mod packager;
pub mod playlist;
pub mod ts;
pub mod window;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use packager::{Packager, Published, Snapshot};

/// HLS stops this long after the last request, by default (`hls_idle`).
pub const IDLE_AFTER: Duration = Duration::from_secs(60);
/// A viewer is a client address that asked for a playlist this recently.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(30);
/// Distinct client addresses remembered per studio (the count saturates beyond).
const MAX_CLIENTS: usize = 200_000;

/// How HLS reaches the studio's pipeline: its valves, and its encoder for a keyframe.
pub struct Controls {
    pub switch: Box<dyn Fn(bool) + Send + Sync>,
    /// A keyframe soon, like a viewer's request (to start HLS at).
    pub keyframe: Box<dyn Fn() + Send + Sync>,
    /// A keyframe at the encoder's next frame: called from the streaming thread that
    /// delivered the frame before it, so it takes effect before the encoder sees the next.
    pub keyframe_next: Box<dyn Fn() + Send + Sync>,
}

/// Default for `hls_max_waiting`: blocking requests held at once, over every session. Each
/// costs a socket and a small task; a CDN or nginx in front holds one per object.
pub const DEFAULT_MAX_WAITING: usize = 8192;

/// Server-wide HLS counters (for `/metrics`), and the budget of blocking requests.
#[derive(Debug, Default)]
pub struct HlsCounters {
    pub playlists_served: AtomicU64,
    pub parts_served: AtomicU64,
    pub segments_served: AtomicU64,
    /// Blocking playlist reloads and part requests waiting now.
    pub blocking_open: AtomicUsize,
    /// Blocking requests refused because [`HlsCounters::max_waiting`] were held.
    pub blocking_refused: AtomicU64,
    /// Most blocking requests held at once.
    pub max_waiting: usize,
}

impl HlsCounters {
    pub fn new(max_waiting: usize) -> Self {
        Self {
            max_waiting,
            ..Self::default()
        }
    }

    /// Counts one more blocking request, unless the budget is spent. The caller gives the
    /// place back with [`HlsCounters::stop_waiting`].
    pub fn start_waiting(&self) -> bool {
        let taken = self
            .blocking_open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_waiting).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.blocking_refused.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    pub fn stop_waiting(&self) {
        self.blocking_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One studio's HLS.
pub struct HlsStream {
    /// The session, shortened, for the log.
    label: String,
    packager: Mutex<Packager>,
    published: watch::Sender<Published>,
    active: AtomicBool,
    born: Instant,
    /// HLS stops this long after the last request.
    idle_after: Duration,
    /// Milliseconds since `born` of the last request.
    last_request: AtomicU64,
    controls: OnceLock<Controls>,
    /// Client addresses and when each last asked for a playlist, and when the map was last
    /// pruned.
    clients: Mutex<(HashMap<IpAddr, Instant>, Instant)>,
}

impl HlsStream {
    /// `segment_target`: the encoder's keyframe interval.
    pub fn new(label: &str, segment_target: Duration, idle_after: Duration) -> Arc<Self> {
        let packager = Packager::new(segment_target);
        let (published, _) = watch::channel(Arc::new(packager.snapshot()));
        Arc::new(Self {
            label: label.to_string(),
            packager: Mutex::new(packager),
            published,
            active: AtomicBool::new(false),
            born: Instant::now(),
            idle_after,
            last_request: AtomicU64::new(0),
            controls: OnceLock::new(),
            clients: Mutex::new((HashMap::new(), Instant::now())),
        })
    }

    /// Connects the pipeline's controls (once, when the studio starts).
    pub fn set_controls(&self, controls: Controls) {
        let _ = self.controls.set(controls);
    }

    fn packager(&self) -> std::sync::MutexGuard<'_, Packager> {
        self.packager.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// A request for this studio's HLS from `client`: HLS starts if it was idle. Returns
    /// whether it was already running.
    pub fn touch(&self, client: Option<IpAddr>) -> bool {
        self.last_request
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        if let Some(client) = client {
            let mut guard = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            let (clients, pruned) = &mut *guard;
            // Full: forget the addresses gone quiet, at most once a second (each prune is
            // a pass over the map, so new addresses cannot make every request pay one).
            if clients.len() >= MAX_CLIENTS && pruned.elapsed() >= Duration::from_secs(1) {
                clients.retain(|_, seen| seen.elapsed() < VIEWER_WINDOW);
                *pruned = Instant::now();
            }
            if clients.len() < MAX_CLIENTS || clients.contains_key(&client) {
                clients.insert(client, Instant::now());
            }
        }
        if self.active.swap(true, Ordering::AcqRel) {
            return true;
        }
        tracing::info!(session.id = %self.label, "HLS starts: a viewer asked for it");
        if let Some(controls) = self.controls.get() {
            (controls.switch)(true);
            (controls.keyframe)();
        }
        false
    }

    /// Stops HLS when nobody asked for it for its idle time ([`IDLE_AFTER`] by default;
    /// called by the studio's owner every second). Returns whether it stopped now.
    pub fn stop_if_idle(&self) -> bool {
        let now = self.born.elapsed().as_millis() as u64;
        let idle = now.saturating_sub(self.last_request.load(Ordering::Relaxed));
        if !self.is_active() || idle < self.idle_after.as_millis() as u64 {
            return false;
        }
        self.stop();
        true
    }

    /// Stops HLS: the valves close and the window is forgotten.
    pub fn stop(&self) {
        if !self.active.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::info!(session.id = %self.label, "HLS stops: nobody asked for it in the last minute");
        if let Some(controls) = self.controls.get() {
            (controls.switch)(false);
        }
        let mut packager = self.packager();
        packager.reset();
        self.published.send_replace(Arc::new(packager.snapshot()));
    }

    /// An access unit from the encoder (streaming thread).
    pub fn video(&self, access_unit: &[u8], pts: u64, keyframe: bool) {
        if !self.is_active() {
            return;
        }
        let progress = {
            let mut packager = self.packager();
            let progress = packager.video(access_unit, pts, keyframe);
            if progress.published {
                self.published.send_replace(Arc::new(packager.snapshot()));
            }
            progress
        };
        if progress.want_keyframe
            && let Some(controls) = self.controls.get()
        {
            (controls.keyframe_next)();
        }
    }

    /// An ADTS frame from the AAC encoder (streaming thread).
    pub fn audio(&self, adts: &[u8], pts: u64) {
        if self.is_active() {
            self.packager().audio(adts, pts);
        }
    }

    /// What requests answer from now.
    pub fn snapshot(&self) -> Published {
        self.published.borrow().clone()
    }

    /// Follows the published window.
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.subscribe()
    }

    /// Waits (up to `timeout`) until `ready` holds for the published window; the window it
    /// held for, or `None` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&Snapshot) -> bool,
    ) -> Option<Published> {
        let mut rx = self.published.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| ready(s))).await;
        match waited {
            Ok(Ok(snapshot)) => Some(snapshot.clone()),
            _ => None,
        }
    }

    /// Distinct client addresses that asked for a playlist in the last [`VIEWER_WINDOW`].
    pub fn viewers(&self) -> usize {
        let mut guard = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let (clients, pruned) = &mut *guard;
        clients.retain(|_, seen| seen.elapsed() < VIEWER_WINDOW);
        *pruned = Instant::now();
        clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_are_distinct_addresses_and_a_request_starts_hls_once() {
        let hls = HlsStream::new("test", Duration::from_secs(1), IDLE_AFTER);
        assert!(!hls.is_active());
        let ip = |n: u8| IpAddr::from([127, 0, 0, n]);
        assert!(!hls.touch(Some(ip(2))), "the first request starts HLS");
        assert!(hls.touch(Some(ip(2))));
        assert!(hls.touch(Some(ip(3))));
        assert!(hls.touch(None), "a media request is no viewer");
        assert!(hls.is_active());
        assert_eq!(hls.viewers(), 2);
        assert!(!hls.stop_if_idle(), "asked for just now");
        hls.stop();
        assert!(!hls.is_active());
    }
}
