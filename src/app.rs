//! App: the shared handles every part of the server reaches (store, studios, egress), and the
//! session lifecycle that ties them together.

use fieldcast_core::ids::{new_stream_key, random_hex, redact};
use fieldcast_core::time::unix_now;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::commerce::Commerce;
use crate::commerce::devices::DeviceKeys;
use crate::commerce::ledger::{EffectSink, StockLedger};
use crate::commerce::live::LiveHub;
use crate::config::Settings;
use crate::control::client::{PublicLimits, PublicRates};
use crate::store::{SessionRow, Store, StoreError};
use fieldcast_engine::egress::Egress;
use fieldcast_engine::ingest::limits::IngestLimits;
use fieldcast_engine::ingest::{Ingest, PublishRefused, Publishers};
use fieldcast_engine::media::OutputFormat;
use fieldcast_engine::overlay::compositor::{Compositor, OverlayCounters};
use fieldcast_engine::studio::{Filler, StudioError, StudioHandle, Studios};

pub struct App {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub studios: Arc<Studios>,
    pub egress: Egress,
    pub commerce: Commerce,
    /// Shared by every studio's overlay compositor.
    pub overlay_counters: Arc<OverlayCounters>,
    /// RTMP connection caps and counters.
    pub ingest: Arc<IngestLimits>,
    /// What the ingest path sees of each session's publisher.
    pub ingest_health: Arc<fieldcast_engine::ingest::health::IngestBoard>,
    /// Rate limits per client address on the public routes.
    pub public: PublicLimits,
    /// Device tokens and address keys for the public routes (`commerce::devices`).
    pub devices: DeviceKeys,
    /// Buyer tokens from a shop's own login (`commerce::buyers`).
    pub buyer_tokens: crate::commerce::buyers::BuyerTokens,
    /// HLS requests served and waiting, over every studio.
    pub hls: fieldcast_engine::hls::HlsCounters,
    /// Set once on SIGTERM: new requests are refused and live streams end.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub api_token: String,
    /// Addresses actually bound (a `:0` port in the settings is resolved here).
    pub http_addr: SocketAddr,
    pub rtmp_addr: SocketAddr,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl AppState {
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
        let live = self.commerce.live.session(&row.id);
        let format = self.studios.format();
        let watch_url = format!("{}/watch/{}", self.http_base(), row.id);
        let images = self.images_dir();
        let counters = self.overlay_counters.clone();
        let overlay: fieldcast_engine::studio::OverlayFactory = Box::new(move |stats| {
            let mut compositor = Compositor::new(
                live,
                stats,
                format.width,
                format.height,
                watch_url,
                images,
                counters,
            );
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
            let app = self.clone();
            let id = row.id.clone();
            Some((
                self.settings.reconnect_grace,
                Box::new(move || {
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = app.end_show(&id) {
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
}

/// The RTMP ingest asks here which session a stream key publishes to, and puts it on air.
impl Publishers for AppState {
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

impl AppState {
    /// What the RTMP listener needs: who may publish, the caps, the health board.
    pub fn ingest(&self) -> Ingest {
        Ingest {
            publishers: Arc::new(self.clone()),
            limits: self.ingest.clone(),
            board: self.ingest_health.clone(),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
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

impl App {
    /// Wires the parts together and starts the stock ledger and selling's background work.
    pub fn assemble(
        settings: Settings,
        store: Store,
        egress: Egress,
        api_token: String,
        devices: DeviceKeys,
        http_addr: SocketAddr,
        rtmp_addr: SocketAddr,
    ) -> anyhow::Result<AppState> {
        let store = Arc::new(store);
        let studios = Arc::new(Studios::new(OutputFormat::default(), settings.hls_idle));
        let live = Arc::new(LiveHub::new(
            tokio::runtime::Handle::current(),
            store.clone(),
            studios.clone(),
            settings.data.join("images"),
            settings.toast_buyer,
        ));
        let webhook_wake = Arc::new(tokio::sync::Notify::new());
        // The ledger reports each commit to the live state and wakes the webhooks.
        let effects: EffectSink = {
            let (live, wake) = (live.clone(), webhook_wake.clone());
            Arc::new(move |effects| {
                live.apply(effects);
                wake.notify_one();
            })
        };
        let ledger = StockLedger::start(store.connect()?, effects)?;
        let commerce = Commerce {
            ledger,
            live,
            webhook_wake,
        };
        let app = AppState(Arc::new(App {
            store,
            studios,
            egress,
            commerce,
            overlay_counters: Arc::new(OverlayCounters::default()),
            shutdown: tokio::sync::watch::Sender::new(false),
            hls: Default::default(),
            public: PublicLimits::new(PublicRates {
                orders: settings.rate_orders,
                orders_per_address: settings.rate_orders_per_address,
                likes: settings.rate_likes,
                whep: settings.rate_whep,
                devices: settings.rate_devices,
                max_events_per_address: settings.max_events_per_address,
            }),
            ingest: Arc::new(IngestLimits::new(
                settings.rtmp_max_connections,
                settings.rtmp_max_connections_per_address,
            )),
            ingest_health: Default::default(),
            api_token,
            devices,
            buyer_tokens: crate::commerce::buyers::BuyerTokens::new(
                settings.buyer_tokens.secret.clone(),
                settings.buyer_tokens.jwks_url.clone(),
                settings.buyer_tokens.issuer.clone(),
                settings.buyer_tokens.audience.clone(),
            ),
            http_addr,
            rtmp_addr,
            settings,
        }));
        crate::commerce::spawn_background(app.clone());
        Ok(app)
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
    pub fn images_dir(&self) -> std::path::PathBuf {
        self.settings.data.join("images")
    }

    /// Ends the show: the studio stops and the session is idle until it goes live again.
    pub fn end_show(&self, id: &str) -> Result<(), SessionError> {
        self.studios.stop(id);
        self.store.set_session_live(id, false)?;
        Ok(())
    }

    fn host_for(&self, bound: SocketAddr) -> String {
        let ip = match self.settings.public_ip {
            Some(ip) => ip,
            None if bound.ip().is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            None => bound.ip(),
        };
        SocketAddr::new(ip, bound.port()).to_string()
    }

    /// Base of the links the API hands out.
    pub fn http_base(&self) -> String {
        match &self.settings.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.host_for(self.http_addr)),
        }
    }

    /// The RTMP server URL to put in OBS ("Server"); the stream key goes separately.
    pub fn rtmp_server(&self) -> String {
        format!(
            "rtmp://{}/{}",
            self.host_for(self.rtmp_addr),
            fieldcast_engine::ingest::APP_NAME
        )
    }
}
