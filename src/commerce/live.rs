//! Live state per session: likes, viewers, the pinned product, offers and purchase toasts,
//! as one JSON snapshot that SSE clients (and later the overlays) read.
//!
//! Changes only mark the session dirty; one publisher task per session rebuilds the snapshot
//! at most [`MAX_UPDATES_PER_S`] times a second and puts it in a `watch` channel, so a slow
//! client only ever gets the latest state and costs the others nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::ledger::{Effect, now_ms, offer_json};
use crate::app::AppState;

pub const MAX_UPDATES_PER_S: u64 = 10;
/// Purchase toasts kept per session.
pub const TOAST_HISTORY: usize = 5;
/// How often the publisher looks at values nobody announces (the viewer count).
const POLL_EVERY: Duration = Duration::from_secs(1);

pub struct SessionLive {
    dirty: watch::Sender<u64>,
    snapshot: watch::Sender<Arc<str>>,
    /// Likes counted but not yet written to SQLite.
    pub pending_likes: AtomicI64,
    toasts: Mutex<VecDeque<Value>>,
}

impl SessionLive {
    pub fn touch(&self) {
        self.dirty.send_modify(|v| *v += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<str>> {
        self.snapshot.subscribe()
    }

    fn push_toast(&self, text: String) {
        let mut toasts = self.toasts.lock().unwrap_or_else(|e| e.into_inner());
        toasts.push_back(json!({"text": text, "at": now_ms() / 1000}));
        while toasts.len() > TOAST_HISTORY {
            toasts.pop_front();
        }
    }
}

pub struct LiveHub {
    sessions: Mutex<HashMap<String, Arc<SessionLive>>>,
    /// Publishers are spawned here: changes also arrive from the ledger's own thread.
    runtime: tokio::runtime::Handle,
}

impl LiveHub {
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Self { sessions: Mutex::new(HashMap::new()), runtime }
    }

    /// The session's live state, starting its publisher on first use.
    pub fn session(&self, app: &AppState, session_id: &str) -> Arc<SessionLive> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = sessions.get(session_id) {
            return live.clone();
        }
        let (dirty, mut dirty_rx) = watch::channel(0);
        // Empty until the publisher builds the first snapshot, right away.
        dirty_rx.mark_changed();
        let (snapshot, _) = watch::channel(Arc::from(""));
        let live = Arc::new(SessionLive { dirty, snapshot, pending_likes: AtomicI64::new(0), toasts: Mutex::new(VecDeque::new()) });
        sessions.insert(session_id.to_string(), live.clone());
        self.runtime.spawn(publish(app.clone(), session_id.to_string(), live.clone(), dirty_rx));
        live
    }

    pub fn known(&self) -> Vec<(String, Arc<SessionLive>)> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn forget(&self, session_id: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(session_id);
    }

    /// Applies what the ledger committed.
    pub fn apply(&self, app: &AppState, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Changed { session_id } => self.session(app, &session_id).touch(),
                Effect::Purchase { session_id, toast } => {
                    let live = self.session(app, &session_id);
                    live.push_toast(toast);
                    live.touch();
                }
            }
        }
    }
}

async fn publish(app: AppState, session_id: String, live: Arc<SessionLive>, mut dirty: watch::Receiver<u64>) {
    let pause = Duration::from_millis(1000 / MAX_UPDATES_PER_S);
    loop {
        let woke = tokio::select! {
            changed = dirty.changed() => changed.is_ok(),
            _ = tokio::time::sleep(POLL_EVERY) => true,
        };
        // Stop once the hub forgot the session (deleted) and no client holds it.
        if !woke || Arc::strong_count(&live) == 1 {
            return;
        }
        dirty.mark_unchanged();
        let toasts = live.toasts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let app2 = app.clone();
        let id = session_id.clone();
        let snapshot = tokio::task::spawn_blocking(move || build_snapshot(&app2, &id, &toasts)).await;
        if let Ok(snapshot) = snapshot {
            let text: Arc<str> = Arc::from(snapshot.to_string());
            live.snapshot.send_if_modified(|current| {
                if **current == *text {
                    false
                } else {
                    *current = text;
                    true
                }
            });
        }
        // Coalesce: at most MAX_UPDATES_PER_S snapshots a second.
        tokio::time::sleep(pause).await;
    }
}

/// The whole public state of a session, read from the ledger's own tables.
pub fn build_snapshot(app: &AppState, session_id: &str, toasts: &VecDeque<Value>) -> Value {
    let now = now_ms();
    let pending = app
        .commerce
        .live
        .sessions
        .lock()
        .ok()
        .and_then(|s| s.get(session_id).map(|l| l.pending_likes.load(Ordering::Relaxed)))
        .unwrap_or(0);
    let likes = app.store.likes(session_id).unwrap_or(0) + pending;
    let pinned = app
        .store
        .pinned(session_id)
        .ok()
        .flatten()
        .and_then(|id| app.store.product(&id).ok().flatten())
        .map(|p| super::product_json(&p));
    let offers: Vec<Value> = app
        .store
        .offers_of(session_id)
        .unwrap_or_default()
        .iter()
        .map(|o| offer_json(o, now))
        .collect();
    json!({
        "session_id": session_id,
        "viewers": app.studios.viewers(session_id),
        "likes": likes,
        "pinned": pinned,
        "offers": offers,
        "toasts": toasts,
    })
}
