//! Orders: buying is public (with an `Idempotency-Key`); listing, CSV export and cancelling
//! are for operators.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::Operator;
use super::client::Client;
use super::client::PublicLimits;
use super::error::{ApiError, ApiJson};
use super::outcome::ledger_response;
use crate::commerce::buyers::BuyerTokens;
use crate::commerce::buyers::TokenError;
use crate::commerce::devices::DeviceKeys;
use crate::commerce::ledger::StockLedger;
use crate::commerce::ledger::{Buyer, OrderRequest};
use crate::config::Settings;
use crate::store::Store;
use fieldcast_core::commerce::rules::normalize_phone;
use fieldcast_core::time::now_ms;
use std::sync::Arc;

handles! {
    /// What the order routes use.
    Orders {
        store: Arc<Store>,
        ledger: StockLedger,
        public: Arc<PublicLimits>,
        devices: DeviceKeys,
        buyer_tokens: Arc<BuyerTokens>,
        settings: Arc<Settings>,
    }
}

/// The header a shop's page sends its customer's buyer token in (`commerce::buyers`).
pub const BUYER_HEADER: &str = "fieldcast-buyer";

/// Most units in one order.
pub const MAX_ORDER_QUANTITY: i64 = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    offer_id: String,
    #[schema(minimum = 1, maximum = 1000)]
    quantity: i64,
    buyer: Buyer,
}

/// A buyer text field: not blank, and at most `max` characters as sent (padding counts: it
/// is stored as sent).
fn field(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    super::fields::text(name, value, max).map(drop)
}

/// Longest phone number as typed (`+86 (138) 0013-8000` and the like).
pub const MAX_PHONE_CHARS: usize = 32;

/// An order body, checked: what the ledger needs, and the hash that ties an
/// `Idempotency-Key` to this body.
#[derive(Debug)]
pub struct ParsedOrder {
    pub offer_id: String,
    pub quantity: i64,
    pub buyer: Buyer,
    pub phone_key: String,
    pub request_hash: String,
}

/// Parses and checks an order body. Every body gets an answer: 400 for broken JSON, 422
/// naming the field for anything else wrong (fuzzed in tests/mutation.rs). National phone
/// numbers are keyed under `phone_country` (`rules::normalize_phone`).
pub fn parse_order(body: &[u8], phone_country: &str) -> Result<ParsedOrder, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })?;
    // serde_json's map is ordered: this text is canonical for equal bodies.
    let request_hash = format!("{:x}", Sha256::digest(value.to_string().as_bytes()));
    let order: OrderBody = serde_json::from_value(super::error::integral_numbers(value))
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if !(1..=MAX_ORDER_QUANTITY).contains(&order.quantity) {
        return Err(ApiError::unprocessable(format!(
            "quantity: between 1 and {MAX_ORDER_QUANTITY}"
        )));
    }
    field("buyer.name", &order.buyer.name, 100)?;
    field("buyer.address", &order.buyer.address, 500)?;
    if let Some(city) = &order.buyer.city {
        field("buyer.city", city, 100)?;
    }
    if order.buyer.phone.chars().count() > MAX_PHONE_CHARS {
        return Err(ApiError::unprocessable(format!(
            "buyer.phone: at most {MAX_PHONE_CHARS} characters"
        )));
    }
    let phone_key = normalize_phone(&order.buyer.phone, phone_country)
        .ok_or_else(|| ApiError::unprocessable("buyer.phone: a phone number of 6 to 15 digits"))?;
    Ok(ParsedOrder {
        offer_id: order.offer_id,
        quantity: order.quantity,
        buyer: order.buyer,
        phone_key,
        request_hash,
    })
}

/// Buys from a live offer. The same `Idempotency-Key` with the same body replays the first
/// answer; with another body it is refused (422). Answered only after the order is on disk.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/orders", tag = "orders", params(("id" = String, Path, description = "Session id"), ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "[^ \t]", description = "One key per buying attempt: a retry with the same key and body gets the first answer"), ("Fieldcast-Device" = Option<String>, Header, description = "A device token (POST /api/v1/devices): order limits then hold per device, not per address"), ("Fieldcast-Buyer" = Option<String>, Header, description = "A buyer token (JWT) from the shop's own login: the per-buyer limit then holds per customer, and the per-network share does not apply")), request_body = OrderBody,
    responses((status = 201, description = "The order, on disk", body = crate::commerce::views::OrderView), (status = 200, description = "A replay of the first answer to this Idempotency-Key", body = crate::commerce::views::OrderView), (status = 400, description = "Not JSON, or no Idempotency-Key", body = super::error::Problem, content_type = "application/problem+json"), (status = 401, description = "The buyer token does not verify (the detail says why)", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::error::Problem, content_type = "application/problem+json"), (status = 409, description = "The ledger refused (the problem's `code` says why: sold_out, only_left, network_share)", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json"), (status = 429, description = "Too many requests from this device, or from this address (Retry-After)", body = super::error::Problem, content_type = "application/problem+json"), (status = 503, description = "The ledger is busy, or still storing this order: send the same request with the same Idempotency-Key again after Retry-After", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<Orders>,
    Path(session_id): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // First, before any parsing or SQL: a flood from one network costs a token lookup. A page
    // with a device token is limited per device (and per address only as a flood cap);
    // without one, or with one this server did not issue, per address.
    let sent = headers
        .get(super::devices::DEVICE_HEADER)
        .and_then(|v| v.to_str().ok());
    let device = sent.and_then(|token| state.devices.verify(token, now_ms() / 1000));
    let renew = sent.is_some() && device.is_none();
    let mut response = match place(&state, session_id, client, &headers, &body, device).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    // A token this server no longer takes (expired, or the device secret changed): the page
    // asks for a new one.
    if renew {
        response.headers_mut().insert(
            super::devices::DEVICE_HEADER,
            header::HeaderValue::from_static("renew"),
        );
    }
    response
}

async fn place(
    state: &Orders,
    session_id: String,
    client: std::net::IpAddr,
    headers: &HeaderMap,
    body: &[u8],
    device: Option<String>,
) -> Result<Response, ApiError> {
    // A shop's customer (a buyer token that verifies) is the buyer; a token that does not
    // verify is refused with the reason, after it took its turn from the address's bucket.
    let customer = match headers.get(BUYER_HEADER) {
        None => None,
        Some(token) => match token
            .to_str()
            .map_err(|_| TokenError::Malformed)
            .and_then(|t| state.buyer_tokens.verify(t.trim(), now_ms() / 1000))
        {
            Ok(customer) => Some(customer),
            Err(e) => {
                state.public.check_order(client, None)?;
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    format!("Fieldcast-Buyer: {e}"),
                ));
            }
        },
    };
    state
        .public
        .check_order(client, customer.as_deref().or(device.as_deref()))?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "Idempotency-Key: send a unique key (up to 255 characters) with every order",
            )
        })?
        .to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the order as application/json",
        ));
    }
    let order = parse_order(body, &state.settings.phone_country_code)?;
    state
        .store
        .session(&session_id)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let request = OrderRequest {
        session_id,
        idempotency_key: key,
        request_hash: order.request_hash,
        offer_id: order.offer_id,
        quantity: order.quantity,
        buyer: order.buyer,
        // The shop vouches for its customer: the per-buyer limit holds per customer, and the
        // network's share, which exists because a network cannot tell phones from bots, not.
        address_share_percent: match customer {
            Some(_) => 0,
            None => state.settings.address_share_percent,
        },
        phone_key: customer.unwrap_or(order.phone_key),
        address_key: state.devices.address_key(client),
    };
    // A slow ledger (a slow disk) is answered before the request deadline with "send it again
    // with the same key", never with a status that reads as final: the ledger serves requests
    // in order, so that retry finds this order if the ledger takes it after all.
    match tokio::time::timeout(ORDER_WAIT, state.ledger.order(request)).await {
        Ok(answer) => ledger_response(answer),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the order is still being stored; send the same request with the same Idempotency-Key again",
        )
        .retry_after(ORDER_RETRY_AFTER_S)),
    }
}

/// How long a buyer's request waits for the ledger before it is answered 503 with
/// `Retry-After`. Below the request deadline (`REQUEST_TIMEOUT`, 15 s), so that the answer is
/// this one and says to keep the key.
pub const ORDER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The `Retry-After` of that answer, in seconds.
const ORDER_RETRY_AFTER_S: u32 = 2;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only this offer's orders.
    offer_id: Option<String>,
    /// Only orders in this state.
    #[param(inline, value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Only this buyer's (any way of writing the number, as `buyer.phone` takes it).
    #[param(
        pattern = r"^([ ().-]*\+[ ().-]*([0-9][ ().-]*){6,15}|[ ().-]*([0-9][ ().-]*){6,15}|[ ().-]*0[ ().-]*0[ ().-]*([0-9][ ().-]*){6,15})$"
    )]
    phone: Option<String>,
}

/// An order's state, as the filter names it.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum OrderStatus {
    Confirmed,
    Cancelled,
}

fn phone_key(state: &Orders, f: &OrderFilter) -> Result<Option<String>, ApiError> {
    f.phone
        .as_ref()
        .filter(|p| !p.is_empty())
        .map(|p| {
            normalize_phone(p, &state.settings.phone_country_code)
                .ok_or_else(|| ApiError::unprocessable("phone: not a phone number"))
        })
        .transpose()
}

/// Every order the filter names, for the CSV export.
fn filtered(
    state: &Orders,
    session_id: &str,
    f: &OrderFilter,
) -> Result<Vec<crate::store::commerce::OrderRow>, ApiError> {
    let phone_key = phone_key(state, f)?;
    Ok(state.store.orders_of(
        session_id,
        f.offer_id.as_deref(),
        f.status.as_deref(),
        phone_key.as_deref(),
    )?)
}

/// Most orders on one page, and the page length when none is asked for.
pub const MAX_PAGE: usize = 1000;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Orders on this page [default: 1000].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `oldest` (as taken, the default) or `newest` first.
    #[param(inline, value_type = Option<PageOrder>)]
    order: Option<String>,
    /// The cursor of the page before (its `Fieldcast-Next-Cursor`, or `after=` in its `Link`).
    #[param(pattern = "^c[0-9]{1,18}$")]
    after: Option<String>,
}

/// Which orders come first.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum PageOrder {
    Oldest,
    Newest,
}

/// Lists a session's orders with the buyers' details (`?offer_id=&status=&phone=`), a page at
/// a time: `?limit=&order=newest&after=CURSOR`. When there are more, the answer's `Link`
/// header (`rel="next"`) and `Fieldcast-Next-Cursor` give the next page.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/orders", tag = "orders", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), OrderFilter, PageParams),
    responses((status = 200, description = "One page of the session's orders with the buyers' details, in the order they were taken (or newest first)", body = [crate::commerce::views::OrderWithBuyer],
        headers(("Link" = String, description = "`<…?after=CURSOR…>; rel=\"next\"` when there is a next page"), ("Fieldcast-Next-Cursor" = String, description = "The next page's cursor, when there is one"))),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(
    _: Operator,
    State(state): State<Orders>,
    Path(session_id): Path<String>,
    Query(filter): Query<OrderFilter>,
    Query(page): Query<PageParams>,
) -> Result<Response, ApiError> {
    let limit = page.limit.unwrap_or(MAX_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::unprocessable(format!(
            "limit: between 1 and {MAX_PAGE}"
        )));
    }
    let newest_first = match page.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(_) => return Err(ApiError::unprocessable("order: oldest or newest")),
    };
    let after = match page.after.as_deref() {
        None => None,
        Some(cursor) => Some(
            cursor
                .trim_matches([' ', '\t', '\n', '\r'])
                .strip_prefix('c')
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::unprocessable("after: a cursor from the page before (c123…)")
                })?,
        ),
    };
    let phone_key = phone_key(&state, &filter)?;
    let query = crate::store::commerce::OrderQuery {
        offer_id: filter.offer_id.as_deref(),
        status: filter.status.as_deref(),
        phone_key: phone_key.as_deref(),
    };
    let request = crate::store::commerce::PageRequest {
        newest_first,
        after,
        limit,
    };
    let (orders, next) = state.store.orders_page(&session_id, &query, request)?;
    let body = ApiJson(
        orders
            .iter()
            .map(crate::commerce::views::OrderWithBuyer::of)
            .collect::<Vec<_>>(),
    );
    let mut response = body.into_response();
    if let Some(next) = next {
        let cursor = format!("c{next}");
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if newest_first {
            query.push(("order", "newest".into()));
        }
        for (name, value) in [
            ("offer_id", &filter.offer_id),
            ("status", &filter.status),
            ("phone", &filter.phone),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        query.push(("after", cursor.clone()));
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        let link = format!(
            "</api/v1/sessions/{}/orders?{}>; rel=\"next\"",
            percent_encode(&session_id),
            query.join("&")
        );
        let headers = response.headers_mut();
        for (name, value) in [("link", link), ("fieldcast-next-cursor", cursor)] {
            if let Ok(value) = header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    Ok(response)
}

/// A query value as a URL carries it: unreserved characters as they are, the rest %XX.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One CSV cell, quoted. A cell a spreadsheet would read as a formula (OWASP's CSV injection
/// starters: `=`, `+`, `-`, `@`, tab, CR) gets a leading `'`, except a phone number in the
/// phone column, which stays as typed (`+86 138…` is on the shipping label as the buyer wrote
/// it).
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv_phone(s: &str) -> String {
    let phone_like = s.strip_prefix('+').is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_digit())
            && rest
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
    });
    if phone_like {
        format!("\"{s}\"")
    } else {
        csv_cell(s)
    }
}

/// CSV for shipping labels: name, phone, address, city, product, quantity, amount.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/orders.csv", tag = "orders", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), OrderFilter),
    responses((status = 200, description = "The same orders as CSV for shipping labels", body = String, content_type = "text/csv"), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn csv(
    _: Operator,
    State(state): State<Orders>,
    Path(session_id): Path<String>,
    Query(filter): Query<OrderFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let orders = filtered(&state, &session_id, &filter)?;
    let products = state.store.products()?;
    let mut out = String::from(
        "order_id,name,phone,address,city,product,quantity,amount,currency,status,created_at\r\n",
    );
    for o in &orders {
        let product = products
            .iter()
            .find(|p| p.id == o.product_id)
            .map(|p| p.name.as_str())
            .unwrap_or("");
        let row = [
            csv_cell(&o.id),
            csv_cell(&o.buyer_name),
            csv_phone(&o.buyer_phone),
            csv_cell(&o.buyer_address),
            csv_cell(o.buyer_city.as_deref().unwrap_or("")),
            csv_cell(product),
            o.quantity.to_string(),
            o.amount.to_string(),
            csv_cell(&o.currency),
            csv_cell(&o.status),
            o.created_at.to_string(),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                // Ids are ours (hex); anything else a client sent is not put in a header.
                if session_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    format!("attachment; filename=\"orders-{session_id}.csv\"")
                } else {
                    "attachment; filename=\"orders.csv\"".to_string()
                },
            ),
        ],
        out,
    ))
}

/// Cancels an order and puts its stock back (`order.cancelled` is sent).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/orders/{order_id}/cancel", tag = "orders", security(("operator" = [])), params(("id" = String, Path, description = "Session id"), ("order_id" = String, Path, description = "Order id")),
    responses((status = 200, description = "The order, cancelled; its units are back in the offer", body = crate::commerce::views::OrderView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such order", body = super::error::Problem, content_type = "application/problem+json"), (status = 409, description = "The ledger refused (the problem's `code` says why)", body = super::error::Problem, content_type = "application/problem+json"), (status = 503, description = "The ledger is busy; try again (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    _: Operator,
    State(state): State<Orders>,
    Path((session_id, order_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ledger_response(state.ledger.cancel(&session_id, &order_id).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_neutralise_formula_starters_and_phones_stay_as_typed() {
        for (typed, cell) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("+SUM(A1)", "\"'+SUM(A1)\""),
            ("-2+3", "\"'-2+3\""),
            ("@cmd", "\"'@cmd\""),
            ("\t=1", "\"'\t=1\""),
            ("\r=1", "\"'\r=1\""),
            ("Aygul", "\"Aygul\""),
        ] {
            assert_eq!(csv_cell(typed), cell, "{typed:?}");
        }
        assert_eq!(csv_phone("+86 138 0013 8000"), "\"+86 138 0013 8000\"");
        assert_eq!(csv_phone("+1 (415) 555-0100"), "\"+1 (415) 555-0100\"");
        assert_eq!(csv_phone("13800138000"), "\"13800138000\"");
        assert_eq!(csv_phone("+SUM(A1)"), "\"'+SUM(A1)\"", "not a phone");
        assert_eq!(csv_phone("+86=1"), "\"'+86=1\"", "not a phone");
    }

    #[test]
    fn buyer_fields_are_bounded_as_sent_padding_included() {
        let body = |name: &str, phone: &str| {
            serde_json::json!({"offer_id": "o", "quantity": 1, "buyer": {"name": name, "phone": phone, "address": "1 Rose Street"}})
                .to_string()
        };
        assert!(parse_order(body("Aygul", "+86 138 0013 8000").as_bytes(), "86").is_ok());
        let padded = format!("Aygul{}", " ".repeat(200));
        assert!(parse_order(body(&padded, "13800138000").as_bytes(), "86").is_err());
        let long_phone = format!("138001380{}", " ".repeat(40));
        let refused = parse_order(body("Aygul", &long_phone).as_bytes(), "86").unwrap_err();
        assert!(
            format!("{refused:?}").contains("buyer.phone"),
            "{refused:?}"
        );
    }
}
