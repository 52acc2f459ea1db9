//! The HTTP control plane (axum): one route list, one file per resource. It owns no media.

pub mod assets;
mod auth;
pub mod client;
pub mod error;
mod health;
mod live;
mod offers;
mod orders;
mod overlays;
mod pages;
mod pinned;
mod products;
mod sessions;
mod webhooks;
mod whep;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::app::AppState;
use crate::commerce::ledger::{LedgerAnswer, LedgerError};
use error::ApiError;

pub use orders::{ParsedOrder, parse_order};

/// Largest request body (JSON or SDP).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let operator = Router::new()
        .route(
            "/api/v1/sessions",
            get(sessions::list).post(sessions::create),
        )
        .route(
            "/api/v1/sessions/{id}",
            get(sessions::get)
                .patch(sessions::patch)
                .delete(sessions::delete),
        )
        .route(
            "/api/v1/sessions/{id}/rotate-key",
            post(sessions::rotate_key),
        )
        .route(
            "/api/v1/sessions/{id}/pinned",
            put(pinned::put).delete(pinned::delete),
        )
        .route(
            "/api/v1/sessions/{id}/offers",
            get(offers::list).post(offers::create),
        )
        .route("/api/v1/sessions/{id}/offers/{offer_id}", get(offers::get))
        .route(
            "/api/v1/sessions/{id}/offers/{offer_id}/end",
            post(offers::end),
        )
        .route(
            "/api/v1/sessions/{id}/offers/{offer_id}/stock",
            post(offers::add_stock),
        )
        .route("/api/v1/sessions/{id}/orders.csv", get(orders::csv))
        .route(
            "/api/v1/sessions/{id}/orders/{order_id}/cancel",
            post(orders::cancel),
        )
        .route(
            "/api/v1/products",
            get(products::list).post(products::create),
        )
        .route(
            "/api/v1/products/{id}",
            get(products::get)
                .patch(products::patch)
                .delete(products::delete),
        )
        .route(
            "/api/v1/sessions/{id}/overlays",
            get(overlays::list).post(overlays::create),
        )
        .route("/api/v1/sessions/{id}/overlays/hide", post(overlays::hide))
        .route("/api/v1/sessions/{id}/overlays/show", post(overlays::show))
        .route(
            "/api/v1/sessions/{id}/overlays/{layer_id}",
            get(overlays::get)
                .patch(overlays::patch)
                .delete(overlays::delete),
        )
        .route(
            "/api/v1/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/api/v1/webhooks/{id}", delete(webhooks::delete))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_operator,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    // Image uploads: a larger limit, refused from Content-Length before any body is read.
    let images = Router::new()
        .route(
            "/api/v1/sessions/{id}/overlays/{layer_id}/image",
            put(overlays::layer_image),
        )
        .route("/api/v1/products/{id}/image", put(overlays::product_image))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_operator,
        ))
        .layer(RequestBodyLimitLayer::new(overlays::MAX_IMAGE_BYTES))
        .layer(DefaultBodyLimit::max(overlays::MAX_IMAGE_BYTES));

    // Other origins (a co-op's shop embedding the player) may buy, like, watch and play. A
    // preflight that asks to send `Authorization` is for an operator call: it gets no grant,
    // so no operator route can be called from another origin's page.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(|_, request| {
            !request
                .headers
                .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .iter()
                .any(|v| {
                    v.to_str()
                        .is_ok_and(|v| v.to_ascii_lowercase().contains("authorization"))
                })
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::LOCATION, header::ETAG, header::CONTENT_TYPE]);

    // Public: buying, liking, the live state. Listing orders on the same path checks the
    // operator token in its handler.
    let public = Router::new()
        .route(
            "/api/v1/sessions/{id}/orders",
            post(orders::create).get(orders::list),
        )
        .route("/api/v1/sessions/{id}/likes", post(live::like))
        .route("/api/v1/sessions/{id}/events", get(live::events))
        .route("/whep/{session_id}", post(whep::offer))
        .route(
            "/whep/{session_id}/{viewer_id}",
            delete(whep::leave).patch(whep::patch),
        )
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    // Other origins (a co-op's shop embedding the player) reach only the public routes: no
    // operator route answers a CORS preflight.
    // The pages and their files, compressed (gzip or brotli, as the browser asks).
    let pages = Router::new()
        .route("/watch/{id}", get(pages::watch))
        .route("/web/i18n/{file}", get(assets::language_file))
        .route("/web/{file}", get(assets::web_file))
        .route("/images/{file}", get(assets::image))
        .layer(tower_http::compression::CompressionLayer::new());
    let public = public.merge(pages).layer(cors);

    Router::new()
        .merge(operator)
        .merge(images)
        .merge(public)
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            deadline_and_problems,
        ))
        .with_state(state)
}

/// Longest a request may take to be answered (reading its body included). A stream (SSE)
/// has its head by then and goes on.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The same for image uploads (up to 5 MiB from a phone on a slow uplink).
pub const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Every route: refusal while shutting down, the request deadline, and errors from the layers below the handlers (the
/// body limit's 413, an extractor's plain-text rejection) as problem+json like our own.
async fn deadline_and_problems(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if *state.shutdown.borrow() {
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; try again in a moment",
        )
        .retry_after(5)
        .into_response();
    }
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            return ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request took longer than {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
            .into_response();
        }
    };
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let detail = match status {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            format!(
                "the request body is larger than this route takes ({MAX_BODY_BYTES} bytes for JSON and SDP)"
            )
        }
        axum::http::StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed here".into(),
        axum::http::StatusCode::NOT_FOUND => "no such route".into(),
        _ => {
            // The layer's own words, bounded.
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap_or_default();
            String::from_utf8_lossy(&body).trim().to_string()
        }
    };
    let mut problem = ApiError::new(status, detail).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// Turns a stock ledger answer into a response (problem+json for refusals).
fn ledger_response(answer: Result<LedgerAnswer, LedgerError>) -> Result<Response, ApiError> {
    let answer = answer.map_err(|e| match e {
        LedgerError::Busy => {
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(1)
        }
        LedgerError::Stopped => ApiError::internal(e),
    })?;
    let status = axum::http::StatusCode::from_u16(answer.status).map_err(ApiError::internal)?;
    let content_type = if answer.status >= 400 {
        "application/problem+json"
    } else {
        "application/json"
    };
    Ok((status, [(header::CONTENT_TYPE, content_type)], answer.body).into_response())
}
