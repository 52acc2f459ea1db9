//! The API's description: `GET /api/v1/openapi.json` is generated from the code, names every
//! route the router answers and no other, and validates against the OpenAPI 3.1 schema.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{Server, data_dir};
use fieldcast::control::{Access, routes};
use serde_json::Value;

fn document(server: &Server) -> Value {
    let response = ureq::get(&server.url("/api/v1/openapi.json"))
        .call()
        .expect("GET /api/v1/openapi.json");
    assert_eq!(response.status(), 200);
    let text = response.into_body().read_to_string().expect("a body");
    serde_json::from_str(&text).expect("the document is JSON")
}

/// Every (METHOD, path) the document describes.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// A path with its parameters filled, for a request that must reach the route's handler.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str("nonexistent");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_openapi_document_names_every_route_of_the_router_and_no_other_and_validates() {
    let server = Server::start(&data_dir("openapi"));
    let doc = document(&server);
    assert_eq!(doc["openapi"], "3.1.0");

    // The router is built from `routes()` alone: the document must describe exactly it.
    let table = routes();
    let served: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(served.len(), table.len(), "a route is listed twice");
    let documented = described(&doc);
    let missing: Vec<_> = served.difference(&documented).collect();
    let invented: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes the document does not describe: {missing:?}"
    );
    assert!(
        invented.is_empty(),
        "the document names routes the router does not have: {invented:?}"
    );

    // Each one reaches a handler (or its token check) on the running server: neither the
    // router's 404 for an unknown path nor its 405 for an unknown method.
    for route in &table {
        // A connection of its own each: a refusal may close the connection it came on, and a
        // pooled one would then fail to write the next request.
        let client = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let url = server.url(&concrete(route.path));
        let request = ureq::http::Request::builder()
            .method(route.method.as_str())
            .uri(&url)
            .body(())
            .unwrap();
        let response = client
            .run(request)
            .unwrap_or_else(|e| panic!("{} {}: {e}", route.method, route.path));
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().unwrap_or_default();
        assert!(
            !body.contains("no such route") && !body.contains("this method is not allowed here"),
            "{} {} did not reach a handler: {status} {body}",
            route.method,
            route.path
        );
        // Operator routes ask for the token before anything else.
        if matches!(route.access, Access::Operator | Access::Upload) {
            assert_eq!(
                status, 401,
                "{} {} answered {status} without a token",
                route.method, route.path
            );
        }
    }

    // Operator routes say so; every operation lists its answers.
    assert_eq!(
        doc["components"]["securitySchemes"]["operator"]["scheme"],
        "bearer"
    );
    for route in &table {
        let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("operator").is_some()));
        let operator_only = matches!(route.access, Access::Operator | Access::Upload)
            || (route.path.ends_with("/orders") && route.method == "GET");
        assert_eq!(
            secured, operator_only,
            "{} {}: security in the document does not match the route",
            route.method, route.path
        );
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{} {} lists no responses",
            route.method,
            route.path
        );
    }

    // The document against the official OpenAPI 3.1 JSON Schema.
    let file = data_dir("openapi-doc").join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/openapi.mjs");
    let output = Command::new("node")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("run node (make test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the validator did not run (run `make test`, which runs npm ci in tests/browser): {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("validator output is not JSON ({e}): {stdout}"));
    assert_eq!(verdict["version"], "3.1", "{verdict}");
    assert_eq!(
        verdict["valid"], true,
        "the document is not valid OpenAPI 3.1: {verdict}"
    );
}
