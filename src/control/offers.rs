//! Flash sales: offers of a product in a session, with stock allocated from the ledger.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use super::outcome::ledger_response;
use crate::commerce::ledger::StockLedger;
use crate::commerce::views::OfferView;
use crate::store::Store;
use crate::store::commerce::OfferRow;
use fieldcast_core::ids::random_hex;
use fieldcast_core::time::now_ms;
use std::sync::Arc;

handles! {
    /// What the offer routes use.
    Offers {
        store: Arc<Store>,
        ledger: StockLedger,
    }
}

/// Default and longest offer duration.
pub const DEFAULT_DURATION_S: i64 = 600;
pub const MAX_DURATION_S: i64 = 7 * 24 * 3600;
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Latest start a sale may name (Unix seconds, in the year 2286): far enough for any show,
/// and milliseconds of it fit an i64 with room to add the duration.
pub const MAX_STARTS_AT_S: i64 = 10_000_000_000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOffer {
    /// The product on sale; 404 when there is no such product.
    product_id: String,
    /// The sale price in minor units (fen, cents).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    unit_amount: i64,
    #[schema(minimum = 1, maximum = 1_000_000)]
    quantity: i64,
    /// Units one buyer may take in all.
    #[schema(minimum = 1)]
    per_buyer_limit: Option<i64>,
    /// Unix seconds; default now.
    #[schema(minimum = 0, maximum = 10_000_000_000_i64)]
    starts_at: Option<i64>,
    /// Seconds [default: 600].
    #[schema(minimum = 1, maximum = 604_800)]
    duration_s: Option<i64>,
}

/// Opens a flash sale: `quantity` units at `unit_amount`, from `starts_at` for `duration_s`.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/offers", tag = "offers", security(("operator" = [])), params(("id" = String, Path, description = "Session id")), request_body = CreateOffer,
    responses((status = 201, description = "The offer with its live stock", body = OfferView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session or product", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json"), (status = 503, description = "The ledger is busy; try again (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<Offers>,
    Path(session_id): Path<String>,
    ApiJson(body): ApiJson<CreateOffer>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .store
        .session(&session_id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    state
        .store
        .product(&body.product_id)?
        .ok_or_else(|| ApiError::not_found("product"))?;
    if !(0..=1_000_000_000_000).contains(&body.unit_amount) {
        return Err(ApiError::unprocessable(
            "unit_amount: an integer in minor units between 0 and 10^12",
        ));
    }
    if !(1..=MAX_QUANTITY).contains(&body.quantity) {
        return Err(ApiError::unprocessable(format!(
            "quantity: between 1 and {MAX_QUANTITY}"
        )));
    }
    if body.per_buyer_limit.is_some_and(|l| l < 1) {
        return Err(ApiError::unprocessable("per_buyer_limit: at least 1"));
    }
    let duration = body.duration_s.unwrap_or(DEFAULT_DURATION_S);
    if !(1..=MAX_DURATION_S).contains(&duration) {
        return Err(ApiError::unprocessable(format!(
            "duration_s: between 1 and {MAX_DURATION_S}"
        )));
    }
    let now = now_ms();
    if body
        .starts_at
        .is_some_and(|s| !(0..=MAX_STARTS_AT_S).contains(&s))
    {
        return Err(ApiError::unprocessable(format!(
            "starts_at: unix seconds, at most {MAX_STARTS_AT_S}"
        )));
    }
    let starts_at = body.starts_at.map(|s| s * 1000).unwrap_or(now);
    let offer = OfferRow {
        id: format!("offer_{}", random_hex(8)),
        session_id: session_id.clone(),
        product_id: body.product_id,
        unit_amount: body.unit_amount,
        allocated: body.quantity,
        available: body.quantity,
        sold: 0,
        per_buyer_limit: body.per_buyer_limit,
        starts_at,
        ends_at: starts_at + duration * 1000,
        ended_early: false,
        created_at: now / 1000,
    };
    // The ledger writes it and announces it to the live state, in order with every sale.
    ledger_response(state.ledger.open_offer(offer).await)
}

/// The session's offers with their live stock.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/offers", tag = "offers", security(("operator" = [])), params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The session's offers with their live stock", body = [OfferView]), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<Offers>,
    Path(session_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let now = now_ms();
    Ok(ApiJson(
        state
            .store
            .offers_of(&session_id)?
            .iter()
            .map(|o| OfferView::of(o, now))
            .collect::<Vec<_>>(),
    ))
}

/// One offer: state, allocated, remaining, sold.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/offers/{offer_id}", tag = "offers", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("offer_id" = String, Path, description = "Offer id")),
    responses((status = 200, description = "The offer with its live stock", body = OfferView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such offer", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<Offers>,
    Path((session_id, offer_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let offer = state
        .store
        .offer(&offer_id)?
        .filter(|o| o.session_id == session_id)
        .ok_or_else(|| ApiError::not_found("offer"))?;
    Ok(ApiJson(OfferView::of(&offer, now_ms())))
}

/// Ends an offer now (`offer.ended` is sent).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/offers/{offer_id}/end", tag = "offers", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("offer_id" = String, Path, description = "Offer id")),
    responses((status = 200, description = "The offer, ended", body = OfferView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such offer", body = super::error::Problem, content_type = "application/problem+json"), (status = 503, description = "The ledger is busy; try again (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn end(
    State(state): State<Offers>,
    Path((session_id, offer_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ledger_response(state.ledger.end_offer(&session_id, &offer_id).await)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStock {
    #[schema(minimum = 1, maximum = 1_000_000)]
    quantity: i64,
}

/// Adds stock to a running offer.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/offers/{offer_id}/stock", tag = "offers", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("offer_id" = String, Path, description = "Offer id")), request_body = AddStock,
    responses((status = 200, description = "The offer with its new stock", body = OfferView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such offer", body = super::error::Problem, content_type = "application/problem+json"), (status = 409, description = "The ledger refused (the problem's `code` says why)", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json"), (status = 503, description = "The ledger is busy; try again (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn add_stock(
    State(state): State<Offers>,
    Path((session_id, offer_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<AddStock>,
) -> Result<Response, ApiError> {
    if !(1..=MAX_QUANTITY).contains(&body.quantity) {
        return Err(ApiError::unprocessable(format!(
            "quantity: between 1 and {MAX_QUANTITY}"
        )));
    }
    ledger_response(
        state
            .ledger
            .add_stock(&session_id, &offer_id, body.quantity)
            .await,
    )
}
