//! Webhook endpoints: where `order.created`, `order.cancelled`, `offer.sold_out` and
//! `offer.ended` are POSTed, signed with the endpoint's secret.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use crate::app::{AppState, random_hex, unix_now};
use crate::store::commerce::WebhookRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
}

/// Adds an endpoint; the answer carries its signing secret.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let url = body.url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2000 {
        return Err(ApiError::unprocessable("url: an http:// or https:// URL"));
    }
    let hook = WebhookRow {
        id: format!("wh_{}", random_hex(8)),
        url: url.to_string(),
        secret: format!("whsec_{}", random_hex(24)),
        created_at: unix_now(),
    };
    state.store.insert_webhook(&hook)?;
    Ok((StatusCode::CREATED, ApiJson(hook)))
}

/// Lists endpoints (with secrets: this is the operator API).
pub async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(state.store.webhooks()?))
}

/// Removes an endpoint; its undelivered events are dropped.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if state.store.delete_webhook(&id)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}
