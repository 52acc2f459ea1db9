//! Batched sends: the event loop queues every datagram of one wake-up, then hands them to
//! the kernel with `sendmmsg(2)`, up to [`SEND_BATCH`] messages per system call, never
//! waiting. What the socket cannot take now is dropped and counted; viewers recover by NACK
//! or keyframe.
//!
//! Consecutive datagrams to one viewer of one size (the packets of a frame: the payloader
//! cuts them to one MTU; the last may be shorter) go as one message with UDP generic
//! segmentation offload (`UDP_SEGMENT`): the kernel walks its send path once for the run
//! and cuts the datagrams at the end. Where the kernel refuses it, the batch is resent one
//! datagram per message and GSO stays off.

use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::UdpSocket;

use crate::studio::StudioStats;

/// Messages per `sendmmsg` call.
pub const SEND_BATCH: usize = 64;
/// Most datagrams in one GSO message (the kernel's limit is 64) and most bytes.
const GSO_SEGMENTS: usize = 64;
const GSO_BYTES: usize = 60_000;
/// `UDP_SEGMENT` from linux/udp.h (not in the libc crate for glibc targets).
const UDP_SEGMENT: libc::c_int = 103;

/// Whether the kernel takes `UDP_SEGMENT`; cleared at its first refusal.
static GSO: AtomicBool = AtomicBool::new(true);

#[derive(Default)]
pub(crate) struct Outbox {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    messages: Vec<Range<usize>>,
    /// Whose datagrams they are: each studio's counters from the datagram where its run
    /// starts (one entry per viewer flush, not per datagram).
    owners: Vec<(usize, Arc<StudioStats>)>,
    /// Datagrams sent and dropped on ICE-TCP connections since the last flush.
    elsewhere: (usize, usize),
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

    /// A datagram of the current owner's went out another way (an ICE-TCP connection).
    pub fn sent_elsewhere(&mut self) {
        self.elsewhere.0 += 1;
        if let Some((_, stats)) = self.owners.last() {
            stats.datagrams_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A datagram of the current owner's could not go out another way (queue full).
    pub fn dropped_elsewhere(&mut self) {
        self.elsewhere.1 += 1;
        if let Some((_, stats)) = self.owners.last() {
            stats.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The datagrams pushed from now on are this studio's (until the next call).
    pub fn owner(&mut self, stats: &Arc<StudioStats>) {
        let at = self.datagrams.len();
        if let Some((start, last)) = self.owners.last_mut() {
            if *start == at {
                // Nothing was pushed for the previous owner: this one takes its place.
                *last = stats.clone();
                return;
            }
            if Arc::ptr_eq(last, stats) {
                return;
            }
        }
        self.owners.push((at, stats.clone()));
    }

    /// Counts, per studio, what was sent (the first `sent` datagrams) and what was dropped.
    fn account(&mut self, sent: usize) {
        let total = self.datagrams.len();
        for (i, (start, stats)) in self.owners.iter().enumerate() {
            let end = self.owners.get(i + 1).map_or(total, |(next, _)| *next);
            let ok = sent.clamp(*start, end) - start;
            stats.datagrams_sent.fetch_add(ok as u64, Ordering::Relaxed);
            stats
                .datagrams_dropped
                .fetch_add((end - start - ok) as u64, Ordering::Relaxed);
        }
        self.owners.clear();
    }

    /// Sends everything queued; what the socket refuses is dropped.
    pub fn flush(&mut self, socket: &UdpSocket) -> Sent {
        let total = self.datagrams.len();
        let mut gso = GSO.load(Ordering::Relaxed);
        group(&self.datagrams, gso, &mut self.messages);
        let mut sent = 0;
        let mut next = 0;
        while next < self.messages.len() {
            let end = (next + SEND_BATCH).min(self.messages.len());
            match send_batch(socket, &self.datagrams, &self.messages[next..end]) {
                Ok(n) if n > 0 => {
                    sent += self.messages[next..next + n]
                        .iter()
                        .map(|m| m.len())
                        .sum::<usize>();
                    next += n;
                }
                Err(e) if gso && gso_refused(&e) => {
                    tracing::info!(error = %e, "UDP GSO refused; sending one datagram per message");
                    GSO.store(false, Ordering::Relaxed);
                    gso = false;
                    let rest = self.messages[next].start;
                    group(&self.datagrams[rest..], false, &mut self.messages);
                    for m in self.messages.iter_mut() {
                        *m = m.start + rest..m.end + rest;
                    }
                    next = 0;
                }
                _ => break,
            }
        }
        self.account(sent);
        self.datagrams.clear();
        let (tcp_sent, tcp_dropped) = std::mem::take(&mut self.elsewhere);
        Sent {
            sent: sent + tcp_sent,
            dropped: total - sent + tcp_dropped,
        }
    }
}

fn gso_refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

/// Cuts `datagrams` into messages: with `gso`, runs to one destination of one size (the
/// last may be shorter); without, one datagram each.
fn group(datagrams: &[(SocketAddr, Vec<u8>)], gso: bool, messages: &mut Vec<Range<usize>>) {
    messages.clear();
    let mut i = 0;
    while i < datagrams.len() {
        let (to, first) = &datagrams[i];
        let size = first.len();
        let mut end = i + 1;
        let mut bytes = size;
        if gso && size > 0 {
            while end < datagrams.len() && end - i < GSO_SEGMENTS {
                let (next_to, next) = &datagrams[end];
                if next_to != to
                    || next.len() > size
                    || next.is_empty()
                    || bytes + next.len() > GSO_BYTES
                {
                    break;
                }
                bytes += next.len();
                end += 1;
                if next.len() < size {
                    break;
                }
            }
        }
        messages.push(i..end);
        i = end;
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

/// One `sendmmsg` call for `messages` (ranges of `datagrams`); the number of messages the
/// kernel took, or the error (a full socket buffer included).
fn send_batch(
    socket: &UdpSocket,
    datagrams: &[(SocketAddr, Vec<u8>)],
    messages: &[Range<usize>],
) -> std::io::Result<usize> {
    let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> = messages
        .iter()
        .map(|m| sockaddr(&datagrams[m.start].0))
        .collect();
    let mut iovecs: Vec<libc::iovec> = messages
        .iter()
        .flat_map(|m| datagrams[m.clone()].iter())
        .map(|(_, d)| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    // One control buffer per message (8-byte aligned, as cmsghdr needs).
    let mut controls: Vec<[u64; 4]> = vec![[0; 4]; messages.len()];
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(messages.len());
    let mut first_iov = 0;
    for ((m, (addr, len)), control) in messages
        .iter()
        .zip(addrs.iter_mut())
        .zip(controls.iter_mut())
    {
        // SAFETY: an all-zero msghdr is valid (no control data, no flags).
        let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        hdr.msg_hdr.msg_name = addr as *mut _ as *mut libc::c_void;
        hdr.msg_hdr.msg_namelen = *len;
        hdr.msg_hdr.msg_iov = iovecs[first_iov..].as_mut_ptr();
        hdr.msg_hdr.msg_iovlen = m.len();
        first_iov += m.len();
        if m.len() > 1 {
            let segment = datagrams[m.start].1.len() as u16;
            // SAFETY: `control` is 32 bytes, 8-aligned: room for one cmsghdr with a u16
            // (CMSG_SPACE(2) = 24); the CMSG macros stay inside the buffer we declare.
            unsafe {
                hdr.msg_hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                hdr.msg_hdr.msg_controllen = libc::CMSG_SPACE(2) as usize;
                let cmsg = libc::CMSG_FIRSTHDR(&hdr.msg_hdr);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(2) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment);
            }
        }
        headers.push(hdr);
    }
    // SAFETY: every header points into `addrs`, `iovecs` and `controls`, which outlive the
    // call, and the iovecs point into `datagrams`, borrowed for the whole call.
    // MSG_DONTWAIT: never block.
    let n = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
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

    #[tokio::test]
    async fn runs_of_one_size_to_one_viewer_arrive_as_separate_datagrams() {
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Outbox::default();
        // A frame of 5 packets (the last shorter) to each of two viewers, then one more.
        for (to, tag) in [(a.local_addr().unwrap(), 1u8), (b.local_addr().unwrap(), 2)] {
            for i in 0..5u8 {
                let len = if i == 4 { 300 } else { 1200 };
                outbox.push(to, vec![tag * 10 + i; len]);
            }
        }
        outbox.push(a.local_addr().unwrap(), vec![99; 1200]);
        group(&outbox.datagrams, true, &mut outbox.messages);
        assert_eq!(outbox.messages, vec![0..5, 5..10, 10..11]);
        let sent = outbox.flush(&tx);
        assert_eq!((sent.sent, sent.dropped), (11, 0));
        let mut buf = [0u8; 2048];
        for (rx, tag) in [(&a, 1u8), (&b, 2)] {
            for i in 0..5u8 {
                let n = rx.recv(&mut buf).await.unwrap();
                let len = if i == 4 { 300 } else { 1200 };
                assert_eq!((n, buf[0], buf[n - 1]), (len, tag * 10 + i, tag * 10 + i));
            }
        }
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!((n, buf[0]), (1200, 99));
    }
}
