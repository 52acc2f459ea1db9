//! The stock ledger's answers as HTTP: the one place where a sale's outcome becomes a status
//! and a problem+json body.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::commerce::ledger::{LedgerAnswer, LedgerError};

/// Turns a stock ledger answer into a response (problem+json for refusals).
pub fn ledger_response(answer: Result<LedgerAnswer, LedgerError>) -> Result<Response, ApiError> {
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
