//! What others hold of a studio: its handle (typed requests to the owner, answered on a
//! `oneshot`), its counters, and the types the requests carry.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::media::output::{OutputFeed, OverlayHook};
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
    /// Connected WebRTC viewers.
    pub viewers: AtomicUsize,
    /// Of those, the ones on the light rendition or moving to it: while any is, the light
    /// encode runs.
    pub light_viewers: AtomicUsize,
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
    /// Set with `replaced`, for a connection that polls instead of waiting (WHIP's loop).
    was_replaced: AtomicBool,
}

impl PublisherPresence {
    pub(crate) fn new() -> Self {
        Self {
            last_media: Mutex::new(std::time::Instant::now()),
            replaced: tokio::sync::Notify::new(),
            was_replaced: AtomicBool::new(false),
        }
    }

    /// Called by the connection on every audio or video message.
    pub fn media_arrived(&self) {
        *self.last_media.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
    }

    /// Tells the connection that a new one took its key over.
    pub(crate) fn replace(&self) {
        self.was_replaced
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.replaced.notify_one();
    }

    pub fn was_replaced(&self) -> bool {
        self.was_replaced.load(std::sync::atomic::Ordering::Relaxed)
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
    ForceKeyframe(crate::media::Rendition),
}

#[derive(Clone)]
pub struct StudioHandle {
    pub session_id: Arc<str>,
    pub(crate) tx: mpsc::Sender<Request>,
    pub stats: Arc<StudioStats>,
    /// The output as the studio started (its bitrate stays; its size turns with the show).
    pub format: OutputFormat,
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

    /// Asks for a keyframe of the main rendition; the owner coalesces bursts into one.
    /// Never blocks.
    pub fn request_keyframe(&self) {
        self.request_keyframe_of(crate::media::Rendition::Main);
    }

    /// Asks for a keyframe of one rendition (starting the light encode if it is idle).
    pub fn request_keyframe_of(&self, rendition: crate::media::Rendition) {
        let _ = self.tx.try_send(Request::ForceKeyframe(rendition));
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Resolves once the studio has stopped (the show ended).
    pub async fn stopped(&self) {
        self.tx.closed().await
    }
}
