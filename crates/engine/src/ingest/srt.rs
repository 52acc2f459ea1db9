//! SRT ingest: one UDP listener for every session (srt-tokio), the stream key in the caller's
//! `streamid`, MPEG-TS with H.264 or HEVC and AAC inside. A caller is checked before its
//! connection is accepted: a wrong key, a live key or a full server is rejected in the SRT
//! handshake itself, with a reject code the publisher's app shows. The publisher policy is
//! RTMP's: the same caps, one live publisher per key, takeover of a silent one.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener};

use super::limits::{CloseReason, MEDIA_IDLE_DEADLINE};
use super::server::{Ingest, PublishRefused, mask};
use crate::media::ts_decode::TsDecode;
use fieldcast_core::ids::redact;

/// The receiver's latency: how long SRT holds packets to recover losses. libsrt's default;
/// a publisher may ask for more (the larger of the two applies).
pub const SRT_LATENCY: Duration = Duration::from_millis(120);

/// Binds the SRT listener (UDP); the address it got (a `:0` port resolved).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(SrtListener, SrtIncoming, SocketAddr)> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    let (listener, incoming) = SrtListener::builder()
        .latency(SRT_LATENCY)
        .socket(tokio::net::UdpSocket::from_std(socket)?)
        .bind(local)
        .await?;
    Ok((listener, incoming, local))
}

/// Serves callers until the listener goes away. `listener` is held for as long.
pub async fn serve(listener: SrtListener, mut incoming: SrtIncoming, app: Ingest) {
    let _listener = listener;
    while let Some(request) = incoming.incoming().next().await {
        let app = app.clone();
        tokio::spawn(async move { caller(request, app).await });
    }
}

async fn reject(request: ConnectionRequest, app: &Ingest, reason: ServerRejectReason) {
    app.limits.refused_publishes.fetch_add(1, Ordering::Relaxed);
    let _ = request.reject(RejectReason::Server(reason)).await;
}

async fn caller(request: ConnectionRequest, app: Ingest) {
    let peer = request.remote();
    let Some(slot) = app.limits.admit(peer.ip()) else {
        let reason = CloseReason::OverCapacity;
        app.limits.count_close(reason);
        app.limits.log.event("srt_over_capacity", || {
            tracing::warn!(peer = %mask(peer), "SRT caller over the cap; rejected");
        });
        let _ = request
            .reject(RejectReason::Server(ServerRejectReason::Overload))
            .await;
        return;
    };
    let stream_id = request
        .stream_id()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let key = match fieldcast_core::srt::stream_key(&stream_id) {
        Ok(key) => key.to_string(),
        Err(e) => {
            tracing::warn!(peer = %mask(peer), "SRT caller rejected: {e}");
            return reject(request, &app, ServerRejectReason::BadRequest).await;
        }
    };
    let publishers = app.publishers.clone();
    let lookup = key.clone();
    let admitted = tokio::task::spawn_blocking(move || publishers.admit(&lookup))
        .await
        .unwrap_or(Err(PublishRefused::Unavailable));
    let (session_id, studio) = match admitted {
        Ok(admitted) => admitted,
        Err(PublishRefused::UnknownKey) => {
            app.limits.log.event("unknown_key", || {
                tracing::warn!(peer = %mask(peer), stream_key = %redact(&key), "SRT caller with an unknown stream key rejected");
            });
            return reject(request, &app, ServerRejectReason::Forbidden).await;
        }
        Err(PublishRefused::Unavailable) => {
            return reject(request, &app, ServerRejectReason::InternalServerError).await;
        }
    };
    slot.confirm();
    let link = match studio.attach_publisher(MEDIA_IDLE_DEADLINE).await {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(session.id = %session_id, peer = %mask(peer), "SRT caller rejected: {e}");
            return reject(request, &app, ServerRejectReason::Conflict).await;
        }
    };
    let decode = match TsDecode::start(&session_id, &link.format, link.feed.clone()) {
        Ok(decode) => decode,
        Err(e) => {
            studio.detach_publisher(link.id).await;
            tracing::error!(session.id = %session_id, error = %e, "SRT publisher decode did not start");
            return reject(request, &app, ServerRejectReason::InternalServerError).await;
        }
    };
    let mut socket = match request.accept(None).await {
        Ok(socket) => socket,
        Err(e) => {
            studio.detach_publisher(link.id).await;
            tracing::warn!(session.id = %session_id, error = %e, "SRT accept failed");
            let _ = tokio::task::spawn_blocking(move || drop(decode)).await;
            return;
        }
    };
    tracing::info!(session.id = %session_id, peer = %mask(peer), "publisher live over SRT");
    let watch = app.board.publisher(&session_id, mask(peer), "srt");
    let mut decode = decode;
    let reason = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(MEDIA_IDLE_DEADLINE, socket.next()) => next,
            _ = link.presence.replaced.notified() => break CloseReason::Replaced,
            _ = slot.evicted() => break CloseReason::OverCapacity,
        };
        match next {
            Err(_) => break CloseReason::MediaIdle,
            Ok(None) | Ok(Some(Err(_))) => break CloseReason::PeerClosed,
            Ok(Some(Ok((_, data)))) => {
                link.presence.media_arrived();
                watch.stream_bytes(data.len(), decode.codecs(), link.feed.last_source_size());
                decode.push(data);
            }
        }
    };
    app.limits.count_close(reason);
    if reason != CloseReason::PeerClosed {
        tracing::warn!(session.id = %session_id, peer = %mask(peer), reason = reason.label(), "SRT publisher closed");
    } else {
        tracing::info!(session.id = %session_id, peer = %mask(peer), "SRT publisher left");
    }
    drop(watch);
    let _ = tokio::task::spawn_blocking(move || drop(decode)).await;
    studio.detach_publisher(link.id).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close_and_finish()).await;
    drop(slot);
}
