//! The pages' own files (`/web/...`: scripts, styles, the language files) and the public,
//! content-addressed product photos (`/images/{sha256}.png`). Every file is embedded in the
//! binary and answered with an `ETag`; a matching `If-None-Match` gets 304 and no body.

use std::path::Path;
use std::sync::OnceLock;

use axum::extract::Path as UrlPath;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::cacheable::held;
use super::error::ApiError;
use crate::shows::Shows;

handles! {
    /// What the page-file routes use.
    Assets {
        shows: Shows,
    }
}

include!(concat!(env!("OUT_DIR"), "/i18n.rs"));

/// The pages' scripts and styles (their HTML is in `pages.rs`).
const FILES: &[(&str, &str, &str)] = &[
    (
        "watch.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/watch.js"),
    ),
    (
        "watch.css",
        "text/css; charset=utf-8",
        include_str!("../../web/watch.css"),
    ),
    (
        "studio.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/studio.js"),
    ),
    (
        "studio.css",
        "text/css; charset=utf-8",
        include_str!("../../web/studio.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../web/console.css"),
    ),
    // hls.js 1.7.4 (web/vendor/README.md): the watch page loads it only to fall back to HLS.
    (
        "hls.light.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/vendor/hls.light.min.js"),
    ),
];

/// Files change only with a new binary: browsers keep them and ask again with their ETag.
const REVALIDATE: &str = "public, max-age=0, must-revalidate";
/// A photo's URL names its content: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An ETag of some bytes. Weak: the compression layer may send the same content gzip- or
/// brotli-encoded, and a strong validator would have to differ between those encodings.
pub fn etag_of(bytes: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(bytes));
    format!("W/\"{}\"", &hex[..24])
}

/// Answers with `body`, or 304 when the client holds this version already.
pub fn cached(
    request: &HeaderMap,
    etag: &str,
    cache_control: &'static str,
    content_type: &'static str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let fresh = held(request, etag);
    let etag = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
    let headers = [
        (header::ETAG, etag),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body.into(),
    )
        .into_response()
}

fn etags() -> &'static Vec<String> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, text)| etag_of(text.as_bytes()))
            .chain(LANGUAGES.iter().map(|(_, text)| etag_of(text.as_bytes())))
            .collect()
    })
}

/// `GET /web/{file}` and `GET /web/i18n/{lang}.json`.
#[utoipa::path(get, path = "/web/{file}", tag = "pages", params(("file" = String, Path, description = "File name")),
    responses((status = 200, description = "A script or style of the pages", body = String, content_type = "text/javascript"), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such file", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn web_file(UrlPath(file): UrlPath<String>, headers: HeaderMap) -> Response {
    if let Some(i) = FILES.iter().position(|(name, _, _)| *name == file) {
        let (_, content_type, text) = FILES[i];
        return cached(&headers, &etags()[i], REVALIDATE, content_type, text);
    }
    ApiError::not_found("file").into_response()
}

#[utoipa::path(get, path = "/web/i18n/{file}", tag = "pages", params(("file" = String, Path, description = "`{lang}.json`")),
    responses((status = 200, description = "The pages' strings in one language", body = Object), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such language", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn language_file(UrlPath(file): UrlPath<String>, headers: HeaderMap) -> Response {
    let tag = file.strip_suffix(".json").unwrap_or("");
    match LANGUAGES.iter().position(|(t, _)| *t == tag) {
        Some(i) => cached(
            &headers,
            &etags()[FILES.len() + i],
            REVALIDATE,
            "application/json",
            LANGUAGES[i].1,
        ),
        None => ApiError::not_found("language").into_response(),
    }
}

/// The language tags there are files for, and for each its own name and direction (from
/// its `_name` and `_dir` strings), for the switcher.
pub fn languages() -> &'static serde_json::Value {
    static LIST: OnceLock<serde_json::Value> = OnceLock::new();
    LIST.get_or_init(|| {
        serde_json::Value::Array(
            LANGUAGES
                .iter()
                .map(|(tag, text)| {
                    let strings: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                    serde_json::json!({
                        "tag": tag,
                        "name": strings["_name"].as_str().unwrap_or(tag),
                        "dir": strings["_dir"].as_str().unwrap_or("ltr"),
                    })
                })
                .collect(),
        )
    })
}

/// The strings of `tag`, if there is a file for it.
pub fn strings(tag: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(t, _)| *t == tag).map(|(_, s)| *s)
}

/// The best language for an `Accept-Language` header (by its q-values, then order; a
/// region falls back to its language: `zh-CN` → `zh`), or English.
pub fn negotiate(accept_language: &str) -> &'static str {
    let mut wanted: Vec<(f32, usize, String)> = accept_language
        .split(',')
        .take(32)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok()))
                .unwrap_or(1.0);
            (!tag.is_empty() && q > 0.0).then_some((q, i, tag))
        })
        .collect();
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, tag) in wanted {
        let primary = tag.split('-').next().unwrap_or("");
        for candidate in [tag.as_str(), primary] {
            if let Some((t, _)) = LANGUAGES
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(candidate))
            {
                return t;
            }
        }
    }
    "en"
}

/// Stores a copy of a product photo under its content hash and returns the hash.
pub fn publish_image(images: &Path, stored: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(stored)?;
    let hash = format!("{:x}", Sha256::digest(&bytes));
    let dir = images.join("by-hash");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{hash}.png"));
    // A file of that name is kept only when it holds those bytes: one left torn by a crash
    // (before files were written durably) is written again, since clients cache it a year.
    let intact = std::fs::read(&path).is_ok_and(|existing| existing == bytes);
    if !intact {
        crate::files::write_durably(&path, &bytes, false)?;
    }
    Ok(hash)
}

/// `GET /images/{sha256}.png`: a product photo, public and cacheable for a year.
#[utoipa::path(get, path = "/images/{file}", tag = "pages", params(("file" = String, Path, description = "`{sha256}.png`")),
    responses((status = 200, description = "A product photo, immutable", body = Vec<u8>, content_type = "image/png"), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such image", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn image(
    State(state): State<Assets>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hash = file
        .strip_suffix(".png")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ApiError::not_found("image"))?;
    let etag = format!("\"{hash}\"");
    let path = state
        .shows
        .images_dir()
        .join("by-hash")
        .join(format!("{hash}.png"));
    // A client that holds the photo is answered without reading it.
    if held(&headers, &etag) {
        return Ok(cached(&headers, &etag, IMMUTABLE, "image/png", ""));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found("image"))?;
    Ok(cached(&headers, &etag, IMMUTABLE, "image/png", bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_a_language_there_is_a_file_for() {
        assert_eq!(negotiate("zh-CN,zh;q=0.9,en;q=0.8"), "zh");
        assert_eq!(negotiate("ug-CN"), "ug");
        assert_eq!(negotiate("fr-FR, en;q=0.5"), "en");
        assert_eq!(negotiate("fr-FR, ug;q=0.4, zh;q=0.6"), "zh");
        assert_eq!(negotiate(""), "en");
        assert_eq!(negotiate(&"x,".repeat(10_000)), "en");
    }

    #[test]
    fn every_language_file_has_every_english_string() {
        let english: serde_json::Value = serde_json::from_str(strings("en").unwrap()).unwrap();
        for (tag, text) in LANGUAGES {
            let other: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("web/i18n/{tag}.json is not JSON: {e}"));
            for key in english.as_object().unwrap().keys() {
                assert!(other[key].is_string(), "web/i18n/{tag}.json lacks {key:?}");
            }
        }
    }
}
