//! The Grafana dashboard against a real Prometheus (Debian's, started here on loopback)
//! scraping a live Fieldcast with a publisher, a WHEP viewer and an order: every PromQL
//! expression in docker/grafana/fieldcast.json returns data, and `fieldcast_viewers` reads 1.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Publisher, Server, data_dir, order_body, wait_for};
use fieldcast_probe::whep::{PlayOptions, play};
use serde_json::{Value, json};

/// Prometheus on a loopback port, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        assert!(
            Path::new("/usr/bin/prometheus").exists(),
            "Prometheus is missing: run `make test` (apt-get install prometheus)"
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fieldcast\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("prometheus.log")).unwrap(),
            ))
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// An instant query's result vector (empty when the expression has no data).
    fn query(&self, expr: &str) -> Vec<Value> {
        let response = ureq::get(&format!("{}/api/v1/query", self.url))
            .query("query", expr)
            .call()
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let body: Value = response.into_body().read_json().expect("a JSON answer");
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docker/grafana/fieldcast.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON")
}

#[test]
fn every_dashboard_expression_returns_data_from_a_real_prometheus_and_viewers_read_one() {
    let server = Server::start(&data_dir("metrics"));
    let session = server.create_session("Metrics");
    let id = session["id"].as_str().unwrap().to_string();
    let key = session["stream_key"].as_str().unwrap().to_string();
    let _publisher = Publisher::ffmpeg(&server.publish_url(&key), "1280x720", 120);
    server.wait_state(&id, "publisher-connected", Duration::from_secs(10));

    // An offer and an order, so the orders series and the overlay histogram have data.
    let (status, product) = server.api(
        "POST",
        "/api/v1/products",
        Some(json!({"name": "Rose jam", "unit_amount": 3500, "currency": "CNY", "unit": "jar"})),
    );
    assert_eq!(status, 201);
    let (status, offer) = server.api(
        "POST",
        &format!("/api/v1/sessions/{id}/offers"),
        Some(json!({"product_id": product["id"], "unit_amount": 2900, "quantity": 10})),
    );
    assert_eq!(status, 201);
    let response = ureq::post(&server.url(&format!("/api/v1/sessions/{id}/orders")))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", "metrics-1")
        .send(order_body(offer["id"].as_str().unwrap(), 1, 1))
        .expect("an order");
    assert_eq!(response.status(), 201);

    // One viewer for the whole check.
    let whep = server.url(&format!("/whep/{id}"));
    let viewer = std::thread::spawn(move || {
        play(
            &whep,
            &PlayOptions {
                duration: Duration::from_secs(25),
                ..Default::default()
            },
        )
    });
    wait_for("the viewer", Duration::from_secs(10), || {
        server.metric("fieldcast_viewers") == 1.0
    });

    // Likes every 250 ms: the counters on the video change, so the overlay histogram moves
    // while Prometheus watches.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let likes = {
        let (url, stop) = (
            server.url(&format!("/api/v1/sessions/{id}/likes")),
            stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = ureq::post(&url)
                    .header("Content-Type", "application/json")
                    .send(r#"{"count":1}"#);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    let dir = data_dir("prometheus");
    let prometheus = Prometheus::start(&dir, &server.http.to_string());
    // `rate(…[1m])` needs two samples of each series: wait for a few scrapes.
    let started = Instant::now();
    wait_for(
        "Prometheus to scrape Fieldcast",
        Duration::from_secs(30),
        || {
            ureq::get(&format!("{}/-/ready", prometheus.url))
                .call()
                .is_ok()
                && prometheus
                    .query("count_over_time(fieldcast_viewers[1m])")
                    .first()
                    .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
                    .is_some_and(|n| n >= 4.0)
        },
    );
    eprintln!("prometheus had 4 scrapes after {:?}", started.elapsed());

    let viewers = prometheus.query("fieldcast_viewers");
    assert_eq!(viewers.len(), 1, "{viewers:?}");
    assert_eq!(
        viewers[0]["value"][1], "1",
        "fieldcast_viewers: {viewers:?}"
    );

    let mut empty = Vec::new();
    let mut checked = 0;
    for panel in dashboard()["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$session", &id);
            let result = prometheus.query(&expr);
            checked += 1;
            eprintln!(
                "{:<45} {:>2} series  {expr}  {}",
                panel["title"].as_str().unwrap(),
                result.len(),
                result
                    .first()
                    .map(|s| s["value"][1].to_string())
                    .unwrap_or_default()
            );
            // Data is a series with a number: a quantile of nothing is NaN.
            let numbers = result
                .iter()
                .filter(|s| {
                    s["value"][1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(f64::is_finite)
                })
                .count();
            if numbers == 0 {
                empty.push(format!("{}: {expr} → {result:?}", panel["title"]));
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    likes.join().unwrap();
    assert!(
        checked >= 10,
        "the dashboard has only {checked} expressions"
    );
    assert!(
        empty.is_empty(),
        "dashboard expressions with no data:\n{}",
        empty.join("\n")
    );
    let report = viewer.join().unwrap().expect("the viewer played");
    assert!(
        report.video_frames > 30,
        "the viewer got {} frames",
        report.video_frames
    );
}
