//! Webhook endpoints: where `order.created`, `order.cancelled`, `offer.sold_out` and
//! `offer.ended` are POSTed, signed with the endpoint's secret.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use crate::store::Store;
use crate::store::commerce::WebhookRow;
use fieldcast_core::ids::random_hex;
use fieldcast_core::time::unix_now;
use std::sync::Arc;

handles! {
    /// What the webhook routes use.
    Webhooks {
        store: Arc<Store>,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed.
    #[schema(max_length = 2000, pattern = "^https?://")]
    url: String,
}

/// Adds an endpoint; the answer carries its signing secret.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("operator" = [])), request_body = CreateWebhook,
    responses((status = 201, description = "The endpoint with its signing secret", body = crate::store::commerce::WebhookRow), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<Webhooks>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let url = body.url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.chars().count() > 2000 {
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
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("operator" = [])),
    responses((status = 200, description = "Every endpoint", body = [crate::store::commerce::WebhookRow]), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(State(state): State<Webhooks>) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(state.store.webhooks()?))
}

/// Removes an endpoint; its undelivered events are dropped.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("operator" = [])), params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Removed"), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such webhook", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<Webhooks>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if state.store.delete_webhook(&id)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}
