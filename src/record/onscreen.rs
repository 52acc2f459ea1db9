//! The on-screen record: every change of what the overlays put on the picture, appended to
//! the session's log in the store, each entry carrying the hash of the one before it.
//!
//! The compositors hand changes over on their streaming threads ([`ScreenLog::shown`] only
//! queues); one writer thread takes what has queued and appends it in one transaction, so the
//! studio and the ledger never wait on it. `fieldcast audit verify` walks a session's chain
//! ([`verify`]): an edited, inserted or deleted entry breaks it at that entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::store::StoreError;
use crate::store::onscreen::{self as rows, OnscreenRow};
use fieldcast_engine::overlay::onscreen::{ScreenChange, ScreenLog};

/// Changes queued for the writer, over every session. At 30 frames a second a studio makes
/// at most 30 changes a second; this holds minutes of a stalled disk for a few shows.
pub const QUEUE: usize = 16_384;
/// Entries appended in one transaction, at most.
const BATCH: usize = 1024;
/// The `prev_hash` of a session's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry: SHA-256 over the previous entry's hash and the entry's fields, as
/// lowercase hex.
pub fn entry_hash(
    prev_hash: &str,
    session_id: &str,
    seq: i64,
    at_ms: i64,
    pts_ms: Option<i64>,
    screen: &str,
) -> String {
    let pts = pts_ms.map(|p| p.to_string()).unwrap_or_default();
    let mut h = Sha256::new();
    for field in [
        prev_hash,
        session_id,
        &seq.to_string(),
        &at_ms.to_string(),
        &pts,
    ] {
        h.update(field.as_bytes());
        h.update(b"\n");
    }
    h.update(screen.as_bytes());
    format!("{:x}", h.finalize())
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RecordCounters {
    pub appended: AtomicU64,
    /// Changes that found the queue full (the log says so too).
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
}

struct Queued {
    session_id: Arc<str>,
    change: ScreenChange,
}

/// The writer's queue; [`OnscreenRecord::for_session`] gives a compositor its [`ScreenLog`].
pub struct OnscreenRecord {
    tx: SyncSender<Queued>,
    pub counters: Arc<RecordCounters>,
}

impl OnscreenRecord {
    /// Starts the writer thread on its own connection.
    pub fn start(conn: Connection) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = sync_channel(QUEUE);
        let counters = Arc::new(RecordCounters::default());
        let writer_counters = counters.clone();
        std::thread::Builder::new()
            .name("onscreen-record".into())
            .spawn(move || write_loop(conn, rx, &writer_counters))?;
        Ok(Arc::new(Self { tx, counters }))
    }

    pub fn for_session(self: &Arc<Self>, session_id: &str) -> Arc<dyn ScreenLog> {
        Arc::new(SessionLog {
            record: self.clone(),
            session_id: Arc::from(session_id),
        })
    }
}

struct SessionLog {
    record: Arc<OnscreenRecord>,
    session_id: Arc<str>,
}

impl ScreenLog for SessionLog {
    fn shown(&self, change: ScreenChange) {
        let queued = Queued {
            session_id: self.session_id.clone(),
            change,
        };
        match self.record.tx.try_send(queued) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self
                    .record
                    .counters
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(1000)
                {
                    tracing::error!(session.id = %self.session_id, "the on-screen record's queue is full: a change was not recorded");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_loop(mut conn: Connection, rx: Receiver<Queued>, counters: &RecordCounters) {
    // Each session's last entry: its number and hash.
    let mut heads: HashMap<Arc<str>, (i64, String)> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if let Err(e) = append(&mut conn, &mut heads, &batch) {
            counters.write_errors.fetch_add(1, Ordering::Relaxed);
            // The heads may be ahead of what was written: read them again.
            heads.clear();
            tracing::error!(error = %e, entries = batch.len(), "could not append to the on-screen record");
            continue;
        }
        counters
            .appended
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
}

fn append(
    conn: &mut Connection,
    heads: &mut HashMap<Arc<str>, (i64, String)>,
    batch: &[Queued],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(batch.len());
    for q in batch {
        if !heads.contains_key(&q.session_id) {
            let head = rows::head(&tx, &q.session_id)?.unwrap_or((0, GENESIS.to_string()));
            heads.insert(q.session_id.clone(), head);
        }
        let Some((seq, prev)) = heads.get_mut(&q.session_id) else {
            continue;
        };
        let screen = serde_json::to_string(&q.change.screen).unwrap_or_else(|_| "{}".into());
        let pts_ms = q.change.pts_ns.map(|ns| (ns / 1_000_000) as i64);
        let next = *seq + 1;
        let hash = entry_hash(prev, &q.session_id, next, q.change.at_ms, pts_ms, &screen);
        out.push(OnscreenRow {
            session_id: q.session_id.to_string(),
            seq: next,
            at_ms: q.change.at_ms,
            pts_ms,
            screen,
            prev_hash: std::mem::replace(prev, hash.clone()),
            hash,
        });
        *seq = next;
    }
    rows::append(&tx, &out)?;
    tx.commit()?;
    Ok(())
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: expected entry {expected} here (an entry was deleted or inserted)")]
    Sequence { seq: i64, expected: i64 },
    #[error("entry {seq}: its prev_hash is not the hash of entry {}", seq - 1)]
    Link { seq: i64 },
    #[error("entry {seq}: its contents do not match its hash (the entry was edited)")]
    Contents { seq: i64 },
    #[error("entry {seq}: belongs to session {found}, not {expected}")]
    Session {
        seq: i64,
        found: String,
        expected: String,
    },
}

/// Walks a chain entry by entry; [`Verifier::check`] names the first entry that breaks it.
pub struct Verifier {
    session_id: String,
    prev: String,
    next: i64,
}

impl Verifier {
    pub fn new(session_id: &str) -> Self {
        Self {
            session_id: session_id.to_string(),
            prev: GENESIS.to_string(),
            next: 1,
        }
    }

    /// Entries checked so far.
    pub fn checked(&self) -> i64 {
        self.next - 1
    }

    pub fn check(&mut self, row: &OnscreenRow) -> Result<(), ChainBreak> {
        if row.session_id != self.session_id {
            return Err(ChainBreak::Session {
                seq: row.seq,
                found: row.session_id.clone(),
                expected: self.session_id.clone(),
            });
        }
        if row.seq != self.next {
            return Err(ChainBreak::Sequence {
                seq: row.seq,
                expected: self.next,
            });
        }
        if row.prev_hash != self.prev {
            return Err(ChainBreak::Link { seq: row.seq });
        }
        let hash = entry_hash(
            &row.prev_hash,
            &row.session_id,
            row.seq,
            row.at_ms,
            row.pts_ms,
            &row.screen,
        );
        if hash != row.hash {
            return Err(ChainBreak::Contents { seq: row.seq });
        }
        self.prev = hash;
        self.next += 1;
        Ok(())
    }
}

/// Verifies a session's chain in the database at `conn`: the number of entries, or the first
/// break.
pub fn verify(conn: &Connection, session_id: &str) -> Result<Result<i64, ChainBreak>, StoreError> {
    let mut verifier = Verifier::new(session_id);
    let mut broken = None;
    rows::each(conn, session_id, |row| match verifier.check(&row) {
        Ok(()) => true,
        Err(e) => {
            broken = Some(e);
            false
        }
    })?;
    Ok(match broken {
        Some(e) => Err(e),
        None => Ok(verifier.checked()),
    })
}

/// One entry as a JSON Lines record: the screen is the stored text itself, so what is
/// exported verifies like the database ([`parse_line`] reads it back).
pub fn export_line(row: &OnscreenRow) -> String {
    let pts = row
        .pts_ms
        .map(|p| p.to_string())
        .unwrap_or_else(|| "null".into());
    format!(
        "{{\"session_id\":{},\"seq\":{},\"at_ms\":{},\"pts_ms\":{pts},\"screen\":{},\"prev_hash\":\"{}\",\"hash\":\"{}\"}}",
        serde_json::Value::from(row.session_id.as_str()),
        row.seq,
        row.at_ms,
        row.screen,
        row.prev_hash,
        row.hash
    )
}

#[derive(serde::Deserialize)]
struct Line<'a> {
    session_id: String,
    seq: i64,
    at_ms: i64,
    pts_ms: Option<i64>,
    #[serde(borrow)]
    screen: &'a serde_json::value::RawValue,
    prev_hash: String,
    hash: String,
}

/// Reads an exported line back.
pub fn parse_line(line: &str) -> Result<OnscreenRow, serde_json::Error> {
    let l: Line = serde_json::from_str(line)?;
    Ok(OnscreenRow {
        session_id: l.session_id,
        seq: l.seq,
        at_ms: l.at_ms,
        pts_ms: l.pts_ms,
        screen: l.screen.get().to_string(),
        prev_hash: l.prev_hash,
        hash: l.hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<OnscreenRow> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let screen = format!("{{\"hidden\":false,\"layers\":[],\"toast\":\"{seq}\"}}");
                let hash = entry_hash(&prev, "s1", seq, 1000 + seq, Some(seq * 33), &screen);
                OnscreenRow {
                    session_id: "s1".into(),
                    seq,
                    at_ms: 1000 + seq,
                    pts_ms: Some(seq * 33),
                    screen,
                    prev_hash: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                }
            })
            .collect()
    }

    fn first_break(rows: &[OnscreenRow]) -> Option<ChainBreak> {
        let mut v = Verifier::new("s1");
        rows.iter().find_map(|r| v.check(r).err())
    }

    #[test]
    fn an_intact_chain_verifies_and_survives_export() {
        let rows = chain(5);
        assert_eq!(first_break(&rows), None);
        let back: Vec<_> = rows
            .iter()
            .map(|r| parse_line(&export_line(r)).unwrap())
            .collect();
        assert_eq!(back, rows);
    }

    #[test]
    fn an_edit_a_deletion_and_an_insertion_each_break_the_chain_at_that_entry() {
        let mut edited = chain(5);
        edited[2].screen = edited[2].screen.replace("\"3\"", "\"4\"");
        assert_eq!(first_break(&edited), Some(ChainBreak::Contents { seq: 3 }));

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(
            first_break(&deleted),
            Some(ChainBreak::Sequence {
                seq: 3,
                expected: 2
            })
        );

        // Deleted and renumbered: the next entry's link breaks.
        let mut renumbered = chain(5);
        renumbered.remove(1);
        for r in renumbered.iter_mut().skip(1) {
            r.seq -= 1;
        }
        assert_eq!(first_break(&renumbered), Some(ChainBreak::Link { seq: 2 }));

        // Re-hashed after an edit: the entry verifies on its own, the next one's link breaks.
        let mut rehashed = chain(5);
        rehashed[1].at_ms += 1;
        rehashed[1].hash = entry_hash(
            &rehashed[1].prev_hash,
            "s1",
            2,
            rehashed[1].at_ms,
            rehashed[1].pts_ms,
            &rehashed[1].screen,
        );
        assert_eq!(first_break(&rehashed), Some(ChainBreak::Link { seq: 3 }));
    }
}
