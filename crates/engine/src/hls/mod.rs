//! HLS and Low-Latency HLS from the studio's own encodes: the same H.264 the WebRTC viewers
//! get, in both renditions (main and light, each a [`Track`]), AAC audio (one small extra
//! encode, muxed into both), MPEG-TS segments and parts kept in memory, and a multivariant
//! playlist over the two.
//!
//! The main track cuts its segments on its grid (`packager.rs`). Each cut asks the light
//! encoder for a keyframe at the same frame, and the light track cuts there too, under the
//! same media sequence number: the renditions' segments and parts line up, so a player
//! switches between them at any segment without a stall.
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

use crate::media::Rendition;

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
    /// A keyframe of the light encode at the frame with this running time (ns): called from
    /// the streaming thread that delivered the main encode of that frame.
    pub light_keyframe_at: Box<dyn Fn(u64) + Send + Sync>,
}

/// One rendition's window: its packager, and the snapshots requests are answered from.
pub struct Track {
    packager: Mutex<Packager>,
    published: watch::Sender<Published>,
    /// Profile, constraints and level from the rendition's SPS (for `CODECS`), once seen.
    codec: Mutex<Option<[u8; 3]>>,
    /// The picture size at the last keyframe (for `RESOLUTION`).
    size: Mutex<Option<(u32, u32)>>,
}

impl Track {
    fn new(segment_target: Duration, part_hold_back: f64) -> Self {
        let mut packager = Packager::new(segment_target);
        packager.set_part_hold_back(part_hold_back);
        let (published, _) = watch::channel(Arc::new(packager.snapshot()));
        Self {
            packager: Mutex::new(packager),
            published,
            codec: Mutex::new(None),
            size: Mutex::new(None),
        }
    }

    fn packager(&self) -> std::sync::MutexGuard<'_, Packager> {
        self.packager.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, packager: &Packager) {
        self.published.send_replace(Arc::new(packager.snapshot()));
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

    /// The RFC 6381 `CODECS` name of the video (`avc1.42e01f`), once a keyframe was seen.
    pub fn video_codec(&self) -> Option<String> {
        let codec = *self.codec.lock().unwrap_or_else(|e| e.into_inner());
        codec.map(|[profile, constraints, level]| {
            format!("avc1.{profile:02x}{constraints:02x}{level:02x}")
        })
    }

    /// The picture size at the last keyframe, once one was seen.
    pub fn size(&self) -> Option<(u32, u32)> {
        *self.size.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_size(&self, width: u32, height: u32) {
        *self.size.lock().unwrap_or_else(|e| e.into_inner()) = Some((width, height));
    }

    fn learn_codec(&self, access_unit: &[u8]) {
        let mut codec = self.codec.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = sps_profile(access_unit) {
            *codec = Some(found);
        }
    }
}

/// Keeps its studio's HLS running while it lives ([`HlsStream::hold`]).
pub struct HlsHold(Arc<HlsStream>);

impl HlsHold {
    pub fn stream(&self) -> &Arc<HlsStream> {
        &self.0
    }
}

impl Drop for HlsHold {
    fn drop(&mut self) {
        self.0.holders.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Profile, constraint flags and level of the first SPS in an Annex B access unit.
fn sps_profile(access_unit: &[u8]) -> Option<[u8; 3]> {
    let mut i = 0;
    while i + 3 < access_unit.len() {
        if access_unit[i..i + 3] == [0, 0, 1] {
            let nal = access_unit.get(i + 3..i + 7)?;
            if nal[0] & 0x1F == 7 {
                return Some([nal[1], nal[2], nal[3]]);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
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
    /// The main and the light rendition's windows.
    tracks: [Track; 2],
    /// Where (running time, ns) the main track began its latest segments, and their media
    /// sequence numbers: the light track begins its segments there too.
    cuts: Mutex<std::collections::VecDeque<(u64, u64)>>,
    active: AtomicBool,
    /// Recordings and restreams that keep HLS running with or without viewers
    /// ([`HlsStream::hold`]).
    holders: AtomicUsize,
    /// A viewer asked within the idle time (the light encode runs for viewers only).
    requested: AtomicBool,
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
        Arc::new(Self {
            label: label.to_string(),
            tracks: [
                Track::new(segment_target, window::PART_HOLD_BACK),
                Track::new(segment_target, window::LIGHT_PART_HOLD_BACK),
            ],
            cuts: Mutex::new(Default::default()),
            active: AtomicBool::new(false),
            holders: AtomicUsize::new(0),
            requested: AtomicBool::new(false),
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

    /// One rendition's window.
    pub fn track(&self, rendition: Rendition) -> &Track {
        match rendition {
            Rendition::Main => &self.tracks[0],
            Rendition::Light => &self.tracks[1],
        }
    }

    fn cuts(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(u64, u64)>> {
        self.cuts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// A viewer asked for HLS within its idle time (not only a recording or restream
    /// holding it).
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Keeps HLS running, with or without viewers, until the hold is dropped (a recording, a
    /// restream). Starts it if it was idle.
    pub fn hold(self: &Arc<Self>) -> HlsHold {
        self.holders.fetch_add(1, Ordering::AcqRel);
        self.start("held for a recording or restream");
        HlsHold(self.clone())
    }

    fn start(&self, why: &str) -> bool {
        if self.active.swap(true, Ordering::AcqRel) {
            return true;
        }
        tracing::info!(session.id = %self.label, "HLS starts: {why}");
        if let Some(controls) = self.controls.get() {
            (controls.switch)(true);
            (controls.keyframe)();
        }
        false
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
        self.requested.store(true, Ordering::Relaxed);
        self.start("a viewer asked for it")
    }

    /// Stops HLS when nobody asked for it for its idle time ([`IDLE_AFTER`] by default;
    /// called by the studio's owner every second). Returns whether it stopped now.
    pub fn stop_if_idle(&self) -> bool {
        let now = self.born.elapsed().as_millis() as u64;
        let idle = now.saturating_sub(self.last_request.load(Ordering::Relaxed));
        if !self.is_active() || idle < self.idle_after.as_millis() as u64 {
            return false;
        }
        self.requested.store(false, Ordering::Relaxed);
        if self.holders.load(Ordering::Acquire) > 0 {
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
        self.cuts().clear();
        let epoch = {
            let main = self.track(Rendition::Main);
            let mut packager = main.packager();
            packager.reset();
            main.publish(&packager);
            packager.epoch()
        };
        let light = self.track(Rendition::Light);
        let mut packager = light.packager();
        packager.reset();
        packager.set_epoch(epoch);
        light.publish(&packager);
    }

    /// An access unit from one rendition's encoder (its streaming thread).
    pub fn video(&self, rendition: Rendition, access_unit: &[u8], pts: u64, keyframe: bool) {
        if !self.is_active() {
            return;
        }
        let track = self.track(rendition);
        if keyframe {
            track.learn_codec(access_unit);
        }
        let progress = {
            let mut packager = track.packager();
            let progress = match rendition {
                Rendition::Main => packager.video(access_unit, pts, keyframe),
                Rendition::Light => {
                    let cut = if keyframe { self.cut_at(pts) } else { None };
                    packager.follow(access_unit, pts, keyframe, cut)
                }
            };
            if progress.published {
                track.publish(&packager);
            }
            progress
        };
        let Some(controls) = self.controls.get() else {
            return;
        };
        if let Some(msn) = progress.cut
            && rendition == Rendition::Main
        {
            let mut cuts = self.cuts();
            cuts.push_back((pts, msn));
            while cuts.len() > 8 {
                cuts.pop_front();
            }
            drop(cuts);
            (controls.light_keyframe_at)(pts);
        }
        if progress.want_keyframe {
            (controls.keyframe_next)();
        }
    }

    /// The media sequence number of the latest main segment that began at or before `pts`
    /// and that the light track has not begun yet.
    fn cut_at(&self, pts: u64) -> Option<u64> {
        let mut cuts = self.cuts();
        let mut found = None;
        while let Some(&(at, msn)) = cuts.front() {
            if at > pts {
                break;
            }
            found = Some(msn);
            cuts.pop_front();
        }
        found
    }

    /// An ADTS frame from the AAC encoder (streaming thread): it goes into both renditions.
    pub fn audio(&self, adts: &[u8], pts: u64) {
        if self.is_active() {
            for track in &self.tracks {
                track.packager().audio(adts, pts);
            }
        }
    }

    /// What requests of the main rendition answer from now.
    pub fn snapshot(&self) -> Published {
        self.track(Rendition::Main).snapshot()
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
