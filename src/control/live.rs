//! Public live interaction: likes, and the live state stream (SSE).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use crate::app::AppState;

/// Most likes one request may carry (a phone batches taps).
pub const MAX_LIKES_PER_REQUEST: i64 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Likes {
    count: i64,
}

/// Counts likes (202): aggregated in memory, written to SQLite every second.
pub async fn like(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(body): ApiJson<Likes>,
) -> Result<impl IntoResponse, ApiError> {
    if !(1..=MAX_LIKES_PER_REQUEST).contains(&body.count) {
        return Err(ApiError::unprocessable(format!(
            "count: between 1 and {MAX_LIKES_PER_REQUEST}"
        )));
    }
    let who = peer.map(|p| p.0.0.ip().to_string()).unwrap_or_default();
    if !state.commerce.like_limiter.allow(&who, Instant::now()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many likes; batch taps into one request",
        ));
    }
    if state.store.session(&session_id)?.is_none() {
        return Err(ApiError::not_found("session"));
    }
    state
        .commerce
        .live
        .session(&state, &session_id)
        .add_likes(body.count);
    Ok(StatusCode::ACCEPTED)
}

/// Server-Sent Events: the whole live state on connect, then each change (at most 10 a
/// second). A slow client skips to the latest state.
pub async fn events(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if state.store.session(&session_id)?.is_none() {
        return Err(ApiError::not_found("session"));
    }
    let live = state.commerce.live.session(&state, &session_id);
    let mut rx = live.subscribe();
    rx.mark_changed();
    let stream = stream::unfold((rx, live), |(mut rx, live)| async move {
        loop {
            rx.changed().await.ok()?;
            let snapshot = rx.borrow_and_update().clone();
            // Empty only before the first snapshot is built.
            if !snapshot.is_empty() {
                return Some((
                    Ok(Event::default().event("state").data(&*snapshot)),
                    (rx, live),
                ));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
