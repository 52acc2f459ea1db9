//! Products: create, list, get, patch, delete. Amounts are integers in minor units.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use crate::commerce::views::ProductView;
use crate::store::Store;
use crate::store::commerce::ProductRow;
use fieldcast_core::ids::random_hex;
use fieldcast_core::time::unix_now;
use std::sync::Arc;

handles! {
    /// What the product routes use.
    Products {
        store: Arc<Store>,
        live: Arc<crate::commerce::live::LiveHub>,
    }
}

/// Units a product is sold by.
pub const UNITS: &[&str] = &[
    "piece", "jar", "kg", "g", "box", "bottle", "bag", "bunch", "dozen", "litre",
];

/// Any of a product's fields (a change); [`NewProduct`] names the ones a new product needs.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\r]")]
    name: Option<String>,
    /// The name in other languages, by language tag (`ug`, `zh-CN`).
    #[schema(schema_with = translations_schema)]
    translations: Option<BTreeMap<String, String>>,
    /// The list price in minor units (fen, cents).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    unit_amount: Option<i64>,
    /// ISO 4217, such as `CNY`.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    currency: Option<String>,
    #[schema(schema_with = unit_schema)]
    unit: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\r]")]
    origin: Option<String>,
    /// A date like `2026-06-01`.
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    harvest_date: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = "[^ \t\n\r]")]
    description: Option<String>,
}

/// A new product: `name`, `unit_amount` and `currency` are required.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\r]")]
    name: String,
    #[schema(schema_with = translations_schema)]
    translations: Option<BTreeMap<String, String>>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    unit_amount: i64,
    #[schema(pattern = "^[A-Za-z]{3}$")]
    currency: String,
    #[schema(schema_with = unit_schema)]
    unit: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\r]")]
    origin: Option<String>,
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    harvest_date: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = "[^ \t\n\r]")]
    description: Option<String>,
}

impl From<NewProduct> for ProductBody {
    fn from(p: NewProduct) -> Self {
        Self {
            name: Some(p.name),
            translations: p.translations,
            unit_amount: Some(p.unit_amount),
            currency: Some(p.currency),
            unit: p.unit,
            origin: p.origin,
            harvest_date: p.harvest_date,
            description: p.description,
        }
    }
}

/// A unit is one of [`UNITS`].
fn unit_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(UNITS.iter().copied()))
        .description(Some("What one unit is [default: piece]"))
        .build()
}

/// Language tags (letters, digits and `-`, up to 16) to names (1 to 200 characters).
fn translations_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9-]{1,16}$"))
                .build(),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(200))
                .pattern(Some("[^ \t\n\r]"))
                .build()
                .into(),
        )))
        .build()
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    super::fields::text(field, value, max)
}

fn optional(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    value.map(|v| text(field, &v, max)).transpose()
}

/// Applies a body onto a product (all fields for create, any subset for patch).
fn apply(mut p: ProductRow, b: ProductBody) -> Result<ProductRow, ApiError> {
    if let Some(name) = b.name {
        p.name = text("name", &name, 200)?;
    }
    if let Some(t) = b.translations {
        for (lang, name) in &t {
            let lang = lang.trim_end_matches('\n');
            if lang.is_empty()
                || lang.len() > 16
                || !lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(ApiError::unprocessable(format!(
                    "translations: {lang:?} is not a language tag like \"ug\" or \"zh-CN\""
                )));
            }
            text(&format!("translations.{lang}"), name, 200)?;
        }
        p.translations = serde_json::to_string(&t).map_err(ApiError::internal)?;
    }
    if let Some(amount) = b.unit_amount {
        if !(0..=1_000_000_000_000).contains(&amount) {
            return Err(ApiError::unprocessable(
                "unit_amount: an integer in minor units between 0 and 10^12",
            ));
        }
        p.unit_amount = amount;
    }
    if let Some(currency) = b.currency {
        let c = currency.trim().to_ascii_uppercase();
        if c.len() != 3 || !c.chars().all(|x| x.is_ascii_alphabetic()) {
            return Err(ApiError::unprocessable(
                "currency: a three-letter ISO 4217 code such as \"CNY\"",
            ));
        }
        p.currency = c;
    }
    if let Some(unit) = b.unit {
        let u = unit.trim().to_ascii_lowercase();
        if !UNITS.contains(&u.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "unit: one of {}",
                UNITS.join(", ")
            )));
        }
        p.unit = u;
    }
    if b.origin.is_some() {
        p.origin = optional("origin", b.origin, 200)?;
    }
    if let Some(date) = b.harvest_date {
        let date = date.trim_matches([' ', '\t', '\n', '\r']).to_string();
        let ok = date.len() == 10
            && date.chars().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !ok {
            return Err(ApiError::unprocessable(
                "harvest_date: a date like 2026-06-01",
            ));
        }
        p.harvest_date = Some(date);
    }
    if b.description.is_some() {
        p.description = optional("description", b.description, 2000)?;
    }
    Ok(p)
}

fn find(state: &Products, id: &str) -> Result<ProductRow, ApiError> {
    state
        .store
        .product(id)?
        .ok_or_else(|| ApiError::not_found("product"))
}

/// Creates a product: `name`, `unit_amount` and `currency` are required.
#[utoipa::path(post, path = "/api/v1/products", tag = "products", security(("operator" = [])), request_body = NewProduct,
    responses((status = 201, description = "The new product", body = ProductView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<Products>,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<impl IntoResponse, ApiError> {
    let body = ProductBody::from(body);
    let blank = ProductRow {
        id: format!("prod_{}", random_hex(8)),
        name: String::new(),
        translations: "{}".into(),
        unit_amount: 0,
        currency: String::new(),
        unit: "piece".into(),
        origin: None,
        harvest_date: None,
        description: None,
        created_at: unix_now(),
        image_hash: None,
    };
    let product = apply(blank, body)?;
    state.store.insert_product(&product)?;
    Ok((StatusCode::CREATED, ApiJson(ProductView::of(&product))))
}

/// Lists the catalogue.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", security(("operator" = [])),
    responses((status = 200, description = "Every product", body = [ProductView]), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn list(State(state): State<Products>) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(
        state
            .store
            .products()?
            .iter()
            .map(ProductView::of)
            .collect::<Vec<_>>(),
    ))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products", security(("operator" = [])), params(("id" = String, Path, description = "Product id")),
    responses((status = 200, description = "The product", body = ProductView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<Products>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(ApiJson(ProductView::of(&find(&state, &id)?)))
}

/// Changes any field; offers keep their own sale price.
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "products", security(("operator" = [])), params(("id" = String, Path, description = "Product id")), request_body = ProductBody,
    responses((status = 200, description = "The product as changed", body = ProductView), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (the detail names it)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(state): State<Products>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProductBody>,
) -> Result<impl IntoResponse, ApiError> {
    let product = apply(find(&state, &id)?, body)?;
    state.store.update_product(&product)?;
    // A pinned product's card shows the change on the next frame.
    state.live.product_changed(&id);
    Ok(ApiJson(ProductView::of(&product)))
}

/// Deletes a product that no offer uses (409 otherwise).
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "products", security(("operator" = [])), params(("id" = String, Path, description = "Product id")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json"), (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json"), (status = 409, description = "An offer sells it", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<Products>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    find(&state, &id)?;
    if !state.store.delete_product(&id)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the product is used by an offer; end the offer instead",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
