//! Public live interaction: likes, and the live state, both as versions any HTTP cache can
//! share (`state`, for the mass audience) and as a stream (SSE, for the console and small
//! shows).

use std::convert::Infallible;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::cacheable::{answer, open_to_all};
use super::client::PublicLimits;
use super::client::{Client, PublicRoute};
use super::error::{ApiError, ApiJson};
use crate::commerce::live::LiveHub;
use crate::commerce::live::with_number;
use crate::store::Store;
use fieldcast_core::time::now_ms;
use std::sync::Arc;
use tokio::sync::watch;

handles! {
    /// What the live-state routes use.
    Live {
        store: Arc<Store>,
        live: Arc<LiveHub>,
        public: Arc<PublicLimits>,
        shutdown: watch::Sender<bool>,
    }
}

/// Most likes one request may carry (a phone batches taps).
pub const MAX_LIKES_PER_REQUEST: i64 = 100;

/// One Server-Sent Event of `…/events`: `state` with the live state as JSON in `data`, or
/// `end` (the show ended or the server is stopping) before the stream closes.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LiveEvent {
    #[schema(inline)]
    event: LiveEventName,
    /// The live state (a JSON object); for `end`, why (`ended`, `shutdown`).
    data: String,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum LiveEventName {
    State,
    End,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Likes {
    /// Taps since the last batch.
    #[schema(minimum = 1, maximum = 100)]
    count: i64,
}

/// Counts likes (202): aggregated in memory, written to SQLite every second.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/likes", tag = "live", params(("id" = String, Path, description = "Session id")), request_body = Likes,
    responses((status = 202, description = "Counted: `{counted}`", body = Object), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json"), (status = 429, description = "Too many requests from this address (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn like(
    State(state): State<Live>,
    Path(session_id): Path<String>,
    Client(client): Client,
    ApiJson(body): ApiJson<Likes>,
) -> Result<impl IntoResponse, ApiError> {
    if !(1..=MAX_LIKES_PER_REQUEST).contains(&body.count) {
        return Err(ApiError::unprocessable(format!(
            "count: between 1 and {MAX_LIKES_PER_REQUEST}"
        )));
    }
    state.public.check(PublicRoute::Likes, client)?;
    if state.store.session(&session_id)?.is_none() {
        return Err(ApiError::not_found("session"));
    }
    state.live.session(&session_id).add_likes(body.count);
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(serde_json::json!({ "counted": body.count })),
    ))
}

/// The snapshot (a JSON object) with the server's clock as it leaves, `server_time_ms`: a page
/// counts offers down on the server's time, corrected for its own clock's offset. Added per
/// event so that the shared snapshot stays the same between changes.
fn with_server_time(snapshot: &str, now_ms: i64) -> String {
    with_number(snapshot, "server_time_ms", now_ms)
}

/// Server-Sent Events: the whole live state on connect, then each change (at most 10 a
/// second). A slow client skips to the latest state.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/events", tag = "live", params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Server-Sent Events: the live state (`likes`, `pinned`, `offers`, `toasts`, `picture`, `server_time_ms`) on connect and after each change", body = LiveEvent, content_type = "text/event-stream"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"), (status = 429, description = "Too many requests from this address (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn events(
    State(state): State<Live>,
    Path(session_id): Path<String>,
    Client(client): Client,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if state.store.session(&session_id)?.is_none() {
        return Err(ApiError::not_found("session"));
    }
    // Held by the stream: the place is given back when the client goes.
    let guard = state.public.open_events(client)?;
    let live = state.live.session(&session_id);
    let mut rx = live.subscribe();
    rx.mark_changed();
    let shutdown = state.shutdown.subscribe();
    // The stream ends with an `end` event when the server shuts down.
    let stream = stream::unfold(Some((rx, live, guard, shutdown)), |open| async move {
        let (mut rx, live, guard, mut shutdown) = open?;
        loop {
            if *shutdown.borrow_and_update() {
                return Some((Ok(Event::default().event("end").data("shutdown")), None));
            }
            tokio::select! {
                changed = rx.changed() => changed.ok()?,
                gone = shutdown.changed() => {
                    gone.ok()?;
                    continue;
                }
            }
            let snapshot = rx.borrow_and_update().json.clone();
            // Empty only before the first snapshot is built.
            if !snapshot.is_empty() {
                return Some((
                    Ok(Event::default()
                        .event("state")
                        .data(with_server_time(&snapshot, now_ms()))),
                    Some((rx, live, guard, shutdown)),
                ));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Longest a reader waits for a version after its `after`: above the publisher's heartbeat
/// (`commerce::live::HEARTBEAT`, 3 s), so every such wait ends with a newer version.
const STATE_WAIT: Duration = Duration::from_secs(5);
/// The current state: a cache may share it for a second.
const STATE_NOW: &str = "public, max-age=1";
/// A version after `after`: true of that answer whenever it is read, so a cache may share it
/// for 2 s, as it does a blocking playlist reload.
const STATE_AFTER: &str = "public, max-age=2";
/// How far past the server's clock an `after` may be (versions are Unix milliseconds).
const MAX_AFTER_AHEAD_MS: i64 = 60_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// A version the reader has: the answer is a newer one, waited for up to 5 s.
    after: Option<u64>,
}

/// The live state as a version (`version`, Unix ms, always increasing), for readers behind
/// any HTTP cache: without `after` the current one; with `after=N` the first version after N,
/// held until it exists (at most 5 s; one comes at least every 3 s). Identical requests get
/// identical answers, so a cache (nginx's `proxy_cache_lock`, a CDN) sends one of them to the
/// origin per version. `ETag` is the version.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/state", tag = "live", params(("id" = String, Path, description = "Session id"), StateQuery),
    responses((status = 200, description = "The live state (as the `events` stream's `state` event) with its `version`", body = Object),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "`after` is not a number", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No newer state came in time (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn state(
    State(state): State<Live>,
    Path(session_id): Path<String>,
    Query(query): Query<StateQuery>,
    headers: HeaderMap,
) -> Response {
    open_to_all(
        async {
            if state.store.session(&session_id)?.is_none() {
                return Err(ApiError::not_found("session"));
            }
            // A version from the future is none this server gave (a reader that kept one
            // across a restart whose clock is behind): it gets the current one at once.
            let after = query
                .after
                .filter(|a| *a as i128 <= (now_ms() + MAX_AFTER_AHEAD_MS) as i128)
                .unwrap_or(0);
            let live = state.live.session(&session_id);
            let mut rx = live.subscribe();
            let waited = tokio::time::timeout(
                STATE_WAIT,
                rx.wait_for(|p| !p.json.is_empty() && p.version > after),
            )
            .await;
            let published = match waited {
                Ok(Ok(published)) => published.clone(),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no newer live state came in time; ask again",
                    )
                    .retry_after(1));
                }
            };
            live.state_answers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let cache = if query.after.is_some() {
                STATE_AFTER
            } else {
                STATE_NOW
            };
            Ok(answer(
                &headers,
                format!("\"{}\"", published.version),
                UNIX_EPOCH + Duration::from_millis(published.version),
                cache,
                "application/json",
                with_server_time(&published.json, now_ms()),
            ))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::with_server_time;

    #[test]
    fn the_server_time_joins_the_snapshot_as_valid_json() {
        let with = with_server_time(r#"{"likes":3}"#, 1_700_000_000_123);
        let v: serde_json::Value = serde_json::from_str(&with).unwrap();
        assert_eq!(v["likes"], 3);
        assert_eq!(v["server_time_ms"], 1_700_000_000_123i64);
        let empty: serde_json::Value = serde_json::from_str(&with_server_time("{}", 5)).unwrap();
        assert_eq!(empty["server_time_ms"], 5);
    }
}
