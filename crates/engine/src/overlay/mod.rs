//! Overlays: each session's scene of layers (product card, counters, countdown, toasts,
//! text, image, QR), rendered in Rust (tiny-skia, cosmic-text) into cached premultiplied
//! pictures that are blended into every output frame just before the encoder.
//!
//! - `scene` and `layout`: the model and where a layer lands (pure; `fieldcast-core`'s);
//! - `feed`: the live-state snapshot the overlays draw from, and the trait that hands it in;
//! - `text`: shaping and drawing text;
//! - `render`: one layer to a pixmap, from the session's live state;
//! - `compositor`: per frame, what to blend; redraws a layer only when what it shows changes;
//! - `onscreen`: what the layers showed, as data, for the session's on-screen record;
//! - `blend`: premultiplied Y/U/V layers over I420, in place.

pub mod blend;
pub mod compositor;
pub mod feed;
pub mod onscreen;
pub mod render;
pub mod text;

pub use fieldcast_core::overlay::{layout, scene};
