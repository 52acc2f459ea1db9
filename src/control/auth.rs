//! Operator authentication: `Authorization: Bearer TOKEN`.

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The operator's bearer token.
#[derive(Clone)]
pub struct OperatorToken(pub std::sync::Arc<str>);

fn check(headers: &HeaderMap, token: &OperatorToken) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(presented) if same(presented.trim().as_bytes(), token.0.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the bearer token is not valid",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "send the operator token as `Authorization: Bearer TOKEN`",
        )),
    }
}

/// Middleware for routes that are operator-only as a whole.
pub async fn require_operator(
    State(token): State<OperatorToken>,
    request: Request,
    next: Next,
) -> Response {
    match check(request.headers(), &token) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// The bearer token `/metrics` asks for (`metrics_token`); `None` keeps it open.
#[derive(Clone)]
pub struct MetricsToken(pub Option<std::sync::Arc<str>>);

impl MetricsToken {
    /// `Ok` when no token is set, or the request carries it.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match &self.0 {
            None => Ok(()),
            Some(token) => check(headers, &OperatorToken(token.clone())),
        }
    }
}

/// Extractor for operator-only handlers on paths that also have public methods.
pub struct Operator;

impl<S: Send + Sync> FromRequestParts<S> for Operator
where
    OperatorToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        check(&parts.headers, &OperatorToken::from_ref(state)).map(|()| Operator)
    }
}
