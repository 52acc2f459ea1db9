//! The auth matrix: every operator route answers 401 with no token, with a wrong token, and
//! with the right token in the query string (tokens in URLs end up in logs and histories); and
//! no operator route answers a CORS preflight from another origin.

mod common;

use common::{Server, TOKEN, data_dir};
use fieldcast::control::{Access, routes};

/// Every operator route, with `x` for path parameters. Checked against the router's route
/// list below, so a route added there and not here fails the test.
const OPERATOR_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/sessions"),
    ("POST", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/x"),
    ("PATCH", "/api/v1/sessions/x"),
    ("DELETE", "/api/v1/sessions/x"),
    ("POST", "/api/v1/sessions/x/rotate-key"),
    ("GET", "/api/v1/sessions/x/ingest"),
    ("GET", "/api/v1/sessions/x/publish-qr.svg"),
    ("GET", "/api/v1/stats"),
    ("PUT", "/api/v1/sessions/x/pinned"),
    ("DELETE", "/api/v1/sessions/x/pinned"),
    ("GET", "/api/v1/sessions/x/offers"),
    ("POST", "/api/v1/sessions/x/offers"),
    ("GET", "/api/v1/sessions/x/offers/x"),
    ("POST", "/api/v1/sessions/x/offers/x/end"),
    ("POST", "/api/v1/sessions/x/offers/x/stock"),
    ("GET", "/api/v1/sessions/x/orders"),
    ("GET", "/api/v1/sessions/x/orders.csv"),
    ("POST", "/api/v1/sessions/x/orders/x/cancel"),
    ("GET", "/api/v1/products"),
    ("POST", "/api/v1/products"),
    ("GET", "/api/v1/products/x"),
    ("PATCH", "/api/v1/products/x"),
    ("DELETE", "/api/v1/products/x"),
    ("PUT", "/api/v1/products/x/image"),
    ("GET", "/api/v1/sessions/x/overlays"),
    ("POST", "/api/v1/sessions/x/overlays"),
    ("POST", "/api/v1/sessions/x/overlays/hide"),
    ("POST", "/api/v1/sessions/x/overlays/show"),
    ("GET", "/api/v1/sessions/x/overlays/x"),
    ("PATCH", "/api/v1/sessions/x/overlays/x"),
    ("DELETE", "/api/v1/sessions/x/overlays/x"),
    ("PUT", "/api/v1/sessions/x/overlays/x/image"),
    ("GET", "/api/v1/sessions/x/onscreen"),
    ("GET", "/api/v1/sessions/x/recordings"),
    ("GET", "/api/v1/sessions/x/restreams"),
    ("POST", "/api/v1/sessions/x/restreams"),
    ("DELETE", "/api/v1/sessions/x/restreams/x"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/x"),
];

/// The router's operator routes (`Access::Operator` and `Access::Upload`, and the order list
/// whose handler asks for the token), with `x` for path parameters.
fn operator_routes_of_the_router() -> Vec<(String, String)> {
    routes()
        .into_iter()
        .filter(|r| {
            matches!(r.access, Access::Operator | Access::Upload)
                || (r.method == "GET" && r.path == "/api/v1/sessions/{id}/orders")
        })
        .map(|r| {
            let path = r
                .path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            (r.method.to_string(), path)
        })
        .collect()
}

#[test]
fn the_matrix_lists_every_operator_route_of_the_router() {
    let routes = operator_routes_of_the_router();
    assert!(routes.len() >= 20, "{routes:?}");
    for (method, path) in &routes {
        assert!(
            OPERATOR_ROUTES.contains(&(method.as_str(), path.as_str())),
            "{method} {path} is an operator route missing from OPERATOR_ROUTES"
        );
    }
    for (method, path) in OPERATOR_ROUTES {
        assert!(
            routes.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is in OPERATOR_ROUTES but the router does not ask a token for it"
        );
    }
}

#[test]
fn every_operator_route_refuses_no_token_a_wrong_token_and_a_token_in_the_query() {
    let server = Server::start(&data_dir("auth"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut failures = Vec::new();
    for (method, path) in OPERATOR_ROUTES {
        let attempts: [(&str, String, Option<String>); 4] = [
            ("no token", server.url(path), None),
            (
                "a wrong token",
                server.url(path),
                Some("Bearer not-the-operator-token-at-all".into()),
            ),
            (
                "the token in ?token=",
                server.url(&format!("{path}?token={TOKEN}")),
                None,
            ),
            (
                "the token in ?access_token=",
                server.url(&format!("{path}?access_token={TOKEN}")),
                None,
            ),
        ];
        for (what, url, authorization) in attempts {
            let mut request = ureq::http::Request::builder()
                .method(*method)
                .uri(&url)
                .header("Content-Type", "application/json");
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            let body = if matches!(*method, "GET" | "DELETE") {
                ""
            } else {
                "{}"
            };
            let response = agent.run(request.body(body.to_string()).unwrap());
            let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
            if status != 401 {
                failures.push(format!("{method} {path} with {what}: {status}"));
            }
        }
        // A preflight from another origin gets no CORS grant.
        let preflight = ureq::http::Request::builder()
            .method("OPTIONS")
            .uri(server.url(path))
            .header("Origin", "https://shop.example")
            .header("Access-Control-Request-Method", *method)
            .header("Access-Control-Request-Headers", "authorization")
            .body(String::new())
            .unwrap();
        if let Ok(response) = agent.run(preflight)
            && response
                .headers()
                .get("access-control-allow-origin")
                .is_some()
        {
            failures.push(format!("{method} {path}: answers a CORS preflight"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
