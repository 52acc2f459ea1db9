//! The shoppable replay's data: what the product card showed over the show, from the
//! on-screen record, as the replay page follows it. The page gets each change of the card's
//! product or price (not each change of its stock), and the products it showed; chapters are
//! where the product changes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::commerce::product_json;
use crate::store::onscreen::CardEntry;
use crate::store::{Store, StoreError};

/// A change of the card: from `at_ms` on, `product_id` at `price` (none: no card up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardMoment {
    pub at_ms: i64,
    pub product_id: Option<String>,
    pub price: Option<i64>,
}

/// The changes of product or price in a run of record entries (time, product, price).
pub fn card_moments(entries: impl IntoIterator<Item = CardEntry>) -> Vec<CardMoment> {
    let mut out: Vec<CardMoment> = Vec::new();
    for (at_ms, product_id, price) in entries {
        let same = out
            .last()
            .is_some_and(|m| m.product_id == product_id && m.price == price);
        if !same {
            out.push(CardMoment {
                at_ms,
                product_id,
                price,
            });
        }
    }
    out
}

/// The replay page's boot data: the recording's playlist (same origin), the card's moments,
/// and the products they name as the API shows them now (names, photos, translations).
pub fn replay_boot(store: &Store, session_id: &str) -> Result<Value, StoreError> {
    let recording = store
        .session_recordings(session_id)?
        .into_iter()
        .find(|r| r.segments > 0);
    let moments = card_moments(store.onscreen_cards(session_id)?);
    let mut products = BTreeMap::new();
    for id in moments.iter().filter_map(|m| m.product_id.as_ref()) {
        if !products.contains_key(id)
            && let Some(p) = store.product(id)?
        {
            products.insert(id.clone(), product_json(&p));
        }
    }
    Ok(json!({
        "url": recording.as_ref().map(|r| format!("/recordings/{}/{}", r.id, super::recording::PLAYLIST)),
        "complete": recording.as_ref().is_some_and(|r| r.state != "recording"),
        "moments": moments.iter().map(|m| json!({"at_ms": m.at_ms, "product_id": m.product_id, "price": m.price})).collect::<Vec<_>>(),
        "products": products,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_of_product_or_price_are_moments() {
        let p = |s: &str| Some(s.to_string());
        let moments = card_moments([
            (1, None, None),
            (2, p("a"), Some(3500)),
            (3, p("a"), Some(3500)),
            (4, p("a"), Some(2900)),
            (5, p("b"), Some(1200)),
            (6, p("b"), Some(1200)),
            (7, None, None),
        ]);
        let at: Vec<i64> = moments.iter().map(|m| m.at_ms).collect();
        assert_eq!(at, [1, 2, 4, 5, 7]);
    }
}
