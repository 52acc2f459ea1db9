//! A session's restream destinations: add (URL and key; the key is write-only), list with
//! each one's state, remove. A live show starts pushing to a new destination at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use crate::store::Store;
use fieldcast_core::ids::random_hex;
use fieldcast_core::time::unix_now;
use fieldcast_engine::restream::{Destination, Restreams};
use fieldcast_engine::studio::Studios;
use std::sync::Arc;

handles! {
    /// What the restream routes use.
    RestreamRoutes {
        store: Arc<Store>,
        studios: Arc<Studios>,
        restreams: Arc<Restreams>,
    }
}

/// Destinations one session may have.
pub const MAX_DESTINATIONS: usize = 10;
const MAX_URL: usize = 512;
const MAX_KEY: usize = 512;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDestination {
    /// The server, as OBS's "Server" field: `rtmp://host[:port]/app` or `rtmps://…`, in
    /// printable ASCII (no spaces).
    #[schema(max_length = 512, pattern = "^rtmps?://[!-.0-~][!-~]*$")]
    url: String,
    /// The stream key, printable ASCII (no spaces): kept to push with, never shown again.
    #[schema(min_length = 1, max_length = 512, pattern = "^[!-~]+$")]
    key: String,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable(format!("`{field}` {why}"))
}

/// Printable ASCII, no spaces: what a URL or a key may hold.
fn printable(text: &str) -> bool {
    text.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

fn valid_url(url: &str) -> Result<String, ApiError> {
    let rest = url
        .strip_prefix("rtmp://")
        .or_else(|| url.strip_prefix("rtmps://"))
        .ok_or_else(|| invalid("url", "must begin with rtmp:// or rtmps://"))?;
    if url.len() > MAX_URL {
        return Err(invalid(
            "url",
            format!("is longer than {MAX_URL} characters"),
        ));
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid("url", "names no host"));
    }
    if !printable(url) {
        return Err(invalid("url", "must be printable ASCII, without spaces"));
    }
    Ok(url.to_string())
}

fn valid_key(key: &str) -> Result<String, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(invalid("key", format!("must be 1 to {MAX_KEY} characters")));
    }
    if !printable(key) {
        return Err(invalid("key", "must be printable ASCII, without spaces"));
    }
    Ok(key.to_string())
}

/// A destination as the API shows it: its URL without the key, and its state (`idle` while
/// the show is off air).
fn view(restreams: &Restreams, d: &Destination) -> serde_json::Value {
    let status = restreams.status(&d.id);
    let mut v = json!({
        "id": d.id,
        "url": d.url,
        "key": "(set)",
        "state": "idle",
    });
    if let Some(s) = status
        && let (Some(o), serde_json::Value::Object(extra)) = (v.as_object_mut(), json!(s))
    {
        o.extend(extra);
    }
    v
}

fn find_session(state: &RestreamRoutes, id: &str) -> Result<(), ApiError> {
    state
        .store
        .session(id)?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("session"))
}

/// Adds a destination: a live show is pushed to it at once, a show off air from when it goes
/// live.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/restreams", tag = "after the show", security(("operator" = [])), params(("id" = String, Path, description = "Session id")), request_body = NewDestination,
    responses((status = 201, description = "`{id, url, key: \"(set)\", state, …}`: the destination (its key is never shown)", body = Object),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session has as many destinations as it may", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<RestreamRoutes>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewDestination>,
) -> Result<impl IntoResponse, ApiError> {
    find_session(&state, &id)?;
    let destination = Destination {
        id: format!("rs_{}", random_hex(6)),
        session_id: id.clone(),
        url: valid_url(&body.url)?,
        key: valid_key(&body.key)?,
    };
    if state.store.restreams(&id)?.len() >= MAX_DESTINATIONS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a session may restream to {MAX_DESTINATIONS} destinations at most"),
        ));
    }
    state.store.insert_restream(&destination, unix_now())?;
    tracing::info!(session.id = %id, restream = %destination.id, url = %destination.url, "restream destination added");
    if let Some(studio) = state.studios.get(&id) {
        state.restreams.start(destination.clone(), studio);
    }
    Ok((
        StatusCode::CREATED,
        ApiJson(view(&state.restreams, &destination)),
    ))
}

/// The session's destinations, each with its state: `idle` (the show is off air),
/// `connecting`, `connected` or `retrying` (with the `reason` of the last failure and
/// `retry_at_ms`), and counts of attempts, failures and bytes sent.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/restreams", tag = "after the show", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "`{restreams: [{id, url, key, state, reason?, since_ms, retry_at_ms?, attempts, failures, bytes}]}`", body = Object),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<RestreamRoutes>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    find_session(&state, &id)?;
    let list: Vec<_> = state
        .store
        .restreams(&id)?
        .iter()
        .map(|d| view(&state.restreams, d))
        .collect();
    Ok(ApiJson(json!({ "restreams": list })))
}

/// Removes a destination; a push to it stops.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}/restreams/{restream_id}", tag = "after the show", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("restream_id" = String, Path, description = "Destination id")),
    responses((status = 204, description = "Removed"),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or destination", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<RestreamRoutes>,
    Path((id, restream_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.store.delete_restream(&id, &restream_id)? {
        return Err(ApiError::not_found("restream destination"));
    }
    state.restreams.stop(&restream_id);
    Ok(StatusCode::NO_CONTENT)
}
