//! The pinned product of a session: its card goes on the video and in the live state.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use crate::commerce::live::LiveHub;
use crate::commerce::product_json;
use crate::store::Store;
use std::sync::Arc;

handles! {
    /// What pinning uses.
    PinnedRoutes {
        store: Arc<Store>,
        live: Arc<LiveHub>,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    product_id: String,
}

/// Pins a product on the session.
#[utoipa::path(put, path = "/api/v1/sessions/{id}/pinned", tag = "products", security(("operator" = [])), params(("id" = String, Path, description = "Session id")), request_body = Pin,
    responses((status = 200, description = "`{session_id, product}`: the product now pinned (a Product)", body = Object), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session or product", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn put(
    State(state): State<PinnedRoutes>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Pin>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let product = state
        .store
        .product(&body.product_id)?
        .ok_or_else(|| ApiError::not_found("product"))?;
    state.store.set_pinned(&id, Some(&product.id))?;
    state.live.session(&id).reload_pinned(&state.store);
    Ok(ApiJson(
        json!({"session_id": id, "product": product_json(&product)}),
    ))
}

/// Unpins whatever is pinned.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}/pinned", tag = "products", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Nothing is pinned now"), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<PinnedRoutes>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.store.set_pinned(&id, None)? {
        return Err(ApiError::not_found("session"));
    }
    state.live.session(&id).reload_pinned(&state.store);
    Ok(StatusCode::NO_CONTENT)
}
