//! Blending overlays onto I420 frames, in place.
//!
//! A layer's premultiplied RGBA picture is converted once, when it is drawn, into
//! premultiplied Y, U, V planes (BT.709, limited range, like the studio's I420) with alpha at
//! full and at chroma resolution. Blending a frame is then, per pixel,
//! `dst = src + dst × (1 − α)`, with no colour conversion: about a tenth of what GStreamer's
//! generic `gst_video_blend` costs for the same rectangles (see BENCHMARKS.md).

/// BT.709 luma weights.
const KR: f32 = 0.2126;
const KB: f32 = 0.0722;
const KG: f32 = 1.0 - KR - KB;

/// A layer ready to blend: premultiplied planes, even-sized.
#[derive(Debug)]
pub struct YuvOverlay {
    pub width: u32,
    pub height: u32,
    y: Vec<u8>,
    a: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    a_chroma: Vec<u8>,
}

impl YuvOverlay {
    /// From premultiplied RGBA rows (tiny-skia's pixmap data).
    pub fn from_premultiplied_rgba(rgba: &[u8], width: u32, height: u32) -> Self {
        // Even dimensions keep the chroma planes aligned; a trailing odd row/column is dropped.
        let (w, h) = ((width & !1) as usize, (height & !1) as usize);
        let stride = width as usize * 4;
        let mut y = vec![0u8; w * h];
        let mut a = vec![0u8; w * h];
        let (cw, ch) = (w / 2, h / 2);
        let mut u = vec![0u8; cw * ch];
        let mut v = vec![0u8; cw * ch];
        let mut a_chroma = vec![0u8; cw * ch];
        for row in 0..h {
            for col in 0..w {
                let p = &rgba[row * stride + col * 4..row * stride + col * 4 + 4];
                let alpha = p[3] as f32 / 255.0;
                let luma = KR * p[0] as f32 + KG * p[1] as f32 + KB * p[2] as f32;
                y[row * w + col] = (16.0 * alpha + luma * 219.0 / 255.0)
                    .round()
                    .clamp(0.0, 255.0) as u8;
                a[row * w + col] = p[3];
            }
        }
        for row in 0..ch {
            for col in 0..cw {
                let (mut r, mut g, mut b, mut al) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let p = &rgba[(row * 2 + dy) * stride + (col * 2 + dx) * 4..][..4];
                    r += p[0] as f32;
                    g += p[1] as f32;
                    b += p[2] as f32;
                    al += p[3] as f32;
                }
                let (r, g, b, al) = (r / 4.0, g / 4.0, b / 4.0, al / 4.0);
                let luma = KR * r + KG * g + KB * b;
                let alpha = al / 255.0;
                let cb = 128.0 * alpha + (b - luma) / (2.0 * (1.0 - KB)) * 224.0 / 255.0;
                let cr = 128.0 * alpha + (r - luma) / (2.0 * (1.0 - KR)) * 224.0 / 255.0;
                u[row * cw + col] = cb.round().clamp(0.0, 255.0) as u8;
                v[row * cw + col] = cr.round().clamp(0.0, 255.0) as u8;
                a_chroma[row * cw + col] = al.round() as u8;
            }
        }
        Self {
            width: w as u32,
            height: h as u32,
            y,
            a,
            u,
            v,
            a_chroma,
        }
    }
}

/// Planes of one I420 frame, writable.
pub struct I420<'a> {
    pub width: u32,
    pub height: u32,
    pub y: &'a mut [u8],
    pub y_stride: usize,
    pub u: &'a mut [u8],
    pub u_stride: usize,
    pub v: &'a mut [u8],
    pub v_stride: usize,
}

#[inline]
fn over(dst: &mut u8, src: u8, alpha: u8, global: u32) {
    // global is 0..=256; src is premultiplied.
    let src = (src as u32 * global) >> 8;
    let a = (alpha as u32 * global) >> 8;
    *dst = (src + (*dst as u32 * (255 - a) + 127) / 255).min(255) as u8;
}

/// Blends `overlay` with its top-left at (`x`, `y`) (rounded down to even) and a global
/// opacity in 0..=1. Parts outside the frame are clipped.
pub fn blend(frame: &mut I420, overlay: &YuvOverlay, x: i32, y: i32, opacity: f32) {
    let global = (opacity.clamp(0.0, 1.0) * 256.0) as u32;
    if global == 0 {
        return;
    }
    let (x, y) = (x & !1, y & !1);
    let x0 = x.max(0);
    let y0 = y.max(0);
    let x1 = (x + overlay.width as i32).min(frame.width as i32 & !1);
    let y1 = (y + overlay.height as i32).min(frame.height as i32 & !1);
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let ow = overlay.width as usize;
    let span = (x1 - x0) as usize;
    let sx = (x0 - x) as usize;
    for fy in y0..y1 {
        let oy = (fy - y) as usize;
        let src = &overlay.y[oy * ow + sx..][..span];
        let alpha = &overlay.a[oy * ow + sx..][..span];
        let dst = &mut frame.y[fy as usize * frame.y_stride + x0 as usize..][..span];
        for i in 0..span {
            over(&mut dst[i], src[i], alpha[i], global);
        }
    }
    let cw = ow / 2;
    let (cspan, csx) = (span / 2, sx / 2);
    for fy in (y0 / 2)..(y1 / 2) {
        let oy = (fy - y / 2) as usize;
        let alpha = &overlay.a_chroma[oy * cw + csx..][..cspan];
        let u_src = &overlay.u[oy * cw + csx..][..cspan];
        let v_src = &overlay.v[oy * cw + csx..][..cspan];
        let u_dst = &mut frame.u[fy as usize * frame.u_stride + x0 as usize / 2..][..cspan];
        for i in 0..cspan {
            over(&mut u_dst[i], u_src[i], alpha[i], global);
        }
        let v_dst = &mut frame.v[fy as usize * frame.v_stride + x0 as usize / 2..][..cspan];
        for i in 0..cspan {
            over(&mut v_dst[i], v_src[i], alpha[i], global);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (vec![16; w * h], vec![128; w * h / 4], vec![128; w * h / 4])
    }

    #[test]
    fn opaque_white_turns_black_white_and_transparent_changes_nothing() {
        let (mut y, mut u, mut v) = frame(8, 8);
        let mut rgba = vec![255u8; 4 * 4 * 4];
        // Right half transparent.
        for row in 0..4 {
            for col in 2..4 {
                rgba[(row * 4 + col) * 4..][..4].copy_from_slice(&[0, 0, 0, 0]);
            }
        }
        let overlay = YuvOverlay::from_premultiplied_rgba(&rgba, 4, 4);
        let mut f = I420 {
            width: 8,
            height: 8,
            y: &mut y,
            y_stride: 8,
            u: &mut u,
            u_stride: 4,
            v: &mut v,
            v_stride: 4,
        };
        blend(&mut f, &overlay, 2, 2, 1.0);
        assert_eq!(f.y[2 * 8 + 2], 235, "white is Y 235 in limited range");
        assert_eq!(
            f.y[2 * 8 + 4],
            16,
            "transparent pixels leave the frame alone"
        );
        assert_eq!(f.y[0], 16, "outside the overlay nothing changes");
        assert_eq!((f.u[4 + 1], f.v[4 + 1]), (128, 128), "white has no chroma");
        // Half opacity: halfway between black and white.
        let (mut y2, mut u2, mut v2) = frame(8, 8);
        let mut f = I420 {
            width: 8,
            height: 8,
            y: &mut y2,
            y_stride: 8,
            u: &mut u2,
            u_stride: 4,
            v: &mut v2,
            v_stride: 4,
        };
        blend(&mut f, &overlay, 0, 0, 0.5);
        assert!((124..=127).contains(&f.y[0]), "{}", f.y[0]);
    }

    #[test]
    fn overlays_hanging_off_the_frame_are_clipped() {
        let (mut y, mut u, mut v) = frame(8, 8);
        let overlay = YuvOverlay::from_premultiplied_rgba(&[255u8; 6 * 6 * 4], 6, 6);
        let mut f = I420 {
            width: 8,
            height: 8,
            y: &mut y,
            y_stride: 8,
            u: &mut u,
            u_stride: 4,
            v: &mut v,
            v_stride: 4,
        };
        blend(&mut f, &overlay, -4, 6, 1.0);
        blend(&mut f, &overlay, 100, 100, 1.0);
        assert_eq!(f.y[7 * 8], 235);
        assert_eq!(f.y[5 * 8], 16);
    }
}
