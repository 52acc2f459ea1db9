//! What the overlays show, as the server hands it to them: a snapshot of a session's live
//! state ([`LiveData`]) behind the [`LiveFeed`] trait. The compositor reads it on every frame
//! and never writes it; the server's live state (`commerce::live` in `fieldcast`) implements
//! the trait, and benchmarks and tests can hand in a fixed one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use fieldcast_core::commerce::records::{OfferRow, ProductRow};
use fieldcast_core::overlay::scene::Scene;

/// A purchase toast ("Ana from Kashgar bought 2").
#[derive(Debug, Clone)]
pub struct Toast {
    pub text: String,
    /// Unix milliseconds, for the clock the layers are drawn with.
    pub at_ms: i64,
    pub at: Instant,
}

/// The pinned product with its image, decoded once.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub product: ProductRow,
    pub image: Option<Arc<tiny_skia::Pixmap>>,
}

/// A session's live state as the overlays draw it. Readers take an `Arc` of it and never
/// hold a lock while they render; a change copies it only while a snapshot is out.
#[derive(Debug, Default, Clone)]
pub struct LiveData {
    pub pinned: Option<Pinned>,
    pub offers: Vec<OfferRow>,
    pub toasts: VecDeque<Toast>,
    pub scene: Scene,
    /// Rises whenever an image layer's picture file changes (an upload): the compositor
    /// redraws image layers when it moves, and never looks at the files on its own.
    pub image_revision: u64,
}

/// A session's live state, as one compositor reads it on its streaming thread: every call
/// must be quick and must not block (no I/O, no lock held across anything slow).
pub trait LiveFeed: Send + Sync {
    /// Rises with every change; the compositor redraws only when it moved.
    fn version(&self) -> u64;
    /// The state now.
    fn data(&self) -> Arc<LiveData>;
    /// Likes so far (a counter of its own, so a storm of likes copies nothing).
    fn likes(&self) -> i64;
    /// When the oldest change not yet on a frame was made, taken once (the change-to-frame
    /// histogram measures from it).
    fn take_changed_at(&self) -> Option<Instant>;
}
