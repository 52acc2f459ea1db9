//! SQLite storage: the one place for SQL. WAL mode, migrations embedded in the binary.
//!
//! Calls are short and synchronous behind one connection mutex; nothing holds the lock across
//! an `.await`.

use std::path::Path;
use std::sync::Mutex;

pub mod commerce;
pub mod onscreen;
pub mod overlays;
pub mod recordings;
pub mod restreams;

use rusqlite::{Connection, OptionalExtension, params};

/// Schema versions, applied in order; `user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        title       TEXT NOT NULL,
        stream_key  TEXT NOT NULL UNIQUE,
        live        INTEGER NOT NULL DEFAULT 0,
        test_pattern INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL
    );",
    // Selling: products, offers with their stock ledger, orders, idempotency, webhooks.
    "ALTER TABLE sessions ADD COLUMN pinned_product_id TEXT;
    ALTER TABLE sessions ADD COLUMN likes INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE products (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        translations TEXT NOT NULL DEFAULT '{}',
        unit_amount  INTEGER NOT NULL CHECK (unit_amount >= 0),
        currency     TEXT NOT NULL,
        unit         TEXT NOT NULL,
        origin       TEXT,
        harvest_date TEXT,
        description  TEXT,
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE offers (
        id              TEXT PRIMARY KEY,
        session_id      TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        product_id      TEXT NOT NULL REFERENCES products(id),
        unit_amount     INTEGER NOT NULL CHECK (unit_amount >= 0),
        allocated       INTEGER NOT NULL CHECK (allocated >= 0),
        available       INTEGER NOT NULL CHECK (available >= 0),
        sold            INTEGER NOT NULL CHECK (sold >= 0),
        per_buyer_limit INTEGER,
        starts_at       INTEGER NOT NULL,
        ends_at         INTEGER NOT NULL,
        ended_early     INTEGER NOT NULL DEFAULT 0,
        end_notified    INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        CHECK (available + sold = allocated)
    );
    CREATE INDEX offers_session ON offers(session_id);
    CREATE TABLE orders (
        id           TEXT PRIMARY KEY,
        session_id   TEXT NOT NULL,
        offer_id     TEXT NOT NULL REFERENCES offers(id),
        product_id   TEXT NOT NULL,
        quantity     INTEGER NOT NULL CHECK (quantity > 0),
        amount       INTEGER NOT NULL,
        currency     TEXT NOT NULL,
        buyer_name   TEXT NOT NULL,
        buyer_phone  TEXT NOT NULL,
        phone_key    TEXT NOT NULL,
        buyer_address TEXT NOT NULL,
        buyer_city   TEXT,
        status       TEXT NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX orders_offer_phone ON orders(offer_id, phone_key);
    CREATE INDEX orders_session ON orders(session_id, created_at);
    CREATE TABLE idempotency (
        session_id   TEXT NOT NULL,
        key          TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status       INTEGER NOT NULL,
        body         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (session_id, key)
    );
    CREATE TABLE webhooks (
        id         TEXT PRIMARY KEY,
        url        TEXT NOT NULL,
        secret     TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT NOT NULL,
        webhook_id      TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        body            TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        delivered_at    INTEGER,
        last_error      TEXT,
        UNIQUE (event_id, webhook_id)
    );
    CREATE INDEX outbox_due ON outbox(delivered_at, next_attempt_at);",
    // Overlays: each session's scene of layers, and the hide-all switch.
    "ALTER TABLE sessions ADD COLUMN overlays_hidden INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN scene_created INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE overlay_layers (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        id         TEXT NOT NULL,
        layer      TEXT NOT NULL,
        PRIMARY KEY (session_id, id)
    );",
    // Deleting a session archives it: orders are accounting records and stay.
    "ALTER TABLE sessions ADD COLUMN archived_at INTEGER;",
    // The watch page: a session's output orientation; a product photo's content hash (its
    // public, cacheable URL).
    "ALTER TABLE sessions ADD COLUMN orientation TEXT NOT NULL DEFAULT 'auto';
    ALTER TABLE products ADD COLUMN image_hash TEXT;",
    // Buyers behind shared addresses: the network an order came from, as a keyed hash
    // (`commerce::devices`; older orders have none), and the units each network holds of each
    // offer, kept by the ledger beside the stock so that the per-network share costs one
    // lookup per order, not a sum over that network's orders.
    "ALTER TABLE orders ADD COLUMN address_key TEXT;
    CREATE TABLE offer_networks (
        offer_id TEXT NOT NULL,
        address_key TEXT NOT NULL,
        units INTEGER NOT NULL CHECK (units >= 0),
        PRIMARY KEY (offer_id, address_key)
    ) WITHOUT ROWID;",
    // Pages of a session's orders are read in the order they were taken (rowid), from a
    // cursor: one range of this index per page (the index on created_at cannot give rowid
    // order).
    "CREATE INDEX orders_session_taken ON orders(session_id);",
    // After the show: what the overlays put on the picture, hash-chained per session
    // (`record/onscreen.rs`), and the recordings of the HLS output (`record/recording.rs`).
    "CREATE TABLE onscreen (
        session_id TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        at_ms      INTEGER NOT NULL,
        pts_ms     INTEGER,
        screen     TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX onscreen_at ON onscreen(session_id, at_ms);
    CREATE TABLE recordings (
        id         TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at   INTEGER,
        segments   INTEGER NOT NULL DEFAULT 0,
        bytes      INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        state      TEXT NOT NULL,
        reason     TEXT,
        place      TEXT NOT NULL DEFAULT 'disk'
    );
    CREATE INDEX recordings_session ON recordings(session_id, started_at);
    ALTER TABLE sessions ADD COLUMN record INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE restreams (
        id         TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        url        TEXT NOT NULL,
        key        TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX restreams_session ON restreams(session_id);",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open database at {path}: {reason}")]
    Open { path: String, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub title: String,
    pub stream_key: String,
    /// The operator (or a publisher) started the show; the studio runs while this is set.
    pub live: bool,
    /// Shows the built-in test pattern, not the slate, while no publisher is connected (demo).
    pub test_pattern: bool,
    /// The output orientation the operator chose (`auto` follows the publisher).
    pub orientation: fieldcast_engine::media::Orientation,
    pub created_at: i64,
}

pub struct Store {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
}

/// Opens a connection with the pragmas every connection uses: WAL, full fsync on commit
/// (an acknowledged order survives power loss), foreign keys.
pub fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Store {
            conn: Mutex::new(connect(path)?),
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// A second connection to the same database (the stock ledger's writer has its own).
    pub fn connect(&self) -> Result<Connection, StoreError> {
        connect(&self.path)
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-statement elsewhere; SQLite rolled that back.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn insert_session(&self, row: &SessionRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO sessions (id, title, stream_key, live, test_pattern, created_at, orientation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![row.id, row.title, row.stream_key, row.live, row.test_pattern, row.created_at, row.orientation.as_str()],
        )?;
        Ok(())
    }

    pub fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, title, stream_key, live, test_pattern, created_at, orientation FROM sessions WHERE archived_at IS NULL ORDER BY created_at, id",
        )?;
        let rows = stmt
            .query_map([], session_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT id, title, stream_key, live, test_pattern, created_at, orientation FROM sessions WHERE id = ?1 AND archived_at IS NULL")?
            .query_row([id], session_row)
            .optional()?)
    }

    pub fn session_by_key(&self, stream_key: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, title, stream_key, live, test_pattern, created_at, orientation FROM sessions WHERE stream_key = ?1 AND archived_at IS NULL",
                [stream_key],
                session_row,
            )
            .optional()?)
    }

    /// Returns false when no such session exists.
    pub fn set_session_title(&self, id: &str, title: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET title = ?2 WHERE id = ?1",
            params![id, title],
        )? == 1)
    }

    pub fn set_session_orientation(
        &self,
        id: &str,
        orientation: fieldcast_engine::media::Orientation,
    ) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET orientation = ?2 WHERE id = ?1",
            params![id, orientation.as_str()],
        )? == 1)
    }

    pub fn set_session_live(&self, id: &str, live: bool) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET live = ?2 WHERE id = ?1",
            params![id, live],
        )? == 1)
    }

    pub fn set_stream_key(&self, id: &str, stream_key: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET stream_key = ?2 WHERE id = ?1",
            params![id, stream_key],
        )? == 1)
    }

    /// Archives a session: it leaves every list and lookup (its key no longer publishes),
    /// while its offers and orders stay. Returns false when no such session is there.
    pub fn archive_session(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET archived_at = ?2, live = 0 WHERE id = ?1 AND archived_at IS NULL",
            params![id, now],
        )? == 1)
    }
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        title: r.get(1)?,
        stream_key: r.get(2)?,
        live: r.get(3)?,
        test_pattern: r.get(4)?,
        created_at: r.get(5)?,
        orientation: fieldcast_engine::media::Orientation::parse(&r.get::<_, String>(6)?)
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_persist_across_reopen() {
        let dir = std::env::temp_dir().join(format!("fc-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fieldcast.db");
        let _ = std::fs::remove_file(&path);
        let row = SessionRow {
            id: "s1".into(),
            title: "Rose jam".into(),
            stream_key: "k1".into(),
            live: false,
            test_pattern: false,
            orientation: fieldcast_engine::media::Orientation::Portrait,
            created_at: 1,
        };
        Store::open(&path).unwrap().insert_session(&row).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.session("s1").unwrap(), Some(row.clone()));
        assert_eq!(
            store.session_by_key("k1").unwrap().map(|r| r.id),
            Some("s1".into())
        );
        assert!(store.set_stream_key("s1", "k2").unwrap());
        assert_eq!(store.session_by_key("k1").unwrap(), None);
        assert!(store.archive_session("s1", 2).unwrap());
        assert!(!store.archive_session("s1", 3).unwrap());
        // Archived: out of every lookup, its key no longer publishes.
        assert_eq!(store.session("s1").unwrap(), None);
        assert_eq!(store.session_by_key("k2").unwrap(), None);
        assert!(store.sessions().unwrap().is_empty());
    }
}
