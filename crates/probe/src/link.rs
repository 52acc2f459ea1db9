//! A viewer's transport: its own UDP socket, or one ICE-TCP connection to the server's
//! passive candidate (RFC 6544), each packet framed by a two-byte length (RFC 4571). Both
//! read and write like a datagram socket, so the player and the load generator drive either
//! the same way.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use str0m::net::Protocol;

pub enum Link {
    Udp(UdpSocket),
    Tcp(TcpLink),
}

/// One ICE-TCP connection: what has arrived but not yet made a whole frame, and what could
/// not be written yet (a non-blocking stream may take part of a frame).
pub struct TcpLink {
    stream: TcpStream,
    server: SocketAddr,
    pending: Vec<u8>,
    unsent: Vec<u8>,
}

impl Link {
    /// Connects to the server's ICE-TCP address.
    pub fn tcp(server: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(Link::Tcp(TcpLink {
            stream,
            server,
            pending: Vec::with_capacity(4096),
            unsent: Vec::new(),
        }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Link::Udp(socket) => socket.local_addr(),
            Link::Tcp(link) => link.stream.local_addr(),
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Link::Udp(_) => Protocol::Udp,
            Link::Tcp(_) => Protocol::Tcp,
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Link::Udp(socket) => socket.set_nonblocking(on),
            Link::Tcp(link) => link.stream.set_nonblocking(on),
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Link::Udp(socket) => socket.set_read_timeout(timeout),
            Link::Tcp(link) => link.stream.set_read_timeout(timeout),
        }
    }

    /// Sends one packet to `destination` (over TCP: to the server, framed).
    pub fn send_to(&mut self, packet: &[u8], destination: SocketAddr) -> std::io::Result<()> {
        match self {
            Link::Udp(socket) => socket.send_to(packet, destination).map(|_| ()),
            Link::Tcp(link) => {
                let Ok(len) = u16::try_from(packet.len()) else {
                    return Err(ErrorKind::InvalidInput.into());
                };
                link.unsent.extend_from_slice(&len.to_be_bytes());
                link.unsent.extend_from_slice(packet);
                link.flush()
            }
        }
    }

    /// Receives one packet into `buf`: its length and who sent it. Over TCP, a frame already
    /// read comes first; otherwise the stream is read until one is whole (or it would block,
    /// or times out, as the socket is set).
    pub fn recv_from(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            Link::Udp(socket) => socket.recv_from(buf),
            Link::Tcp(link) => loop {
                link.flush()?;
                if let Some(n) = link.take_frame(buf)? {
                    return Ok((n, link.server));
                }
                let mut chunk = [0u8; 16 * 1024];
                match link.stream.read(&mut chunk) {
                    Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                    Ok(n) => link.pending.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err(e),
                }
            },
        }
    }
}

impl TcpLink {
    fn flush(&mut self) -> std::io::Result<()> {
        while !self.unsent.is_empty() {
            match self.stream.write(&self.unsent) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                // Kept for the next send or receive.
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next whole frame from what has arrived, copied into `buf`.
    fn take_frame(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let Some(header) = self.pending.first_chunk::<2>() else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes(*header));
        if self.pending.len() < 2 + len {
            return Ok(None);
        }
        if len > buf.len() {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                format!("a {len}-byte frame over ICE-TCP"),
            ));
        }
        buf[..len].copy_from_slice(&self.pending[2..2 + len]);
        self.pending.drain(..2 + len);
        Ok(Some(len))
    }
}

impl AsRawFd for Link {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Link::Udp(socket) => socket.as_raw_fd(),
            Link::Tcp(link) => link.stream.as_raw_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_a_tcp_stream_whole_however_it_splits_them() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // Two frames, written a byte or two at a time.
            let mut bytes = Vec::new();
            for frame in [&b"hello"[..], &[7u8; 1500][..]] {
                bytes.extend_from_slice(&(frame.len() as u16).to_be_bytes());
                bytes.extend_from_slice(frame);
            }
            for piece in bytes.chunks(3) {
                stream.write_all(piece).unwrap();
                stream.flush().unwrap();
            }
            // And read back what the link sends, framed.
            let mut got = [0u8; 6];
            stream.read_exact(&mut got).unwrap();
            got
        });
        let mut link = Link::tcp(server).unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = link.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"hello"[..], server));
        let (n, _) = link.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[7u8; 1500][..]);
        link.send_to(b"ping", server).unwrap();
        assert_eq!(&peer.join().unwrap(), b"\x00\x04ping");
    }
}
