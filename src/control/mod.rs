//! The HTTP control plane (axum): one route list, one file per resource. It owns no media.
//!
//! The router's state is [`ControlState`]: the handles the routes use, given by the server's
//! start-up. No route sees all of it: each file declares what its routes use with
//! [`handles!`], a struct taken from the state through `FromRef`, and its handlers take that.

/// Declares what a file's routes use: a struct of handles, each taken from the router's state
/// through `FromRef` (any state that has them all will do). Handlers take `State<ThatStruct>`.
macro_rules! handles {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl<S: Send + Sync> axum::extract::FromRef<S> for $name
        where
            $($ty: axum::extract::FromRef<S>,)*
        {
            fn from_ref(state: &S) -> Self {
                Self {
                    $($field: <$ty as axum::extract::FromRef<S>>::from_ref(state),)*
                }
            }
        }
    };
}

pub mod assets;
mod auth;
mod browser;
mod cacheable;
pub mod client;
mod devices;
pub mod error;
mod fields;
mod health;
mod hls;
mod ice;
mod live;
mod offers;
pub mod openapi;
mod orders;
pub mod outcome;
mod overlays;
mod pages;
mod pinned;
mod products;
mod record;
mod restreams;
mod sessions;
mod webhooks;
mod whep;
mod whip;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use std::sync::Arc;

use crate::commerce::buyers::BuyerTokens;
use crate::commerce::devices::DeviceKeys;
use crate::commerce::ledger::StockLedger;
use crate::commerce::live::LiveHub;
use crate::config::Settings;
use crate::shows::Shows;
use crate::store::Store;
use client::PublicLimits;
use error::ApiError;
use fieldcast_engine::egress::Egress;
use fieldcast_engine::hls::HlsCounters;
use fieldcast_engine::ingest::health::IngestBoard;
use fieldcast_engine::ingest::limits::IngestLimits;
use fieldcast_engine::ingest::whip::Whip;
use fieldcast_engine::overlay::compositor::OverlayCounters;
use fieldcast_engine::studio::Studios;

pub use auth::{MetricsToken, OperatorToken};

/// What the control plane is given: one handle of each kind, each field's type its own, so
/// that a route's [`handles!`] struct takes its fields from here by type.
pub struct ControlParts {
    pub shows: Shows,
    pub store: Arc<Store>,
    pub studios: Arc<Studios>,
    pub live: Arc<LiveHub>,
    pub ledger: StockLedger,
    /// Rate limits per client address on the public routes.
    pub public: Arc<PublicLimits>,
    /// Device tokens and address keys for the public routes (`commerce::devices`).
    pub devices: DeviceKeys,
    /// Buyer tokens from a shop's own login (`commerce::buyers`).
    pub buyer_tokens: Arc<BuyerTokens>,
    pub egress: Egress,
    /// WHIP publishers' WebRTC.
    pub whip: Whip,
    /// HLS requests served and waiting, over every studio.
    pub hls: Arc<HlsCounters>,
    /// The HTTP listener's caps and counters.
    pub connections: Arc<crate::connections::Connections>,
    /// RTMP connection caps and counters.
    pub ingest: Arc<IngestLimits>,
    /// What the ingest path sees of each session's publisher.
    pub ingest_health: Arc<IngestBoard>,
    /// Shared by every studio's overlay compositor.
    pub overlay_counters: Arc<OverlayCounters>,
    /// The recordings, their files and their disk budget.
    pub recorder: Arc<crate::record::recording::Recorder>,
    /// The destinations being pushed to now.
    pub restreams: Arc<fieldcast_engine::restream::Restreams>,
    /// The on-screen record's writer (its counters).
    pub onscreen: Arc<crate::record::onscreen::OnscreenRecord>,
    /// Set once on SIGTERM: new requests are refused and live streams end.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub operator: OperatorToken,
    pub metrics_token: MetricsToken,
    pub settings: Arc<Settings>,
}

/// The router's state: the [`ControlParts`] behind one `Arc`. Axum clones the state for every
/// request; cloning the parts themselves (two dozen handles) cost each order about 5 % of its
/// CPU. Each handle type is taken from it by `FromRef` (below), as a route's [`handles!`]
/// asks.
#[derive(Clone)]
pub struct ControlState(Arc<ControlParts>);

impl ControlState {
    pub fn new(parts: ControlParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for ControlState {
    type Target = ControlParts;

    fn deref(&self) -> &ControlParts {
        &self.0
    }
}

/// `FromRef<ControlState>` for each part's type: a clone of that part.
macro_rules! parts_from_state {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(
            impl axum::extract::FromRef<ControlState> for $ty {
                fn from_ref(state: &ControlState) -> Self {
                    state.0.$field.clone()
                }
            }
        )*
    };
}

parts_from_state! {
    shows: Shows,
    store: Arc<Store>,
    studios: Arc<Studios>,
    live: Arc<LiveHub>,
    ledger: StockLedger,
    public: Arc<PublicLimits>,
    devices: DeviceKeys,
    buyer_tokens: Arc<BuyerTokens>,
    egress: Egress,
    whip: Whip,
    hls: Arc<HlsCounters>,
    connections: Arc<crate::connections::Connections>,
    ingest: Arc<IngestLimits>,
    ingest_health: Arc<IngestBoard>,
    overlay_counters: Arc<OverlayCounters>,
    recorder: Arc<crate::record::recording::Recorder>,
    restreams: Arc<fieldcast_engine::restream::Restreams>,
    onscreen: Arc<crate::record::onscreen::OnscreenRecord>,
    shutdown: tokio::sync::watch::Sender<bool>,
    operator: OperatorToken,
    metrics_token: MetricsToken,
    settings: Arc<Settings>,
}

pub use orders::{ParsedOrder, parse_order};

/// Largest request body (JSON or SDP).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who may call a route, and so which layers wrap it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The operator token; JSON and SDP bodies up to [`MAX_BODY_BYTES`].
    Operator,
    /// The operator token; image bodies up to [`overlays::MAX_IMAGE_BYTES`].
    Upload,
    /// Anyone, from any origin (CORS): buying, liking, the live state, playing. A handler
    /// may still ask for the token (listing orders).
    Public,
    /// Anyone, from any origin, compressed: the pages and their files.
    Page,
    /// Anyone, same origin: health, metrics, the API's description.
    Open,
    /// Anyone, from any origin (`Access-Control-Allow-Origin: *` on every answer), not
    /// compressed, no per-client limits (a CDN is one client for thousands): HLS and the
    /// versioned live state.
    Stream,
}

/// One method on one path, and what answers it.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<ControlState>,
}

/// Every route the server answers: the router is built from this list alone, and the test of
/// the OpenAPI document compares the document with it.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    use Access::*;
    let r = |method: Method, path: &'static str, access: Access, handler| Route {
        method,
        path,
        access,
        handler,
    };
    vec![
        r(Method::GET, "/api/v1/sessions", Operator, get(sessions::list)),
        r(Method::POST, "/api/v1/sessions", Operator, post(sessions::create)),
        r(Method::GET, "/api/v1/sessions/{id}", Operator, get(sessions::get)),
        r(Method::PATCH, "/api/v1/sessions/{id}", Operator, patch(sessions::patch)),
        r(Method::DELETE, "/api/v1/sessions/{id}", Operator, delete(sessions::delete)),
        r(Method::POST, "/api/v1/sessions/{id}/rotate-key", Operator, post(sessions::rotate_key)),
        r(Method::GET, "/api/v1/sessions/{id}/ingest", Operator, get(sessions::ingest)),
        r(Method::PUT, "/api/v1/sessions/{id}/pinned", Operator, put(pinned::put)),
        r(Method::DELETE, "/api/v1/sessions/{id}/pinned", Operator, delete(pinned::delete)),
        r(Method::GET, "/api/v1/sessions/{id}/offers", Operator, get(offers::list)),
        r(Method::POST, "/api/v1/sessions/{id}/offers", Operator, post(offers::create)),
        r(Method::GET, "/api/v1/sessions/{id}/offers/{offer_id}", Operator, get(offers::get)),
        r(Method::POST, "/api/v1/sessions/{id}/offers/{offer_id}/end", Operator, post(offers::end)),
        r(Method::POST, "/api/v1/sessions/{id}/offers/{offer_id}/stock", Operator, post(offers::add_stock)),
        r(Method::GET, "/api/v1/sessions/{id}/orders.csv", Operator, get(orders::csv)),
        r(Method::POST, "/api/v1/sessions/{id}/orders/{order_id}/cancel", Operator, post(orders::cancel)),
        r(Method::GET, "/api/v1/products", Operator, get(products::list)),
        r(Method::POST, "/api/v1/products", Operator, post(products::create)),
        r(Method::GET, "/api/v1/products/{id}", Operator, get(products::get)),
        r(Method::PATCH, "/api/v1/products/{id}", Operator, patch(products::patch)),
        r(Method::DELETE, "/api/v1/products/{id}", Operator, delete(products::delete)),
        r(Method::GET, "/api/v1/sessions/{id}/overlays", Operator, get(overlays::list)),
        r(Method::POST, "/api/v1/sessions/{id}/overlays", Operator, post(overlays::create)),
        r(Method::POST, "/api/v1/sessions/{id}/overlays/hide", Operator, post(overlays::hide)),
        r(Method::POST, "/api/v1/sessions/{id}/overlays/show", Operator, post(overlays::show)),
        r(Method::GET, "/api/v1/sessions/{id}/overlays/{layer_id}", Operator, get(overlays::get)),
        r(Method::PATCH, "/api/v1/sessions/{id}/overlays/{layer_id}", Operator, patch(overlays::patch)),
        r(Method::DELETE, "/api/v1/sessions/{id}/overlays/{layer_id}", Operator, delete(overlays::delete)),
        r(Method::GET, "/api/v1/sessions/{id}/onscreen", Operator, get(record::onscreen)),
        r(Method::GET, "/api/v1/sessions/{id}/recordings", Operator, get(record::recordings)),
        r(Method::GET, "/recordings/{recording_id}/{file}", Stream, get(record::file)),
        r(Method::GET, "/api/v1/sessions/{id}/restreams", Operator, get(restreams::list)),
        r(Method::POST, "/api/v1/sessions/{id}/restreams", Operator, post(restreams::create)),
        r(Method::DELETE, "/api/v1/sessions/{id}/restreams/{restream_id}", Operator, delete(restreams::delete)),
        r(Method::GET, "/api/v1/webhooks", Operator, get(webhooks::list)),
        r(Method::POST, "/api/v1/webhooks", Operator, post(webhooks::create)),
        r(Method::DELETE, "/api/v1/webhooks/{id}", Operator, delete(webhooks::delete)),
        r(Method::GET, "/api/v1/stats", Operator, get(health::stats)),
        r(Method::PUT, "/api/v1/sessions/{id}/overlays/{layer_id}/image", Upload, put(overlays::layer_image)),
        r(Method::PUT, "/api/v1/products/{id}/image", Upload, put(overlays::product_image)),
        r(Method::POST, "/api/v1/devices", Public, post(devices::mint)),
        r(Method::POST, "/api/v1/sessions/{id}/orders", Public, post(orders::create)),
        r(Method::GET, "/api/v1/sessions/{id}/orders", Public, get(orders::list)),
        r(Method::POST, "/api/v1/sessions/{id}/likes", Public, post(live::like)),
        r(Method::GET, "/api/v1/sessions/{id}/events", Public, get(live::events)),
        r(Method::GET, "/api/v1/sessions/{id}/state", Stream, get(live::state)),
        r(Method::GET, "/api/v1/ice-servers", Public, get(ice::list)),
        r(Method::POST, "/whep/{session_id}", Public, post(whep::offer)),
        r(Method::DELETE, "/whep/{session_id}/{viewer_id}", Public, delete(whep::leave)),
        r(Method::PATCH, "/whep/{session_id}/{viewer_id}", Public, patch(whep::patch)),
        r(Method::POST, "/whip/{session_id}", Public, post(whip::publish)),
        r(Method::DELETE, "/whip/{session_id}/{publisher_id}", Public, delete(whip::end)),
        r(Method::PATCH, "/whip/{session_id}/{publisher_id}", Public, patch(whip::patch)),
        r(Method::GET, "/hls/{session_id}/index.m3u8", Stream, get(hls::plain_playlist)),
        r(Method::GET, "/hls/{session_id}/ll.m3u8", Stream, get(hls::low_latency_playlist)),
        r(Method::GET, "/hls/{session_id}/master.m3u8", Stream, get(hls::multivariant_playlist)),
        r(Method::GET, "/hls/{session_id}/{file}", Stream, get(hls::media)),
        r(Method::GET, "/hls/{session_id}/light/index.m3u8", Stream, get(hls::light_plain_playlist)),
        r(Method::GET, "/hls/{session_id}/light/ll.m3u8", Stream, get(hls::light_low_latency_playlist)),
        r(Method::GET, "/hls/{session_id}/light/{file}", Stream, get(hls::light_media)),
        r(Method::GET, "/watch/{id}", Page, get(pages::watch)),
        r(Method::GET, "/watch/{id}/qr.svg", Page, get(pages::watch_qr)),
        r(Method::GET, "/replay/{id}", Page, get(pages::replay)),
        r(Method::GET, "/console", Page, get(pages::console)),
        r(Method::GET, "/studio/{id}", Page, get(pages::studio)),
        r(Method::GET, "/api/v1/sessions/{id}/publish-qr.svg", Operator, get(pages::publish_qr)),
        r(Method::GET, "/web/i18n/{file}", Page, get(assets::language_file)),
        r(Method::GET, "/web/{file}", Page, get(assets::web_file)),
        r(Method::GET, "/images/{file}", Page, get(assets::image)),
        r(Method::GET, "/healthz", Open, get(health::healthz)),
        r(Method::GET, "/metrics", Open, get(health::metrics)),
        r(Method::GET, "/api/v1/openapi.json", Open, get(openapi::document)),
    ]
}

pub fn router(state: ControlState) -> Router {
    let mut groups: [Router<ControlState>; 6] = Default::default();
    for route in routes() {
        let group = &mut groups[route.access as usize];
        *group = std::mem::take(group).route(route.path, route.handler);
    }
    let [operator, images, public, pages, open, stream] = groups;

    let operator = operator
        .route_layer(middleware::from_fn_with_state(
            state.operator.clone(),
            auth::require_operator,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    // Image uploads: a larger limit, refused from Content-Length before any body is read.
    let images = images
        .route_layer(middleware::from_fn_with_state(
            state.operator.clone(),
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
            HeaderName::from_static(devices::DEVICE_HEADER),
            HeaderName::from_static(orders::BUYER_HEADER),
        ])
        .expose_headers([header::LOCATION, header::ETAG, header::CONTENT_TYPE]);

    // Public: buying, liking, the live state. Listing orders on the same path checks the
    // operator token in its handler.
    let public = public
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // The pages and their files, compressed (gzip or brotli, as the browser asks).
    let pages = pages.layer(tower_http::compression::CompressionLayer::new());
    let public = public.merge(pages).layer(cors);

    Router::new()
        .merge(operator)
        .merge(images)
        .merge(public)
        .merge(open)
        .merge(stream)
        .layer(middleware::from_fn_with_state(
            state.shutdown.clone(),
            deadline_and_problems,
        ))
        .layer(middleware::from_fn(browser::protect))
        .with_state(state)
}

/// Longest a request may take to be answered (reading its body included). A stream (SSE)
/// has its head by then and goes on.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The same for image uploads (up to 5 MiB from a phone on a slow uplink).
pub const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The paths of the image uploads, which get [`UPLOAD_TIMEOUT`].
static UPLOAD_PATHS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    routes()
        .into_iter()
        .filter(|r| r.access == Access::Upload)
        .map(|r| r.path)
        .collect()
});

/// Every route: refusal while shutting down, the request deadline, and errors from the layers below the handlers (the
/// body limit's 413, an extractor's plain-text rejection) as problem+json like our own.
async fn deadline_and_problems(
    axum::extract::State(shutdown): axum::extract::State<tokio::sync::watch::Sender<bool>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if *shutdown.borrow() {
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; try again in a moment",
        )
        .retry_after(5)
        .into_response();
    }
    // Routing has run (this layer wraps each route), so the route's pattern is known.
    let deadline = match request.extensions().get::<axum::extract::MatchedPath>() {
        Some(path) if UPLOAD_PATHS.contains(&path.as_str()) => UPLOAD_TIMEOUT,
        _ => REQUEST_TIMEOUT,
    };
    let response = match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            // 503, not 408: the slow part may be ours (a busy disk), and a client must read
            // this as "try again" (a buyer keeps the order's Idempotency-Key), not as final.
            return ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the request took longer than {} s; try again",
                    deadline.as_secs()
                ),
            )
            .retry_after(2)
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
