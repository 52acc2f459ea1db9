//! What browsers are told to enforce on every answer: a Content-Security-Policy, `nosniff`
//! and a referrer policy.
//!
//! The pages load only their own files (`script-src 'self'`, no inline script or style; the
//! watch page's boot data is a JSON block, which is never run), talk only to this server,
//! and play media from `blob:` URLs (hls.js's MediaSource, and its transmuxing worker). The
//! watch page may be embedded by any site (a shop's page); the console never is (the operator
//! token is typed into it). Every other answer (JSON, playlists, images) gets a policy that
//! allows nothing, should a browser ever render one as a document.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

const PAGE_SOURCES: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

/// The watch page: its own files, and any document may frame it (no `frame-ancestors`: its
/// `*` would still refuse a shop page with no network origin, such as one written by script).
pub fn watch_policy() -> HeaderValue {
    HeaderValue::from_static(PAGE_SOURCES)
}

/// The console: its own files, and nobody frames it.
pub fn console_policy() -> HeaderValue {
    HeaderValue::from_str(&format!("{PAGE_SOURCES}; frame-ancestors 'none'"))
        .expect("a valid header value")
}

/// Anything that is not a page.
const NOTHING: &str = "default-src 'none'; frame-ancestors 'none'";

/// Every route: `nosniff`, `Referrer-Policy: same-origin`, and [`NOTHING`] as the policy of
/// answers that did not set their own.
pub async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(NOTHING));
    response
}
