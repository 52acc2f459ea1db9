//! SQL for overlay scenes: layers as JSON documents per session, and the hide-all switch.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use fieldcast_core::overlay::scene::{self, Layer, Scene};

impl Store {
    /// A session's scene; a session that never had one gets the default layers, stored.
    pub fn load_scene(&self, session_id: &str) -> Result<Scene, StoreError> {
        let (stored, created) = self.overlay_layers(session_id)?;
        let hidden = self.overlays_hidden(session_id)?;
        if !created {
            let layers = scene::default_layers(scene::new_layer_id);
            for layer in &layers {
                let json = serde_json::to_string(layer).unwrap_or_default();
                self.put_overlay_layer(session_id, &layer.id, &json)?;
            }
            self.mark_scene_created(session_id)?;
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

    /// The session's layers (JSON) in creation order, and whether its scene was created yet.
    pub fn overlay_layers(&self, session_id: &str) -> Result<(Vec<String>, bool), StoreError> {
        let conn = self.conn();
        let created: bool = conn
            .query_row(
                "SELECT scene_created FROM sessions WHERE id = ?1",
                [session_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false);
        let mut stmt = conn.prepare_cached(
            "SELECT layer FROM overlay_layers WHERE session_id = ?1 ORDER BY rowid",
        )?;
        let layers = stmt
            .query_map([session_id], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok((layers, created))
    }

    /// Inserts or replaces a layer; marks the scene as created.
    pub fn put_overlay_layer(
        &self,
        session_id: &str,
        id: &str,
        layer_json: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO overlay_layers (session_id, id, layer) VALUES (?1, ?2, ?3)
             ON CONFLICT (session_id, id) DO UPDATE SET layer = excluded.layer",
            params![session_id, id, layer_json],
        )?;
        tx.execute(
            "UPDATE sessions SET scene_created = 1 WHERE id = ?1",
            [session_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn mark_scene_created(&self, session_id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sessions SET scene_created = 1 WHERE id = ?1",
            [session_id],
        )?;
        Ok(())
    }

    pub fn delete_overlay_layer(&self, session_id: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM overlay_layers WHERE session_id = ?1 AND id = ?2",
            [session_id, id],
        )? == 1)
    }

    pub fn set_overlays_hidden(&self, session_id: &str, hidden: bool) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET overlays_hidden = ?2 WHERE id = ?1",
            params![session_id, hidden],
        )? == 1)
    }

    pub fn overlays_hidden(&self, session_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT overlays_hidden FROM sessions WHERE id = ?1",
                [session_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }
}
