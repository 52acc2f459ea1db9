//! Sessions: create, list, get, patch (title, on air, orientation), delete, rotate the
//! stream key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson};
use crate::commerce::live::LiveHub;
use crate::shows::SessionState;
use crate::shows::Shows;
use crate::store::SessionRow;
use crate::store::Store;
use fieldcast_core::ids::{new_stream_key, redact};
use fieldcast_core::time::unix_now;
use fieldcast_engine::ingest::health::IngestBoard;
use fieldcast_engine::media::Orientation;
use fieldcast_engine::studio::Studios;
use std::sync::Arc;

handles! {
    /// What the session routes use.
    Sessions {
        shows: Shows,
        store: Arc<Store>,
        studios: Arc<Studios>,
        live: Arc<LiveHub>,
        ingest_health: Arc<IngestBoard>,
    }
}

/// Longest session title accepted.
const MAX_TITLE: usize = 200;

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    id: String,
    title: String,
    stream_key: String,
    /// Full publish URL (server + key), for ffmpeg and phone apps.
    rtmp_url: String,
    /// The "Server" field of OBS; the key goes in "Stream Key".
    rtmp_server: String,
    /// The complete SRT publish URL, key included (`srt://HOST:PORT?streamid=KEY`): OBS,
    /// Larix and ffmpeg use it as given.
    srt_url: String,
    /// WHIP (RFC 9725) endpoint: POST an SDP offer with `Authorization: Bearer STREAM_KEY`.
    whip_url: String,
    /// The phone publish page, the key in its fragment (never sent to a server): open it on
    /// the host's phone, or scan the console's QR code.
    publish_page_url: String,
    whep_url: String,
    /// The multivariant HLS playlist (both renditions, low-latency), for any HLS player.
    hls_url: String,
    watch_url: String,
    state: SessionState,
    /// `landscape` (1280×720), `portrait` (720×1280) or `auto` (follows the first publisher).
    orientation: Orientation,
    viewers: usize,
    /// WebRTC viewers on each rendition now (`main`, `light`).
    #[schema(value_type = std::collections::BTreeMap<String, usize>)]
    viewers_by_rendition: std::collections::BTreeMap<&'static str, usize>,
    /// The show is recorded when it goes on air (on unless turned off).
    record: bool,
    /// The shoppable replay page: the recording, chapters at each product, buying.
    replay_url: String,
    /// The newest recording's playlist (VOD once the show ended), once a recording exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_url: Option<String>,
    created_at: i64,
}

fn view(state: &Sessions, row: SessionRow) -> SessionView {
    let base = state.shows.http_base();
    let record = state.store.session_records(&row.id).unwrap_or(true);
    let recording_url = state
        .store
        .session_recordings(&row.id)
        .ok()
        .and_then(|r| r.into_iter().next())
        .map(|r| super::record::recording_url(&base, &r.id));
    let rtmp_server = state.shows.rtmp_server();
    SessionView {
        rtmp_url: format!("{rtmp_server}/{}", row.stream_key),
        rtmp_server,
        srt_url: state.shows.links.srt_url(&row.stream_key),
        whip_url: format!("{base}/whip/{}", row.id),
        publish_page_url: format!("{base}/studio/{}#key={}", row.id, row.stream_key),
        whep_url: format!("{base}/whep/{}", row.id),
        hls_url: format!("{base}/hls/{}/master.m3u8", row.id),
        watch_url: format!("{base}/watch/{}", row.id),
        replay_url: format!("{base}/replay/{}", row.id),
        state: state.shows.session_state(&row),
        viewers: state.studios.viewers(&row.id),
        viewers_by_rendition: state
            .studios
            .viewers_by_rendition(Some(&row.id))
            .into_iter()
            .map(|(r, n)| (r.name(), n))
            .collect(),
        orientation: row.orientation,
        record,
        recording_url,
        id: row.id,
        title: row.title,
        stream_key: row.stream_key,
        created_at: row.created_at,
    }
}

fn valid_title(title: &str) -> Result<String, ApiError> {
    super::fields::text("title", title, MAX_TITLE)
}

fn find(state: &Sessions, id: &str) -> Result<SessionRow, ApiError> {
    state
        .store
        .session(id)?
        .ok_or_else(|| ApiError::not_found("session"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\r]")]
    title: String,
}

/// Creates a session with a fresh stream key; it goes on air when a publisher connects.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", security(("operator" = [])), request_body = CreateSession,
    responses((status = 201, description = "The new session, with its stream key", body = SessionView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<Sessions>,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<impl IntoResponse, ApiError> {
    let title = valid_title(&body.title)?;
    let row = state.shows.create_session(&title, false)?;
    Ok((StatusCode::CREATED, ApiJson(view(&state, row))))
}

/// Lists all sessions, oldest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", security(("operator" = [])),
    responses((status = 200, description = "Every session not archived, oldest first", body = [SessionView]), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(State(state): State<Sessions>) -> Result<impl IntoResponse, ApiError> {
    let rows = state.store.sessions()?;
    Ok(ApiJson(
        rows.into_iter()
            .map(|r| view(&state, r))
            .collect::<Vec<_>>(),
    ))
}

/// One session with its live state.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The session with its live state", body = SessionView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<Sessions>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(view(&state, find(&state, &id)?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    Live,
    Idle,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSession {
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\r]")]
    title: Option<String>,
    /// `live` puts the session on air (slate until a publisher connects); `idle` ends the show.
    state: Option<TargetState>,
    /// Turns the output; a live show turns at its next keyframe.
    orientation: Option<Orientation>,
    /// Record the show (on by default); applies from the next time it goes on air.
    record: Option<bool>,
}

/// Changes the title, or puts the session on or off air.
#[utoipa::path(patch, path = "/api/v1/sessions/{id}", tag = "sessions", security(("operator" = [])), params(("id" = String, Path, description = "Session id")), request_body = PatchSession,
    responses((status = 200, description = "The session as changed", body = SessionView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(state): State<Sessions>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchSession>,
) -> Result<impl IntoResponse, ApiError> {
    let row = find(&state, &id)?;
    if let Some(title) = body.title {
        state.store.set_session_title(&id, &valid_title(&title)?)?;
    }
    if let Some(record) = body.record {
        state.store.set_session_records(&id, record)?;
    }
    if let Some(orientation) = body.orientation {
        state.store.set_session_orientation(&id, orientation)?;
        if let Some(studio) = state.studios.get(&id) {
            studio.orient(orientation).await;
        }
    }
    match body.state {
        Some(TargetState::Live) => {
            state.shows.go_live(&row)?;
        }
        Some(TargetState::Idle) => state.shows.end_show(&id)?,
        None => {}
    }
    Ok(ApiJson(view(&state, find(&state, &id)?)))
}

/// Ends the show and archives the session: it leaves the lists and its key stops working;
/// its offers and orders stay queryable (orders are accounting records).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Archived: the show ended, the key stopped working; orders stay"), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<Sessions>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // The database first: once it says archived, stopping the show cannot leave it half done.
    if !state.store.archive_session(&id, unix_now())? {
        return Err(ApiError::not_found("session"));
    }
    state.studios.stop(&id);
    state.live.forget(&id);
    tracing::info!(session.id = %id, "session archived; its orders stay");
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new stream key; the old one is refused from now on.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/rotate-key", tag = "sessions", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The session with its new stream key", body = SessionView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn rotate_key(
    State(state): State<Sessions>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    find(&state, &id)?;
    let key = new_stream_key();
    state.store.set_stream_key(&id, &key)?;
    tracing::info!(session.id = %id, stream_key = %redact(&key), "stream key rotated");
    Ok(ApiJson(view(&state, find(&state, &id)?)))
}

/// What the ingest path sees of the session's publisher: connected or not, since when and
/// from where (masked), codec, profile, size, frame rate, bitrate, keyframe interval,
/// B-frames, dropped frames and reconnects.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/ingest", tag = "sessions", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The publisher's health", body = fieldcast_engine::ingest::health::IngestView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn ingest(
    State(state): State<Sessions>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    find(&state, &id)?;
    Ok(ApiJson(state.ingest_health.view(&id)))
}
