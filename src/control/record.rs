//! After the show: what was on screen at a moment (the on-screen record), a session's
//! recordings, and a recording's files (its playlist and segments, public like the live HLS).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use crate::record::recording::{PLAYLIST, Recorder};
use crate::store::Store;
use crate::store::onscreen::OnscreenRow;
use crate::store::recordings::RecordingRow;
use std::sync::Arc;

handles! {
    /// What the after-the-show routes use.
    RecordRoutes {
        store: Arc<Store>,
        recorder: Arc<Recorder>,
        shows: crate::shows::Shows,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct At {
    /// The moment, in Unix milliseconds.
    at: i64,
}

/// One entry of the record as the API shows it.
pub fn entry_json(row: &OnscreenRow) -> serde_json::Value {
    json!({
        "seq": row.seq,
        "at_ms": row.at_ms,
        "pts_ms": row.pts_ms,
        "screen": serde_json::from_str::<serde_json::Value>(&row.screen).unwrap_or_default(),
        "hash": row.hash,
    })
}

/// What the session's video showed at a moment: the on-screen record's last entry at or
/// before it (the card's product, price and stock as drawn, the countdown's end, the toast,
/// the layers up).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/onscreen", tag = "after the show", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), At),
    responses((status = 200, description = "`{session_id, at, since_ms, entry: {seq, at_ms, pts_ms, screen, hash}}`: `entry` was on screen from `at_ms` (its first frame) through `at`", body = Object),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session, or nothing recorded on its screen by then", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn onscreen(
    State(state): State<RecordRoutes>,
    Path(id): Path<String>,
    Query(At { at }): Query<At>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let row = state.store.onscreen_at(&id, at)?.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "nothing was recorded on this session's screen by then",
        )
    })?;
    Ok(ApiJson(json!({
        "session_id": id,
        "at": at,
        "since_ms": at - row.at_ms,
        "entry": entry_json(&row),
    })))
}

/// A recording as the API shows it, with its playlist's URL while its files exist.
pub fn recording_json(base: &str, r: &RecordingRow) -> serde_json::Value {
    json!({
        "id": r.id,
        "session_id": r.session_id,
        "state": r.state,
        "reason": r.reason,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "segments": r.segments,
        "bytes": r.bytes,
        "duration_ms": r.duration_ms,
        "stored_in": r.place,
        "url": (r.state != "deleted").then(|| recording_url(base, &r.id)),
    })
}

/// The playlist of a recording.
pub fn recording_url(base: &str, recording_id: &str) -> String {
    format!("{base}/recordings/{recording_id}/{PLAYLIST}")
}

/// A session's recordings whose files are kept, newest first.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/recordings", tag = "after the show", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "`{recordings: [{id, state, reason, started_at, ended_at, segments, bytes, duration_ms, stored_in, url}], used_bytes, budget_bytes}`: `stored_in` is `disk` or `object_store` (all its files moved there); `used_bytes` is what recordings take on disk", body = Object),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn recordings(
    State(state): State<RecordRoutes>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let base = state.shows.http_base();
    let list: Vec<_> = state
        .store
        .session_recordings(&id)?
        .into_iter()
        .map(|mut r| {
            // A growing recording's progress is the recorder's until it ends.
            if let Some(p) = state.recorder.progress(&r.id) {
                (r.segments, r.bytes, r.duration_ms) = (p.segments, p.bytes, p.duration_ms);
            }
            recording_json(&base, &r)
        })
        .collect();
    Ok(ApiJson(json!({
        "recordings": list,
        "used_bytes": state.recorder.used(),
        "budget_bytes": state.recorder.budget_bytes(),
    })))
}

/// `GET /recordings/{recording_id}/{file}`: a recording's playlist (`index.m3u8`) or one of
/// its segments (`seg000000.ts`).
#[utoipa::path(get, path = "/recordings/{recording_id}/{file}", tag = "after the show", params(("recording_id" = String, Path, description = "Recording id"), ("file" = String, Path, description = "`index.m3u8` or `segNNNNNN.ts`")),
    responses((status = 200, description = "The playlist (an EVENT playlist while the show is live, VOD once it ended) or an MPEG-TS segment", body = Vec<u8>, content_type = "video/mp2t"),
        (status = 404, description = "No such recording or file (or its files were deleted)", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The recording's file is in the object store, which did not answer", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn file(
    State(state): State<RecordRoutes>,
    Path((recording_id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found("recording file");
    let path = state
        .recorder
        .file(&recording_id, &name)
        .ok_or_else(missing)?;
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes::Bytes::from(bytes),
        Err(_) => {
            // Moved to the object store, if there is one.
            let archive = state.recorder.archive().ok_or_else(missing)?;
            archive
                .get(&recording_id, &name)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "a recording's file could not be read from the object store");
                    ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "the object store holding this recording did not answer",
                    )
                })?
                .ok_or_else(missing)?
        }
    };
    let (content_type, cache) = if name == PLAYLIST {
        let growing = state
            .store
            .recording(&recording_id)?
            .is_some_and(|r| r.state == "recording");
        (
            "application/vnd.apple.mpegurl",
            if growing {
                "no-cache"
            } else {
                "public, max-age=60"
            },
        )
    } else {
        ("video/mp2t", "public, max-age=31536000, immutable")
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(response)
}
