//! Selling: products, flash-sale offers, the stock ledger, orders, likes, live state and
//! webhooks. Rules live in `rules` (sans-IO); every stock change goes through `ledger`; all
//! SQL is in `store::commerce`.

pub mod buyers;
pub mod devices;
pub mod ledger;
pub mod live;
pub mod rate;
pub mod views;
pub mod webhooks;

pub use views::product_json;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Store;

pub use ledger::StockLedger;

/// Likes are written to SQLite this often (they are counted in memory in between).
const LIKES_FLUSH: Duration = Duration::from_secs(1);
/// Idempotency records are kept this long (as Stripe keeps its keys): a retry with the same
/// `Idempotency-Key` within it replays the first answer.
pub const IDEMPOTENCY_KEEP_S: i64 = 24 * 3600;
/// Delivered webhook events are kept this long in the outbox, for looking into.
pub const DELIVERED_KEEP_S: i64 = 24 * 3600;
/// How often old idempotency records and delivered events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The clock that ends offers ticks this often.
const OFFER_CLOCK: Duration = Duration::from_millis(250);

pub struct Commerce {
    pub ledger: StockLedger,
    pub live: Arc<live::LiveHub>,
    /// Wakes the webhook dispatcher after a commit.
    pub webhook_wake: Arc<Notify>,
}

/// Starts the background work of selling: likes flushing, the offer clock, webhooks, and
/// pruning old idempotency records and delivered events.
pub fn spawn_background(commerce: &Commerce, store: Arc<Store>) {
    tokio::spawn(webhooks::dispatch(
        store.clone(),
        commerce.webhook_wake.clone(),
    ));
    let pruner = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let store = pruner.clone();
            let now = fieldcast_core::time::unix_now();
            let pruned = tokio::task::spawn_blocking(move || {
                store.prune(now - IDEMPOTENCY_KEEP_S, now - DELIVERED_KEEP_S)
            })
            .await;
            match pruned {
                Ok(Ok((0, 0))) => {}
                Ok(Ok((keys, events))) => {
                    tracing::info!(
                        keys,
                        events,
                        "pruned old idempotency records and delivered events"
                    )
                }
                Ok(Err(e)) => tracing::error!(error = %e, "pruning failed"),
                Err(e) => tracing::error!(error = %e, "pruning task failed"),
            }
        }
    });
    let ledger = commerce.ledger.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(OFFER_CLOCK);
        loop {
            tick.tick().await;
            ledger.end_due_offers();
        }
    });
    let live = commerce.live.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LIKES_FLUSH);
        loop {
            tick.tick().await;
            flush_likes(&live, &store);
        }
    });
}

/// Writes counted likes to SQLite.
pub fn flush_likes(live: &live::LiveHub, store: &Store) {
    for live in live.known() {
        let pending = live.pending_likes.swap(0, Ordering::Relaxed);
        if pending > 0
            && let Err(e) = store.add_likes(&live.session_id, pending)
        {
            live.pending_likes.fetch_add(pending, Ordering::Relaxed);
            tracing::error!(error = %e, "likes flush failed");
        }
    }
}
