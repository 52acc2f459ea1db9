//! Batched sends: the event loop queues every datagram of one wake-up, then hands them to
//! the kernel with `sendmmsg(2)`, up to [`SEND_BATCH`] per system call, never waiting. What
//! the socket cannot take now is dropped and counted; viewers recover by NACK or keyframe.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::net::UdpSocket;

/// Datagrams per `sendmmsg` call.
pub const SEND_BATCH: usize = 64;

#[derive(Default)]
pub(crate) struct Outbox {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
}

/// What a flush achieved.
pub(crate) struct Sent {
    pub sent: usize,
    pub dropped: usize,
}

impl Outbox {
    pub fn push(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.datagrams.push((destination, contents));
    }

    /// Sends everything queued; what the socket refuses is dropped.
    pub fn flush(&mut self, socket: &UdpSocket) -> Sent {
        let total = self.datagrams.len();
        let mut sent = 0;
        while sent < total {
            let end = (sent + SEND_BATCH).min(total);
            match send_batch(socket, &self.datagrams[sent..end]) {
                Some(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        self.datagrams.clear();
        Sent {
            sent,
            dropped: total - sent,
        }
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value; we fill the family's fields.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One `sendmmsg` call; the number of datagrams the kernel took, or `None` on an error
/// (including a full socket buffer).
fn send_batch(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> Option<usize> {
    let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        datagrams.iter().map(|(a, _)| sockaddr(a)).collect();
    let mut iovecs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|(_, d)| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = addrs
        .iter_mut()
        .zip(iovecs.iter_mut())
        .map(|((addr, len), iov)| {
            // SAFETY: an all-zero msghdr is valid (no control data, no flags).
            let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
            hdr.msg_hdr.msg_name = addr as *mut _ as *mut libc::c_void;
            hdr.msg_hdr.msg_namelen = *len;
            hdr.msg_hdr.msg_iov = iov as *mut libc::iovec;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr
        })
        .collect();
    // SAFETY: every header points into `addrs` and `iovecs`, which outlive the call, and the
    // iovecs point into `datagrams`, borrowed for the whole call. MSG_DONTWAIT: never block.
    let n = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    (n >= 0).then_some(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_arrives_in_order() {
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        let mut outbox = Outbox::default();
        for i in 0..100u8 {
            outbox.push(to, vec![i; 10 + i as usize]);
        }
        let sent = outbox.flush(&tx);
        assert_eq!((sent.sent, sent.dropped), (100, 0));
        let mut buf = [0u8; 256];
        for i in 0..100u8 {
            let n = rx.recv(&mut buf).await.unwrap();
            assert_eq!((n, buf[0]), (10 + i as usize, i));
        }
    }
}
