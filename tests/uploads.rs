//! Photo uploads as a phone and a careless operator make them: 5 MiB over a 1 Mb/s uplink,
//! eight 8192² pictures at once, and a server killed while one is being stored.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HealthProbe, Server, TOKEN, data_dir, png, quantile};

/// A product to put photos on.
fn product(server: &Server) -> String {
    let (status, product) = server.api(
        "POST",
        "/api/v1/products",
        Some(serde_json::json!({"name": "Rose jam", "unit_amount": 3500, "currency": "CNY"})),
    );
    assert_eq!(status, 201, "{product}");
    product["id"].as_str().unwrap().to_string()
}

/// PUTs `body` as a product photo, `bytes_per_second` at a time (all at once when `None`);
/// `after_body` runs once the last byte is sent. Returns the status and body of the answer.
fn put_photo(
    http: SocketAddr,
    product: &str,
    body: &[u8],
    bytes_per_second: Option<usize>,
    after_body: impl FnOnce(),
) -> (u16, String) {
    let mut stream = TcpStream::connect(http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(180)))
        .unwrap();
    let head = format!(
        "PUT /api/v1/products/{product}/image HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    match bytes_per_second {
        None => {
            let _ = stream.write_all(body);
        }
        Some(rate) => {
            // A tenth of a second's worth at a time, on the clock (not after each write).
            let started = Instant::now();
            for (i, chunk) in body.chunks(rate / 10).enumerate() {
                let due = started + Duration::from_millis(100 * i as u64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                if stream.write_all(chunk).is_err() {
                    break;
                }
            }
        }
    }
    after_body();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_5_mib_photo_over_a_1_mbit_uplink_is_taken_and_eight_8192_square_decodes_leave_the_api_fast() {
    let server = Server::start(&data_dir("uploads"));
    let slow_product = product(&server);
    let photo = png(1300, 1300, true);
    assert!(
        photo.len() > 4_900_000 && photo.len() <= 5 * 1024 * 1024,
        "a photo of about 5 MiB: {}",
        photo.len()
    );
    // 1 Mb/s: 125,000 bytes a second, so about 40 s for the photo.
    let http = server.http;
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = put_photo(http, &slow_product, &photo, Some(125_000), || {});
        (answer, started.elapsed())
    });

    // Meanwhile eight operators upload 8192² pictures at once, and /healthz is probed.
    let big = Arc::new(png(8192, 8192, false));
    let probe = HealthProbe::start(&server);
    let started = Instant::now();
    let uploads: Vec<_> = (0..8)
        .map(|_| {
            let (big, id) = (big.clone(), product(&server));
            std::thread::spawn(move || put_photo(http, &id, &big, None, || {}))
        })
        .collect();
    let answers: Vec<(u16, String)> = uploads.into_iter().map(|t| t.join().unwrap()).collect();
    let decodes_took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let health = probe.stop();
    let p99 = quantile(&health, 0.99);
    println!(
        "8 uploads of 8192² ({} bytes each): {:?} in {decodes_took:?}; /healthz {} probes, p50 {:?}, p99 {p99:?}, max {:?}",
        big.len(),
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        health.len(),
        health[health.len() / 2],
        health.last().unwrap()
    );
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let stored: serde_json::Value = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(
        (stored["width"].as_u64(), stored["height"].as_u64()),
        (Some(512), Some(512))
    );
    assert!(
        p99 < Duration::from_millis(50),
        "/healthz p99 {p99:?} while decoding"
    );

    let ((status, body), took) = slow.join().unwrap();
    println!("5 MiB at 1 Mb/s: {status} after {took:?}: {body}");
    assert_eq!(status, 200, "{body}");
    assert!(
        took > Duration::from_secs(35),
        "the upload really was slow: {took:?}"
    );
}

/// Every PNG under `dir` decodes.
fn every_png_decodes(dir: &std::path::Path) -> Vec<String> {
    let mut broken = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            broken.extend(every_png_decodes(&path));
        } else if path.extension().is_some_and(|e| e == "png") && image::open(&path).is_err() {
            broken.push(path.display().to_string());
        }
    }
    broken
}

#[test]
fn a_server_killed_while_storing_photos_leaves_every_photo_whole() {
    let data = data_dir("upload-kill");
    let mut server = Server::start(&data);
    let id = product(&server);
    let (status, _) = put_photo(server.http, &id, &png(640, 480, true), None, || {});
    assert_eq!(status, 200);
    let before = server.api("GET", &format!("/api/v1/products/{id}"), None).1;
    let images = data.join("images");
    // How long sending and storing a photo of that size takes here.
    let t = Instant::now();
    let (status, _) = put_photo(server.http, &id, &png(1200, 1200, true), None, || {});
    let whole = t.elapsed();
    assert_eq!(status, 200);
    let ms = whole.as_millis() as u64;
    println!("a 1200×1200 photo is sent and stored in {whole:?}");
    // Kill -9 at moments spread over a new upload of the same product: mid-body, as the body
    // ends, and through decoding, scaling, encoding, writing and renaming.
    let moments = [
        None,
        Some(0),
        Some(ms / 4),
        Some(ms / 2),
        Some(ms * 3 / 4),
        Some(ms * 9 / 10),
    ];
    for (round, delay_ms) in moments.into_iter().enumerate() {
        let photo = png(1200, 1200, true);
        let pid = server.pid();
        // SAFETY: kill(2) on the server's pid.
        let kill = move || unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        };
        match delay_ms {
            // Mid-body: the photo goes at 1 MB/s, and the server dies after a second of it.
            None => {
                let killer = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(1));
                    kill();
                });
                let _ = put_photo(server.http, &id, &photo, Some(1_000_000), || {});
                killer.join().unwrap();
            }
            Some(ms) => {
                let _ = put_photo(server.http, &id, &photo, None, move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    kill();
                });
            }
        }
        server = server.restart(&[]);
        let broken = every_png_decodes(&images);
        assert!(broken.is_empty(), "round {round}: broken photos {broken:?}");
        let product = server.api("GET", &format!("/api/v1/products/{id}"), None).1;
        let url = product["image_url"]
            .as_str()
            .expect("the product keeps a photo");
        let mut r = ureq::get(&server.url(url))
            .call()
            .expect("its photo is served");
        let bytes = r.body_mut().read_to_vec().unwrap();
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "round {round}: the served photo {url} does not decode"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&images)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "round {round}: {leftovers:?} after a restart"
        );
        println!("round {round} (kill {delay_ms:?} ms after the body): photo {url} whole");
    }
    println!("before the kills: {}", before["image_url"]);
}
