//! WHEP (draft-ietf-wish-whep): `POST /whep/{session_id}` with an SDP offer, `DELETE` on the
//! returned `Location` to leave. Candidates are all in the answer (ICE-lite), so trickle ICE
//! (`PATCH`) is answered 405.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client::PublicLimits;
use super::client::{Client, PublicRoute};
use super::error::ApiError;
use crate::config::Settings;
use crate::store::Store;
use fieldcast_engine::egress::Egress;
use fieldcast_engine::egress::WhepError;
use fieldcast_engine::studio::Studios;
use std::sync::Arc;

handles! {
    /// What the WHEP routes use.
    Whep {
        store: Arc<Store>,
        public: Arc<PublicLimits>,
        studios: Arc<Studios>,
        settings: Arc<Settings>,
        egress: Egress,
    }
}

/// Plays a session: answers the offer and starts sending once ICE and DTLS are up.
#[utoipa::path(post, path = "/whep/{session_id}", tag = "playback", params(("session_id" = String, Path, description = "Session id")), request_body(content = String, description = "An SDP offer (recvonly H.264 + Opus)", content_type = "application/sdp"),
    responses((status = 201, description = "The SDP answer, with every candidate; `Location` is the viewer's resource", body = String, content_type = "application/sdp"), (status = 400, description = "Not an SDP offer Fieldcast can answer", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"), (status = 415, description = "Not application/sdp", body = super::error::Problem, content_type = "application/problem+json"), (status = 429, description = "Too many requests from this address (Retry-After)", body = super::error::Problem, content_type = "application/problem+json"), (status = 503, description = "The viewer cap is reached (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn offer(
    State(state): State<Whep>,
    Path(session_id): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.public.check(PublicRoute::Whep, client)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the SDP offer as application/sdp, not {content_type:?}"),
        ));
    }
    state
        .store
        .session(&session_id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let studio = state.studios.get(&session_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "the session is not on air yet; try again when the host goes live",
        )
    })?;
    let offer = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8"))?;
    let answer = state
        .egress
        .add_viewer(
            studio,
            offer,
            client,
            state.settings.max_viewers_per_session,
        )
        .await
        .map_err(|e| match e {
            WhepError::BadSdp(_) | WhepError::NoCommonCodec => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            WhepError::PendingFromAddress => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()).retry_after(5)
            }
            WhepError::PendingTotal | WhepError::SessionFull(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(10)
            }
            WhepError::Stopped | WhepError::Rtc(_) => ApiError::internal(e),
        })?;
    let location = format!("/whep/{session_id}/{}", answer.viewer_id);
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
            (header::ETAG, format!("\"{}\"", answer.viewer_id)),
        ],
        answer.sdp,
    )
        .into_response())
}

/// Leaves: the viewer's session ends at once.
#[utoipa::path(delete, path = "/whep/{session_id}/{viewer_id}", tag = "playback", params(("session_id" = String, Path, description = "Session id"), ("viewer_id" = String, Path, description = "Viewer id (from the Location header)")),
    responses((status = 200, description = "The viewer left"), (status = 404, description = "No such viewer", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn leave(
    State(state): State<Whep>,
    Path((session_id, viewer_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.egress.remove_viewer(&session_id, &viewer_id).await {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found("viewer"))
    }
}

/// Trickle ICE and ICE restarts are not supported: the answer has every candidate.
#[utoipa::path(patch, path = "/whep/{session_id}/{viewer_id}", tag = "playback", params(("session_id" = String, Path, description = "Session id"), ("viewer_id" = String, Path, description = "Viewer id (from the Location header)")),
    responses((status = 405, description = "Trickle ICE is not supported: the answer has every candidate", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn patch() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported; all candidates are in the answer",
    )
}
