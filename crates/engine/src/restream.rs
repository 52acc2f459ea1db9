//! Restream: a live show's composited output pushed to other RTMP(S) servers (a platform's
//! ingest, a shop's own channel), each destination on its own.
//!
//! A destination's pusher holds its studio's HLS running ([`HlsStream::hold`]) and feeds the
//! main rendition's whole segments, as the packager completes them, into its own `restream`
//! pipeline (`pipelines/restream.pipeline`: MPEG-TS remuxed into FLV, nothing decoded or
//! encoded). It runs on a task of its own and only reads published windows, so a destination
//! that is slow, refuses or dies never touches the show or the other destinations. A failed
//! push is torn down and tried again after a backoff (1 s, doubling to 30 s; back to 1 s after
//! a push that held for a minute). Its [`PushStatus`] is what the API, the console and
//! `/metrics` show.
//!
//! [`HlsStream::hold`]: crate::hls::HlsStream::hold

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::watch;

use crate::hls::window::Snapshot;
use crate::media::{MediaError, RESTREAM, Rendition, app_src, play};
use crate::studio::StudioHandle;
use fieldcast_core::time::now_ms;

/// The first wait after a failed push; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A push that held this long starts the backoff over.
const HELD: Duration = Duration::from_secs(60);
/// How often a push's bus and byte counters are looked at.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// A destination that takes nothing for this long (its segments queue in the pusher) is
/// counted dead and tried again.
const STALLED: Duration = Duration::from_secs(10);

/// Where to push: the server's URL and the stream key, kept apart so the key is never shown.
#[derive(Clone)]
pub struct Destination {
    pub id: String,
    pub session_id: String,
    /// `rtmp://host[:port]/app` or `rtmps://…`.
    pub url: String,
    pub key: String,
}

impl Destination {
    /// What rtmp2sink connects to: the URL and the key, as OBS joins "Server" and "Stream Key".
    fn location(&self) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), self.key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// Connecting, or connected and nothing sent yet.
    Connecting,
    /// Media flows to the destination.
    Connected,
    /// The last push failed (`reason`); the next try is at `retry_at_ms`.
    Retrying,
}

/// A destination's state, as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushStatus {
    pub state: PushState,
    /// Why the last push failed, in GStreamer's or our words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix ms of the last change of state.
    pub since_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<i64>,
    /// Pushes begun, the first included.
    pub attempts: u64,
    /// Pushes that failed.
    pub failures: u64,
    /// Bytes written to the destination, over every push.
    pub bytes: u64,
}

impl PushStatus {
    fn new() -> Self {
        Self {
            state: PushState::Connecting,
            reason: None,
            since_ms: now_ms(),
            retry_at_ms: None,
            attempts: 0,
            failures: 0,
            bytes: 0,
        }
    }
}

type Shared = Arc<Mutex<PushStatus>>;

fn update(status: &Shared, change: impl FnOnce(&mut PushStatus)) {
    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
    let before = s.state;
    change(&mut s);
    if s.state != before {
        s.since_ms = now_ms();
    }
}

struct Running {
    session_id: String,
    status: Shared,
    stop: watch::Sender<bool>,
}

/// Every destination being pushed to now, by its id.
#[derive(Default)]
pub struct Restreams {
    running: Mutex<HashMap<String, Running>>,
}

impl Restreams {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes the show to `destination` until its studio stops or [`Restreams::stop`]
    /// (idempotent: a destination already pushed to is left alone).
    pub fn start(self: &Arc<Self>, destination: Destination, studio: StudioHandle) {
        let mut running = self.running();
        if running.contains_key(&destination.id) {
            return;
        }
        let status: Shared = Arc::new(Mutex::new(PushStatus::new()));
        let (stop, stopped) = watch::channel(false);
        running.insert(
            destination.id.clone(),
            Running {
                session_id: destination.session_id.clone(),
                status: status.clone(),
                stop,
            },
        );
        drop(running);
        let restreams = self.clone();
        tokio::spawn(async move {
            let id = destination.id.clone();
            push(destination, studio, status, stopped).await;
            restreams.running().remove(&id);
        });
    }

    /// Stops pushing to a destination (removed, or its show ended).
    pub fn stop(&self, destination_id: &str) {
        if let Some(r) = self.running().remove(destination_id) {
            let _ = r.stop.send(true);
        }
    }

    /// A destination's state while its show is live.
    pub fn status(&self, destination_id: &str) -> Option<PushStatus> {
        self.running()
            .get(destination_id)
            .map(|r| r.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Every destination pushed to now: (session, destination, state), for `/metrics`.
    pub fn all(&self) -> Vec<(String, String, PushStatus)> {
        self.running()
            .iter()
            .map(|(id, r)| {
                (
                    r.session_id.clone(),
                    id.clone(),
                    r.status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                )
            })
            .collect()
    }
}

/// Why one push ended.
enum Ended {
    /// The show ended or the destination was removed.
    Stop,
    Failed(String),
}

async fn push(
    destination: Destination,
    studio: StudioHandle,
    status: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let label = format!("{}→{}", destination.session_id, destination.id);
    let hold = studio.hls.hold();
    let mut windows = hold.stream().track(Rendition::Main).subscribe();
    let mut backoff = FIRST_BACKOFF;
    loop {
        update(&status, |s| {
            s.state = PushState::Connecting;
            s.attempts += 1;
            s.retry_at_ms = None;
        });
        let began = Instant::now();
        let ended = match Push::start(&destination) {
            Ok(push) => {
                let ended = push.run(&mut windows, &studio, &mut stop, &status).await;
                // Tearing down closes the connection: it may wait on the network.
                let _ = tokio::task::spawn_blocking(move || push.close()).await;
                ended
            }
            Err(e) => Ended::Failed(e.to_string()),
        };
        let reason = match ended {
            Ended::Stop => break,
            Ended::Failed(reason) => reason,
        };
        if began.elapsed() >= HELD {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(restream = %label, %reason, retry_in_s = backoff.as_secs(), "restream failed; trying again");
        update(&status, |s| {
            s.state = PushState::Retrying;
            s.failures += 1;
            s.reason = Some(reason);
            s.retry_at_ms = Some(now_ms() + backoff.as_millis() as i64);
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
            _ = studio.stopped() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::info!(restream = %label, "restream ends");
}

/// One push: its pipeline, from connecting to failing or stopping.
struct Push {
    pipeline: gst::Pipeline,
    ts: gst_app::AppSrc,
    sink: gst::Element,
}

impl Push {
    fn start(destination: &Destination) -> Result<Self, MediaError> {
        let pipeline = RESTREAM.launch(&[])?;
        let ts = app_src(&pipeline, "ts")?;
        let element = |name: &str| {
            pipeline.by_name(name).ok_or_else(|| MediaError::Build {
                name: RESTREAM.name,
                reason: format!("no element named {name}"),
            })
        };
        let (demux, video, audio, sink) = (
            element("demux")?,
            element("video")?,
            element("audio")?,
            element("sink")?,
        );
        sink.set_property("location", destination.location());
        // The first stream of each kind goes to its branch; others are left unlinked.
        let (video_in, audio_in) = (video.static_pad("sink"), audio.static_pad("sink"));
        demux.connect_pad_added(move |_, pad| {
            let name = pad.name();
            let target = if name.starts_with("video") {
                video_in.as_ref()
            } else if name.starts_with("audio") {
                audio_in.as_ref()
            } else {
                None
            };
            if let Some(target) = target.filter(|t| !t.is_linked()) {
                let _ = pad.link(target);
            }
        });
        play(&pipeline, RESTREAM.name)?;
        Ok(Self { pipeline, ts, sink })
    }

    async fn run(
        &self,
        windows: &mut watch::Receiver<Arc<Snapshot>>,
        studio: &StudioHandle,
        stop: &mut watch::Receiver<bool>,
        status: &Shared,
    ) -> Ended {
        // From the newest complete segment on.
        let mut last: Option<(u64, u64)> = {
            let window = windows.borrow_and_update();
            window
                .segments
                .iter()
                .rev()
                .find(|s| s.whole.is_some())
                .map(|s| (window.epoch, s.msn.saturating_sub(1)))
        };
        let mut check = tokio::time::interval(CHECK_EVERY);
        let mut sent = 0u64;
        let mut progress = Instant::now();
        let mut fed = false;
        loop {
            tokio::select! {
                _ = stop.changed() => return Ended::Stop,
                _ = studio.stopped() => return Ended::Stop,
                changed = windows.changed() => {
                    if changed.is_err() {
                        return Ended::Stop;
                    }
                    let window = windows.borrow_and_update().clone();
                    for s in &window.segments {
                        let Some(whole) = &s.whole else { continue };
                        let new = last.is_none_or(|(epoch, msn)| window.epoch != epoch || s.msn > msn);
                        if !new {
                            continue;
                        }
                        if let Some((epoch, msn)) = last
                            && (epoch != window.epoch || s.msn != msn + 1)
                        {
                            return Ended::Failed("the show's stream restarted".into());
                        }
                        last = Some((window.epoch, s.msn));
                        if self.ts.push_buffer(gst::Buffer::from_slice(whole.bytes.clone())).is_err() {
                            return Ended::Failed("the push pipeline stopped taking media".into());
                        }
                        fed = true;
                    }
                }
                _ = check.tick() => {
                    if let Some(reason) = self.error() {
                        return Ended::Failed(reason);
                    }
                    let now = self.sent_bytes();
                    if now > sent {
                        update(status, |s| {
                            s.state = PushState::Connected;
                            s.reason = None;
                            s.bytes += now - sent;
                        });
                        sent = now;
                        progress = Instant::now();
                    } else if fed && progress.elapsed() >= STALLED {
                        return Ended::Failed(format!(
                            "the destination took nothing for {} s",
                            STALLED.as_secs()
                        ));
                    }
                }
            }
        }
    }

    /// The first error on the pipeline's bus, if any.
    fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(e) => {
                    let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                    // The first line of GStreamer's own words, and the last of its details
                    // (where the socket error is).
                    let detail = debug.lines().last().unwrap_or_default();
                    return Some(if detail.is_empty() {
                        e.error().to_string()
                    } else {
                        format!("{}: {detail}", e.error())
                    });
                }
                gst::MessageView::Eos(_) => return Some("the connection ended".into()),
                _ => {}
            }
        }
        None
    }

    /// Bytes written to the destination's connection on this push (rtmp2sink's `stats`).
    /// Not its acknowledged bytes: a server acknowledges once per window (nginx-rtmp: 5 MB,
    /// 16 s of this stream), too seldom to tell a stall by; a destination that stops reading
    /// stops this too, once the socket's buffer is full.
    fn sent_bytes(&self) -> u64 {
        if !self.sink.has_property("stats") {
            return 0;
        }
        let Ok(stats) = self.sink.property_value("stats").get::<gst::Structure>() else {
            return 0;
        };
        stats.get::<u64>("out-bytes-total").unwrap_or(0)
    }

    fn close(self) {
        let _ = self.ts.end_of_stream();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
