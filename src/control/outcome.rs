//! The stock ledger's outcomes as HTTP: the one place where a sale's decision becomes a
//! status and a body (JSON, or problem+json for a refusal). The ledger keeps this rendering of
//! an order's first outcome for replays (`commerce::ledger::Render`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::commerce::ledger::{Answer, LedgerError, Outcome, Refused};
use crate::commerce::views::{offer_json, order_json};

/// An outcome's status and body.
pub fn render(outcome: &Outcome) -> Answer {
    match outcome {
        Outcome::OrderTaken(order) => answer(201, order_json(order)),
        Outcome::OfferOpened { offer, at_ms } => answer(201, offer_json(offer, *at_ms)),
        Outcome::Order(order) => answer(200, order_json(order)),
        Outcome::Offer { offer, at_ms } => answer(200, offer_json(offer, *at_ms)),
        Outcome::Replay(first) => first.clone(),
        Outcome::Refused(refused) => refusal(refused),
    }
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body: body.to_string(),
    }
}

/// A problem body. A refusal a page explains in the buyer's language has a `code`
/// (`sold_out`, `only_left`, `not_started`, `ended`, `over_limit`, `network_share`) and the
/// numbers it needs beside it.
fn refusal(refused: &Refused) -> Answer {
    let (status, code, detail, numbers): (u16, Option<&str>, String, Value) = match refused {
        Refused::Rule(rule) => (
            // Each is a conflict with the offer's state or the buyer's earlier orders, not a
            // fault in the request: the same request may succeed another time (409).
            409,
            Some(rule.code()),
            rule.detail(),
            rule.numbers(),
        ),
        Refused::OnlyLeft { remaining } => (
            409,
            Some("only_left"),
            format!("quantity: only {remaining} left"),
            json!({ "remaining": remaining }),
        ),
        Refused::NoSuchOffer => (
            404,
            None,
            "offer_id: no such offer in this session".into(),
            json!({}),
        ),
        Refused::NotFound(what) => (404, None, format!("{what} not found"), json!({})),
        Refused::OfferEnded => (409, Some("ended"), "the offer has ended".into(), json!({})),
        Refused::KeyReused => (
            422,
            None,
            "Idempotency-Key: this key was already used with a different request body".into(),
            json!({}),
        ),
        Refused::NotStored => (
            503,
            None,
            "the order could not be stored; try again".into(),
            json!({}),
        ),
    };
    let title = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut body =
        json!({"type": "about:blank", "title": title, "status": status, "detail": detail});
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    if let (Some(body), Value::Object(numbers)) = (body.as_object_mut(), numbers) {
        body.extend(numbers);
    }
    answer(status, body)
}

/// A ledger outcome as a response; a ledger that is busy or stopped as problem+json.
pub fn ledger_response(outcome: Result<Outcome, LedgerError>) -> Result<Response, ApiError> {
    let outcome = outcome.map_err(|e| match e {
        LedgerError::Busy => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(1)
        }
        LedgerError::Stopped => ApiError::internal(e),
    })?;
    let Answer { status, body } = render(&outcome);
    let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
    let content_type = if status.is_client_error() || status.is_server_error() {
        "application/problem+json"
    } else {
        "application/json"
    };
    Ok((status, [(header::CONTENT_TYPE, content_type)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldcast_core::commerce::rules::{OfferState, Refusal};

    fn body(answer: &Answer) -> Value {
        serde_json::from_str(&answer.body).unwrap()
    }

    #[test]
    fn refusals_get_their_status_code_and_numbers() {
        let sold_out = render(&Outcome::Refused(Refused::Rule(Refusal::SoldOut)));
        assert_eq!(sold_out.status, 409);
        assert_eq!(body(&sold_out)["code"], "sold_out");
        assert_eq!(body(&sold_out)["title"], "Conflict");
        let ended = render(&Outcome::Refused(Refused::Rule(Refusal::NotLive(
            OfferState::Ended,
        ))));
        assert_eq!(
            (ended.status, body(&ended)["code"].clone()),
            (409, json!("ended"))
        );
        let over = render(&Outcome::Refused(Refused::Rule(Refusal::OverLimit {
            limit: 2,
            already: 2,
        })));
        assert_eq!((over.status, body(&over)["limit"].clone()), (409, json!(2)));
        let left = render(&Outcome::Refused(Refused::OnlyLeft { remaining: 3 }));
        assert_eq!(
            (left.status, body(&left)["remaining"].clone()),
            (409, json!(3))
        );
        assert_eq!(
            render(&Outcome::Refused(Refused::NotFound("order"))).status,
            404
        );
        assert_eq!(render(&Outcome::Refused(Refused::NotStored)).status, 503);
    }

    #[test]
    fn a_replay_is_the_first_answer_as_it_was_given() {
        let first = Answer {
            status: 201,
            body: "{\"id\":\"ord_1\"}".into(),
        };
        assert_eq!(render(&Outcome::Replay(first.clone())), first);
    }
}
