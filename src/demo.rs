//! `--demo`: the demo session shows a show. A product with a photo (drawn here, so we own
//! it) is pinned, a flash sale restarts every few minutes, and a demo buyer places an
//! occasional order and a few likes, so the card, the counters and the toasts move.
//!
//! The demo buyer is a client of the public API like any viewer (it goes through the same
//! rate limits, ledger and toasts), and it says what it is: its name is "Demo buyer".
//! Nothing of this runs without `--demo`.

use std::time::Duration;

use serde_json::{Value, json};

use fieldcast_core::ids::random_hex;

pub const PRODUCT_NAME: &str = "Rose jam";
/// A flash sale lasts this long; the next opens a little after it ends or sells out.
pub const SALE_SECONDS: i64 = 180;
const SALE_PAUSE: Duration = Duration::from_secs(20);
const SALE_QUANTITY: i64 = 40;
/// The demo buyer orders about this often, and likes in between.
const ORDER_EVERY: Duration = Duration::from_secs(12);
const CITIES: [&str; 5] = ["Kashgar", "Turpan", "Hotan", "Ghulja", "Aksu"];

/// Starts the demo's show on `session_id` in a thread of its own: it calls the server at
/// `http` with the operator `token`, as a shop's own program would.
pub fn start(http: std::net::SocketAddr, token: &str, session_id: &str) {
    let mut addr = http;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let show = Show {
        base: format!("http://{addr}"),
        token: token.to_string(),
        session_id: session_id.to_string(),
        agent: ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent(),
    };
    let _ = std::thread::Builder::new()
        .name("demo".into())
        .spawn(move || show.run());
}

struct Show {
    base: String,
    token: String,
    session_id: String,
    agent: ureq::Agent,
}

impl Show {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(b),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Idempotency-Key", random_hex(16))
                .send_json(b),
            _ => return None,
        };
        match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let value = response
                    .body_mut()
                    .read_json::<Value>()
                    .unwrap_or(Value::Null);
                Some((status, value))
            }
            Err(e) => {
                tracing::debug!(error = %e, "demo: request failed");
                None
            }
        }
    }

    /// The demo product, created (with its photo) the first time.
    fn product(&self) -> Option<Value> {
        let (_, list) = self.call("GET", "/api/v1/products", None)?;
        if let Some(p) = list
            .as_array()?
            .iter()
            .find(|p| p["name"] == PRODUCT_NAME && !p["image_url"].is_null())
        {
            return Some(p.clone());
        }
        let (status, product) = self.call(
            "POST",
            "/api/v1/products",
            Some(json!({
                "name": PRODUCT_NAME,
                "translations": {"zh": "玫瑰酱", "ug": "ئەتىرگۈل مۇراببىسى"},
                "unit_amount": 5900,
                "currency": "CNY",
                "unit": "jar",
                "origin": "Kashgar",
                "description": "Damask rose petals cooked with honey (demo product)"
            })),
        )?;
        if status != 201 {
            tracing::warn!(status, "demo: product not created");
            return None;
        }
        let id = product["id"].as_str()?.to_string();
        let photo = jar_photo()?;
        let url = format!("{}/api/v1/products/{id}/image", self.base);
        let uploaded = self
            .agent
            .put(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "image/png")
            .send(&photo[..]);
        if let Err(e) = uploaded {
            tracing::warn!(error = %e, "demo: photo not uploaded");
        }
        Some(product)
    }

    fn run(self) {
        // The HTTP server starts serving right after the demo is set up.
        let product = loop {
            if let Some(p) = self.product() {
                break p;
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        let product_id = product["id"].as_str().unwrap_or_default().to_string();
        let session = &self.session_id;
        self.call(
            "PUT",
            &format!("/api/v1/sessions/{session}/pinned"),
            Some(json!({"product_id": product_id})),
        );
        tracing::info!(session.id = %session, "demo: product pinned; a flash sale opens every few minutes");
        let mut next_sale = std::time::Instant::now();
        let mut n: u64 = 0;
        loop {
            let offer = self.running_offer(&product_id);
            if offer.is_none() && std::time::Instant::now() >= next_sale {
                self.call(
                    "POST",
                    &format!("/api/v1/sessions/{session}/offers"),
                    Some(json!({
                        "product_id": product_id,
                        "unit_amount": 3900,
                        "quantity": SALE_QUANTITY,
                        "per_buyer_limit": 3,
                        "duration_s": SALE_SECONDS,
                    })),
                );
            }
            if offer.is_none() && next_sale <= std::time::Instant::now() {
                next_sale = std::time::Instant::now() + SALE_PAUSE;
            }
            // A few likes every couple of seconds, an order now and then.
            for _ in 0..(ORDER_EVERY.as_secs() / 2) {
                std::thread::sleep(Duration::from_secs(2));
                self.call(
                    "POST",
                    &format!("/api/v1/sessions/{session}/likes"),
                    Some(json!({"count": 1 + rand::random::<u8>() % 4})),
                );
            }
            if let Some(offer_id) = offer {
                n += 1;
                self.call(
                    "POST",
                    &format!("/api/v1/sessions/{session}/orders"),
                    Some(json!({
                        "offer_id": offer_id,
                        "quantity": 1 + n % 2,
                        "buyer": {
                            "name": "Demo buyer",
                            "phone": format!("+86 100 0000 {:04}", n % 10_000),
                            "address": "1 Demo Road",
                            "city": CITIES[(n as usize) % CITIES.len()],
                        }
                    })),
                );
            }
        }
    }

    /// The demo product's offer that is live now, if any.
    fn running_offer(&self, product_id: &str) -> Option<String> {
        let (_, offers) = self.call(
            "GET",
            &format!("/api/v1/sessions/{}/offers", self.session_id),
            None,
        )?;
        offers
            .as_array()?
            .iter()
            .find(|o| {
                o["product_id"] == product_id && (o["state"] == "live" || o["state"] == "scheduled")
            })
            .and_then(|o| o["id"].as_str().map(String::from))
    }
}

/// A jar of rose jam, drawn: a 512×512 PNG.
pub fn jar_photo() -> Option<Vec<u8>> {
    use tiny_skia::{Color, FillRule, Paint, PathBuilder, Pixmap, Rect, Transform};
    let mut pixmap = Pixmap::new(512, 512)?;
    pixmap.fill(Color::from_rgba8(250, 240, 228, 255));
    let mut paint = Paint {
        anti_alias: true,
        ..Paint::default()
    };
    let fill = |pixmap: &mut Pixmap, paint: &Paint, path: Option<tiny_skia::Path>| {
        if let Some(path) = path {
            pixmap.fill_path(&path, paint, FillRule::Winding, Transform::identity(), None);
        }
    };
    // The table's shadow, the glass with the jam, the lid, the label.
    paint.set_color_rgba8(0, 0, 0, 40);
    fill(
        &mut pixmap,
        &paint,
        PathBuilder::from_oval(Rect::from_xywh(116.0, 430.0, 280.0, 40.0)?),
    );
    paint.set_color_rgba8(150, 20, 52, 255);
    fill(
        &mut pixmap,
        &paint,
        rounded(126.0, 150.0, 260.0, 300.0, 46.0),
    );
    paint.set_color_rgba8(255, 255, 255, 60);
    fill(
        &mut pixmap,
        &paint,
        rounded(150.0, 175.0, 34.0, 240.0, 17.0),
    );
    paint.set_color_rgba8(201, 162, 39, 255);
    fill(&mut pixmap, &paint, rounded(136.0, 96.0, 240.0, 64.0, 14.0));
    paint.set_color_rgba8(255, 248, 236, 255);
    fill(
        &mut pixmap,
        &paint,
        rounded(166.0, 250.0, 180.0, 110.0, 12.0),
    );
    // A rose on the label: five petals round a centre.
    paint.set_color_rgba8(214, 51, 108, 255);
    for i in 0..5 {
        let a = i as f32 * std::f32::consts::TAU / 5.0;
        let (x, y) = (256.0 + 22.0 * a.cos(), 305.0 + 22.0 * a.sin());
        fill(&mut pixmap, &paint, PathBuilder::from_circle(x, y, 20.0));
    }
    paint.set_color_rgba8(150, 20, 52, 255);
    fill(
        &mut pixmap,
        &paint,
        PathBuilder::from_circle(256.0, 305.0, 13.0),
    );
    pixmap.encode_png().ok()
}

fn rounded(x: f32, y: f32, w: f32, h: f32, r: f32) -> Option<tiny_skia::Path> {
    let mut pb = tiny_skia::PathBuilder::new();
    pb.move_to(x + r, y);
    pb.line_to(x + w - r, y);
    pb.quad_to(x + w, y, x + w, y + r);
    pb.line_to(x + w, y + h - r);
    pb.quad_to(x + w, y + h, x + w - r, y + h);
    pb.line_to(x + r, y + h);
    pb.quad_to(x, y + h, x, y + h - r);
    pb.line_to(x, y + r);
    pb.quad_to(x, y, x + r, y);
    pb.close();
    pb.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_photo_is_a_png_the_upload_accepts() {
        let png = super::jar_photo().expect("drawn");
        let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!((image.width(), image.height()), (512, 512));
    }
}
