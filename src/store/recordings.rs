//! Recordings of the shows' HLS output (`record/recording.rs` writes them), and a session's
//! choice to record.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    pub id: String,
    pub session_id: String,
    /// Unix ms of its first segment's start.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub segments: i64,
    pub bytes: i64,
    pub duration_ms: i64,
    /// `recording`, `complete`, `stopped` (with a reason) or `deleted` (its files went, to
    /// keep to the disk budget or the retention).
    pub state: String,
    pub reason: Option<String>,
    /// Where its files are: `disk` (under `DATA/recordings`, some perhaps also in the object
    /// store) or `object_store` (all of them there, none on disk).
    pub place: String,
}

/// [`RecordingRow::place`] of a recording whose files are all in the object store.
pub const IN_OBJECT_STORE: &str = "object_store";

const COLUMNS: &str =
    "id, session_id, started_at, ended_at, segments, bytes, duration_ms, state, reason, place";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordingRow> {
    Ok(RecordingRow {
        id: r.get(0)?,
        session_id: r.get(1)?,
        started_at: r.get(2)?,
        ended_at: r.get(3)?,
        segments: r.get(4)?,
        bytes: r.get(5)?,
        duration_ms: r.get(6)?,
        state: r.get(7)?,
        reason: r.get(8)?,
        place: r.get(9)?,
    })
}

impl Store {
    pub fn insert_recording(&self, r: &RecordingRow) -> Result<(), StoreError> {
        self.conn().execute(
            &format!(
                "INSERT INTO recordings ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                r.id,
                r.session_id,
                r.started_at,
                r.ended_at,
                r.segments,
                r.bytes,
                r.duration_ms,
                r.state,
                r.reason,
                r.place
            ],
        )?;
        Ok(())
    }

    /// Its progress: segments, bytes and duration so far.
    pub fn update_recording_progress(
        &self,
        id: &str,
        segments: i64,
        bytes: i64,
        duration_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE recordings SET segments = ?2, bytes = ?3, duration_ms = ?4 WHERE id = ?1",
            params![id, segments, bytes, duration_ms],
        )?;
        Ok(())
    }

    pub fn set_recording_state(
        &self,
        id: &str,
        state: &str,
        reason: Option<&str>,
        ended_at: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE recordings SET state = ?2, reason = ?3, ended_at = COALESCE(?4, ended_at) WHERE id = ?1",
            params![id, state, reason, ended_at],
        )?;
        Ok(())
    }

    /// All its files are in the object store now.
    pub fn set_recording_place(&self, id: &str, place: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE recordings SET place = ?2 WHERE id = ?1",
            params![id, place],
        )?;
        Ok(())
    }

    pub fn recording(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?)
    }

    /// A session's recordings whose files exist, newest first.
    pub fn session_recordings(&self, session_id: &str) -> Result<Vec<RecordingRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE session_id = ?1 AND state != 'deleted' ORDER BY started_at DESC, id"
        ))?;
        let rows = stmt
            .query_map([session_id], row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Every recording whose files exist, oldest first.
    pub fn kept_recordings(&self) -> Result<Vec<RecordingRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE state != 'deleted' ORDER BY started_at, id"
        ))?;
        let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Recordings left `recording` by a server that stopped: they end where their files end.
    pub fn close_interrupted_recordings(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let ids = conn
            .prepare("SELECT id FROM recordings WHERE state = 'recording'")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        conn.execute(
            "UPDATE recordings SET state = 'stopped', reason = 'the server stopped while recording' WHERE state = 'recording'",
            [],
        )?;
        Ok(ids)
    }

    /// Whether a session records when it goes live (on unless the operator turned it off).
    pub fn session_records(&self, session_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT record FROM sessions WHERE id = ?1",
                [session_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    pub fn set_session_records(&self, session_id: &str, record: bool) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET record = ?2 WHERE id = ?1",
            params![session_id, record],
        )? == 1)
    }
}
