//! The pages: the watch page (`/watch/{id}`) with its QR code, the replay (`/replay/{id}`,
//! the watch page on the show's recording), and the operator console
//! (`/console`, a static page whose script asks for the token). The watch page's HTML is a small template filled with the
//! session and the strings of the viewer's language (from `Accept-Language`, so the first
//! paint is in it); the script and style are `/web/` files (see `assets.rs`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::error::ApiError;
use crate::shows::Shows;
use crate::store::Store;
use std::sync::Arc;

handles! {
    /// What the pages use.
    Pages {
        store: Arc<Store>,
        shows: Shows,
    }
}

const WATCH_HTML: &str = include_str!("../../web/watch.html");
const STUDIO_HTML: &str = include_str!("../../web/studio.html");
const CONSOLE_HTML: &str = include_str!("../../web/console.html");

/// The page's language (from `Accept-Language`) and its direction, and the boot JSON a
/// page's script reads: the session and the strings of that language.
fn language_and_boot(
    headers: &HeaderMap,
    row: &crate::store::SessionRow,
) -> (&'static str, &'static str, serde_json::Value) {
    let lang = assets::negotiate(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let strings = assets::strings(lang).unwrap_or("{}");
    let dir = assets::languages()
        .as_array()
        .and_then(|l| l.iter().find(|x| x["tag"] == lang))
        .and_then(|x| x["dir"].as_str())
        .map(|d| if d == "rtl" { "rtl" } else { "ltr" })
        .unwrap_or("ltr");
    let boot = serde_json::json!({
        "session_id": row.id,
        "demo": row.test_pattern,
        "lang": lang,
        "strings": serde_json::from_str::<serde_json::Value>(strings).unwrap_or_default(),
        "languages": assets::languages(),
    });
    (lang, dir, boot)
}

/// The phone's publish page: camera preview, Go live over WHIP, the live timer and the
/// shop's counters. The stream key is in the link's fragment, which browsers never send: the
/// page itself carries no secret and is the same for everyone.
#[utoipa::path(get, path = "/studio/{id}", tag = "pages", params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The publish page, in the language `Accept-Language` asks for", body = String, content_type = "text/html"), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn studio(
    State(state): State<Pages>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let (lang, dir, boot) = language_and_boot(&headers, &row);
    let html = fill(STUDIO_HTML, lang, dir, &row.title, &boot);
    // Never framed (it holds the key once the fragment is read), and it may use the camera
    // and the microphone of its own origin only.
    let mut response = page(&headers, html, super::browser::console_policy());
    response.headers_mut().insert(
        header::HeaderName::from_static("permissions-policy"),
        header::HeaderValue::from_static("camera=(self), microphone=(self)"),
    );
    Ok(response)
}

/// A page chosen by `Accept-Language`, revalidated by its ETag, under `policy`. Caches keep
/// one copy per language.
fn page(headers: &HeaderMap, html: String, policy: header::HeaderValue) -> Response {
    let etag = assets::etag_of(html.as_bytes());
    let mut response = assets::cached(headers, &etag, "no-cache", "text/html; charset=utf-8", html);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, policy);
    response.headers_mut().insert(
        header::VARY,
        header::HeaderValue::from_static("Accept-Language"),
    );
    response
}

/// The session's publish link as a QR code (SVG), for the console: the phone scans it and
/// opens the publish page with the key. Operators only: the link carries the stream key.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/publish-qr.svg", tag = "sessions", params(("id" = String, Path, description = "Session id")),
    security(("operator" = [])),
    responses((status = 200, description = "The publish page's link, key included, as a QR code", body = String, content_type = "image/svg+xml"),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn publish_qr(
    State(state): State<Pages>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let url = format!(
        "{}/studio/{}#key={}",
        state.shows.http_base(),
        row.id,
        row.stream_key
    );
    let svg =
        qr_svg(&url).ok_or_else(|| ApiError::internal("the publish URL does not fit a QR code"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// The watch page: player, product panel, buy sheet, likes, in the viewer's language.
#[utoipa::path(get, path = "/watch/{id}", tag = "pages", params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The watch page, in the language `Accept-Language` asks for", body = String, content_type = "text/html"), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn watch(
    State(state): State<Pages>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let (lang, dir, boot) = language_and_boot(&headers, &row);
    let html = render(lang, dir, &row.title, &boot);
    Ok(page(&headers, html, super::browser::watch_policy()))
}

/// The shoppable replay: the show's recording in the watch page, with chapters at each
/// product it pinned and the panel following the replay's time (the product then, its show
/// price, and what can be bought now).
#[utoipa::path(get, path = "/replay/{id}", tag = "pages", params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The replay page, in the language `Accept-Language` asks for", body = String, content_type = "text/html"), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn replay(
    State(state): State<Pages>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let (lang, dir, mut boot) = language_and_boot(&headers, &row);
    let store = state.store.clone();
    let session = row.id.clone();
    boot["replay"] =
        tokio::task::spawn_blocking(move || crate::record::replay::replay_boot(&store, &session))
            .await
            .map_err(|_| ApiError::internal("the replay's data could not be read"))??;
    let html = render(lang, dir, &row.title, &boot);
    Ok(page(&headers, html, super::browser::watch_policy()))
}

/// The watch page's URL as a QR code (SVG), for the console and printed cards.
#[utoipa::path(get, path = "/watch/{id}/qr.svg", tag = "pages", params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The watch URL as a QR code", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn watch_qr(
    State(state): State<Pages>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let url = format!("{}/watch/{}", state.shows.http_base(), row.id);
    let svg =
        qr_svg(&url).ok_or_else(|| ApiError::internal("the watch URL does not fit a QR code"))?;
    let etag = assets::etag_of(svg.as_bytes());
    Ok(assets::cached(
        &headers,
        &etag,
        "no-cache",
        "image/svg+xml",
        svg,
    ))
}

/// A QR code as SVG: one path of unit squares on white, with a quiet zone of 4 modules.
fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let n = code.width();
    let side = n + 8;
    let mut path = String::new();
    for (i, module) in code.to_colors().iter().enumerate() {
        if *module == qrcode::Color::Dark {
            path.push_str(&format!("M{} {}h1v1h-1z", i % n + 4, i / n + 4));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// The operator console. It holds no data: its script signs in with the token and uses the
/// API like any client.
#[utoipa::path(get, path = "/console", tag = "pages",
    responses((status = 200, description = "The operator console", body = String, content_type = "text/html")))]
pub async fn console(headers: HeaderMap) -> Response {
    let etag = assets::etag_of(CONSOLE_HTML.as_bytes());
    let mut response = assets::cached(
        &headers,
        &etag,
        "no-cache",
        "text/html; charset=utf-8",
        CONSOLE_HTML,
    );
    // The console is never framed by another page (the token is typed into it); older
    // browsers read X-Frame-Options for the same.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        super::browser::console_policy(),
    );
    response.headers_mut().insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    response
}

/// Fills the template. The operator's title goes in last, so nothing in it is ever taken for
/// a placeholder.
fn render(lang: &str, dir: &str, title: &str, boot: &serde_json::Value) -> String {
    fill(WATCH_HTML, lang, dir, title, boot)
}

fn fill(template: &str, lang: &str, dir: &str, title: &str, boot: &serde_json::Value) -> String {
    template
        .replace("{{lang}}", lang)
        .replace("{{dir}}", dir)
        .replace("{{boot}}", &script_json(boot))
        .replace("{{title}}", &html_escape(title))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// JSON that is safe inside `<script type="application/json">`: no `<` can close the element.
fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_cannot_leave_its_element_and_json_cannot_leave_the_script() {
        assert_eq!(
            html_escape("<b>\"Jam\" & 'naan'</b>"),
            "&lt;b&gt;&quot;Jam&quot; &amp; &#39;naan&#39;&lt;/b&gt;"
        );
        let json = script_json(&serde_json::json!({"t": "</script><script>alert(1)"}));
        assert!(!json.contains('<'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["t"], "</script><script>alert(1)");
        let page = render(
            "en",
            "ltr",
            "Jam {{boot}} {{lang}}",
            &serde_json::json!({"x": 1}),
        );
        assert!(
            page.contains("Jam {{boot}} {{lang}}"),
            "a placeholder in the title was filled"
        );
        assert_eq!(page.matches(r#"{"x":1}"#).count(), 1);
    }
}
