//! Overlays: a session's layers (CRUD, PATCH for quick changes), the hide-all switch, and
//! image uploads for products and image layers.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use crate::commerce::live::LiveHub;
use crate::commerce::live::image_path;
use crate::shows::Shows;
use crate::store::Store;
use fieldcast_core::overlay::scene::new_layer_id;
use fieldcast_core::overlay::scene::{self, Layer, LayerKind, Scene};
use std::sync::Arc;

handles! {
    /// What the overlay and image routes use.
    Overlays {
        store: Arc<Store>,
        live: Arc<LiveHub>,
        shows: Shows,
    }
}

/// Largest image upload.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Largest decoded image accepted (each side), against decompression bombs.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Images are scaled once, at upload, to fit this square.
pub const STORED_IMAGE_SIDE: u32 = 512;

fn scene_json(scene: &Scene) -> Value {
    json!({"hidden": scene.hidden, "layers": scene.layers})
}

fn session_exists(state: &Overlays, id: &str) -> Result<(), ApiError> {
    state
        .store
        .session(id)?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("session"))
}

/// What a request may set on a layer: any field but `id` (and `kind`, which only a new layer
/// names). For the OpenAPI document; [`merge`] applies the JSON itself, and
/// `scene::validate` checks the result against the same bounds.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LayerFields {
    anchor: Option<fieldcast_core::overlay::scene::Anchor>,
    /// From the anchor towards the frame's centre, in fractions of width and height.
    #[schema(schema_with = offset_schema)]
    offset: Option<[f32; 2]>,
    /// Width and height, in fractions of the frame.
    #[schema(schema_with = size_schema)]
    size: Option<[f32; 2]>,
    #[schema(minimum = -1000, maximum = 1000)]
    z: Option<i32>,
    visible: Option<bool>,
    style: Option<StyleFields>,
    transition_in: Option<fieldcast_core::overlay::scene::Transition>,
    transition_out: Option<fieldcast_core::overlay::scene::Transition>,
    #[schema(minimum = 0, maximum = 5000)]
    transition_ms: Option<u32>,
    content: Option<ContentFields>,
    portrait: Option<PlacementFields>,
}

/// A new layer: its `kind` and any of the fields a layer has (the rest are the kind's).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewLayer {
    kind: fieldcast_core::overlay::scene::LayerKind,
    anchor: Option<fieldcast_core::overlay::scene::Anchor>,
    /// From the anchor towards the frame's centre, in fractions of width and height.
    #[schema(schema_with = offset_schema)]
    offset: Option<[f32; 2]>,
    /// Width and height, in fractions of the frame.
    #[schema(schema_with = size_schema)]
    size: Option<[f32; 2]>,
    #[schema(minimum = -1000, maximum = 1000)]
    z: Option<i32>,
    visible: Option<bool>,
    style: Option<StyleFields>,
    transition_in: Option<fieldcast_core::overlay::scene::Transition>,
    transition_out: Option<fieldcast_core::overlay::scene::Transition>,
    #[schema(minimum = 0, maximum = 5000)]
    transition_ms: Option<u32>,
    content: Option<ContentFields>,
    portrait: Option<PlacementFields>,
}

/// `style`: merged one level deep.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StyleFields {
    /// `#RRGGBB`.
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$")]
    theme: Option<String>,
    #[schema(minimum = 0.25, maximum = 4.0)]
    font_scale: Option<f32>,
    /// Of the layer's height.
    #[schema(minimum = 0.0, maximum = 0.5)]
    radius: Option<f32>,
}

/// `content`: merged one level deep.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ContentFields {
    /// Counter: which numbers.
    metrics: Option<Vec<fieldcast_core::overlay::scene::Metric>>,
    /// Text: the words. QR: the URL (default: the watch page).
    #[schema(min_length = 1, max_length = 500, pattern = "[^ \t\n\r]")]
    text: Option<String>,
    /// Countdown: Unix seconds to count to (default: the running offer's end).
    #[schema(minimum = 0, maximum = 10_000_000_000_i64)]
    until: Option<i64>,
}

/// `portrait`: the whole place on an upright frame.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PlacementFields {
    anchor: fieldcast_core::overlay::scene::Anchor,
    #[schema(schema_with = offset_schema)]
    offset: [f32; 2],
    #[schema(schema_with = size_schema)]
    size: [f32; 2],
}

/// Two numbers, each from `min` to 1.
fn pair(min: f64, description: &str) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(min))
                .maximum(Some(1.0)),
        )
        .min_items(Some(2))
        .max_items(Some(2))
        .description(Some(description))
        .build()
}

fn offset_schema() -> utoipa::openapi::schema::Array {
    pair(-1.0, "x and y, each from -1 to 1")
}

fn size_schema() -> utoipa::openapi::schema::Array {
    pair(0.01, "width and height, each from 0.01 to 1")
}

/// Merges a JSON patch (top level, and one level into `style` and `content`) onto a layer.
fn merge(layer: &Layer, patch: &Value) -> Result<Layer, ApiError> {
    let Some(patch) = patch.as_object() else {
        return Err(ApiError::unprocessable("the body must be a JSON object"));
    };
    let mut value = serde_json::to_value(layer).map_err(ApiError::internal)?;
    // `null` leaves a field as it is; for `portrait` and `content.until` it clears them (the
    // landscape place applies upright too; the countdown follows the running offer).
    let clears = |key: &str| matches!(key, "portrait" | "until");
    for (key, v) in patch {
        if v.is_null() && !clears(key) {
            continue;
        }
        match key.as_str() {
            "id" | "kind" => {
                if value.get(key) != Some(v) {
                    return Err(ApiError::unprocessable(format!(
                        "{key}: cannot be changed; create another layer"
                    )));
                }
            }
            "style" | "content" if v.is_object() => {
                for (k, inner) in v.as_object().into_iter().flatten() {
                    if !inner.is_null() || clears(k) {
                        value[key][k] = inner.clone();
                    }
                }
            }
            _ => value[key] = v.clone(),
        }
    }
    let merged: Layer =
        serde_json::from_value(value).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    scene::validate(&merged).map_err(ApiError::unprocessable)?;
    Ok(merged)
}

/// Applies a change to the stored scene and the live one (the next frame shows it).
fn change_layer(state: &Overlays, session_id: &str, layer: &Layer) -> Result<(), ApiError> {
    let json = serde_json::to_string(layer).map_err(ApiError::internal)?;
    state
        .store
        .put_overlay_layer(session_id, &layer.id, &json)?;
    let live = state.live.session(session_id);
    let layer = layer.clone();
    live.update(
        move |d| match d.scene.layers.iter_mut().find(|l| l.id == layer.id) {
            Some(existing) => *existing = layer,
            None => d.scene.layers.push(layer),
        },
    );
    Ok(())
}

/// The scene: `hidden` and the layers.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/overlays", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The scene: the hide-all switch and the layers", body = fieldcast_core::overlay::scene::Scene), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<Overlays>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    session_exists(&state, &id)?;
    let live = state.live.session(&id);
    let json = scene_json(&live.data().scene);
    Ok(ApiJson(json))
}

/// Adds a layer: `{"kind": "counter"}` gets the template's layout; any field may be given.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/overlays", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id")), request_body(content = NewLayer, description = "A layer: its `kind` and any other fields of a layer; the rest take the kind's defaults"),
    responses((status = 201, description = "The new layer", body = fieldcast_core::overlay::scene::Layer), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<Overlays>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    session_exists(&state, &id)?;
    let kind: LayerKind = body
        .get("kind")
        .cloned()
        .ok_or_else(|| {
            ApiError::unprocessable(
                "kind: required (product_card, counter, countdown, toast, text, image, qr)",
            )
        })
        .and_then(|k| {
            serde_json::from_value(k).map_err(|e| ApiError::unprocessable(format!("kind: {e}")))
        })?;
    let template = scene::template(kind, new_layer_id());
    let mut patch = body.clone();
    if let Some(obj) = patch.as_object_mut() {
        obj.remove("kind");
    }
    let layer = merge(&template, &patch)?;
    change_layer(&state, &id, &layer)?;
    Ok((StatusCode::CREATED, ApiJson(layer)))
}

fn find(state: &Overlays, session_id: &str, layer_id: &str) -> Result<Layer, ApiError> {
    session_exists(state, session_id)?;
    let live = state.live.session(session_id);
    let layer = live
        .data()
        .scene
        .layers
        .iter()
        .find(|l| l.id == layer_id)
        .cloned();
    layer.ok_or_else(|| ApiError::not_found("layer"))
}

/// One layer.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/overlays/{layer_id}", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("layer_id" = String, Path, description = "Layer id")),
    responses((status = 200, description = "The layer", body = fieldcast_core::overlay::scene::Layer), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such layer", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<Overlays>,
    Path((id, layer_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(find(&state, &id, &layer_id)?))
}

/// Changes some fields of a layer, e.g. `{"visible": false}` or `{"style": {"theme": "#b03a2e"}}`.
#[utoipa::path(patch, path = "/api/v1/sessions/{id}/overlays/{layer_id}", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("layer_id" = String, Path, description = "Layer id")), request_body(content = LayerFields, description = "Any of the layer's fields; `style` and `content` merge one level deep"),
    responses((status = 200, description = "The layer as changed (the next frame shows it)", body = fieldcast_core::overlay::scene::Layer), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such layer", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(state): State<Overlays>,
    Path((id, layer_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let layer = merge(&find(&state, &id, &layer_id)?, &body)?;
    change_layer(&state, &id, &layer)?;
    Ok(ApiJson(layer))
}

/// Removes a layer.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}/overlays/{layer_id}", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("layer_id" = String, Path, description = "Layer id")),
    responses((status = 204, description = "Removed"), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such layer", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<Overlays>,
    Path((id, layer_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    find(&state, &id, &layer_id)?;
    state.store.delete_overlay_layer(&id, &layer_id)?;
    let _ = std::fs::remove_file(state.shows.images_dir().join(format!("{layer_id}.png")));
    state
        .live
        .session(&id)
        .update(|d| d.scene.layers.retain(|l| l.id != layer_id));
    Ok(StatusCode::NO_CONTENT)
}

fn set_hidden(state: &Overlays, id: &str, hidden: bool) -> Result<Value, ApiError> {
    if !state.store.set_overlays_hidden(id, hidden)? {
        return Err(ApiError::not_found("session"));
    }
    let live = state.live.session(id);
    live.update(|d| d.scene.hidden = hidden);
    let json = scene_json(&live.data().scene);
    Ok(json)
}

/// The emergency switch: no overlay is drawn from the next frame on.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/overlays/hide", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The scene: the hide-all switch and the layers", body = fieldcast_core::overlay::scene::Scene), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn hide(
    State(state): State<Overlays>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(set_hidden(&state, &id, true)?))
}

/// Shows the overlays again.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/overlays/show", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The scene: the hide-all switch and the layers", body = fieldcast_core::overlay::scene::Scene), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn show(
    State(state): State<Overlays>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(set_hidden(&state, &id, false)?))
}

/// Decodes an uploaded PNG, JPEG or WebP, scales it to fit [`STORED_IMAGE_SIDE`] and writes
/// it as PNG, off the async workers (a large image takes a core for a while). Refusals say
/// why.
async fn store_image(
    headers: &HeaderMap,
    body: Bytes,
    path: std::path::PathBuf,
) -> Result<(u32, u32), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match content_type.split(';').next().map(str::trim) {
        Some("image/png") => image::ImageFormat::Png,
        Some("image/jpeg") => image::ImageFormat::Jpeg,
        Some("image/webp") => image::ImageFormat::WebP,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("send image/png, image/jpeg or image/webp, not {content_type:?}"),
            ));
        }
    };
    if body.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the image is larger than {} MiB", MAX_IMAGE_BYTES >> 20),
        ));
    }
    let content_type = content_type.to_string();
    // One decode per two cores at once; the others wait their turn (inside the upload's own
    // deadline). Each runs on a thread of its own at a lower priority, so the API, the
    // ledger and the media threads come first.
    let _turn = DECODES.acquire().await.map_err(ApiError::internal)?;
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("photo-decode".into())
        .spawn(move || {
            fieldcast_engine::process::lower_thread_priority();
            let _ = done.send(decode_and_store(&body, format, &content_type, &path));
        })
        .map_err(ApiError::internal)?;
    result.await.map_err(ApiError::internal)?
}

/// Photo decodes running at once: half the cores, at least one. An 8192² decode holds up to
/// 256 MiB while it runs.
static DECODES: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::sync::Semaphore::new((cores / 2).max(1))
});

fn decode_and_store(
    body: &[u8],
    format: image::ImageFormat,
    content_type: &str,
    path: &std::path::Path,
) -> Result<(u32, u32), ApiError> {
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(body), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| {
        ApiError::unprocessable(format!(
            "the image cannot be decoded as {content_type}: {e}"
        ))
    })?;
    let scaled = decoded
        .thumbnail(STORED_IMAGE_SIDE, STORED_IMAGE_SIDE)
        .to_rgba8();
    let dims = scaled.dimensions();
    let mut png = Vec::new();
    scaled
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(ApiError::internal)?;
    // Whole or not at all, and on disk before anyone is told of it.
    crate::files::write_durably(path, &png, false).map_err(ApiError::internal)?;
    Ok(dims)
}

/// A product's image (its card shows it).
#[utoipa::path(put, path = "/api/v1/products/{id}/image", tag = "products", security(("operator" = [])), params(("id" = String, Path, description = "Product id")), request_body(content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp")), description = "PNG, JPEG or WebP, at most 5 MiB"),
    responses((status = 200, description = "`{width, height, image_url}` of the stored photo", body = Object), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "The picture cannot be decoded", body = super::error::Problem, content_type = "application/problem+json"), (status = 413, description = "Larger than 5 MiB", body = super::error::Problem, content_type = "application/problem+json"), (status = 415, description = "Not PNG, JPEG or WebP", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn product_image(
    State(state): State<Overlays>,
    Path(product_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    state
        .store
        .product(&product_id)?
        .ok_or_else(|| ApiError::not_found("product"))?;
    let images = state.shows.images_dir();
    let path = image_path(&images, &product_id);
    let (width, height) = store_image(&headers, body, path.clone()).await?;
    // Hashing and copying the photo is file work too.
    let hash = tokio::task::spawn_blocking(move || super::assets::publish_image(&images, &path))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    state.store.set_product_image(&product_id, &hash)?;
    state.live.product_changed(&product_id);
    Ok(ApiJson(json!({
        "product_id": product_id,
        "width": width,
        "height": height,
        "image_url": crate::commerce::views::image_url(&hash),
    })))
}

/// An image layer's picture (a logo).
#[utoipa::path(put, path = "/api/v1/sessions/{id}/overlays/{layer_id}/image", tag = "overlays", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("layer_id" = String, Path, description = "Layer id")), request_body(content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp")), description = "PNG, JPEG or WebP, at most 5 MiB"),
    responses((status = 200, description = "`{width, height}` of the stored image", body = Object), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such layer", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "Not an image layer, or the picture cannot be decoded", body = super::error::Problem, content_type = "application/problem+json"), (status = 413, description = "Larger than 5 MiB", body = super::error::Problem, content_type = "application/problem+json"), (status = 415, description = "Not PNG, JPEG or WebP", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn layer_image(
    State(state): State<Overlays>,
    Path((id, layer_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let layer = find(&state, &id, &layer_id)?;
    if layer.kind != LayerKind::Image {
        return Err(ApiError::unprocessable("only image layers take an image"));
    }
    let (width, height) = store_image(
        &headers,
        body,
        state.shows.images_dir().join(format!("{layer_id}.png")),
    )
    .await?;
    // The compositor redraws image layers when this moves.
    state.live.session(&id).update(|d| d.image_revision += 1);
    Ok(ApiJson(
        json!({"layer_id": layer_id, "width": width, "height": height}),
    ))
}
