//! The records of selling, as the store keeps them and the API shows them: a product, a
//! flash-sale offer with its stock, and an order. Amounts are integers in minor units; times
//! are Unix seconds, except where a field says milliseconds.

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProductRow {
    pub id: String,
    pub name: String,
    /// JSON object of language tag → name.
    pub translations: String,
    pub unit_amount: i64,
    pub currency: String,
    pub unit: String,
    pub origin: Option<String>,
    pub harvest_date: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
    /// SHA-256 (hex) of the stored photo: its public URL is `/images/{hash}.png`.
    pub image_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OfferRow {
    pub id: String,
    pub session_id: String,
    pub product_id: String,
    pub unit_amount: i64,
    pub allocated: i64,
    pub available: i64,
    pub sold: i64,
    pub per_buyer_limit: Option<i64>,
    /// Unix milliseconds.
    pub starts_at: i64,
    pub ends_at: i64,
    pub ended_early: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OrderRow {
    pub id: String,
    pub session_id: String,
    pub offer_id: String,
    pub product_id: String,
    pub quantity: i64,
    pub amount: i64,
    pub currency: String,
    pub buyer_name: String,
    pub buyer_phone: String,
    #[serde(skip)]
    pub phone_key: String,
    pub buyer_address: String,
    pub buyer_city: Option<String>,
    pub status: String,
    pub created_at: i64,
    /// The network it came from, as a keyed hash of its address (never the address).
    #[serde(skip)]
    pub address_key: Option<String>,
}
