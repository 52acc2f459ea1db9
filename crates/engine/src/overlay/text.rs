//! Text: shaped with cosmic-text (HarfBuzz shaping, bidi, font fallback by script), drawn
//! into premultiplied RGBA pixmaps. Latin, Chinese and the Arabic script of Uyghur (right to
//! left, joined letters) all render. Fonts are Noto (OFL), from Debian's fonts-noto-core and
//! fonts-noto-cjk; a missing file only narrows the fallback, it never crashes.

use std::sync::{Mutex, MutexGuard, OnceLock};

use cosmic_text::{
    Align, Attrs, Buffer, Color, Family, FontSystem, Metrics, Shaping, SwashCache, Weight, Wrap,
};
use tiny_skia::Pixmap;

/// Font files loaded when present, in this order (the first family is the default).
pub const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansArabic-Bold.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
];

/// The family asked for first; script fallback finds Noto Sans Arabic and Noto Sans CJK SC.
pub const DEFAULT_FAMILY: &str = "Noto Sans";

pub struct TextEngine {
    fonts: FontSystem,
    cache: SwashCache,
}

static ENGINE: OnceLock<Mutex<TextEngine>> = OnceLock::new();

/// The process's text engine (loading fonts takes a moment; it happens once).
pub fn engine() -> MutexGuard<'static, TextEngine> {
    ENGINE
        .get_or_init(|| Mutex::new(TextEngine::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextStyle {
    pub size_px: f32,
    pub bold: bool,
    pub rgba: [u8; 4],
    pub align: TextAlign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextAlign {
    /// Start of the line in its direction (right for Arabic script).
    Start,
    Center,
    End,
}

impl TextEngine {
    fn new() -> Self {
        let mut db = cosmic_text::fontdb::Database::new();
        let mut loaded = 0;
        for path in FONT_FILES {
            if std::path::Path::new(path).exists() && db.load_font_file(path).is_ok() {
                loaded += 1;
            }
        }
        if loaded == 0 {
            tracing::warn!(
                "no Noto or DejaVu fonts found; install fonts-noto-core and fonts-noto-cjk. Using system fonts"
            );
            db.load_system_fonts();
        }
        db.set_sans_serif_family(DEFAULT_FAMILY);
        let fonts = FontSystem::new_with_locale_and_db("en-US".into(), db);
        Self {
            fonts,
            cache: SwashCache::new(),
        }
    }

    fn buffer(&mut self, text: &str, style: &TextStyle, max_width: f32) -> Buffer {
        let metrics = Metrics::new(style.size_px, (style.size_px * 1.3).ceil());
        let mut buffer = Buffer::new(&mut self.fonts, metrics);
        buffer.set_wrap(Wrap::WordOrGlyph);
        buffer.set_size(Some(max_width.max(1.0)), None);
        let weight = if style.bold {
            Weight::BOLD
        } else {
            Weight::NORMAL
        };
        let attrs = Attrs::new().family(Family::SansSerif).weight(weight);
        let align = match style.align {
            TextAlign::Start => None,
            TextAlign::Center => Some(Align::Center),
            TextAlign::End => Some(Align::End),
        };
        buffer.set_text(text, &attrs, Shaping::Advanced, align);
        buffer.shape_until_scroll(&mut self.fonts, false);
        buffer
    }

    /// Width and height the text takes when wrapped at `max_width`.
    pub fn measure(&mut self, text: &str, style: &TextStyle, max_width: f32) -> (f32, f32) {
        let buffer = self.buffer(text, style, max_width);
        let mut width: f32 = 0.0;
        let mut height: f32 = 0.0;
        for run in buffer.layout_runs() {
            width = width.max(run.line_w);
            height = run.line_top + run.line_height;
        }
        (width, height)
    }

    /// Draws `text` with its top-left at (`x`, `y`), wrapped at `max_width`; returns the
    /// height used.
    pub fn draw(
        &mut self,
        pixmap: &mut Pixmap,
        text: &str,
        x: f32,
        y: f32,
        max_width: f32,
        style: &TextStyle,
    ) -> f32 {
        let mut buffer = self.buffer(text, style, max_width);
        let [r, g, b, a] = style.rgba;
        let (pw, ph) = (pixmap.width() as i32, pixmap.height() as i32);
        let data = pixmap.data_mut();
        let (ox, oy) = (x.round() as i32, y.round() as i32);
        let mut height: f32 = 0.0;
        for run in buffer.layout_runs() {
            height = run.line_top + run.line_height;
        }
        buffer.draw(
            &mut self.fonts,
            &mut self.cache,
            Color::rgba(r, g, b, a),
            |gx, gy, w, h, color| {
                let alpha = color.a() as u32;
                if alpha == 0 {
                    return;
                }
                for py in (oy + gy)..(oy + gy + h as i32) {
                    if py < 0 || py >= ph {
                        continue;
                    }
                    for px in (ox + gx)..(ox + gx + w as i32) {
                        if px < 0 || px >= pw {
                            continue;
                        }
                        let i = ((py * pw + px) * 4) as usize;
                        blend(
                            &mut data[i..i + 4],
                            [color.r(), color.g(), color.b()],
                            alpha,
                        );
                    }
                }
            },
        );
        height
    }
}

/// Source-over of a straight colour with `alpha` onto one premultiplied RGBA pixel.
pub fn blend(dst: &mut [u8], rgb: [u8; 3], alpha: u32) {
    let inv = 255 - alpha;
    for c in 0..3 {
        let src = rgb[c] as u32 * alpha / 255;
        dst[c] = (src + dst[c] as u32 * inv / 255).min(255) as u8;
    }
    dst[3] = (alpha + dst[3] as u32 * inv / 255).min(255) as u8;
}
