//! ICE over TCP for viewers whose network drops UDP (RFC 6544 passive candidates, RFC 4571
//! framing: each datagram behind a 16-bit length).
//!
//! One listener; per connection a reader task (frames to the event loop, in order) and a
//! writer task (frames from the event loop, through a bounded queue: a slow connection loses
//! datagrams, as a full UDP socket would, and never makes the loop wait). A connection is
//! routed like a UDP source: by its first STUN check's ufrag, then by its address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Connections held at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 4096;
/// Datagrams queued to one connection before new ones are dropped (about 1 MB).
const QUEUE: usize = 1024;
/// A connection that sends nothing for this long is closed (ICE consent checks come every
/// few seconds).
const IDLE: Duration = Duration::from_secs(30);
/// Largest frame taken: a datagram of ours is at most about 1,300 bytes.
const MAX_FRAME: usize = 4096;

pub(crate) enum TcpEvent {
    Opened(SocketAddr, mpsc::Sender<Vec<u8>>),
    Frame(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

/// The open connections, by peer address, as the event loop writes to them.
#[derive(Default)]
pub(crate) struct TcpPeers {
    peers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
}

impl TcpPeers {
    pub fn opened(&mut self, peer: SocketAddr, tx: mpsc::Sender<Vec<u8>>) {
        self.peers.insert(peer, tx);
    }

    pub fn closed(&mut self, peer: &SocketAddr) {
        self.peers.remove(peer);
    }

    /// Queues one datagram; false if the connection is gone or its queue is full.
    pub fn send(&self, peer: &SocketAddr, datagram: Vec<u8>) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|tx| tx.try_send(datagram).is_ok())
    }

    /// Closes the connections no viewer uses (their writers end, which closes them).
    pub fn retain(&mut self, mut used: impl FnMut(&SocketAddr) -> bool) {
        self.peers.retain(|peer, _| used(peer));
    }
}

/// Accepts connections for as long as the event loop listens.
pub(crate) async fn accept(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tracing::warn!(
                limit = MAX_CONNECTIONS,
                "ICE-TCP connections at the limit; refused one"
            );
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        if events.send(TcpEvent::Opened(peer, tx)).await.is_err() {
            return;
        }
        open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut writer = BufWriter::new(writer);
            while let Some(datagram) = rx.recv().await {
                if write_frame(&mut writer, &datagram).await.is_err() {
                    break;
                }
                // Everything queued goes out in one write.
                while let Ok(datagram) = rx.try_recv() {
                    if write_frame(&mut writer, &datagram).await.is_err() {
                        return;
                    }
                }
                if writer.flush().await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        let events = events.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut header = [0u8; 2];
            loop {
                let read = tokio::time::timeout(IDLE, reader.read_exact(&mut header)).await;
                if !matches!(read, Ok(Ok(_))) {
                    break;
                }
                let len = u16::from_be_bytes(header) as usize;
                if len == 0 || len > MAX_FRAME {
                    break;
                }
                let mut frame = vec![0u8; len];
                let read = tokio::time::timeout(IDLE, reader.read_exact(&mut frame)).await;
                if !matches!(read, Ok(Ok(_))) {
                    break;
                }
                if events.send(TcpEvent::Frame(peer, frame)).await.is_err() {
                    break;
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
            let _ = events.send(TcpEvent::Closed(peer)).await;
        });
    }
}

async fn write_frame<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    datagram: &[u8],
) -> std::io::Result<()> {
    let Ok(len) = u16::try_from(datagram.len()) else {
        return Ok(());
    };
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(datagram).await
}
