//! The live state the watch page follows, against the real binary: versions any cache can
//! share (`GET …/state`, `?after=N`), and 200 readers through the README's nginx
//! (`docs/nginx-cache.conf`) costing the origin about one request per version.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Nginx, Server, client_ip, data_dir, http_full, offer};
use serde_json::{Value, json};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// One GET with the status, the headers (names lower-cased) and the body.
fn get(
    agent: &ureq::Agent,
    url: &str,
    etag: Option<&str>,
) -> (u16, HashMap<String, String>, String) {
    let mut request = agent.get(url);
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    let mut response = request.call().expect("GET");
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let status = response.status().as_u16();
    (
        status,
        headers,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn the_live_state_comes_as_versions_that_caches_can_share() {
    let server = Server::start(&data_dir("state"));
    let (session, _offer) = offer(&server, 5, None, 600);
    let state = server.url(&format!("/api/v1/sessions/{session}/state"));
    let agent = agent();

    // The current version: cacheable for a second, its ETag the version, open to any origin.
    let (status, headers, body) = get(&agent, &state, None);
    assert_eq!(status, 200, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let version = first["version"].as_u64().expect("a version");
    assert_eq!(first["offers"][0]["remaining"], 5, "{first}");
    assert_eq!(headers["etag"], format!("\"{version}\""));
    assert_eq!(headers["cache-control"], "public, max-age=1");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let (status, _, _) = get(&agent, &state, Some(&format!("\"{version}\"")));
    assert_eq!(status, 304);

    // A reader waiting for the next version gets it as soon as a like lands, cacheable for
    // 2 s: the answer to `after=N` stays true whenever it is read.
    let waiting = {
        let (agent, url) = (agent.clone(), format!("{state}?after={version}"));
        std::thread::spawn(move || {
            let started = Instant::now();
            (get(&agent, &url, None), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = server.api(
        "POST",
        &format!("/api/v1/sessions/{session}/likes"),
        Some(json!({"count": 3})),
    );
    assert_eq!(status, 202);
    let ((status, headers, body), took) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let next: Value = serde_json::from_str(&body).unwrap();
    assert!(next["version"].as_u64().unwrap() > version, "{next}");
    assert_eq!(next["likes"], 3, "{next}");
    assert!(
        took < Duration::from_secs(2),
        "the like reached the waiting reader after {took:?}"
    );
    assert_eq!(headers["cache-control"], "public, max-age=2");

    // Nothing changes: the wait still ends with a newer version (the heartbeat, within 3 s),
    // never with an old one a cache would hand out again and again.
    let quiet = next["version"].as_u64().unwrap();
    let started = Instant::now();
    let (status, _, body) = get(&agent, &format!("{state}?after={quiet}"), None);
    assert_eq!(status, 200, "{body}");
    let beat: Value = serde_json::from_str(&body).unwrap();
    assert!(beat["version"].as_u64().unwrap() > quiet, "{beat}");
    assert_eq!(beat["likes"], 3, "{beat}");
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );

    // A version from the future (kept across a restart whose clock is behind) gets the
    // current one at once; a word and an unknown session are refusals no cache keeps.
    let far = fieldcast_core::time::now_ms() + 3_600_000;
    let asked = Instant::now();
    let (status, _, body) = get(&agent, &format!("{state}?after={far}"), None);
    assert_eq!(status, 200, "{body}");
    let now: Value = serde_json::from_str(&body).unwrap();
    assert!(now["version"].as_u64().unwrap() < far as u64, "{now}");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let (status, _, body) = get(&agent, &format!("{state}?after=soon"), None);
    assert_eq!(status, 400, "{body}");
    let (status, headers, _) = get(&agent, &server.url("/api/v1/sessions/nope/state"), None);
    assert_eq!(status, 404);
    assert_eq!(headers["cache-control"], "no-store");
}

#[test]
fn two_hundred_state_readers_through_the_readmes_nginx_cost_the_origin_about_one_request_per_version()
 {
    let server = Server::start(&data_dir("state-nginx"));
    let (session, _offer) = offer(&server, 5, None, 600);
    let (_nginx, edge) = Nginx::start(server.http, &server.data.join("nginx"));
    let path = format!("/api/v1/sessions/{session}/state");
    const READERS: usize = 200;
    const LIKES: i64 = 30;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Each reader follows the state as the page does (the current version, then `?after=`),
    // from its own address, through nginx, until it has seen every like; it notes when it
    // first saw each like count, and what nginx said of each answer (X-Cache).
    let likes_at: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let (readers, cache_status) = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        let tasks: Vec<_> = (0..READERS)
            .map(|n| {
                let path = path.clone();
                tokio::spawn(async move {
                    let (mut version, mut seen, mut statuses) = (0u64, Vec::new(), Vec::new());
                    while Instant::now() < deadline {
                        let url = if version == 0 {
                            path.clone()
                        } else {
                            format!("{path}?after={version}")
                        };
                        let Ok((status, head, body)) =
                            http_full(Some(client_ip(n)), edge, "GET", &url, &[], "").await
                        else {
                            continue;
                        };
                        assert_eq!(status, 200, "{head}\n{body}");
                        let cache = head
                            .lines()
                            .find_map(|l| l.strip_prefix("X-Cache: "))
                            .unwrap_or("none")
                            .to_string();
                        statuses.push(cache);
                        let state: Value = serde_json::from_str(&body).unwrap();
                        version = version.max(state["version"].as_u64().unwrap());
                        let likes = state["likes"].as_i64().unwrap();
                        seen.push((likes, Instant::now()));
                        if likes == LIKES {
                            break;
                        }
                    }
                    (seen, statuses)
                })
            })
            .collect();
        // A like every 200 ms through the same nginx (passed through): a new version each time.
        let likes_path = format!("/api/v1/sessions/{session}/likes");
        let likes_at = likes_at.clone();
        let liker = tokio::spawn(async move {
            for _ in 0..LIKES {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let headers = [("Content-Type", "application/json")];
                let (status, _, body) =
                    http_full(None, edge, "POST", &likes_path, &headers, r#"{"count":1}"#)
                        .await
                        .unwrap();
                assert_eq!(status, 202, "{body}");
                likes_at.lock().unwrap().push(Instant::now());
            }
        });
        liker.await.unwrap();
        let mut readers = Vec::new();
        let mut cache_status: HashMap<String, usize> = HashMap::new();
        for task in tasks {
            let (seen, statuses) = task.await.unwrap();
            for s in statuses {
                *cache_status.entry(s).or_default() += 1;
            }
            readers.push(seen);
        }
        (readers, cache_status)
    });

    // Every reader saw the last like.
    let done = readers
        .iter()
        .filter(|seen| seen.last().is_some_and(|(l, _)| *l == LIKES))
        .count();
    assert_eq!(done, READERS, "readers that saw all {LIKES} likes");
    // How long each like took to reach each reader (the first answer showing it or more).
    let likes_at = likes_at.lock().unwrap().clone();
    let mut delays: Vec<Duration> = Vec::new();
    for seen in &readers {
        for (i, at) in likes_at.iter().enumerate() {
            if let Some((_, when)) = seen.iter().find(|(l, _)| *l > i as i64) {
                delays.push(when.saturating_duration_since(*at));
            }
        }
    }
    delays.sort();
    let p95 = delays[delays.len() * 95 / 100];
    // What reached the origin: every answer nginx did not serve from its cache.
    let answers: usize = cache_status.values().sum();
    let origin: usize = cache_status
        .iter()
        .filter(|(s, _)| s.as_str() != "HIT")
        .map(|(_, n)| n)
        .sum();
    let versions = LIKES as usize + 1;
    eprintln!(
        "{READERS} readers, {answers} answers ({cache_status:?}), {origin} from the origin for about {versions} versions; like → reader p95 {p95:?}"
    );
    assert!(
        origin <= 2 * versions + 10,
        "{origin} origin requests for {versions} versions: {cache_status:?}"
    );
    assert!(
        p95 < Duration::from_millis(1500),
        "like → reader p95 {p95:?}"
    );
}
