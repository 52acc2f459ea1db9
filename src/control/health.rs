//! `/healthz` and `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::client::PublicLimits;
use crate::commerce::ledger::StockLedger;
use crate::commerce::live::LiveHub;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use fieldcast_engine::egress::Egress;
use fieldcast_engine::hls::HlsCounters;
use fieldcast_engine::ingest::health::IngestBoard;
use fieldcast_engine::ingest::limits::IngestLimits;
use fieldcast_engine::overlay::compositor::OverlayCounters;
use fieldcast_engine::studio::Studios;
use std::sync::Arc;

handles! {
    /// What the health, stats and metrics routes read.
    Health {
    egress: Egress,
    overlay_counters: Arc<OverlayCounters>,
    ingest: Arc<IngestLimits>,
    ingest_health: Arc<IngestBoard>,
    public: Arc<PublicLimits>,
    ledger: StockLedger,
    hls: Arc<HlsCounters>,
    studios: Arc<Studios>,
    live: Arc<LiveHub>,
    }
}

/// The server's egress and overlay figures since it started, for the console.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// WebRTC viewers in the egress loop, all sessions.
    viewers: u64,
    /// Datagrams sent to viewers.
    datagrams_sent: u64,
    /// Datagrams a viewer's socket could not take, plus studio packets dropped because the
    /// egress loop was behind.
    packets_dropped: u64,
    /// Server-added latency (RTMP message in → its first RTP packet out), median, in ms.
    server_latency_p50_ms: Option<f64>,
    server_latency_p95_ms: Option<f64>,
    /// From a change of the live state to the first frame composited with it, median, in ms.
    overlay_update_p50_ms: Option<f64>,
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "server", security(("operator" = [])),
    responses((status = 200, description = "Egress and overlay health", body = Stats),
        (status = 401, description = "No or a wrong operator token", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn stats(State(state): State<Health>) -> axum::Json<Stats> {
    let c = &state.egress.counters;
    let ms = |h: &fieldcast_engine::histogram::LatencyHistogram, q| {
        fieldcast_engine::histogram::quantile(&h.buckets(), q).map(|s| (s * 1e4).round() / 10.0)
    };
    axum::Json(Stats {
        viewers: c.viewers.load(Ordering::Relaxed),
        datagrams_sent: c.packets_sent.load(Ordering::Relaxed),
        packets_dropped: c.packets_dropped_viewer.load(Ordering::Relaxed)
            + c.packets_dropped_queue.load(Ordering::Relaxed),
        server_latency_p50_ms: ms(&c.server_latency, 0.5),
        server_latency_p95_ms: ms(&c.server_latency, 0.95),
        overlay_update_p50_ms: ms(&state.overlay_counters.update_to_frame, 0.5),
    })
}

/// Liveness: answers while the server runs.
#[utoipa::path(get, path = "/healthz", tag = "server",
    responses((status = 200, description = "`ok`: the server runs", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Counters of the egress loop and studios.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Health>) -> impl IntoResponse {
    let c = &state.egress.counters;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    counter(
        "fieldcast_viewers",
        "WebRTC viewers in the egress loop.",
        "gauge",
        c.viewers.load(Ordering::Relaxed),
    );
    counter(
        "fieldcast_egress_packets_in_total",
        "RTP packets from studios.",
        "counter",
        c.packets_in.load(Ordering::Relaxed),
    );
    counter(
        "fieldcast_egress_packets_dropped_queue_total",
        "Studio packets dropped because the egress loop was behind.",
        "counter",
        c.packets_dropped_queue.load(Ordering::Relaxed),
    );
    counter(
        "fieldcast_egress_datagrams_sent_total",
        "Datagrams sent to viewers.",
        "counter",
        c.packets_sent.load(Ordering::Relaxed),
    );
    counter(
        "fieldcast_egress_datagrams_dropped_total",
        "Datagrams the socket could not take (slow viewer or full buffer).",
        "counter",
        c.packets_dropped_viewer.load(Ordering::Relaxed),
    );
    let o = &state.overlay_counters;
    counter(
        "fieldcast_overlay_frames_total",
        "Frames the overlay compositors handled.",
        "counter",
        o.frames.load(Ordering::Relaxed),
    );
    counter(
        "fieldcast_overlay_redraws_total",
        "Layers redrawn because what they show changed.",
        "counter",
        o.redraws.load(Ordering::Relaxed),
    );
    counter(
        "fieldcast_overlay_redraw_microseconds_total",
        "Time spent redrawing layers.",
        "counter",
        o.redraw_us.load(Ordering::Relaxed),
    );
    counter(
        "fieldcast_pipeline_restarts_total",
        "Publisher decode pipelines rebuilt after a decoder error or 2 s without a picture.",
        "counter",
        fieldcast_engine::media::decode::PIPELINE_RESTARTS.load(Ordering::Relaxed),
    );
    o.update_to_frame.render(
        &mut out,
        "fieldcast_overlay_update_to_frame_seconds",
        "From a change of the live state to the first frame composited with it.",
    );
    c.server_latency.render(
        &mut out,
        "fieldcast_server_latency_seconds",
        "From an RTMP video message arriving to the first RTP packet of its frame leaving for a viewer.",
    );
    let ingest = &state.ingest;
    let _ = writeln!(
        out,
        "# HELP fieldcast_rtmp_connections RTMP connections open.\n# TYPE fieldcast_rtmp_connections gauge\nfieldcast_rtmp_connections {}",
        ingest.open_connections()
    );
    let _ = writeln!(
        out,
        "# HELP fieldcast_rtmp_publishes_refused_total Publishes refused (unknown key, wrong application, key live elsewhere).\n# TYPE fieldcast_rtmp_publishes_refused_total counter\nfieldcast_rtmp_publishes_refused_total {}",
        ingest.refused_publishes.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP fieldcast_rtmp_connections_closed_total RTMP connections closed, by reason.\n# TYPE fieldcast_rtmp_connections_closed_total counter"
    );
    for reason in fieldcast_engine::ingest::limits::CloseReason::ALL {
        let _ = writeln!(
            out,
            "fieldcast_rtmp_connections_closed_total{{reason=\"{}\"}} {}",
            reason.label(),
            ingest.closed(reason)
        );
    }
    let _ = writeln!(
        out,
        "# HELP fieldcast_rate_limited_total Public requests refused by a per-address limit, by route.\n# TYPE fieldcast_rate_limited_total counter"
    );
    for route in crate::control::client::PublicRoute::ALL {
        let _ = writeln!(
            out,
            "fieldcast_rate_limited_total{{route=\"{}\"}} {}",
            route.label(),
            state.public.limited(route)
        );
    }
    let _ = writeln!(
        out,
        "# HELP fieldcast_viewers_ended_total Viewers the server ended itself, by reason.\n# TYPE fieldcast_viewers_ended_total counter"
    );
    for reason in fieldcast_engine::egress::Ended::ALL {
        let _ = writeln!(
            out,
            "fieldcast_viewers_ended_total{{reason=\"{}\"}} {}",
            reason.label(),
            c.reaped[reason as usize].load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP fieldcast_viewers_pending WHEP viewers not connected yet.\n# TYPE fieldcast_viewers_pending gauge\nfieldcast_viewers_pending {}",
        state.egress.pending.open()
    );
    let _ = writeln!(
        out,
        "# HELP fieldcast_ledger_queue Requests waiting for the stock ledger.\n# TYPE fieldcast_ledger_queue gauge\nfieldcast_ledger_queue {}",
        state.ledger.queued()
    );
    let hls = &state.hls;
    for (name, help, kind, value) in [
        (
            "fieldcast_hls_playlists_served_total",
            "HLS playlists answered (plain and low-latency).",
            "counter",
            hls.playlists_served.load(Ordering::Relaxed),
        ),
        (
            "fieldcast_hls_parts_served_total",
            "Low-Latency HLS parts answered.",
            "counter",
            hls.parts_served.load(Ordering::Relaxed),
        ),
        (
            "fieldcast_hls_segments_served_total",
            "HLS segments answered.",
            "counter",
            hls.segments_served.load(Ordering::Relaxed),
        ),
        (
            "fieldcast_hls_blocking_requests",
            "Blocking playlist reloads and hinted-part requests waiting now.",
            "gauge",
            hls.blocking_open.load(Ordering::Relaxed) as u64,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    per_session(&state, &mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The series labelled `session="ID"`: for running studios (viewers, datagrams), sessions
/// with a live state since start (orders) and sessions a publisher came to (ingest).
fn per_session(state: &Health, out: &mut String) {
    let studios = state.studios.all_stats();
    let mut family =
        |name: &str, help: &str, kind: &str, values: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (session, value) in values {
                // Session ids are ours (hex), but a label value is escaped all the same.
                let label = session
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = writeln!(out, "{name}{{session=\"{label}\"}} {value}");
            }
        };
    family(
        "fieldcast_session_viewers",
        "WebRTC viewers of the session.",
        "gauge",
        &mut studios
            .iter()
            .map(|(id, s)| (id.clone(), s.viewers.load(Ordering::Relaxed) as u64)),
    );
    family(
        "fieldcast_session_datagrams_sent_total",
        "Datagrams sent to the session's viewers.",
        "counter",
        &mut studios
            .iter()
            .map(|(id, s)| (id.clone(), s.datagrams_sent.load(Ordering::Relaxed))),
    );
    family(
        "fieldcast_session_datagrams_dropped_total",
        "Datagrams for the session's viewers that the socket could not take.",
        "counter",
        &mut studios
            .iter()
            .map(|(id, s)| (id.clone(), s.datagrams_dropped.load(Ordering::Relaxed))),
    );
    family(
        "fieldcast_session_orders_total",
        "Orders confirmed for the session since the server started.",
        "counter",
        &mut state
            .live
            .known()
            .into_iter()
            .map(|l| (l.session_id.clone(), l.orders.load(Ordering::Relaxed))),
    );
    family(
        "fieldcast_session_state_answers_total",
        "Live-state reads (GET .../state) answered by this server: behind caches, about one per state version and cache.",
        "counter",
        &mut state.live.known().into_iter().map(|l| {
            (
                l.session_id.clone(),
                l.state_answers.load(Ordering::Relaxed),
            )
        }),
    );
    family(
        "fieldcast_session_hls_viewers",
        "Distinct client addresses that asked for the session's HLS playlists in the last 30 s (a cache counts once).",
        "gauge",
        &mut state
            .studios
            .all_hls()
            .into_iter()
            .map(|(id, hls)| (id, hls.viewers() as u64)),
    );
    family(
        "fieldcast_session_hls_active",
        "1 while the session's HLS runs (someone asked for it in the last minute).",
        "gauge",
        &mut state
            .studios
            .all_hls()
            .into_iter()
            .map(|(id, hls)| (id, hls.is_active() as u64)),
    );
    let ingest = state.ingest_health.summary();
    family(
        "fieldcast_session_publisher_connected",
        "1 while a publisher sends to the session.",
        "gauge",
        &mut ingest
            .iter()
            .map(|(id, connected, _)| (id.clone(), *connected as u64)),
    );
    family(
        "fieldcast_session_publisher_reconnects_total",
        "Publishes accepted for the session since the server started, less the first.",
        "counter",
        &mut ingest
            .iter()
            .map(|(id, _, reconnects)| (id.clone(), *reconnects)),
    );
}
