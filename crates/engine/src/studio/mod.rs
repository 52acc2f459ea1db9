//! Studios: one owner task per live session. Ingest connections, WHEP sessions and HTTP
//! handlers hold a [`StudioHandle`] and send typed requests; only the owner changes the
//! studio's state.

mod owner;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::media::output::{OutputFeed, OverlayHook, PacketSink};
use crate::media::{Orientation, OutputFormat};

/// Requests queued to one studio owner. Senders wait when it is full; requests are small and
/// the owner answers each in microseconds.
pub const STUDIO_REQUESTS: usize = 64;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StudioError {
    #[error("a publisher is already live on this stream key")]
    Busy,
    #[error("the studio has stopped")]
    Gone,
    #[error("the studio could not start: {0}")]
    Start(String),
}

/// What the studio shows while no publisher is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filler {
    /// "Back in a moment" and silence.
    Slate,
    /// The built-in moving test picture and tone (the demo session).
    TestPattern,
}

/// Counters read by the API without asking the owner.
#[derive(Debug, Default)]
pub struct StudioStats {
    pub viewers: AtomicUsize,
    /// Datagrams the egress loop sent to this studio's viewers, and those the socket refused.
    pub datagrams_sent: AtomicU64,
    pub datagrams_dropped: AtomicU64,
    pub publisher_connected: AtomicBool,
    /// The filler is the built-in test picture (the demo), not a slate: it is the show.
    pub pattern_is_the_show: bool,
}

/// Called once when the studio ends its show by itself: the publisher stayed away past the
/// reconnect grace. It must not block (it runs on the studio's task).
pub type IdleHook = Box<dyn FnOnce() + Send>;

/// Builds the studio's overlay hook once its counters exist (the overlays show its viewers).
pub type OverlayFactory = Box<dyn FnOnce(Arc<StudioStats>) -> Option<OverlayHook> + Send>;

/// A publisher's link into the studio, given on attach.
pub struct PublisherLink {
    pub id: u64,
    pub feed: OutputFeed,
    pub format: OutputFormat,
    pub presence: Arc<PublisherPresence>,
}

/// What the studio knows of its publisher's connection without asking it: when media last
/// arrived, and a way to tell it that a new connection took the key over.
#[derive(Debug)]
pub struct PublisherPresence {
    last_media: Mutex<std::time::Instant>,
    pub replaced: tokio::sync::Notify,
}

impl PublisherPresence {
    fn new() -> Self {
        Self {
            last_media: Mutex::new(std::time::Instant::now()),
            replaced: tokio::sync::Notify::new(),
        }
    }

    /// Called by the connection on every audio or video message.
    pub fn media_arrived(&self) {
        *self.last_media.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
    }

    pub fn silent_for(&self) -> std::time::Duration {
        self.last_media
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

pub(crate) enum Request {
    AttachPublisher {
        reply: oneshot::Sender<Result<PublisherLink, StudioError>>,
        takeover_after: std::time::Duration,
    },
    DetachPublisher {
        id: u64,
    },
    Orient(Orientation),
    ForceKeyframe,
}

#[derive(Clone)]
pub struct StudioHandle {
    pub session_id: Arc<str>,
    tx: mpsc::Sender<Request>,
    pub stats: Arc<StudioStats>,
    /// The studio's HLS (idle until someone asks for it).
    pub hls: Arc<crate::hls::HlsStream>,
}

impl StudioHandle {
    /// Claims the studio for one publisher. A second one is refused with [`StudioError::Busy`]
    /// while the first sends media; a first one silent for `takeover_after` is replaced.
    pub async fn attach_publisher(
        &self,
        takeover_after: std::time::Duration,
    ) -> Result<PublisherLink, StudioError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::AttachPublisher {
                reply,
                takeover_after,
            })
            .await
            .map_err(|_| StudioError::Gone)?;
        rx.await.map_err(|_| StudioError::Gone)?
    }

    pub async fn detach_publisher(&self, id: u64) {
        let _ = self.tx.send(Request::DetachPublisher { id }).await;
    }

    /// Turns the output (landscape, portrait, or following the publisher).
    pub async fn orient(&self, orientation: Orientation) {
        let _ = self.tx.send(Request::Orient(orientation)).await;
    }

    /// Asks for a keyframe; the owner coalesces bursts into one. Never blocks.
    pub fn request_keyframe(&self) {
        let _ = self.tx.try_send(Request::ForceKeyframe);
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// The registry of running studios, keyed by session id.
pub struct Studios {
    running: Mutex<HashMap<String, (StudioHandle, owner::Stopper)>>,
    format: OutputFormat,
    /// How long a studio's HLS runs after its last request.
    hls_idle: std::time::Duration,
}

impl Studios {
    pub fn new(format: OutputFormat, hls_idle: std::time::Duration) -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
            format,
            hls_idle,
        }
    }

    fn running(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (StudioHandle, owner::Stopper)>> {
        // Poisoning needs a panic while holding this short lock; the map is still consistent.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, session_id: &str) -> Option<StudioHandle> {
        self.running()
            .get(session_id)
            .map(|(h, _)| h.clone())
            .filter(StudioHandle::is_running)
    }

    /// Starts the session's studio unless it runs already. `sink` receives its packets. With
    /// `idle`, the show ends by itself (the hook is called) once a publisher has left and none
    /// came back within the grace period.
    pub fn start(
        &self,
        session_id: &str,
        orientation: Orientation,
        filler: Filler,
        sink: PacketSink,
        overlay: OverlayFactory,
        idle: Option<(std::time::Duration, IdleHook)>,
    ) -> Result<StudioHandle, StudioError> {
        let mut running = self.running();
        if let Some((handle, _)) = running.get(session_id)
            && handle.is_running()
        {
            return Ok(handle.clone());
        }
        let (handle, stopper) = owner::spawn(
            session_id,
            (self.format, self.hls_idle),
            orientation,
            filler,
            sink,
            overlay,
            idle,
        )?;
        running.insert(session_id.to_string(), (handle.clone(), stopper));
        Ok(handle)
    }

    /// Stops the session's studio; its viewers stop receiving media.
    pub fn stop(&self, session_id: &str) {
        if let Some((_, stopper)) = self.running().remove(session_id) {
            stopper.stop();
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Every running studio's session id and counters (for `/metrics`).
    pub fn all_stats(&self) -> Vec<(String, Arc<StudioStats>)> {
        self.running()
            .iter()
            .filter(|(_, (h, _))| h.is_running())
            .map(|(id, (h, _))| (id.clone(), h.stats.clone()))
            .collect()
    }

    /// Every running studio's session id and HLS (for `/metrics`).
    pub fn all_hls(&self) -> Vec<(String, Arc<crate::hls::HlsStream>)> {
        self.running()
            .iter()
            .filter(|(_, (h, _))| h.is_running())
            .map(|(id, (h, _))| (id.clone(), h.hls.clone()))
            .collect()
    }

    pub fn viewers(&self, session_id: &str) -> usize {
        self.get(session_id)
            .map(|h| h.stats.viewers.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}
