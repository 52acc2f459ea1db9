//! The load generator: hundreds of WebRTC viewers on one thread. Each viewer is a str0m
//! session with its own UDP socket (servers tell viewers apart by address), or its own
//! ICE-TCP connection; one `epoll` waits on all of them. Viewers join at a given rate, count packets, frames, keyframes and
//! gaps, time their first frame, and leave cleanly (DTLS close, then the signalling's own
//! goodbye) at the end. Nothing is decoded: a viewer costs its SRTP and depacketization.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::{Event, IceConnectionState, Input, Output};

use crate::whep::{ClientError, Negotiated, Signalling, received, viewer_config};

#[derive(Debug, Clone)]
pub struct SwarmOptions {
    pub viewers: usize,
    /// Time between two viewers joining.
    pub join_interval: Duration,
    /// How long everyone watches after the last viewer joined.
    pub watch: Duration,
    /// Live counts, for a caller that measures a window while the swarm runs.
    pub progress: Arc<SwarmProgress>,
}

/// What the swarm has done so far, readable from other threads.
#[derive(Debug, Default)]
pub struct SwarmProgress {
    /// Viewers that joined or failed to.
    pub joined: AtomicUsize,
    /// RTP packets (video and audio) received by all viewers.
    pub packets: AtomicU64,
    /// Video frames that arrived after a loss, all viewers.
    pub gaps: AtomicU64,
}

/// What one viewer saw.
#[derive(Debug, Clone, Default)]
pub struct ViewerStats {
    /// From the start of its signalling to ICE + DTLS done.
    pub connected_after: Option<Duration>,
    /// From the start of its signalling to its first complete video frame.
    pub first_frame_after: Option<Duration>,
    pub video_packets: u64,
    pub frames: u64,
    pub keyframes: u64,
    /// Frames that arrived after a loss.
    pub gaps: u64,
    pub audio_packets: u64,
    /// Why it failed to join or dropped out, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SwarmReport {
    pub viewers: Vec<ViewerStats>,
    /// When the last viewer joined, from the start of the run.
    pub all_joined_after: Duration,
}

struct Member {
    session: Negotiated,
    progress: Arc<SwarmProgress>,
    joined_at: Instant,
    next_timeout: Instant,
    stats: ViewerStats,
    alive: bool,
}

impl Member {
    /// Drains the session's output: datagrams out, events counted, next timeout kept.
    fn drive(&mut self) {
        while self.alive {
            match self.session.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.next_timeout = at;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.session.link.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(event)) => self.count(event),
                Err(e) => self.fail(e.to_string()),
            }
        }
    }

    fn count(&mut self, event: Event) {
        match event {
            Event::Connected => self.stats.connected_after = Some(self.joined_at.elapsed()),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.fail("ICE disconnected".into())
            }
            Event::MediaData(data) => {
                let codec = data.params.spec().codec;
                if codec == Codec::H264 {
                    let s = &mut self.stats;
                    s.frames += 1;
                    if !data.contiguous {
                        s.gaps += 1;
                        self.progress.gaps.fetch_add(1, Ordering::Relaxed);
                    }
                    let packets =
                        (**data.seq_range.end()).wrapping_sub(**data.seq_range.start()) + 1;
                    s.video_packets += packets;
                    self.progress.packets.fetch_add(packets, Ordering::Relaxed);
                    s.keyframes += u64::from(starts_keyframe(&data.data));
                    s.first_frame_after
                        .get_or_insert_with(|| self.joined_at.elapsed());
                } else if codec == Codec::Opus {
                    self.stats.audio_packets += 1;
                    self.progress.packets.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, reason: String) {
        self.stats.error.get_or_insert(reason);
        self.alive = false;
    }

    fn receive(&mut self, buf: &mut [u8]) {
        while self.alive {
            match self.session.link.recv_from(buf) {
                Ok((n, source)) => {
                    let proto = self.session.link.protocol();
                    let Some(input) = received(proto, &buf[..n], source, self.session.local) else {
                        continue;
                    };
                    if let Err(e) = self.session.rtc.handle_input(input) {
                        self.fail(e.to_string());
                    }
                    self.drive();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => self.fail(e.to_string()),
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        if self.alive && self.next_timeout <= now {
            if let Err(e) = self.session.rtc.handle_input(Input::Timeout(now)) {
                self.fail(e.to_string());
            }
            self.drive();
        }
    }
}

/// Whether an Annex B access unit starts a keyframe (SPS or IDR first).
fn starts_keyframe(au: &[u8]) -> bool {
    let header = match au {
        [0, 0, 0, 1, h, ..] | [0, 0, 1, h, ..] => *h,
        _ => return false,
    };
    matches!(header & 0x1F, 5 | 7)
}

/// An epoll set over the members' sockets; the event data is the member's index.
struct Poller(i32);

impl Poller {
    fn new() -> std::io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(fd))
    }

    fn add(&self, fd: i32, index: usize) -> std::io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: index as u64,
        };
        // SAFETY: `event` lives for the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Indices of members with datagrams waiting, after at most `timeout`.
    fn wait(&self, timeout: Duration, ready: &mut Vec<usize>) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
        let ms = timeout.as_millis().min(1000) as i32;
        // SAFETY: the buffer holds `events.len()` entries.
        let n = unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, ms) };
        ready.clear();
        for event in events.iter().take(n.max(0) as usize) {
            ready.push(event.u64 as usize);
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// Runs the swarm on the calling thread until everyone has joined and watched.
pub fn run(signalling: &dyn Signalling, options: &SwarmOptions) -> SwarmReport {
    let start = Instant::now();
    let mut report = SwarmReport::default();
    let poller = match Poller::new() {
        Ok(p) => p,
        Err(e) => {
            report.viewers.push(ViewerStats {
                error: Some(e.to_string()),
                ..Default::default()
            });
            return report;
        }
    };
    let mut members: Vec<Member> = Vec::with_capacity(options.viewers);
    let mut failed_joins: Vec<ViewerStats> = Vec::new();
    let mut next_join = start;
    let mut end = None;
    let mut buf = vec![0u8; 2048];
    let mut ready = Vec::new();
    loop {
        let now = Instant::now();
        if members.len() + failed_joins.len() < options.viewers && now >= next_join {
            let joined_at = Instant::now();
            match join(signalling, &poller, members.len()) {
                Ok(session) => {
                    let mut member = Member {
                        session,
                        progress: options.progress.clone(),
                        joined_at,
                        next_timeout: joined_at,
                        stats: ViewerStats::default(),
                        alive: true,
                    };
                    member.drive();
                    members.push(member);
                }
                Err(e) => failed_joins.push(ViewerStats {
                    error: Some(e.to_string()),
                    ..Default::default()
                }),
            }
            next_join += options.join_interval;
            options.progress.joined.fetch_add(1, Ordering::Relaxed);
            if members.len() + failed_joins.len() == options.viewers {
                report.all_joined_after = start.elapsed();
                end = Some(Instant::now() + options.watch);
            }
        }
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            break;
        }
        // Until the next join while joining, then until the end.
        let mut wake = end.unwrap_or(next_join);
        for m in members.iter().filter(|m| m.alive) {
            wake = wake.min(m.next_timeout);
        }
        poller.wait(wake.saturating_duration_since(now), &mut ready);
        for &i in &ready {
            if let Some(m) = members.get_mut(i) {
                m.receive(&mut buf);
            }
        }
        let now = Instant::now();
        for m in members.iter_mut() {
            m.timeout(now);
        }
    }
    for m in members.iter_mut() {
        if m.alive {
            m.session.rtc.disconnect();
            m.drive();
        }
        if let Some(leave) = m.session.leave.take() {
            leave();
        }
    }
    report.viewers = members.into_iter().map(|m| m.stats).collect();
    report.viewers.extend(failed_joins);
    report
}

fn join(
    signalling: &dyn Signalling,
    poller: &Poller,
    index: usize,
) -> Result<Negotiated, ClientError> {
    let session = signalling.open(viewer_config())?;
    session.link.set_nonblocking(true)?;
    poller.add(session.link.as_raw_fd(), index)?;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_told_from_their_first_nal() {
        assert!(starts_keyframe(&[0, 0, 0, 1, 0x67, 0x42]));
        assert!(starts_keyframe(&[0, 0, 1, 0x65, 0x88]));
        assert!(!starts_keyframe(&[0, 0, 0, 1, 0x41, 0x9a]));
        assert!(!starts_keyframe(&[0, 0]));
    }
}
