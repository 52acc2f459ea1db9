//! `/healthz`, `/api/v1/stats` and `/metrics` (Prometheus text format, written by
//! prometheus-client from the parts' own counters at each scrape).

use std::sync::atomic::Ordering;

use super::client::PublicLimits;
use crate::commerce::ledger::StockLedger;
use crate::commerce::live::LiveHub;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fieldcast_engine::egress::Egress;
use fieldcast_engine::hls::HlsCounters;
use fieldcast_engine::ingest::health::IngestBoard;
use fieldcast_engine::ingest::limits::IngestLimits;
use fieldcast_engine::overlay::compositor::OverlayCounters;
use fieldcast_engine::studio::Studios;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
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
        connections: Arc<crate::connections::Connections>,
        metrics_token: super::auth::MetricsToken,
        recorder: Arc<crate::record::recording::Recorder>,
        restreams: Arc<fieldcast_engine::restream::Restreams>,
        onscreen: Arc<crate::record::onscreen::OnscreenRecord>,
    }
}

/// The server's egress and overlay figures since it started, for the console.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// WebRTC viewers in the egress loop, all sessions.
    viewers: u64,
    /// Connected WebRTC viewers on each rendition (`main`, `light`), all sessions.
    #[schema(value_type = std::collections::BTreeMap<String, usize>)]
    viewers_by_rendition: std::collections::BTreeMap<&'static str, usize>,
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
        viewers_by_rendition: state
            .studios
            .viewers_by_rendition(None)
            .into_iter()
            .map(|(r, n)| (r.name(), n))
            .collect(),
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
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "metrics_token is set and the request does not carry it", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn metrics(State(state): State<Health>, headers: axum::http::HeaderMap) -> Response {
    if let Err(refused) = state.metrics_token.check(&headers) {
        return refused.into_response();
    }
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(ServerMetrics(state)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding /metrics failed");
    }
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        out,
    )
        .into_response()
}

/// Every series `/metrics` has, read from the parts' own counters at each scrape.
struct ServerMetrics(Health);

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerMetrics")
    }
}

/// One counter (`name` without its `_total`, which the encoder adds).
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One series per label value (`label="value"`).
fn family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &'static str,
    values: impl IntoIterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, kind)?;
    for (value_of_label, value) in values {
        let labels = [(label, value_of_label)];
        let mut series = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => series.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            _ => series.encode_gauge(&(value as i64))?,
        }
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &fieldcast_engine::histogram::LatencyHistogram,
) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum_seconds(), h.count(), &h.per_bucket(), None)
}

impl Collector for ServerMetrics {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let state = &self.0;
        let c = &state.egress.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut e,
            "fieldcast_viewers",
            "WebRTC viewers in the egress loop.",
            load(&c.viewers) as i64,
        )?;
        family(
            &mut e,
            "fieldcast_viewers_by_rendition",
            "Connected WebRTC viewers on each rendition (main, light).",
            MetricType::Gauge,
            "rendition",
            state
                .studios
                .viewers_by_rendition(None)
                .map(|(r, n)| (r.name().to_string(), n as u64)),
        )?;
        counter(
            &mut e,
            "fieldcast_egress_packets_in",
            "RTP packets from studios.",
            load(&c.packets_in),
        )?;
        counter(
            &mut e,
            "fieldcast_egress_packets_dropped_queue",
            "Studio packets dropped because the egress loop was behind.",
            load(&c.packets_dropped_queue),
        )?;
        counter(
            &mut e,
            "fieldcast_egress_datagrams_sent",
            "Datagrams sent to viewers.",
            load(&c.packets_sent),
        )?;
        counter(
            &mut e,
            "fieldcast_egress_datagrams_dropped",
            "Datagrams the socket could not take (slow viewer or full buffer).",
            load(&c.packets_dropped_viewer),
        )?;
        let o = &state.overlay_counters;
        counter(
            &mut e,
            "fieldcast_overlay_frames",
            "Frames the overlay compositors handled.",
            load(&o.frames),
        )?;
        counter(
            &mut e,
            "fieldcast_overlay_redraws",
            "Layers redrawn because what they show changed.",
            load(&o.redraws),
        )?;
        counter(
            &mut e,
            "fieldcast_overlay_redraw_microseconds",
            "Time spent redrawing layers.",
            load(&o.redraw_us),
        )?;
        counter(
            &mut e,
            "fieldcast_pipeline_restarts",
            "Publisher decode pipelines rebuilt after a decoder error or 2 s without a picture.",
            load(&fieldcast_engine::media::decode::PIPELINE_RESTARTS),
        )?;
        histogram(
            &mut e,
            "fieldcast_overlay_update_to_frame_seconds",
            "From a change of the live state to the first frame composited with it.",
            &o.update_to_frame,
        )?;
        histogram(
            &mut e,
            "fieldcast_server_latency_seconds",
            "From an RTMP video message arriving to the first RTP packet of its frame leaving for a viewer.",
            &c.server_latency,
        )?;
        let ingest = &state.ingest;
        gauge(
            &mut e,
            "fieldcast_rtmp_connections",
            "RTMP connections open.",
            ingest.open_connections() as i64,
        )?;
        counter(
            &mut e,
            "fieldcast_rtmp_publishes_refused",
            "Publishes refused (unknown key, wrong application, key live elsewhere).",
            load(&ingest.refused_publishes),
        )?;
        family(
            &mut e,
            "fieldcast_rtmp_connections_closed",
            "RTMP connections closed, by reason.",
            MetricType::Counter,
            "reason",
            fieldcast_engine::ingest::limits::CloseReason::ALL
                .iter()
                .map(|r| (r.label().to_string(), ingest.closed(*r))),
        )?;
        family(
            &mut e,
            "fieldcast_rate_limited",
            "Public requests refused by a per-address limit, by route.",
            MetricType::Counter,
            "route",
            super::client::PublicRoute::ALL
                .iter()
                .map(|r| (r.label().to_string(), state.public.limited(*r))),
        )?;
        family(
            &mut e,
            "fieldcast_viewers_ended",
            "Viewers the server ended itself, by reason.",
            MetricType::Counter,
            "reason",
            fieldcast_engine::egress::Ended::ALL
                .iter()
                .map(|r| (r.label().to_string(), load(&c.reaped[*r as usize]))),
        )?;
        gauge(
            &mut e,
            "fieldcast_viewers_pending",
            "WHEP viewers not connected yet.",
            state.egress.pending.open() as i64,
        )?;
        gauge(
            &mut e,
            "fieldcast_ledger_queue",
            "Requests waiting for the stock ledger.",
            state.ledger.queued() as i64,
        )?;
        let hls = &state.hls;
        counter(
            &mut e,
            "fieldcast_hls_playlists_served",
            "HLS playlists answered (plain and low-latency).",
            load(&hls.playlists_served),
        )?;
        counter(
            &mut e,
            "fieldcast_hls_parts_served",
            "Low-Latency HLS parts answered.",
            load(&hls.parts_served),
        )?;
        counter(
            &mut e,
            "fieldcast_hls_segments_served",
            "HLS segments answered.",
            load(&hls.segments_served),
        )?;
        gauge(
            &mut e,
            "fieldcast_hls_blocking_requests",
            "Blocking playlist reloads and hinted-part requests waiting now.",
            hls.blocking_open.load(Ordering::Relaxed) as i64,
        )?;
        counter(
            &mut e,
            "fieldcast_hls_blocking_refused",
            "Blocking HLS requests answered 503 because hls_max_waiting were held.",
            load(&hls.blocking_refused),
        )?;
        let connections = &state.connections;
        gauge(
            &mut e,
            "fieldcast_http_connections",
            "HTTP connections open now.",
            connections.open() as i64,
        )?;
        family(
            &mut e,
            "fieldcast_http_connections_refused",
            "HTTP connections answered 503 at accept, by the cap they met.",
            MetricType::Counter,
            "cap",
            [
                ("total".to_string(), load(&connections.refused_total)),
                ("address".to_string(), load(&connections.refused_address)),
            ],
        )?;
        after_the_show(state, &mut e)?;
        per_session(state, &mut e)
    }
}

/// The on-screen record, the recordings and the restreams.
fn after_the_show(state: &Health, e: &mut DescriptorEncoder) -> std::fmt::Result {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let record = &state.onscreen.counters;
    counter(
        e,
        "fieldcast_onscreen_entries",
        "Changes of what was on screen appended to the sessions' on-screen records.",
        load(&record.appended),
    )?;
    counter(
        e,
        "fieldcast_onscreen_dropped",
        "Changes not recorded because the record's queue was full.",
        load(&record.dropped),
    )?;
    counter(
        e,
        "fieldcast_onscreen_write_errors",
        "Batches of the on-screen record the database refused.",
        load(&record.write_errors),
    )?;
    let r = &state.recorder.counters;
    counter(
        e,
        "fieldcast_recording_segments",
        "Segments written to recordings.",
        load(&r.segments),
    )?;
    counter(
        e,
        "fieldcast_recording_bytes_written",
        "Bytes written to recordings.",
        load(&r.bytes),
    )?;
    gauge(
        e,
        "fieldcast_recordings_bytes",
        "Bytes the kept recordings take on disk.",
        state.recorder.used() as i64,
    )?;
    gauge(
        e,
        "fieldcast_recordings_budget_bytes",
        "The recordings' disk budget.",
        state.recorder.budget_bytes() as i64,
    )?;
    family(
        e,
        "fieldcast_recording_uploads",
        "Recordings' files sent to the object store, by result (a failed one stays on disk).",
        MetricType::Counter,
        "result",
        [
            ("ok".to_string(), load(&r.uploaded)),
            ("failed".to_string(), load(&r.upload_failures)),
        ],
    )?;
    family(
        e,
        "fieldcast_recordings_deleted",
        "Recordings deleted, by why: the disk budget needed room, or past the retention.",
        MetricType::Counter,
        "reason",
        [
            ("budget".to_string(), load(&r.deleted_for_budget)),
            ("retention".to_string(), load(&r.deleted_for_age)),
        ],
    )?;
    counter(
        e,
        "fieldcast_recordings_stopped",
        "Recordings stopped early (no room left in the budget, or a write failed).",
        load(&r.stopped),
    )?;
    let pushes = state.restreams.all();
    let mut states = e.encode_descriptor(
        "fieldcast_restream_state",
        "1 for each restream destination's current state (connecting, connected, retrying).",
        None,
        MetricType::Gauge,
    )?;
    for (session, destination, status) in &pushes {
        for (name, kind) in [
            (
                "connecting",
                fieldcast_engine::restream::PushState::Connecting,
            ),
            (
                "connected",
                fieldcast_engine::restream::PushState::Connected,
            ),
            ("retrying", fieldcast_engine::restream::PushState::Retrying),
        ] {
            let labels = [
                ("session", session.clone()),
                ("destination", destination.clone()),
                ("state", name.to_string()),
            ];
            states
                .encode_family(&labels)?
                .encode_gauge(&i64::from(status.state == kind))?;
        }
    }
    for (name, help, value) in [
        (
            "fieldcast_restream_failures",
            "Pushes to the destination that failed (each is tried again after a backoff).",
            (|s: &fieldcast_engine::restream::PushStatus| s.failures) as fn(&_) -> u64,
        ),
        (
            "fieldcast_restream_bytes",
            "Bytes written to the destination.",
            |s: &fieldcast_engine::restream::PushStatus| s.bytes,
        ),
    ] {
        let mut metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (session, destination, status) in &pushes {
            let labels = [
                ("session", session.clone()),
                ("destination", destination.clone()),
            ];
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value(status), None)?;
        }
    }
    Ok(())
}

/// The series labelled `session="ID"`: for running studios (viewers, datagrams), sessions
/// with a live state since start (orders) and sessions a publisher came to (ingest).
fn per_session(state: &Health, e: &mut DescriptorEncoder) -> std::fmt::Result {
    use MetricType::{Counter, Gauge};
    let studios = state.studios.all_stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    family(
        e,
        "fieldcast_session_viewers",
        "WebRTC viewers of the session.",
        Gauge,
        "session",
        studios
            .iter()
            .map(|(id, s)| (id.clone(), s.viewers.load(Ordering::Relaxed) as u64)),
    )?;
    family(
        e,
        "fieldcast_session_datagrams_sent",
        "Datagrams sent to the session's viewers.",
        Counter,
        "session",
        studios
            .iter()
            .map(|(id, s)| (id.clone(), load(&s.datagrams_sent))),
    )?;
    family(
        e,
        "fieldcast_session_datagrams_dropped",
        "Datagrams for the session's viewers that the socket could not take.",
        Counter,
        "session",
        studios
            .iter()
            .map(|(id, s)| (id.clone(), load(&s.datagrams_dropped))),
    )?;
    let known = state.live.known();
    family(
        e,
        "fieldcast_session_orders",
        "Orders confirmed for the session since the server started.",
        Counter,
        "session",
        known
            .iter()
            .map(|l| (l.session_id.clone(), load(&l.orders))),
    )?;
    family(
        e,
        "fieldcast_session_state_answers",
        "Live-state reads (GET .../state) answered by this server: behind caches, about one per state version and cache.",
        Counter,
        "session",
        known
            .iter()
            .map(|l| (l.session_id.clone(), load(&l.state_answers))),
    )?;
    let hls = state.studios.all_hls();
    family(
        e,
        "fieldcast_session_hls_viewers",
        "Distinct client addresses that asked for the session's HLS playlists in the last 30 s (a cache counts once).",
        Gauge,
        "session",
        hls.iter().map(|(id, h)| (id.clone(), h.viewers() as u64)),
    )?;
    family(
        e,
        "fieldcast_session_hls_active",
        "1 while the session's HLS runs (someone asked for it in the last minute).",
        Gauge,
        "session",
        hls.iter().map(|(id, h)| (id.clone(), h.is_active() as u64)),
    )?;
    let ingest = state.ingest_health.summary();
    family(
        e,
        "fieldcast_session_publisher_connected",
        "1 while a publisher sends to the session.",
        Gauge,
        "session",
        ingest
            .iter()
            .map(|(id, connected, _)| (id.clone(), *connected as u64)),
    )?;
    family(
        e,
        "fieldcast_session_publisher_reconnects",
        "Publishes accepted for the session since the server started, less the first.",
        Counter,
        "session",
        ingest
            .iter()
            .map(|(id, _, reconnects)| (id.clone(), *reconnects)),
    )
}
