//! What the API shows of a product, an offer and an order: one typed view each. The API,
//! the live state (SSE and the overlays' snapshot), the webhooks and the stored idempotent
//! answers all serialise these, and the OpenAPI document describes them from the same types.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::commerce::{OfferRow, OrderRow, ProductRow};
use fieldcast_core::commerce::rules::{self, OfferState};

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub id: String,
    pub name: String,
    /// Language tag → name (`zh`, `ug`, …).
    pub translations: BTreeMap<String, String>,
    /// Price in minor units (fen, cents).
    pub unit_amount: i64,
    /// ISO 4217, e.g. `CNY`.
    pub currency: String,
    pub unit: String,
    pub origin: Option<String>,
    pub harvest_date: Option<String>,
    pub description: Option<String>,
    /// The photo, public and immutable (`/images/{sha256}.png`), once one is uploaded.
    pub image_url: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfferView {
    pub id: String,
    pub session_id: String,
    pub product_id: String,
    /// Sale price in minor units.
    pub unit_amount: i64,
    pub state: OfferState,
    /// Units put on sale in all (stock added included).
    pub allocated: i64,
    pub remaining: i64,
    pub sold: i64,
    pub per_buyer_limit: Option<i64>,
    /// Unix seconds.
    pub starts_at: i64,
    pub ends_at: i64,
    /// The same to the millisecond, for countdowns that must agree with the one on the video.
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub offer_id: String,
    pub product_id: String,
    pub quantity: i64,
    /// quantity × the offer's unit_amount, in minor units.
    pub amount: i64,
    pub currency: String,
    /// `confirmed` or `cancelled`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// An order with its buyer's details, as only the operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderWithBuyer {
    #[serde(flatten)]
    pub order: OrderView,
    pub buyer: BuyerDetails,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BuyerDetails {
    pub name: String,
    pub phone: String,
    pub address: String,
    pub city: Option<String>,
}

impl ProductView {
    pub fn of(p: &ProductRow) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            translations: serde_json::from_str(&p.translations).unwrap_or_default(),
            unit_amount: p.unit_amount,
            currency: p.currency.clone(),
            unit: p.unit.clone(),
            origin: p.origin.clone(),
            harvest_date: p.harvest_date.clone(),
            description: p.description.clone(),
            image_url: p.image_hash.as_deref().map(image_url),
            created_at: p.created_at,
        }
    }
}

impl OfferView {
    pub fn of(offer: &OfferRow, now_ms: i64) -> Self {
        Self {
            id: offer.id.clone(),
            session_id: offer.session_id.clone(),
            product_id: offer.product_id.clone(),
            unit_amount: offer.unit_amount,
            state: rules::offer_state(offer, now_ms),
            allocated: offer.allocated,
            remaining: offer.available,
            sold: offer.sold,
            per_buyer_limit: offer.per_buyer_limit,
            starts_at: offer.starts_at / 1000,
            ends_at: offer.ends_at / 1000,
            starts_at_ms: offer.starts_at,
            ends_at_ms: offer.ends_at,
        }
    }
}

impl OrderView {
    pub fn of(o: &OrderRow) -> Self {
        Self {
            id: o.id.clone(),
            offer_id: o.offer_id.clone(),
            product_id: o.product_id.clone(),
            quantity: o.quantity,
            amount: o.amount,
            currency: o.currency.clone(),
            status: o.status.clone(),
            created_at: o.created_at,
        }
    }
}

impl OrderWithBuyer {
    pub fn of(o: &OrderRow) -> Self {
        Self {
            order: OrderView::of(o),
            buyer: BuyerDetails {
                name: o.buyer_name.clone(),
                phone: o.buyer_phone.clone(),
                address: o.buyer_address.clone(),
                city: o.buyer_city.clone(),
            },
        }
    }
}

fn value(view: impl Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// The product as JSON (for the live state's `pinned`).
pub fn product_json(p: &ProductRow) -> Value {
    value(ProductView::of(p))
}

/// The offer as JSON (ledger answers, events, the live state).
pub fn offer_json(offer: &OfferRow, now_ms: i64) -> Value {
    value(OfferView::of(offer, now_ms))
}

/// The order as JSON (ledger answers and events).
pub fn order_json(order: &OrderRow) -> Value {
    value(OrderView::of(order))
}

/// The public URL of a photo by its hash (`GET /images/{hash}.png`).
pub fn image_url(hash: &str) -> String {
    format!("/images/{hash}.png")
}
