//! Overlays: each session's scene of layers (product card, counters, countdown, toasts,
//! text, image, QR), rendered in Rust (tiny-skia, cosmic-text) into cached premultiplied
//! pictures that are blended into every output frame just before the encoder.
//!
//! - `scene`: the model, templates and validation (pure);
//! - `layout`: anchor + offset + size to pixels (pure);
//! - `text`: shaping and drawing text;
//! - `render`: one layer to a pixmap, from the session's live state;
//! - `compositor`: per frame, what to blend; redraws a layer only when what it shows changes;
//! - `blend`: premultiplied Y/U/V layers over I420, in place.

pub mod blend;
pub mod compositor;
pub mod layout;
pub mod render;
pub mod scene;
pub mod text;

use crate::app::random_hex;
use crate::store::{Store, StoreError};
use scene::{Layer, Scene};

pub fn new_layer_id() -> String {
    format!("layer_{}", random_hex(6))
}

/// Loads a session's scene; a session that never had one gets the default layers, stored.
pub fn load_scene(store: &Store, session_id: &str) -> Result<Scene, StoreError> {
    let (stored, created) = store.overlay_layers(session_id)?;
    let hidden = store.overlays_hidden(session_id)?;
    if !created {
        let layers = scene::default_layers(new_layer_id);
        for layer in &layers {
            let json = serde_json::to_string(layer).unwrap_or_default();
            store.put_overlay_layer(session_id, &layer.id, &json)?;
        }
        store.mark_scene_created(session_id)?;
        return Ok(Scene { layers, hidden });
    }
    let layers = stored
        .iter()
        .filter_map(|json| match serde_json::from_str::<Layer>(json) {
            Ok(layer) => Some(layer),
            Err(e) => {
                tracing::error!(error = %e, "skipping an unreadable stored layer");
                None
            }
        })
        .collect();
    Ok(Scene { layers, hidden })
}
