//! Where a layer goes on a frame of a given size: anchor + offset + size, all in fractions,
//! to whole pixels. Pure.

use super::scene::{Anchor, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

/// The layer's rectangle on a `frame_w` × `frame_h` frame. The offset moves away from the
/// anchored edge, towards the centre. An upright frame uses the layer's portrait place when
/// it has one.
pub fn place(layer: &Layer, frame_w: u32, frame_h: u32) -> Rect {
    let (anchor, offset, size) = match &layer.portrait {
        Some(p) if frame_h > frame_w => (p.anchor, p.offset, p.size),
        _ => (layer.anchor, layer.offset, layer.size),
    };
    let (fw, fh) = (frame_w as f32, frame_h as f32);
    let width = (size[0] * fw).round().max(1.0);
    let height = (size[1] * fh).round().max(1.0);
    let (dx, dy) = (offset[0] * fw, offset[1] * fh);
    let (col, row) = match anchor {
        Anchor::TopLeft => (0, 0),
        Anchor::Top => (1, 0),
        Anchor::TopRight => (2, 0),
        Anchor::Left => (0, 1),
        Anchor::Center => (1, 1),
        Anchor::Right => (2, 1),
        Anchor::BottomLeft => (0, 2),
        Anchor::Bottom => (1, 2),
        Anchor::BottomRight => (2, 2),
    };
    let x = match col {
        0 => dx,
        1 => (fw - width) / 2.0 + dx,
        _ => fw - width - dx,
    };
    let y = match row {
        0 => dy,
        1 => (fh - height) / 2.0 + dy,
        _ => fh - height - dy,
    };
    Rect {
        x: x.round() as i32,
        y: y.round() as i32,
        width: width as u32,
        height: height as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::scene::{LayerKind, template};

    #[test]
    fn anchors_place_layers_and_survive_a_size_change() {
        let mut l = template(LayerKind::Counter, "c".into());
        l.anchor = Anchor::TopRight;
        l.offset = [0.05, 0.1];
        l.size = [0.25, 0.1];
        l.portrait = None;
        assert_eq!(
            place(&l, 1280, 720),
            Rect {
                x: 896,
                y: 72,
                width: 320,
                height: 72
            }
        );
        assert_eq!(
            place(&l, 640, 360),
            Rect {
                x: 448,
                y: 36,
                width: 160,
                height: 36
            }
        );
        l.anchor = Anchor::BottomLeft;
        assert_eq!(
            place(&l, 1280, 720),
            Rect {
                x: 64,
                y: 576,
                width: 320,
                height: 72
            }
        );
        l.anchor = Anchor::Center;
        l.offset = [0.0, 0.0];
        assert_eq!(
            place(&l, 1280, 720),
            Rect {
                x: 480,
                y: 324,
                width: 320,
                height: 72
            }
        );
    }

    #[test]
    fn an_upright_frame_uses_the_portrait_place_and_keeps_the_card_inside() {
        let card = template(LayerKind::ProductCard, "p".into());
        let landscape = place(&card, 1280, 720);
        let portrait = place(&card, 720, 1280);
        assert_ne!(landscape, portrait);
        for kind in [
            LayerKind::ProductCard,
            LayerKind::Counter,
            LayerKind::Countdown,
            LayerKind::Toast,
        ] {
            let r = place(&template(kind, "l".into()), 720, 1280);
            assert!(
                r.x >= 0
                    && r.y >= 0
                    && r.x + r.width as i32 <= 720
                    && r.y + r.height as i32 <= 1280,
                "{kind:?} leaves the frame: {r:?}"
            );
        }
        // The card is wide on a phone and clear of the bottom edge.
        assert!(portrait.width >= 480, "{portrait:?}");
        assert!(
            portrait.y + portrait.height as i32 <= 1280 - 200,
            "{portrait:?}"
        );
    }
}
