//! Webhooks: events leave through the outbox table, signed, retried with backoff.
//!
//! Signature: header `Fieldcast-Signature: t=UNIX_SECONDS,v1=HEX` where HEX is
//! HMAC-SHA256(secret, "UNIX_SECONDS.BODY"). Also sent: `Fieldcast-Event-Id` (dedupe on it:
//! delivery is at least once) and `Fieldcast-Event-Type`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::store::Store;
use crate::store::commerce::{OutboxRow, WebhookRow};
use fieldcast_core::time::unix_now;

/// Deliveries attempted per endpoint and pass.
const BATCH: i64 = 64;
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// First retry after this many seconds, doubling up to [`MAX_BACKOFF_S`].
const FIRST_BACKOFF_S: i64 = 1;
const MAX_BACKOFF_S: i64 = 300;
/// With nothing due, look again this often (new events also wake the dispatcher).
const IDLE_POLL: Duration = Duration::from_millis(500);

pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn backoff_s(attempts: i64) -> i64 {
    (FIRST_BACKOFF_S << attempts.clamp(0, 16)).min(MAX_BACKOFF_S)
}

/// Runs forever: delivers due outbox entries. Each endpoint has its own delivery task, so a
/// dead or slow endpoint delays only its own events (up to [`TIMEOUT`] each), never another
/// endpoint's. An endpoint's events go in order; after a failure the rest wait for the next
/// pass (the failed one backs off).
pub async fn dispatch(store: Arc<Store>, wake: Arc<Notify>) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut in_flight: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        in_flight.retain(|_, task| !task.is_finished());
        let hooks = store.webhooks().unwrap_or_else(|e| {
            tracing::error!(error = %e, "webhooks read failed");
            Vec::new()
        });
        for hook in hooks {
            if in_flight.contains_key(&hook.id) {
                continue;
            }
            let due = store
                .due_deliveries(&hook.id, unix_now(), BATCH)
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "outbox read failed");
                    Vec::new()
                });
            if due.is_empty() {
                continue;
            }
            let (store, agent, id) = (store.clone(), agent.clone(), hook.id.clone());
            let task = tokio::spawn(async move {
                for entry in due {
                    if !deliver(&store, &agent, &hook, entry).await {
                        return;
                    }
                }
            });
            in_flight.insert(id, task);
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

/// One delivery attempt, recorded in the outbox. True when the endpoint took it.
async fn deliver(store: &Store, agent: &ureq::Agent, hook: &WebhookRow, entry: OutboxRow) -> bool {
    let (agent, url, secret) = (agent.clone(), hook.url.clone(), hook.secret.clone());
    let body = entry.body.clone();
    let (event_id, event_type) = (entry.event_id.clone(), entry.event_type.clone());
    let result = tokio::task::spawn_blocking(move || {
        let t = unix_now();
        let signature = format!("t={t},v1={}", sign(&secret, t, &body));
        agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Fieldcast-Event-Id", &event_id)
            .header("Fieldcast-Event-Type", &event_type)
            .header("Fieldcast-Signature", &signature)
            .send(body.as_str())
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let now = unix_now();
    let (delivered, stored) = match result {
        Ok(status) if (200..300).contains(&status) => (true, store.mark_delivered(entry.seq, now)),
        Ok(status) => (
            false,
            store.mark_failed(
                entry.seq,
                now + backoff_s(entry.attempts),
                &format!("HTTP {status}"),
            ),
        ),
        Err(e) => (
            false,
            store.mark_failed(entry.seq, now + backoff_s(entry.attempts), &e),
        ),
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "outbox update failed");
    }
    delivered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently with openssl.
        assert_eq!(
            sign("secret", 1_700_000_000, "{}"),
            "b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(sign("secret", 1, "{}"), sign("secret", 2, "{}"));
        assert_eq!(backoff_s(0), 1);
        assert_eq!(backoff_s(3), 8);
        assert_eq!(backoff_s(40), MAX_BACKOFF_S);
    }
}
