//! Drawing one layer into a premultiplied RGBA pixmap from the session's live state.
//!
//! [`key`] says what a layer would show now, as a string: the compositor redraws a layer only
//! when its key changes. [`render`] draws it.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use tiny_skia::{
    Color, FillRule, Paint, PathBuilder, Pixmap, PixmapPaint, Rect as SkRect, Stroke, Transform,
};

use super::feed::{Pinned, Toast};
use super::scene::{Layer, LayerKind, Metric, parse_color};
use super::text::{TextAlign, TextStyle, engine};
use fieldcast_core::commerce::records::OfferRow;
use fieldcast_core::commerce::rules::{OfferState, offer_state};

/// How long a purchase toast stays on screen (transitions included).
pub const TOAST_SHOW_MS: i64 = 4000;

/// What the layers can show, borrowed from the live state for one frame.
pub struct View<'a> {
    pub now_ms: i64,
    pub viewers: usize,
    pub likes: i64,
    pub pinned: Option<&'a Pinned>,
    pub offers: &'a [OfferRow],
    pub toasts: &'a VecDeque<Toast>,
    pub watch_url: &'a str,
    pub images_dir: &'a Path,
    /// [`LiveData::image_revision`](super::feed::LiveData::image_revision).
    pub image_revision: u64,
}

impl View<'_> {
    /// The offer a card or countdown is about: the pinned product's running offer, else any
    /// running offer.
    pub fn active_offer(&self) -> Option<&OfferRow> {
        let running = |o: &&OfferRow| {
            matches!(
                offer_state(o, self.now_ms),
                OfferState::Live | OfferState::SoldOut
            )
        };
        let pinned_id = self.pinned.map(|p| p.product.id.as_str());
        self.offers
            .iter()
            .rev()
            .filter(running)
            .find(|o| Some(o.product_id.as_str()) == pinned_id)
            .or_else(|| self.offers.iter().rev().find(running))
    }

    fn sold(&self) -> i64 {
        self.offers.iter().map(|o| o.sold).sum()
    }

    pub(crate) fn latest_toast(&self) -> Option<&Toast> {
        self.toasts
            .back()
            .filter(|t| self.now_ms - t.at_ms < TOAST_SHOW_MS)
    }
}

/// "¥35.00", "$3.50", "1,200 KZT".
pub fn money(minor: i64, currency: &str) -> String {
    let (symbol, decimals) = match currency {
        "CNY" => ("¥", 2),
        "USD" => ("$", 2),
        "EUR" => ("€", 2),
        "GBP" => ("£", 2),
        "JPY" => ("¥", 0),
        "KRW" => ("₩", 0),
        _ => ("", 2),
    };
    let major = minor / 10_i64.pow(decimals);
    let rest = (minor % 10_i64.pow(decimals)).abs();
    let mut digits = major.abs().to_string();
    let mut grouped = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    let number = if decimals > 0 {
        format!(
            "{}{digits}{grouped}.{rest:0width$}",
            if minor < 0 { "-" } else { "" },
            width = decimals as usize
        )
    } else {
        format!("{}{digits}{grouped}", if minor < 0 { "-" } else { "" })
    };
    if symbol.is_empty() {
        format!("{number} {currency}")
    } else {
        format!("{symbol}{number}")
    }
}

/// 999, 1.2k, 12k, 1.3M.
pub fn compact(n: i64) -> String {
    match n {
        n if n < 1_000 => n.to_string(),
        n if n < 10_000 => format!("{:.1}k", n as f64 / 1e3),
        n if n < 1_000_000 => format!("{}k", n / 1_000),
        n => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn countdown_text(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

pub(crate) fn countdown_target(layer: &Layer, view: &View) -> Option<i64> {
    match layer.content.until {
        Some(until) => Some(until * 1000),
        None => view
            .active_offer()
            .filter(|o| offer_state(o, view.now_ms) == OfferState::Live)
            .map(|o| o.ends_at),
    }
    .filter(|t| *t > view.now_ms)
}

fn image_file(view: &View, layer: &Layer) -> std::path::PathBuf {
    view.images_dir.join(format!("{}.png", layer.id))
}

/// What the layer shows now, or `None` when it has nothing to show.
pub fn key(layer: &Layer, view: &View) -> Option<String> {
    let style = format!(
        "{}|{}|{}",
        layer.style.theme, layer.style.font_scale, layer.style.radius
    );
    let body = match layer.kind {
        LayerKind::ProductCard => {
            let pinned = view.pinned?;
            let p = &pinned.product;
            let offer = view
                .active_offer()
                .filter(|o| o.product_id == p.id)
                .map(|o| {
                    format!(
                        "{}/{}/{}/{}",
                        o.unit_amount, o.available, o.sold, o.allocated
                    )
                })
                .unwrap_or_default();
            let image = pinned
                .image
                .as_ref()
                .map(|i| Arc::as_ptr(i) as usize)
                .unwrap_or(0);
            format!(
                "{}|{}|{}|{}|{:?}|{offer}|{image}",
                p.name, p.unit_amount, p.currency, p.unit, p.origin
            )
        }
        LayerKind::Counter => layer
            .content
            .metrics
            .iter()
            .map(|m| match m {
                Metric::Viewers => compact(view.viewers as i64),
                Metric::Likes => compact(view.likes),
                Metric::Sold => compact(view.sold()),
            })
            .collect::<Vec<_>>()
            .join("|"),
        LayerKind::Countdown => countdown_text(countdown_target(layer, view)? - view.now_ms),
        LayerKind::Toast => {
            let toast = view.latest_toast()?;
            format!("{}|{}", toast.at_ms, toast.text)
        }
        LayerKind::Text => layer.content.text.clone()?,
        // The file is read only when this changes: no file system call per frame.
        LayerKind::Image => view.image_revision.to_string(),
        LayerKind::Qr => layer
            .content
            .text
            .clone()
            .unwrap_or_else(|| view.watch_url.to_string()),
    };
    Some(format!(
        "{style}|{}x{}|{body}",
        layer.size[0], layer.size[1]
    ))
}

fn color(rgb: (u8, u8, u8), alpha: u8) -> Color {
    Color::from_rgba8(rgb.0, rgb.1, rgb.2, alpha)
}

fn paint(c: Color) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(c);
    p.anti_alias = true;
    p
}

fn rounded(pixmap: &mut Pixmap, x: f32, y: f32, w: f32, h: f32, r: f32, c: Color) {
    let r = r.min(w / 2.0).min(h / 2.0).max(0.0);
    let k = 0.552_284_8 * r;
    let mut pb = PathBuilder::new();
    pb.move_to(x + r, y);
    pb.line_to(x + w - r, y);
    pb.cubic_to(x + w - r + k, y, x + w, y + r - k, x + w, y + r);
    pb.line_to(x + w, y + h - r);
    pb.cubic_to(x + w, y + h - r + k, x + w - r + k, y + h, x + w - r, y + h);
    pb.line_to(x + r, y + h);
    pb.cubic_to(x + r - k, y + h, x, y + h - r + k, x, y + h - r);
    pb.line_to(x, y + r);
    pb.cubic_to(x, y + r - k, x + r - k, y, x + r, y);
    pb.close();
    if let Some(path) = pb.finish() {
        pixmap.fill_path(
            &path,
            &paint(c),
            FillRule::Winding,
            Transform::identity(),
            None,
        );
    }
}

fn theme(layer: &Layer) -> (u8, u8, u8) {
    parse_color(&layer.style.theme).unwrap_or((0x2e, 0x7d, 0x4f))
}

fn text_style(size: f32, bold: bool, rgba: [u8; 4], align: TextAlign) -> TextStyle {
    TextStyle {
        size_px: size,
        bold,
        rgba,
        align,
    }
}

/// Draws one line of text vertically centred in a box of height `h`, shrinking the font
/// (down to half) rather than wrapping when it does not fit `max_w`.
fn one_line(pm: &mut Pixmap, text: &str, x: f32, h: f32, max_w: f32, mut style: TextStyle) {
    let mut eng = engine();
    let (width, _) = eng.measure(text, &style, f32::MAX / 4.0);
    if width > max_w {
        style.size_px *= (max_w / width * 0.98).max(0.5);
    }
    eng.draw(pm, text, x, (h - style.size_px * 1.3) / 2.0, max_w, &style);
}

/// Draws the layer at `width` × `height` pixels; `None` when it has nothing to show.
pub fn render(layer: &Layer, view: &View, width: u32, height: u32) -> Option<Pixmap> {
    let mut pm = Pixmap::new(width.max(1), height.max(1))?;
    let (w, h) = (width as f32, height as f32);
    let scale = layer.style.font_scale;
    let radius = layer.style.radius * h;
    match layer.kind {
        LayerKind::ProductCard => draw_card(&mut pm, layer, view, w, h, scale, radius)?,
        LayerKind::Counter => draw_counter(&mut pm, layer, view, w, h, scale, radius),
        LayerKind::Countdown => {
            let left = countdown_target(layer, view)? - view.now_ms;
            rounded(&mut pm, 0.0, 0.0, w, h, radius, color(theme(layer), 235));
            let label = format!("Ends in {}", countdown_text(left));
            one_line(
                &mut pm,
                &label,
                0.0,
                h,
                w,
                text_style(
                    h * 0.5 * scale,
                    true,
                    [255, 255, 255, 255],
                    TextAlign::Center,
                ),
            );
        }
        LayerKind::Toast => {
            let toast = view.latest_toast()?;
            rounded(
                &mut pm,
                0.0,
                0.0,
                w,
                h,
                radius,
                Color::from_rgba8(255, 255, 255, 240),
            );
            let dot = h * 0.28;
            rounded(
                &mut pm,
                h * 0.3,
                (h - dot) / 2.0,
                dot,
                dot,
                dot / 2.0,
                color(theme(layer), 255),
            );
            let x = h * 0.3 + dot + h * 0.25;
            one_line(
                &mut pm,
                &toast.text,
                x,
                h,
                w - x - h * 0.2,
                text_style(h * 0.38 * scale, true, [25, 30, 28, 255], TextAlign::Start),
            );
        }
        LayerKind::Text => {
            let text = layer.content.text.as_deref()?;
            rounded(&mut pm, 0.0, 0.0, w, h, radius, color(theme(layer), 230));
            let pad = h * 0.3;
            one_line(
                &mut pm,
                text,
                pad,
                h,
                w - 2.0 * pad,
                text_style(
                    h * 0.45 * scale,
                    true,
                    [255, 255, 255, 255],
                    TextAlign::Center,
                ),
            );
        }
        LayerKind::Image => {
            let image = Pixmap::load_png(image_file(view, layer)).ok()?;
            draw_fit(&mut pm, &image, 0.0, 0.0, w, h);
        }
        LayerKind::Qr => {
            let url = layer
                .content
                .text
                .clone()
                .unwrap_or_else(|| view.watch_url.to_string());
            draw_qr(&mut pm, &url, w, h)?;
        }
    }
    Some(pm)
}

/// Scales `image` to fit the box, centred.
fn draw_fit(pm: &mut Pixmap, image: &Pixmap, x: f32, y: f32, w: f32, h: f32) {
    let s = (w / image.width() as f32).min(h / image.height() as f32);
    let (dw, dh) = (image.width() as f32 * s, image.height() as f32 * s);
    let t = Transform::from_row(s, 0.0, 0.0, s, x + (w - dw) / 2.0, y + (h - dh) / 2.0);
    pm.draw_pixmap(
        0,
        0,
        image.as_ref(),
        &PixmapPaint {
            quality: tiny_skia::FilterQuality::Bicubic,
            ..Default::default()
        },
        t,
        None,
    );
}

fn draw_card(
    pm: &mut Pixmap,
    layer: &Layer,
    view: &View,
    w: f32,
    h: f32,
    scale: f32,
    radius: f32,
) -> Option<()> {
    let pinned = view.pinned?;
    let p = &pinned.product;
    let accent = theme(layer);
    rounded(
        pm,
        0.0,
        0.0,
        w,
        h,
        radius,
        Color::from_rgba8(255, 255, 255, 255),
    );
    let pad = h * 0.08;
    let side = h - 2.0 * pad;
    match &pinned.image {
        Some(image) => {
            rounded(
                pm,
                pad,
                pad,
                side,
                side,
                radius * 0.6,
                Color::from_rgba8(240, 240, 236, 255),
            );
            draw_fit(pm, image, pad, pad, side, side);
        }
        None => {
            rounded(pm, pad, pad, side, side, radius * 0.6, color(accent, 255));
            let initial: String = p.name.chars().take(1).collect();
            let size = side * 0.5;
            engine().draw(
                pm,
                &initial,
                pad,
                pad + (side - size * 1.3) / 2.0,
                side,
                &text_style(size, true, [255, 255, 255, 255], TextAlign::Center),
            );
        }
    }
    let x = pad * 2.0 + side;
    let text_w = w - x - pad;
    let dark = [25, 30, 28, 255];
    let grey = [110, 116, 112, 255];
    let mut y = pad * 0.8;
    let name_size = h * 0.15 * scale;
    y += engine()
        .draw(
            pm,
            &p.name,
            x,
            y,
            text_w,
            &text_style(name_size, true, dark, TextAlign::Start),
        )
        .min(name_size * 2.7);
    if let Some(origin) = &p.origin {
        let size = h * 0.095 * scale;
        y += engine()
            .draw(
                pm,
                origin,
                x,
                y,
                text_w,
                &text_style(size, false, grey, TextAlign::Start),
            )
            .min(size * 1.4);
    }
    let offer = view.active_offer().filter(|o| o.product_id == p.id);
    let price_size = h * 0.16 * scale;
    let unit = format!(" / {}", p.unit);
    match offer {
        Some(o) => {
            let price = money(o.unit_amount, &p.currency);
            let style = text_style(
                price_size,
                true,
                [accent.0, accent.1, accent.2, 255],
                TextAlign::Start,
            );
            // The engine is one lock for the process: it is let go before anything below
            // takes it again (holding it there froze every studio's video).
            let struck = {
                let mut eng = engine();
                let (pw, _) = eng.measure(&price, &style, text_w);
                eng.draw(pm, &price, x, y, text_w, &style);
                (o.unit_amount < p.unit_amount).then(|| {
                    let was = money(p.unit_amount, &p.currency);
                    let small = text_style(price_size * 0.6, false, grey, TextAlign::Start);
                    let (ww, _) = eng.measure(&was, &small, text_w);
                    let wx = x + pw + pad * 0.6;
                    let wy = y + price_size * 0.42;
                    eng.draw(pm, &was, wx, wy, text_w, &small);
                    (wx, wy, ww)
                })
            };
            if let Some((wx, wy, ww)) = struck {
                let mut pb = PathBuilder::new();
                pb.move_to(wx, wy + price_size * 0.42);
                pb.line_to(wx + ww, wy + price_size * 0.42);
                if let Some(line) = pb.finish() {
                    pm.stroke_path(
                        &line,
                        &paint(Color::from_rgba8(110, 116, 112, 255)),
                        &Stroke {
                            width: (h * 0.012).max(1.0),
                            ..Default::default()
                        },
                        Transform::identity(),
                        None,
                    );
                }
            }
            // "N left" and the progress of the sale.
            let bar_h = h * 0.07;
            let bar_y = h - pad - bar_h;
            let left_size = h * 0.1 * scale;
            let left = if o.available > 0 {
                format!("{} left · {} sold", o.available, o.sold)
            } else {
                "Sold out".to_string()
            };
            engine().draw(
                pm,
                &left,
                x,
                bar_y - left_size * 1.45,
                text_w,
                &text_style(left_size, true, dark, TextAlign::Start),
            );
            rounded(
                pm,
                x,
                bar_y,
                text_w,
                bar_h,
                bar_h / 2.0,
                Color::from_rgba8(226, 230, 227, 255),
            );
            let frac = if o.allocated > 0 {
                o.sold as f32 / o.allocated as f32
            } else {
                0.0
            };
            if frac > 0.0 {
                rounded(
                    pm,
                    x,
                    bar_y,
                    (text_w * frac).max(bar_h),
                    bar_h,
                    bar_h / 2.0,
                    color(accent, 255),
                );
            }
        }
        None => {
            let price = format!("{}{unit}", money(p.unit_amount, &p.currency));
            engine().draw(
                pm,
                &price,
                x,
                y,
                text_w,
                &text_style(
                    price_size,
                    true,
                    [accent.0, accent.1, accent.2, 255],
                    TextAlign::Start,
                ),
            );
        }
    }
    Some(())
}

fn draw_counter(
    pm: &mut Pixmap,
    layer: &Layer,
    view: &View,
    w: f32,
    h: f32,
    scale: f32,
    radius: f32,
) {
    rounded(
        pm,
        0.0,
        0.0,
        w,
        h,
        radius,
        Color::from_rgba8(12, 16, 14, 170),
    );
    let n = layer.content.metrics.len().max(1) as f32;
    let slot = w / n;
    let size = h * 0.42 * scale;
    let icon = h * 0.42;
    for (i, metric) in layer.content.metrics.iter().enumerate() {
        let x0 = slot * i as f32;
        let (value, icon_color) = match metric {
            Metric::Viewers => (compact(view.viewers as i64), (255, 255, 255)),
            Metric::Likes => (compact(view.likes), (255, 92, 122)),
            Metric::Sold => (compact(view.sold()), theme(layer)),
        };
        let ix = x0 + slot * 0.12;
        let iy = (h - icon) / 2.0;
        draw_icon(pm, *metric, ix, iy, icon, icon_color);
        let tx = ix + icon + slot * 0.07;
        one_line(
            pm,
            &value,
            tx,
            h,
            x0 + slot - tx,
            text_style(size, true, [255, 255, 255, 255], TextAlign::Start),
        );
    }
}

fn draw_icon(pm: &mut Pixmap, metric: Metric, x: f32, y: f32, s: f32, rgb: (u8, u8, u8)) {
    let c = color(rgb, 255);
    match metric {
        Metric::Viewers => {
            // An eye: a lens outline and a pupil.
            let mut pb = PathBuilder::new();
            pb.move_to(x, y + s / 2.0);
            pb.quad_to(x + s / 2.0, y - s * 0.1, x + s, y + s / 2.0);
            pb.quad_to(x + s / 2.0, y + s * 1.1, x, y + s / 2.0);
            pb.close();
            if let Some(path) = pb.finish() {
                pm.stroke_path(
                    &path,
                    &paint(c),
                    &Stroke {
                        width: s * 0.1,
                        ..Default::default()
                    },
                    Transform::identity(),
                    None,
                );
            }
            if let Some(pupil) = PathBuilder::from_circle(x + s / 2.0, y + s / 2.0, s * 0.16) {
                pm.fill_path(
                    &pupil,
                    &paint(c),
                    FillRule::Winding,
                    Transform::identity(),
                    None,
                );
            }
        }
        Metric::Likes => {
            // A heart: two lobes and a point.
            let mut pb = PathBuilder::new();
            pb.move_to(x + s / 2.0, y + s * 0.95);
            pb.cubic_to(
                x - s * 0.2,
                y + s * 0.45,
                x + s * 0.15,
                y - s * 0.1,
                x + s / 2.0,
                y + s * 0.28,
            );
            pb.cubic_to(
                x + s * 0.85,
                y - s * 0.1,
                x + s * 1.2,
                y + s * 0.45,
                x + s / 2.0,
                y + s * 0.95,
            );
            pb.close();
            if let Some(path) = pb.finish() {
                pm.fill_path(
                    &path,
                    &paint(c),
                    FillRule::Winding,
                    Transform::identity(),
                    None,
                );
            }
        }
        Metric::Sold => {
            // A shopping bag: body and handle.
            rounded(pm, x + s * 0.1, y + s * 0.3, s * 0.8, s * 0.68, s * 0.1, c);
            let mut pb = PathBuilder::new();
            pb.move_to(x + s * 0.3, y + s * 0.35);
            pb.cubic_to(
                x + s * 0.3,
                y - s * 0.05,
                x + s * 0.7,
                y - s * 0.05,
                x + s * 0.7,
                y + s * 0.35,
            );
            if let Some(path) = pb.finish() {
                pm.stroke_path(
                    &path,
                    &paint(c),
                    &Stroke {
                        width: s * 0.09,
                        ..Default::default()
                    },
                    Transform::identity(),
                    None,
                );
            }
        }
    }
}

fn draw_qr(pm: &mut Pixmap, url: &str, w: f32, h: f32) -> Option<()> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let n = code.width();
    let side = w.min(h);
    rounded(pm, 0.0, 0.0, side, side, side * 0.04, Color::WHITE);
    let quiet = 2.0;
    let cell = side / (n as f32 + 2.0 * quiet);
    let black = paint(Color::BLACK);
    for (i, module) in code.to_colors().iter().enumerate() {
        if *module == qrcode::Color::Dark {
            let (cx, cy) = ((i % n) as f32, (i / n) as f32);
            if let Some(r) = SkRect::from_xywh(
                (cx + quiet) * cell,
                (cy + quiet) * cell,
                cell + 0.5,
                cell + 0.5,
            ) {
                pm.fill_rect(r, &black, Transform::identity(), None);
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_counts_read_well() {
        assert_eq!(money(3500, "CNY"), "¥35.00");
        assert_eq!(money(123456789, "USD"), "$1,234,567.89");
        assert_eq!(money(1200, "JPY"), "¥1,200");
        assert_eq!(money(250, "KZT"), "2.50 KZT");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1234), "1.2k");
        assert_eq!(compact(56_000), "56k");
        assert_eq!(countdown_text(59_001), "1:00");
        assert_eq!(countdown_text(3_600_000), "1:00:00");
    }

    /// A card for an offer at the product's own price once took the text engine's lock
    /// twice and hung (every studio's video with it). Each variant must finish.
    #[test]
    fn a_card_renders_for_an_offer_at_full_price_and_at_a_discount() {
        use crate::overlay::scene::{LayerKind, template};
        use fieldcast_core::commerce::records::ProductRow;
        for unit_amount in [5900, 3900] {
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let product = ProductRow {
                    id: "p".into(),
                    name: "Rose jam".into(),
                    translations: "{}".into(),
                    unit_amount: 5900,
                    currency: "CNY".into(),
                    unit: "jar".into(),
                    origin: None,
                    harvest_date: None,
                    description: None,
                    created_at: 0,
                    image_hash: None,
                };
                let offer = OfferRow {
                    id: "o".into(),
                    session_id: "s".into(),
                    product_id: "p".into(),
                    unit_amount,
                    allocated: 5,
                    available: 5,
                    sold: 0,
                    per_buyer_limit: None,
                    starts_at: 0,
                    ends_at: 60_000,
                    ended_early: false,
                    created_at: 0,
                };
                let pinned = Pinned {
                    product,
                    image: None,
                };
                let toasts = VecDeque::new();
                let view = View {
                    now_ms: 1_000,
                    viewers: 0,
                    likes: 0,
                    pinned: Some(&pinned),
                    offers: std::slice::from_ref(&offer),
                    toasts: &toasts,
                    watch_url: "",
                    images_dir: Path::new("/nonexistent"),
                    image_revision: 0,
                };
                let card = template(LayerKind::ProductCard, "card".into());
                let _ = done.send(render(&card, &view, 460, 180).is_some());
            });
            let rendered = finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("the card for an offer at {unit_amount} never finished")
                });
            assert!(
                rendered,
                "the card for an offer at {unit_amount} did not render"
            );
        }
    }
}
