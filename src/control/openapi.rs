//! `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 description, generated at build time
//! from the handlers' `#[utoipa::path]` attributes and the request and response types.
//! `tests/openapi.rs` compares it with [`super::routes`], which the router is built from.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    assets, devices, health, hls, ice, live, offers, orders, overlays, pages, pinned, products,
    record, restreams, sessions, webhooks, whep, whip,
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
        components.add_security_scheme(
            "stream_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session's stream key (WHIP publishers): its `stream_key`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The answers every route can give besides its own, added to each operation that does not
/// list them: the refusals before a handler runs (a query or a body that does not parse, a
/// body too large or of another content type), and 503 (shutting down, or past the request
/// deadline).
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    Content::new(Some(Ref::from_schema_name("Problem"))),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let body_types: Vec<String> = operation
                    .request_body
                    .as_ref()
                    .map(|b| b.content.keys().cloned().collect())
                    .unwrap_or_default();
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem(description).into());
                };
                if !body_types.is_empty() {
                    add(
                        "413",
                        "The body is larger than this route takes (64 KiB; images 5 MiB)",
                    );
                    add(
                        "415",
                        &format!("The body is not {}", body_types.join(" or ")),
                    );
                }
                let has_query =
                    operation.parameters.iter().flatten().any(|p| {
                        matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query)
                    });
                if has_query {
                    add(
                        "400",
                        "A query parameter does not parse as its type (the detail names it)",
                    );
                }
                if body_types.iter().any(|t| t == "application/json") {
                    add(
                        "400",
                        "The body is not JSON, or not the shape this route takes (the detail says where)",
                    );
                }
                add(
                    "503",
                    "The server is shutting down, or the request took longer than its deadline: try again after Retry-After",
                );
            }
        }
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
    modifiers(&Bearer, &CommonAnswers),
    paths(
        hls::multivariant_playlist,
        ice::list,
        hls::plain_playlist,
        hls::low_latency_playlist,
        hls::media,
        hls::light_plain_playlist,
        hls::light_low_latency_playlist,
        hls::light_media,
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
        record::onscreen,
        record::recordings,
        record::file,
        restreams::list,
        restreams::create,
        restreams::delete,
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
        whip::publish,
        whip::end,
        whip::patch,
        pages::watch,
        pages::replay,
        pages::studio,
        pages::publish_qr,
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
