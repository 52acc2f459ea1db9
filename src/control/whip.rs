//! WHIP (RFC 9725): `POST /whip/{session_id}` with the stream key as the bearer token and an
//! SDP offer; `DELETE` on the returned `Location` ends the publish. Candidates are all in the
//! answer (ICE-lite), so trickle ICE (`PATCH`) is answered 405. The publisher policy is
//! RTMP's: the same key check, one live publisher per key, takeover of a silent one.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client::{Client, PublicLimits, PublicRoute};
use super::error::ApiError;
use crate::shows::Shows;
use crate::store::SessionRow;
use fieldcast_engine::ingest::health::{IngestBoard, mask_address};
use fieldcast_engine::ingest::limits::MEDIA_IDLE_DEADLINE;
use fieldcast_engine::ingest::whip::{Whip, WhipError, WhipPublish};
use fieldcast_engine::studio::StudioError;
use std::sync::Arc;

handles! {
    /// What the WHIP routes use.
    WhipRoutes {
        shows: Shows,
        public: Arc<PublicLimits>,
        whip: Whip,
        ingest_health: Arc<IngestBoard>,
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, detail)
}

/// The stream key from `Authorization: Bearer KEY`.
fn stream_key(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            unauthorized("send the session's stream key as `Authorization: Bearer STREAM_KEY`")
        })
}

/// The session a stream key publishes to, if it is the one in the path.
async fn check_key(shows: &Shows, session_id: &str, key: String) -> Result<SessionRow, ApiError> {
    let store = shows.store.clone();
    let row = tokio::task::spawn_blocking(move || store.session_by_key(&key))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    row.filter(|row| row.id == session_id)
        .ok_or_else(|| unauthorized("this stream key does not publish to this session"))
}

/// Publishes to a session: answers the offer and decodes the media once ICE and DTLS are up.
#[utoipa::path(post, path = "/whip/{session_id}", tag = "ingest", params(("session_id" = String, Path, description = "Session id")), request_body(content = String, description = "An SDP offer (sendonly H.264 or VP8, and Opus)", content_type = "application/sdp"),
    security(("stream_key" = [])),
    responses((status = 201, description = "The SDP answer, with every candidate; `Location` is the publisher's resource", body = String, content_type = "application/sdp"), (status = 400, description = "Not an SDP offer Fieldcast can answer", body = super::error::Problem, content_type = "application/problem+json"), (status = 401, description = "No stream key, or not this session's", body = super::error::Problem, content_type = "application/problem+json"), (status = 409, description = "A publisher is already live on this stream key", body = super::error::Problem, content_type = "application/problem+json"), (status = 415, description = "Not application/sdp", body = super::error::Problem, content_type = "application/problem+json"), (status = 429, description = "Too many requests from this address (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn publish(
    State(state): State<WhipRoutes>,
    Path(session_id): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.public.check(PublicRoute::Whep, client)?;
    let key = stream_key(&headers)?;
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
    let offer = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8"))?
        .to_string();
    let row = check_key(&state.shows, &session_id, key).await?;
    let shows = state.shows.clone();
    let studio = tokio::task::spawn_blocking(move || shows.go_live(&row))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            tracing::error!(session.id = %session_id, error = %e, "studio did not start");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the studio could not start; try again",
            )
            .retry_after(5)
        })?;
    let link = studio
        .attach_publisher(MEDIA_IDLE_DEADLINE)
        .await
        .map_err(|e| match e {
            StudioError::Busy => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(5),
        })?;
    let masked = mask_address(client);
    let watch = state
        .ingest_health
        .publisher(&session_id, masked.clone(), "whip");
    let answer = state
        .whip
        .publish(
            &offer,
            WhipPublish {
                session_id: session_id.clone(),
                studio,
                link,
                masked_address: masked,
                watch,
            },
        )
        .await
        .map_err(|e| match e {
            WhipError::BadSdp(_) | WhipError::NoCommonCodec => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            WhipError::Stopped | WhipError::Rtc(_) => ApiError::internal(e),
        })?;
    let location = format!("/whip/{session_id}/{}", answer.publisher_id);
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
            (header::ETAG, format!("\"{}\"", answer.publisher_id)),
        ],
        answer.sdp,
    )
        .into_response())
}

/// Ends the publish: the show goes to the slate (and ends after the reconnect grace).
#[utoipa::path(delete, path = "/whip/{session_id}/{publisher_id}", tag = "ingest", params(("session_id" = String, Path, description = "Session id"), ("publisher_id" = String, Path, description = "Publisher id (from the Location header)")),
    security(("stream_key" = [])),
    responses((status = 200, description = "The publish ended"), (status = 401, description = "No stream key, or not this session's", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such publisher", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn end(
    State(state): State<WhipRoutes>,
    Path((session_id, publisher_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check_key(&state.shows, &session_id, stream_key(&headers)?).await?;
    if state.whip.end(&session_id, &publisher_id).await {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found("publisher"))
    }
}

/// Trickle ICE and ICE restarts are not supported: the answer has every candidate.
#[utoipa::path(patch, path = "/whip/{session_id}/{publisher_id}", tag = "ingest", params(("session_id" = String, Path, description = "Session id"), ("publisher_id" = String, Path, description = "Publisher id (from the Location header)")),
    responses((status = 405, description = "Trickle ICE is not supported: the answer has every candidate", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn patch() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported; all candidates are in the answer",
    )
}
