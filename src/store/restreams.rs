//! A session's restream destinations: the RTMP(S) servers its show is pushed to. The key is
//! kept to push with and never read back out by the API.

use rusqlite::params;

use super::{Store, StoreError};
use fieldcast_engine::restream::Destination;

impl Store {
    pub fn insert_restream(&self, d: &Destination, created_at: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO restreams (id, session_id, url, key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![d.id, d.session_id, d.url, d.key, created_at],
        )?;
        Ok(())
    }

    /// A session's destinations, oldest first.
    pub fn restreams(&self, session_id: &str) -> Result<Vec<Destination>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, session_id, url, key FROM restreams WHERE session_id = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt
            .query_map([session_id], |r| {
                Ok(Destination {
                    id: r.get(0)?,
                    session_id: r.get(1)?,
                    url: r.get(2)?,
                    key: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Returns false when the session has no such destination.
    pub fn delete_restream(&self, session_id: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM restreams WHERE session_id = ?1 AND id = ?2",
            params![session_id, id],
        )? == 1)
    }
}
