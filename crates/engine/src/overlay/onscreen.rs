//! What the overlays put on the picture, as data: a [`Screen`] is what a frame's layers show
//! (the card's product, price and stock, the countdown's end, the toast, the words of a lower
//! third, which layers are up). The compositor works one out whenever it builds a frame's
//! layers, and hands each change to a [`ScreenLog`] with the frame's time on the output's
//! clock and the wall clock. The server keeps them, hash-chained, as the session's on-screen
//! record (`record/onscreen.rs` in `fieldcast`).
//!
//! Viewer and like counters are left out: they are not what a buyer relies on, and they move
//! many times a second.

use serde::{Deserialize, Serialize};

use super::feed::Pinned;
use super::render::View;
use super::scene::{Layer, LayerKind};

/// The product card as drawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenCard {
    pub product_id: String,
    pub name: String,
    pub currency: String,
    pub unit: String,
    /// The price the card shows, in minor units: the offer's while one runs.
    pub price: i64,
    /// The product's own price (struck through beside a lower offer price).
    pub list_price: i64,
    /// The running offer the card shows, with its stock as drawn ("N left · M sold", or
    /// "Sold out" at 0 left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold: Option<i64>,
}

/// One layer that drew on the frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenLayer {
    pub id: String,
    pub kind: LayerKind,
}

/// Everything the overlays showed on a frame.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Screen {
    /// The operator hid every layer.
    pub hidden: bool,
    /// The layers that drew, bottom to top.
    pub layers: Vec<ScreenLayer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<ScreenCard>,
    /// What a countdown counts to (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countdown_ends_at: Option<i64>,
    /// The purchase toast on screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toast: Option<String>,
    /// The words of text layers (lower thirds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<String>,
}

impl Screen {
    /// Notes one layer that drew, with what it shows.
    pub(crate) fn add(&mut self, layer: &Layer, view: &View) {
        self.layers.push(ScreenLayer {
            id: layer.id.clone(),
            kind: layer.kind,
        });
        match layer.kind {
            LayerKind::ProductCard => {
                if let Some(pinned) = view.pinned {
                    self.card = Some(card(pinned, view));
                }
            }
            LayerKind::Countdown => {
                self.countdown_ends_at = super::render::countdown_target(layer, view);
            }
            LayerKind::Toast => self.toast = view.latest_toast().map(|t| t.text.clone()),
            LayerKind::Text => self.texts.extend(layer.content.text.clone()),
            LayerKind::Counter | LayerKind::Image | LayerKind::Qr => {}
        }
    }
}

fn card(pinned: &Pinned, view: &View) -> ScreenCard {
    let p = &pinned.product;
    let offer = view.active_offer().filter(|o| o.product_id == p.id);
    ScreenCard {
        product_id: p.id.clone(),
        name: p.name.clone(),
        currency: p.currency.clone(),
        unit: p.unit.clone(),
        price: offer.map_or(p.unit_amount, |o| o.unit_amount),
        list_price: p.unit_amount,
        offer_id: offer.map(|o| o.id.clone()),
        remaining: offer.map(|o| o.available),
        sold: offer.map(|o| o.sold),
    }
}

/// A change of what is on screen, at the first frame that shows it.
#[derive(Debug, Clone)]
pub struct ScreenChange {
    pub screen: Screen,
    /// Wall clock (Unix ms) when the frame was composited.
    pub at_ms: i64,
    /// The frame's time on the output's clock (its running time, ns): the same timeline as
    /// the encoded video, the HLS segments and the recording.
    pub pts_ns: Option<u64>,
}

/// Where a compositor hands the changes: called on the streaming thread, so it must not
/// block (queue, and write elsewhere).
pub trait ScreenLog: Send + Sync {
    fn shown(&self, change: ScreenChange);
}
