//! The operator API and the WHEP endpoint's refusals, against the real binary.

mod common;

use common::{Server, TOKEN, data_dir};
use serde_json::json;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

#[test]
fn sessions_api_creates_lists_patches_and_deletes() {
    let server = Server::start(&data_dir("api"));
    let created = server.create_session("Rose jam");
    let id = created["id"].as_str().unwrap();
    for field in ["stream_key", "rtmp_url", "whep_url", "watch_url"] {
        assert!(
            created[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing: {created}"
        );
    }
    assert_eq!(created["state"], "idle");
    assert!(created["rtmp_url"].as_str().unwrap().ends_with(&format!(
        "/live/{}",
        created["stream_key"].as_str().unwrap()
    )));

    let (status, list) = server.api("GET", "/api/v1/sessions", None);
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, patched) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}"),
        Some(json!({"title": "Rose jam, day 2"})),
    );
    assert_eq!(status, 200);
    assert_eq!(patched["title"], "Rose jam, day 2");

    let (status, live) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}"),
        Some(json!({"state": "live"})),
    );
    assert_eq!(status, 200);
    assert_eq!(live["state"], "live");
    let (_, idle) = server.api(
        "PATCH",
        &format!("/api/v1/sessions/{id}"),
        Some(json!({"state": "idle"})),
    );
    assert_eq!(idle["state"], "idle");

    let (status, _) = server.api("DELETE", &format!("/api/v1/sessions/{id}"), None);
    assert_eq!(status, 204);
    let (status, problem) = server.api("GET", &format!("/api/v1/sessions/{id}"), None);
    assert_eq!(status, 404);
    assert_eq!(problem["detail"], "session not found");
}

#[test]
fn bad_requests_get_problem_json_that_says_why() {
    let server = Server::start(&data_dir("api-bad"));
    let url = server.url("/api/v1/sessions");

    let mut r = agent().get(&url).call().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.body_mut().read_to_string().unwrap().contains("Bearer"));

    let r = agent()
        .get(&url)
        .header("Authorization", "Bearer wrong-token-000000000")
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);

    let auth = format!("Bearer {TOKEN}");
    let (status, problem) = server.api("POST", "/api/v1/sessions", Some(json!({"title": "  "})));
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("title"),
        "{problem}"
    );

    let (status, problem) = server.api("POST", "/api/v1/sessions", Some(json!({"titel": "x"})));
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("titel"),
        "{problem}"
    );

    let r = agent()
        .post(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send("{\"title\": ")
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = agent()
        .post(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "text/plain")
        .send("x")
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[test]
fn whep_refuses_wrong_content_type_bad_sdp_and_unknown_sessions() {
    let server = Server::start(&data_dir("whep-bad"));
    let session = server.create_session("WHEP");
    let id = session["id"].as_str().unwrap();
    server.go_live(id);
    let whep = server.url(&format!("/whep/{id}"));

    let r = agent()
        .post(&whep)
        .header("Content-Type", "application/json")
        .send("{}")
        .unwrap();
    assert_eq!(r.status(), 415);

    let mut r = agent()
        .post(&whep)
        .header("Content-Type", "application/sdp")
        .send("v=0\r\nthis is not sdp")
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.body_mut().read_to_string().unwrap().contains("SDP"));

    let r = agent()
        .post(&server.url("/whep/nope"))
        .header("Content-Type", "application/sdp")
        .send("v=0")
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = agent()
        .delete(&server.url(&format!("/whep/{id}/no-such-viewer")))
        .call()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn whep_cors_preflight_allows_other_origins_and_exposes_location() {
    let server = Server::start(&data_dir("cors"));
    let session = server.create_session("CORS");
    let r = agent()
        .options(&server.url(&format!("/whep/{}", session["id"].as_str().unwrap())))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .call()
        .unwrap();
    assert!(r.status().is_success(), "preflight answered {}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    // The actual response lets the page read Location (to DELETE the viewer later).
    let r = agent()
        .post(&server.url(&format!("/whep/{}", session["id"].as_str().unwrap())))
        .header("Origin", "https://shop.example")
        .header("Content-Type", "application/sdp")
        .send("v=0")
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let exposed = r
        .headers()
        .get("access-control-expose-headers")
        .map(|v| v.to_str().unwrap().to_lowercase());
    assert!(
        exposed.is_some_and(|e| e.contains("location")),
        "Location is not exposed"
    );
}

#[test]
fn health_and_metrics_answer() {
    let server = Server::start(&data_dir("health"));
    let mut r = agent().get(&server.url("/healthz")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap().trim(), "ok");
    let mut r = agent().get(&server.url("/metrics")).call().unwrap();
    assert!(
        r.body_mut()
            .read_to_string()
            .unwrap()
            .contains("fieldcast_viewers 0")
    );
}

#[test]
fn metrics_asks_for_its_token_when_one_is_set() {
    let token = "metrics-secret-0123456789";
    let server = Server::start_with(&data_dir("metrics-token"), &["--metrics-token", token]);
    let mut r = agent().get(&server.url("/metrics")).call().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(
        !r.body_mut()
            .read_to_string()
            .unwrap()
            .contains("fieldcast_")
    );
    let r = agent()
        .get(&server.url("/metrics"))
        .header("Authorization", "Bearer wrong-token-0123456789")
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut r = agent()
        .get(&server.url("/metrics"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.body_mut()
            .read_to_string()
            .unwrap()
            .contains("fieldcast_http_connections ")
    );
    // The operator token is not the metrics token, and /healthz stays open.
    let r = agent()
        .get(&server.url("/metrics"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        agent()
            .get(&server.url("/healthz"))
            .call()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn browsers_get_each_pages_policy_nosniff_and_a_referrer_policy_on_every_answer() {
    let server = Server::start(&data_dir("browser-headers"));
    let session = server.create_session("Headers");
    let id = session["id"].as_str().unwrap();
    let get = |path: &str| {
        let r = agent().get(&server.url(path)).call().unwrap();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        (
            r.status().as_u16(),
            header("content-security-policy"),
            header("x-content-type-options"),
            header("referrer-policy"),
            header("x-frame-options"),
        )
    };
    let directive = |policy: &str, name: &str| -> String {
        policy
            .split(';')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(name))
            .unwrap_or_default()
            .to_string()
    };
    for (path, ancestors) in [
        (format!("/watch/{id}"), ""),
        ("/console".to_string(), "frame-ancestors 'none'"),
    ] {
        let (status, csp, nosniff, referrer, _) = get(&path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            directive(&csp, "script-src"),
            "script-src 'self'",
            "{path}: {csp}"
        );
        assert_eq!(
            directive(&csp, "style-src"),
            "style-src 'self'",
            "{path}: {csp}"
        );
        assert_eq!(
            directive(&csp, "object-src"),
            "object-src 'none'",
            "{path}: {csp}"
        );
        // The watch page may be framed by any page; the console by none.
        assert_eq!(
            directive(&csp, "frame-ancestors"),
            ancestors,
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(nosniff, "nosniff", "{path}");
        assert_eq!(referrer, "same-origin", "{path}");
    }
    assert_eq!(get("/console").4, "DENY");
    // Everything else: a policy that allows nothing, and the same two headers.
    for path in [
        "/api/v1/openapi.json".to_string(),
        "/healthz".into(),
        "/web/watch.js".into(),
        format!("/api/v1/sessions/{id}/state"),
        "/no/such/route".into(),
    ] {
        let (_, csp, nosniff, referrer, _) = get(&path);
        assert_eq!(csp, "default-src 'none'; frame-ancestors 'none'", "{path}");
        assert_eq!(nosniff, "nosniff", "{path}");
        assert_eq!(referrer, "same-origin", "{path}");
    }
}

#[test]
fn an_oversized_body_and_an_unknown_route_get_problem_json_too() {
    let server = Server::start(&data_dir("problems"));
    let session = server.create_session("Limits");
    let id = session["id"].as_str().unwrap();
    let big = "x".repeat(100 * 1024);
    let mut r = agent()
        .post(&server.url(&format!("/api/v1/sessions/{id}/likes")))
        .header("Content-Type", "application/json")
        .send(big.as_str())
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body = r.body_mut().read_to_string().unwrap();
    assert!(body.contains("larger than"), "{body}");
    let r = agent().get(&server.url("/no/such/route")).call().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[test]
fn logs_to_a_file_carry_no_colour_codes_and_json_logs_are_one_object_a_line() {
    // The default, text, with stderr a file: what journald, `docker logs` and log files get.
    let data = data_dir("logs-text");
    let server = Server::start(&data);
    server.create_session("Logs");
    drop(server);
    let text = std::fs::read_to_string(data.join("server.log")).unwrap();
    assert!(
        text.lines().count() >= 2,
        "too little logged to judge: {text:?}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text:?}"
    );

    // For log shippers: each line one JSON object with its level and message.
    let data = data_dir("logs-json");
    let server = Server::start_with_env(&data, &[], &[("FIELDCAST_LOG_FORMAT", "json")]);
    server.create_session("Logs");
    drop(server);
    let json = std::fs::read_to_string(data.join("server.log")).unwrap();
    assert!(
        json.lines().count() >= 2,
        "too little logged to judge: {json:?}"
    );
    for line in json.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["message"].is_string(),
            "{line}"
        );
    }
}
