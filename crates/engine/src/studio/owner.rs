//! The owner task of one studio: it holds the output pipeline and the filler source, admits
//! one publisher at a time and coalesces keyframe requests.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handle::{
    Filler, IdleHook, OverlayFactory, PublisherLink, PublisherPresence, Request, STUDIO_REQUESTS,
    StudioError, StudioHandle, StudioStats,
};
use crate::hls::{Controls, HlsStream};
use crate::media::output::LightEncode;
use crate::media::output::{PacketSink, StudioOutput};
use crate::media::test_pattern::TestPattern;
use crate::media::{Orientation, OutputFormat, Rendition};

/// Keyframe requests closer together than this are served by one keyframe.
pub const KEYFRAME_COALESCE: Duration = Duration::from_millis(250);
/// How often the owner looks whether HLS has gone unwatched.
const HLS_CHECK: Duration = Duration::from_secs(1);

pub(crate) struct Stopper(oneshot::Sender<()>);

impl Stopper {
    pub fn stop(self) {
        let _ = self.0.send(());
    }
}

pub(crate) fn spawn(
    session_id: &str,
    (format, hls_idle): (OutputFormat, Duration),
    orientation: Orientation,
    filler: Filler,
    sink: PacketSink,
    overlay: OverlayFactory,
    idle: Option<(Duration, IdleHook)>,
) -> Result<(StudioHandle, Stopper), StudioError> {
    let label = short(session_id);
    let stats = Arc::new(StudioStats {
        pattern_is_the_show: filler == Filler::TestPattern,
        ..StudioStats::default()
    });
    let format = format.oriented(orientation == Orientation::Portrait);
    let output = StudioOutput::start(&label, format, sink, overlay(stats.clone()))
        .map_err(|e| StudioError::Start(e.to_string()))?;
    output
        .feed()
        .follow_source(orientation == Orientation::Auto);
    let pattern = match filler {
        Filler::Slate => None,
        Filler::TestPattern => Some(
            TestPattern::start(&label, &format, output.feed())
                .map_err(|e| StudioError::Start(e.to_string()))?,
        ),
    };
    let (tx, rx) = mpsc::channel(STUDIO_REQUESTS);
    let (stop_tx, stop_rx) = oneshot::channel();
    let hls = connect_hls(&label, &output, &format, hls_idle, tx.downgrade())?;
    let handle = StudioHandle {
        session_id: Arc::from(session_id),
        tx,
        stats: stats.clone(),
        format,
        hls: hls.clone(),
    };
    let owner = Owner {
        label,
        light: output.light(),
        output,
        pattern,
        stats,
        hls,
        publisher: None,
        next_publisher: 1,
        idle,
        idle_at: None,
    };
    tokio::spawn(owner.run(rx, stop_rx));
    Ok((handle, Stopper(stop_tx)))
}

/// The studio's HLS, fed by the output's HLS branches. The keyframe it starts at goes
/// through the owner like a viewer's (coalesced); the keyframes its segments end at go to the
/// encoder straight from the streaming thread, for the very next frame.
fn connect_hls(
    label: &str,
    output: &StudioOutput,
    format: &OutputFormat,
    idle: Duration,
    requests: mpsc::WeakSender<Request>,
) -> Result<Arc<HlsStream>, StudioError> {
    let segment_target = Duration::from_secs_f64(format.keyint as f64 / format.fps.max(1) as f64);
    let hls = HlsStream::new(label, segment_target, idle);
    let switch = output
        .connect_hls(
            {
                let hls = hls.clone();
                move |rendition, access_unit, pts, keyframe, size| {
                    if let Some((width, height)) = size {
                        hls.track(rendition).set_size(width, height);
                    }
                    hls.video(rendition, access_unit, pts, keyframe)
                }
            },
            {
                let hls = hls.clone();
                move |adts, pts| hls.audio(adts, pts)
            },
        )
        .map_err(|e| StudioError::Start(e.to_string()))?;
    let next_keyframe = output
        .next_keyframe()
        .map_err(|e| StudioError::Start(e.to_string()))?;
    let light = output.light();
    hls.set_controls(Controls {
        switch: Box::new(move |open| switch.set(open)),
        keyframe_next: Box::new(move || next_keyframe.ask()),
        light_keyframe_at: Box::new(move |pts| light.keyframe_at(pts)),
        keyframe: Box::new(move || {
            if let Some(requests) = requests.upgrade() {
                let _ = requests.try_send(Request::ForceKeyframe(Rendition::Main));
            }
        }),
    });
    Ok(hls)
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

struct Owner {
    label: String,
    output: StudioOutput,
    light: Arc<LightEncode>,
    /// The demo's test picture, started again at the new size when the output turns.
    pattern: Option<TestPattern>,
    stats: Arc<StudioStats>,
    hls: Arc<HlsStream>,
    publisher: Option<(u64, Arc<PublisherPresence>)>,
    next_publisher: u64,
    /// The reconnect grace and what to call when it runs out.
    idle: Option<(Duration, IdleHook)>,
    /// When the show ends unless a publisher comes back (set when one leaves).
    idle_at: Option<Instant>,
}

/// One encoder's keyframe requests: when it last made one on request, and when the next
/// coalesced one is due.
#[derive(Default)]
struct Keyframes {
    last: Option<Instant>,
    pending: Option<Instant>,
}

impl Owner {
    fn force_keyframe(&self, rendition: Rendition) {
        match rendition {
            Rendition::Main => self.output.force_keyframe(),
            Rendition::Light => self.light.keyframe(),
        }
    }

    /// Applies the session's orientation: the encoder restarts at the new size with a
    /// keyframe, and the sources follow from their next frame.
    fn orient(&mut self, orientation: Orientation) {
        let feed = self.output.feed();
        feed.follow_source(false);
        let turned = match orientation {
            Orientation::Landscape => feed.orient(false),
            Orientation::Portrait => feed.orient(true),
            Orientation::Auto => match feed.last_source_size() {
                Some((w, h)) => feed.orient(h > w),
                None => {
                    feed.follow_source(true);
                    false
                }
            },
        };
        if turned {
            let format = feed.format();
            tracing::info!(session.id = %self.label, width = format.width, height = format.height, "output turned");
        }
        self.pattern_follows();
    }

    /// Starts the test pattern again at the output's size if the output turned since it
    /// started (by the operator, or under `auto` by a publisher's picture).
    fn pattern_follows(&mut self) {
        let feed = self.output.feed();
        let format = feed.format();
        if self.pattern.as_ref().is_none_or(|p| p.format == format) {
            return;
        }
        self.pattern = None;
        match TestPattern::start(&self.label, &format, feed) {
            Ok(pattern) => self.pattern = Some(pattern),
            Err(e) => {
                tracing::error!(session.id = %self.label, error = %e, "test pattern did not restart")
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Request>, mut stop: oneshot::Receiver<()>) {
        tracing::info!(session.id = %self.label, "studio started");
        let mut keyframes = [Keyframes::default(), Keyframes::default()];
        let mut hls_check = tokio::time::interval(HLS_CHECK);
        loop {
            let deadline = keyframes.iter().filter_map(|k| k.pending).min();
            let idle_at = self.idle_at;
            tokio::select! {
                _ = &mut stop => break,
                _ = hls_check.tick() => {
                    self.hls.stop_if_idle();
                    // The light encode runs while HLS viewers may switch to it at any segment,
                    // or a WebRTC viewer watches it (not for a recording or restream alone).
                    let wanted = self.hls.is_requested() || self.stats.light_viewers.load(Ordering::Relaxed) > 0;
                    if self.light.set_open(wanted) {
                        tracing::info!(session.id = %self.label, running = wanted, "light rendition");
                    }
                }
                _ = async { tokio::time::sleep_until(idle_at.unwrap_or_else(Instant::now)).await }, if idle_at.is_some() => {
                    tracing::info!(session.id = %self.label, "no publisher within the reconnect grace; the show ends");
                    if let Some((_, hook)) = self.idle.take() {
                        hook();
                    }
                    break;
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                    let now = Instant::now();
                    for rendition in Rendition::ALL {
                        let k = &mut keyframes[rendition as usize];
                        if k.pending.is_some_and(|at| at <= now) {
                            k.pending = None;
                            k.last = Some(now);
                            self.force_keyframe(rendition);
                        }
                    }
                }
                request = rx.recv() => {
                    let Some(request) = request else { break };
                    match request {
                        Request::AttachPublisher { reply, takeover_after } => {
                            let busy = match &self.publisher {
                                Some((id, presence)) if presence.silent_for() >= takeover_after => {
                                    tracing::warn!(session.id = %self.label, publisher.id = id, "publisher silent; a new connection takes the key over");
                                    presence.replace();
                                    false
                                }
                                Some(_) => true,
                                None => false,
                            };
                            let result = if busy {
                                Err(StudioError::Busy)
                            } else {
                                let id = self.next_publisher;
                                self.next_publisher += 1;
                                let presence = Arc::new(PublisherPresence::new());
                                self.publisher = Some((id, presence.clone()));
                                self.idle_at = None;
                                self.stats.publisher_connected.store(true, Ordering::Relaxed);
                                let feed = self.output.feed();
                                feed.set_publisher_attached(true);
                                tracing::info!(session.id = %self.label, publisher.id = id, "publisher attached");
                                Ok(PublisherLink { id, format: feed.format(), feed, presence })
                            };
                            let _ = reply.send(result);
                        }
                        Request::DetachPublisher { id } => {
                            if self.publisher.as_ref().is_some_and(|(current, _)| *current == id) {
                                self.publisher = None;
                                self.stats.publisher_connected.store(false, Ordering::Relaxed);
                                self.output.feed().set_publisher_attached(false);
                                if let Some((grace, _)) = &self.idle {
                                    self.idle_at = Some(Instant::now() + *grace);
                                }
                                tracing::info!(session.id = %self.label, publisher.id = id, "publisher detached; slate on");
                                self.pattern_follows();
                            }
                        }
                        Request::Orient(orientation) => self.orient(orientation),
                        Request::ForceKeyframe(rendition) => {
                            if rendition == Rendition::Light && self.light.set_open(true) {
                                // Opening starts the encode at a keyframe already.
                                tracing::info!(session.id = %self.label, running = true, "light rendition");
                                keyframes[rendition as usize].last = Some(Instant::now());
                                continue;
                            }
                            let now = Instant::now();
                            let k = &mut keyframes[rendition as usize];
                            match k.last {
                                Some(last) if now < last + KEYFRAME_COALESCE => {
                                    k.pending.get_or_insert(last + KEYFRAME_COALESCE);
                                }
                                _ if k.pending.is_some() => {}
                                _ => {
                                    k.last = Some(now);
                                    self.force_keyframe(rendition);
                                }
                            }
                        }
                    }
                }
            }
            if self.output.failed.load(Ordering::Relaxed) {
                tracing::error!(session.id = %self.label, "studio output pipeline failed; stopping the studio");
                break;
            }
        }
        self.stats
            .publisher_connected
            .store(false, Ordering::Relaxed);
        tracing::info!(session.id = %self.label, "studio stopped");
    }
}
