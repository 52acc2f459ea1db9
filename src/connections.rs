//! HTTP connections: accepting them, what each may hold, and closing them on shutdown.
//!
//! hyper serves each connection (HTTP/1.1), with its own timer for headers: a client gets
//! [`HEADER_TIMEOUT`] from the moment the server waits for a request's head, whether on a
//! new connection or an idle kept-alive one, to send that whole head. A slow-loris client
//! that trickles a header byte by byte is closed then, and so is a keep-alive connection
//! left idle that long. After the head, the request deadline (`control::REQUEST_TIMEOUT`)
//! takes over.
//!
//! Each connection takes a place from [`AddressSlots`]: at most `http_max_connections` in
//! all (by default what the open-file limit leaves) and `http_max_connections_per_address`
//! from one client network (a trusted proxy, which is many clients, only counts against the
//! total). Past either cap the connection is
//! answered `503` with `Retry-After` at once and closed, without reading it. SSE streams
//! and HLS blocking requests have budgets of their own on top (`max_events_per_address`,
//! `hls_max_waiting`).

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use fieldcast_engine::flood_log::FloodLog;
use fieldcast_engine::slots::{AddressSlots, SlotRefusal};

/// `http_max_connections` when it is not set: the open-file limit less what the rest of the
/// server may hold (RTMP publishers, the database, uploads, pipelines), and at least 1,024.
pub fn default_max_connections() -> usize {
    const RESERVED: u64 = 4096;
    fieldcast_engine::process::open_file_limit()
        .map(|limit| limit.saturating_sub(RESERVED).clamp(1024, 1 << 20) as usize)
        .unwrap_or(16_384)
}

/// Default for `http_max_connections_per_address`: a carrier NAT puts thousands of phones
/// behind one address, each with a connection or two open to the shop, so this only stops
/// one host from holding a large part of the total.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 4096;
/// From waiting for a request's head to having all of it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What is refused at accept: the answer an over-cap client gets before the close.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Type: text/plain\r\nContent-Length: 40\r\nConnection: close\r\n\r\ntoo many connections; try again shortly\n";

/// The caps and counters of the HTTP listener.
pub struct Connections {
    slots: Arc<AddressSlots>,
    trusted_proxies: Vec<IpAddr>,
    ipv6_prefix: u8,
    /// Refused at accept, by which cap.
    pub refused_total: AtomicU64,
    pub refused_address: AtomicU64,
    log: FloodLog,
}

impl Connections {
    pub fn new(
        max_total: usize,
        max_per_address: usize,
        trusted_proxies: Vec<IpAddr>,
        ipv6_prefix: u8,
    ) -> Arc<Self> {
        Arc::new(Self {
            slots: AddressSlots::new(max_total, max_per_address),
            trusted_proxies,
            ipv6_prefix,
            refused_total: AtomicU64::new(0),
            refused_address: AtomicU64::new(0),
            log: FloodLog::new("http"),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.slots.open()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets each
/// connection finish its request in flight, and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    connections: Arc<Connections>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait instead of spinning.
                    connections.log.event("accept_failed", || {
                        tracing::warn!(error = %e, "HTTP accept failed");
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let taken = if connections.trusted_proxies.contains(&ip) {
            connections.slots.take_unlimited_address(ip)
        } else {
            connections.slots.take(fieldcast_core::address::network(
                ip,
                connections.ipv6_prefix,
            ))
        };
        let slot = match taken {
            Ok(slot) => slot,
            Err(refusal) => {
                let (counter, reason) = match refusal {
                    SlotRefusal::Total => (&connections.refused_total, "total"),
                    SlotRefusal::Address => (&connections.refused_address, "address"),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                connections.log.event(reason, || {
                    tracing::warn!(
                        cap = reason,
                        "HTTP connection over the cap; answered 503 and closed"
                    );
                });
                // Whatever fits in the socket's buffer now; never waited for.
                let _ = stream.try_write(OVER_CAPACITY);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Ended by the client, a timer or shutdown; errors are the client's (a reset, a
            // malformed or timed-out head) and are not logged.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
