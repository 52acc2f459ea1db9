//! `/healthz` and `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app::AppState;

/// Liveness: answers while the server runs.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Counters of the egress loop and studios.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
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
        crate::media::decode::PIPELINE_RESTARTS.load(Ordering::Relaxed),
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
    for reason in crate::ingest::limits::CloseReason::ALL {
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
    for reason in crate::egress::Ended::ALL {
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
