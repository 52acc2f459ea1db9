//! Answers meant for HTTP caches (HLS playlists and media, the live state): validators
//! (`ETag`, `Last-Modified`), the cache rule, `304` for a client that holds the answer, and
//! `Access-Control-Allow-Origin: *` on everything, errors included (which no cache keeps).

use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Whether the client already holds `etag` (`If-None-Match`).
pub fn held(request: &HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// An answer with the validators and the cache rule; 304 when the client holds it.
pub fn answer(
    request: &HeaderMap,
    etag: String,
    made: SystemTime,
    cache_control: &'static str,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut response = if held(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(made)) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

/// Any answer, error or not, may be read by a player on another origin.
pub fn open_to_all(result: Result<Response, ApiError>) -> Response {
    let mut response = result.unwrap_or_else(|e| {
        let mut r = e.into_response();
        // An error is the state of the moment: caches must not keep it.
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    });
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
