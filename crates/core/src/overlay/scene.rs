//! The scene model: an ordered list of layers, each with a kind, a place (anchor + offset +
//! size in fractions of the frame, so it survives a change of output size), optionally a
//! second place for upright (portrait) frames, a z-order, visibility, a style and
//! transitions. Pure data with validation and templates.

use serde::{Deserialize, Serialize};

/// A new layer's id: `layer_` and 48 random bits.
pub fn new_layer_id() -> String {
    format!("layer_{}", crate::ids::random_hex(6))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// The pinned product: image, name, price, unit, origin; during an offer the sale
    /// price, "N left" and a progress bar.
    ProductCard,
    /// Viewers, likes, sold: any of them, each with an icon.
    Counter,
    /// Time left in the running offer, or to a set time.
    Countdown,
    /// Purchase toasts sliding in and out.
    Toast,
    /// A lower third.
    Text,
    /// A logo (uploaded PNG, JPEG or WebP).
    Image,
    /// A QR code of the watch page (or another URL).
    Qr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Viewers,
    Likes,
    Sold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    None,
    #[default]
    Fade,
    Slide,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Style {
    /// Theme colour, `#RRGGBB`.
    pub theme: String,
    /// Multiplies every font size.
    pub font_scale: f32,
    /// Corner radius as a fraction of the layer's height.
    pub radius: f32,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            theme: "#2e7d4f".into(),
            font_scale: 1.0,
            radius: 0.18,
        }
    }
}

/// What a layer shows beyond its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Counter: which numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Text: the words. QR: the URL (default: the watch page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Countdown: unix seconds to count to (default: the running offer's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// Where a layer sits on an upright (portrait) frame, in fractions of that frame, as the
/// layer's own `anchor`, `offset` and `size` say for a landscape one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    pub anchor: Anchor,
    pub offset: [f32; 2],
    pub size: [f32; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub id: String,
    pub kind: LayerKind,
    pub anchor: Anchor,
    /// From the anchor towards the frame's centre, in fractions of width and height.
    pub offset: [f32; 2],
    /// Width and height in fractions of the frame.
    pub size: [f32; 2],
    pub z: i32,
    pub visible: bool,
    pub style: Style,
    pub transition_in: Transition,
    pub transition_out: Transition,
    /// Transition length in milliseconds.
    pub transition_ms: u32,
    pub content: Content,
    /// The place on a portrait frame; without it the landscape fractions apply there too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portrait: Option<Placement>,
}

/// A session's scene: its layers and the emergency switch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct Scene {
    pub layers: Vec<Layer>,
    /// "Hide all overlays": nothing is drawn while set.
    pub hidden: bool,
}

impl Scene {
    /// Layers in drawing order (lowest z first, then creation order).
    pub fn ordered(&self) -> Vec<&Layer> {
        let mut layers: Vec<&Layer> = self.layers.iter().collect();
        layers.sort_by_key(|l| l.z);
        layers
    }
}

/// A layer of `kind` placed where it looks right with nothing else configured.
pub fn template(kind: LayerKind, id: String) -> Layer {
    let (anchor, offset, size, z, metrics) = match kind {
        LayerKind::ProductCard => (Anchor::BottomLeft, [0.03, 0.05], [0.36, 0.25], 20, vec![]),
        LayerKind::Counter => (
            Anchor::TopRight,
            [0.025, 0.04],
            [0.26, 0.075],
            30,
            vec![Metric::Viewers, Metric::Likes, Metric::Sold],
        ),
        LayerKind::Countdown => (Anchor::TopLeft, [0.025, 0.04], [0.2, 0.075], 30, vec![]),
        LayerKind::Toast => (Anchor::Left, [0.03, 0.0], [0.34, 0.07], 40, vec![]),
        LayerKind::Text => (Anchor::Top, [0.0, 0.04], [0.36, 0.075], 10, vec![]),
        LayerKind::Image => (Anchor::TopRight, [0.025, 0.14], [0.1, 0.1], 10, vec![]),
        LayerKind::Qr => (Anchor::BottomRight, [0.03, 0.05], [0.12, 0.213], 10, vec![]),
    };
    // Upright, phone-shaped: the card sits above the bottom edge (the page's buy button and
    // panel float below it), the counters top right, the countdown and the toasts on the
    // left, clear of the corners and the right edge where a phone's app puts its buttons.
    let (p_anchor, p_offset, p_size) = match kind {
        LayerKind::ProductCard => (Anchor::BottomLeft, [0.04, 0.17], [0.7, 0.13]),
        LayerKind::Counter => (Anchor::TopRight, [0.04, 0.035], [0.56, 0.042]),
        LayerKind::Countdown => (Anchor::TopLeft, [0.04, 0.095], [0.4, 0.042]),
        LayerKind::Toast => (Anchor::Left, [0.04, 0.08], [0.66, 0.04]),
        LayerKind::Text => (Anchor::Top, [0.0, 0.16], [0.8, 0.045]),
        LayerKind::Image => (Anchor::TopRight, [0.04, 0.1], [0.18, 0.1]),
        LayerKind::Qr => (Anchor::BottomRight, [0.04, 0.17], [0.24, 0.135]),
    };
    let transition_in = if kind == LayerKind::Toast {
        Transition::Slide
    } else {
        Transition::Fade
    };
    Layer {
        id,
        kind,
        anchor,
        offset,
        size,
        z,
        visible: true,
        style: Style::default(),
        transition_in,
        transition_out: transition_in,
        transition_ms: 300,
        content: Content {
            metrics,
            // A text layer shows words from the start; the operator types their own.
            text: (kind == LayerKind::Text).then(|| "Welcome".to_string()),
            ..Default::default()
        },
        portrait: Some(Placement {
            anchor: p_anchor,
            offset: p_offset,
            size: p_size,
        }),
    }
}

/// The scene every new session starts with: one call (pin a product, open an offer) shows
/// a card, counters, a countdown and purchase toasts, laid out.
pub fn default_layers(mut new_id: impl FnMut() -> String) -> Vec<Layer> {
    [
        LayerKind::ProductCard,
        LayerKind::Counter,
        LayerKind::Countdown,
        LayerKind::Toast,
    ]
    .into_iter()
    .map(|k| template(k, new_id()))
    .collect()
}

/// Checks a layer; the error names the field.
pub fn validate(layer: &Layer) -> Result<(), String> {
    let unit = |name: &str, v: f32, min: f32| {
        if v.is_finite() && (min..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(format!("{name}: between {min} and 1"))
        }
    };
    unit("offset[0]", layer.offset[0], -1.0)?;
    unit("offset[1]", layer.offset[1], -1.0)?;
    unit("size[0]", layer.size[0], 0.01)?;
    unit("size[1]", layer.size[1], 0.01)?;
    if let Some(p) = &layer.portrait {
        unit("portrait.offset[0]", p.offset[0], -1.0)?;
        unit("portrait.offset[1]", p.offset[1], -1.0)?;
        unit("portrait.size[0]", p.size[0], 0.01)?;
        unit("portrait.size[1]", p.size[1], 0.01)?;
    }
    if !(-1000..=1000).contains(&layer.z) {
        return Err("z: between -1000 and 1000".into());
    }
    parse_color(&layer.style.theme).ok_or("style.theme: a colour like #2e7d4f")?;
    if !(0.25..=4.0).contains(&layer.style.font_scale) {
        return Err("style.font_scale: between 0.25 and 4".into());
    }
    if !(0.0..=0.5).contains(&layer.style.radius) {
        return Err("style.radius: between 0 and 0.5 (of the layer's height)".into());
    }
    if layer.transition_ms > 5000 {
        return Err("transition_ms: at most 5000".into());
    }
    if layer
        .content
        .text
        .as_ref()
        .is_some_and(|t| t.chars().count() > 500)
    {
        return Err("content.text: at most 500 characters".into());
    }
    if layer.kind == LayerKind::Text
        && layer
            .content
            .text
            .as_deref()
            .is_none_or(|t| t.trim_matches([' ', '\t', '\n', '\r']).is_empty())
    {
        return Err("content.text: a text layer needs its words".into());
    }
    Ok(())
}

/// `#RRGGBB` → (r, g, b).
pub fn parse_color(s: &str) -> Option<(u8, u8, u8)> {
    let hex = s.trim_end_matches('\n').strip_prefix('#')?;
    if hex.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some(((v >> 16) as u8, (v >> 8) as u8, v as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_valid_and_the_default_scene_has_a_card() {
        let mut n = 0;
        let layers = default_layers(|| {
            n += 1;
            format!("l{n}")
        });
        assert!(layers.iter().any(|l| l.kind == LayerKind::ProductCard));
        for kind in [
            LayerKind::ProductCard,
            LayerKind::Counter,
            LayerKind::Countdown,
            LayerKind::Toast,
            LayerKind::Text,
            LayerKind::Image,
            LayerKind::Qr,
        ] {
            assert_eq!(validate(&template(kind, "x".into())), Ok(()), "{kind:?}");
        }
        // A text layer starts with a word, and cannot be left without one.
        let mut text = template(LayerKind::Text, "t".into());
        text.content.text = Some(" \n".into());
        assert!(validate(&text).unwrap_err().contains("content.text"));
        text.content.text = Some("Fresh naan every morning".into());
        assert_eq!(validate(&text), Ok(()));
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut l = template(LayerKind::Counter, "c".into());
        l.size = [2.0, 0.1];
        assert!(validate(&l).unwrap_err().starts_with("size[0]"));
        l.size = [0.2, 0.1];
        l.style.theme = "green".into();
        assert!(validate(&l).unwrap_err().starts_with("style.theme"));
    }
}
