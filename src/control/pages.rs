//! The pages: the watch page (`/watch/{id}`).

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse};

use super::error::ApiError;
use crate::app::AppState;

const WATCH_HTML: &str = include_str!("../../web/watch.html");

/// The watch page: plays the session over WHEP and reconnects when the connection drops.
pub async fn watch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let row = state
        .store
        .session(&id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let title = html_escape(&row.title);
    Ok(Html(
        WATCH_HTML
            .replace("{{title}}", &title)
            .replace("{{session_id}}", &row.id),
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
