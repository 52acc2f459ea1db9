//! Device tokens for watch pages (`commerce::devices`): a page asks once and sends its token
//! with every order, so that buyers behind one shared address are limited per device.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::client::PublicLimits;
use super::client::{Client, PublicRoute};
use super::error::{ApiError, ApiJson};
use crate::commerce::devices::DEVICE_TOKEN_LIFETIME_S;
use crate::commerce::devices::DeviceKeys;
use fieldcast_core::ids::random_hex;
use fieldcast_core::time::now_ms;
use std::sync::Arc;

handles! {
    /// What minting a device token uses.
    Devices {
        public: Arc<PublicLimits>,
        devices: DeviceKeys,
    }
}

/// The header an order carries its device token in.
pub const DEVICE_HEADER: &str = "fieldcast-device";

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceToken {
    /// Send it as `Fieldcast-Device` with orders.
    device: String,
    /// Unix seconds; ask for a new one after.
    expires_at: i64,
}

/// A device token for a watch page (or a shop's page): with it, order limits hold per
/// device instead of per address. Minted at a bounded rate per address (`rate_devices`).
#[utoipa::path(post, path = "/api/v1/devices", tag = "orders",
    responses((status = 201, description = "A new device token", body = DeviceToken),
        (status = 429, description = "Too many new devices from this address (Retry-After)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn mint(
    State(state): State<Devices>,
    Client(client): Client,
) -> Result<Response, ApiError> {
    state.public.check(PublicRoute::Devices, client)?;
    let now_s = now_ms() / 1000;
    let token = DeviceToken {
        device: state.devices.mint(&random_hex(8), now_s),
        expires_at: now_s + DEVICE_TOKEN_LIFETIME_S,
    };
    let mut response = (StatusCode::CREATED, ApiJson(token)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
