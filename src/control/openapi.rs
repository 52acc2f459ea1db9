//! `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 description, generated at build time
//! from the handlers' `#[utoipa::path]` attributes and the request and response types.
//! `tests/openapi.rs` compares it with [`super::routes`], which the router is built from.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    assets, devices, health, hls, live, offers, orders, overlays, pages, pinned, products,
    sessions, webhooks, whep,
};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator token (printed at first start, kept in DATA/api-token).",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Fieldcast",
        description = "Live-commerce media server: sessions and stream keys, products, flash \
            sales with one stock ledger, overlays on the video, orders, WHEP playback and the \
            live state. Operator routes take `Authorization: Bearer TOKEN`; errors are \
            `application/problem+json`."
    ),
    modifiers(&Bearer),
    paths(
        hls::plain_playlist,
        hls::low_latency_playlist,
        hls::media,
        sessions::list,
        sessions::create,
        sessions::get,
        sessions::patch,
        sessions::delete,
        sessions::rotate_key,
        sessions::ingest,
        pinned::put,
        pinned::delete,
        offers::list,
        offers::create,
        offers::get,
        offers::end,
        offers::add_stock,
        orders::csv,
        orders::cancel,
        orders::create,
        orders::list,
        products::list,
        products::create,
        products::get,
        products::patch,
        products::delete,
        overlays::list,
        overlays::create,
        overlays::hide,
        overlays::show,
        overlays::get,
        overlays::patch,
        overlays::delete,
        overlays::layer_image,
        overlays::product_image,
        webhooks::list,
        webhooks::create,
        webhooks::delete,
        health::stats,
        health::healthz,
        health::metrics,
        devices::mint,
        live::like,
        live::events,
        live::state,
        whep::offer,
        whep::leave,
        whep::patch,
        pages::watch,
        pages::watch_qr,
        pages::console,
        assets::language_file,
        assets::web_file,
        assets::image,
        document,
    ),
    components(schemas(super::error::Problem))
)]
pub struct ApiDoc;

/// The document as JSON, made once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// The API's description (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "server",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}
