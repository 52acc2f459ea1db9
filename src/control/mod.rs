//! The HTTP control plane (axum): one route list, one file per resource. It owns no media.

mod auth;
pub mod error;
mod health;
mod pages;
mod sessions;
mod whep;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::middleware;
use axum::routing::{delete, get, post};
use tower_http::cors::{Any, CorsLayer};

use crate::app::AppState;

/// Largest request body (JSON or SDP).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let operator = Router::new()
        .route("/api/v1/sessions", get(sessions::list).post(sessions::create))
        .route("/api/v1/sessions/{id}", get(sessions::get).patch(sessions::patch).delete(sessions::delete))
        .route("/api/v1/sessions/{id}/rotate-key", post(sessions::rotate_key))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_operator));

    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::PUT, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, HeaderName::from_static("idempotency-key")])
        .expose_headers([header::LOCATION, header::ETAG, header::CONTENT_TYPE]);

    Router::new()
        .merge(operator)
        .route("/whep/{session_id}", post(whep::offer))
        .route("/whep/{session_id}/{viewer_id}", delete(whep::leave).patch(whep::patch))
        .route("/watch/{id}", get(pages::watch))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
        .with_state(state)
}
