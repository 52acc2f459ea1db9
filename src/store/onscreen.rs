//! The on-screen record's rows: appended in batches by its writer (`record/onscreen.rs`),
//! read back by time for the API and the replay, and in order for `fieldcast audit`.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Store, StoreError};

/// One entry of a session's on-screen record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnscreenRow {
    pub session_id: String,
    /// 1, 2, 3… per session, without gaps.
    pub seq: i64,
    /// Wall clock (Unix ms) of the first frame that showed it.
    pub at_ms: i64,
    /// That frame's time on the output's clock (ms).
    pub pts_ms: Option<i64>,
    /// What was on screen: a JSON object, kept as the very text that was hashed.
    pub screen: String,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str = "session_id, seq, at_ms, pts_ms, screen, prev_hash, hash";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OnscreenRow> {
    Ok(OnscreenRow {
        session_id: r.get(0)?,
        seq: r.get(1)?,
        at_ms: r.get(2)?,
        pts_ms: r.get(3)?,
        screen: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
}

/// The last entry's number and hash for a session, where the chain goes on from.
pub fn head(conn: &Connection, session_id: &str) -> Result<Option<(i64, String)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, hash FROM onscreen WHERE session_id = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([session_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Appends entries (inside the writer's transaction).
pub fn append(tx: &Transaction<'_>, rows: &[OnscreenRow]) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO onscreen ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?;
    for r in rows {
        stmt.execute(params![
            r.session_id,
            r.seq,
            r.at_ms,
            r.pts_ms,
            r.screen,
            r.prev_hash,
            r.hash
        ])?;
    }
    Ok(())
}

/// Every entry of a session, in order, handed to `each` (for export and verification).
pub fn each(
    conn: &Connection,
    session_id: &str,
    mut each: impl FnMut(OnscreenRow) -> bool,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM onscreen WHERE session_id = ?1 ORDER BY seq"
    ))?;
    let mut rows = stmt.query([session_id])?;
    while let Some(r) = rows.next()? {
        if !each(row(r)?) {
            break;
        }
    }
    Ok(())
}

impl Store {
    /// What was on screen at `at_ms`: the last entry shown at or before it.
    pub fn onscreen_at(
        &self,
        session_id: &str,
        at_ms: i64,
    ) -> Result<Option<OnscreenRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM onscreen WHERE session_id = ?1 AND at_ms <= ?2 ORDER BY at_ms DESC, seq DESC LIMIT 1"
            ))?
            .query_row(params![session_id, at_ms], row)
            .optional()?)
    }

    /// Entries shown from `from_ms` up to `to_ms`, in order, at most `limit`.
    pub fn onscreen_between(
        &self,
        session_id: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<OnscreenRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM onscreen WHERE session_id = ?1 AND at_ms >= ?2 AND at_ms <= ?3 ORDER BY at_ms, seq LIMIT ?4"
        ))?;
        let rows = stmt
            .query_map(params![session_id, from_ms, to_ms, limit as i64], row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// One entry's time (Unix ms), and the card's product and price then (none: no card up).
pub type CardEntry = (i64, Option<String>, Option<i64>);

impl Store {
    /// The product card's changes over a whole session, for the replay: each entry's time,
    /// and the product and price on the card then (none when no card was up). Read in SQL
    /// (SQLite's JSON functions), so a long show's record is not parsed entry by entry here.
    pub fn onscreen_cards(&self, session_id: &str) -> Result<Vec<CardEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at_ms, json_extract(screen, '$.card.product_id'), json_extract(screen, '$.card.price') FROM onscreen WHERE session_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
