//! The shows: a session's lifecycle from the API and the RTMP ingest. Creating a session,
//! putting it on air (its studio, with the overlays drawn from its live state), ending it, and
//! the links the API hands out. It holds the few handles that takes, and nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::commerce::live::LiveHub;
use crate::record::onscreen::OnscreenRecord;
use crate::record::recording::Recorder;
use crate::store::{SessionRow, Store, StoreError};
use fieldcast_core::ids::{new_stream_key, random_hex, redact};
use fieldcast_core::time::unix_now;
use fieldcast_engine::egress::Egress;
use fieldcast_engine::ingest::{PublishRefused, Publishers};
use fieldcast_engine::overlay::compositor::{Compositor, OverlayCounters};
use fieldcast_engine::studio::{Filler, StudioError, StudioHandle, Studios};

/// Where the server is reached, for the links the API hands out.
#[derive(Debug, Clone)]
pub struct Links {
    /// `public_url`: the base of every link, when set (a proxy or CDN in front).
    pub public_url: Option<String>,
    /// `public_ip`: the host in links when no `public_url` is set.
    pub public_ip: Option<std::net::IpAddr>,
    /// Addresses actually bound (a `:0` port in the settings is resolved here).
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub srt: SocketAddr,
}

impl Links {
    fn host_for(&self, bound: SocketAddr) -> String {
        let ip = match self.public_ip {
            Some(ip) => ip,
            None if bound.ip().is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            None => bound.ip(),
        };
        SocketAddr::new(ip, bound.port()).to_string()
    }

    /// The complete SRT publish URL for a stream key: a publisher uses it as given.
    pub fn srt_url(&self, stream_key: &str) -> String {
        format!("srt://{}?streamid={stream_key}", self.host_for(self.srt))
    }

    /// Base of the links the API hands out.
    pub fn http_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.host_for(self.http)),
        }
    }

    /// The RTMP server URL to put in OBS ("Server"); the stream key goes separately.
    pub fn rtmp_server(&self) -> String {
        format!(
            "rtmp://{}/{}",
            self.host_for(self.rtmp),
            fieldcast_engine::ingest::APP_NAME
        )
    }
}

/// Sessions' lifecycle: a cloneable handle.
#[derive(Clone)]
pub struct Shows {
    pub store: Arc<Store>,
    pub studios: Arc<Studios>,
    pub live: Arc<LiveHub>,
    pub egress: Egress,
    /// Shared by every studio's overlay compositor.
    pub overlay_counters: Arc<OverlayCounters>,
    pub links: Arc<Links>,
    /// Uploaded images (products, image layers), as PNG.
    pub images: PathBuf,
    /// How long a show stays on the slate after its publisher left (`reconnect_grace`).
    pub reconnect_grace: Duration,
    /// Where the compositors' on-screen changes are kept.
    pub onscreen: Arc<OnscreenRecord>,
    /// Records the shows that record (all, unless the operator turned it off).
    pub recorder: Arc<Recorder>,
    /// Pushes the shows to their restream destinations.
    pub restreams: Arc<fieldcast_engine::restream::Restreams>,
}

impl Shows {
    /// Puts a session on air (idempotent): its studio runs until the show ends.
    pub fn go_live(&self, row: &SessionRow) -> Result<StudioHandle, SessionError> {
        if let Some(handle) = self.studios.get(&row.id) {
            return Ok(handle);
        }
        let filler = if row.test_pattern {
            Filler::TestPattern
        } else {
            Filler::Slate
        };
        let live = self.live.session(&row.id);
        let format = self.studios.format();
        let watch_url = format!("{}/watch/{}", self.links.http_base(), row.id);
        let images = self.images.clone();
        let counters = self.overlay_counters.clone();
        let screen_log = self.onscreen.for_session(&row.id);
        let overlay: fieldcast_engine::studio::OverlayFactory = Box::new(move |stats| {
            let mut compositor = Compositor::new(
                live,
                stats,
                format.width,
                format.height,
                watch_url,
                images,
                counters,
            )
            .with_screen_log(screen_log);
            Some(Box::new(
                move |frame: &mut gstreamer::Buffer, info: &gstreamer_video::VideoInfo| {
                    compositor.apply(frame, info)
                },
            ))
        });
        // The demo's test pattern is its own publisher; a real show ends by itself once its
        // publisher stayed away past the grace (viewers see the slate until then).
        let idle: Option<(std::time::Duration, fieldcast_engine::studio::IdleHook)> = if row
            .test_pattern
        {
            None
        } else {
            let shows = self.clone();
            let id = row.id.clone();
            Some((
                self.reconnect_grace,
                Box::new(move || {
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = shows.end_show(&id) {
                            tracing::error!(session.id = %id, error = %e, "could not end the show");
                        }
                    });
                }),
            ))
        };
        let handle = self.studios.start(
            &row.id,
            row.orientation,
            filler,
            self.egress.packet_sink(&row.id),
            overlay,
            idle,
        )?;
        if !row.live {
            self.store.set_session_live(&row.id, true)?;
        }
        if self.store.session_records(&row.id)? {
            self.recorder.start(&row.id, handle.clone());
        }
        for destination in self.store.restreams(&row.id)? {
            self.restreams.start(destination, handle.clone());
        }
        Ok(handle)
    }

    /// Restarts the studios of sessions that were on air when the server stopped.
    pub fn resume_live_sessions(&self) -> Result<(), SessionError> {
        for row in self.store.sessions()?.into_iter().filter(|r| r.live) {
            if let Err(e) = self.go_live(&row) {
                tracing::error!(session.id = %row.id, error = %e, "could not resume session");
            }
        }
        Ok(())
    }

    pub fn create_session(
        &self,
        title: &str,
        test_pattern: bool,
    ) -> Result<SessionRow, StoreError> {
        let row = SessionRow {
            id: random_hex(8),
            title: title.to_string(),
            stream_key: new_stream_key(),
            live: false,
            test_pattern,
            orientation: fieldcast_engine::media::Orientation::Auto,
            created_at: unix_now(),
        };
        self.store.insert_session(&row)?;
        tracing::info!(session.id = %row.id, stream_key = %redact(&row.stream_key), "session created");
        Ok(row)
    }

    pub fn session_state(&self, row: &SessionRow) -> SessionState {
        match self.studios.get(&row.id) {
            None => SessionState::Idle,
            Some(h)
                if h.stats
                    .publisher_connected
                    .load(std::sync::atomic::Ordering::Relaxed) =>
            {
                SessionState::PublisherConnected
            }
            Some(_) => SessionState::Live,
        }
    }

    /// Uploaded images (products, image layers), as PNG.
    pub fn images_dir(&self) -> PathBuf {
        self.images.clone()
    }

    /// Ends the show: the studio stops and the session is idle until it goes live again.
    pub fn end_show(&self, id: &str) -> Result<(), SessionError> {
        self.studios.stop(id);
        self.store.set_session_live(id, false)?;
        Ok(())
    }

    pub fn http_base(&self) -> String {
        self.links.http_base()
    }

    pub fn rtmp_server(&self) -> String {
        self.links.rtmp_server()
    }
}

impl Publishers for Shows {
    fn admit(&self, stream_key: &str) -> Result<(String, StudioHandle), PublishRefused> {
        let row = match self.store.session_by_key(stream_key) {
            Ok(Some(row)) => row,
            Ok(None) => return Err(PublishRefused::UnknownKey),
            Err(e) => {
                tracing::error!(error = %e, "stream key lookup failed");
                return Err(PublishRefused::Unavailable);
            }
        };
        match self.go_live(&row) {
            Ok(studio) => Ok((row.id, studio)),
            Err(e) => {
                tracing::error!(session.id = %row.id, error = %e, "studio did not start");
                Err(PublishRefused::Unavailable)
            }
        }
    }
}

/// What a session is doing, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionState {
    /// Not on air: no studio runs.
    Idle,
    /// On air on the slate (or test pattern): no publisher connected.
    Live,
    /// On air with a publisher connected.
    PublisherConnected,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Studio(#[from] StudioError),
}
