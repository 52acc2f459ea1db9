//! The composition root: [`App::assemble`] builds every part from the settings and the bound
//! sockets and hands each the few handles it uses: the control plane its
//! [`ControlState`](crate::control::ControlState), the RTMP ingest its [`Ingest`], selling's
//! background work the store and its own parts. Only the server's start-up (`server.rs`) and
//! the demo hold the `App`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::commerce::Commerce;
use crate::commerce::buyers::BuyerTokens;
use crate::commerce::devices::DeviceKeys;
use crate::commerce::ledger::{EffectSink, StockLedger};
use crate::commerce::live::LiveHub;
use crate::config::Settings;
use crate::control::client::{PublicLimits, PublicRates};
use crate::control::{ControlParts, ControlState, OperatorToken};
use crate::record::onscreen::OnscreenRecord;
use crate::record::recording::Recorder;
use crate::shows::{Links, Shows};
use crate::store::Store;
use fieldcast_engine::egress::Egress;
use fieldcast_engine::hls::HlsCounters;
use fieldcast_engine::ingest::Ingest;
use fieldcast_engine::ingest::health::IngestBoard;
use fieldcast_engine::ingest::limits::IngestLimits;
use fieldcast_engine::ingest::whip::Whip;
use fieldcast_engine::media::OutputFormat;
use fieldcast_engine::overlay::compositor::OverlayCounters;
use fieldcast_engine::studio::Studios;

/// How often idle per-address budgets of the public routes are forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(1);

pub struct App {
    /// Sessions' lifecycle and the links the API hands out.
    pub shows: Shows,
    pub commerce: Commerce,
    /// What the HTTP control plane is given.
    pub control: ControlState,
    /// What the RTMP listener is given.
    pub ingest: Ingest,
    /// Set once on SIGTERM: new requests are refused and live streams end.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub api_token: String,
    /// Addresses actually bound (a `:0` port in the settings is resolved here).
    pub bound: Bound,
}

/// The addresses the server's listeners actually bound.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// SRT ingest (UDP).
    pub srt: SocketAddr,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Wires the parts together and starts the stock ledger and selling's background work.
    pub fn assemble(
        settings: Settings,
        store: Store,
        (egress, whip): (Egress, Whip),
        api_token: String,
        devices: DeviceKeys,
        bound: Bound,
    ) -> anyhow::Result<AppState> {
        let settings = Arc::new(settings);
        let store = Arc::new(store);
        let images = settings.data.join("images");
        let studios = Arc::new(Studios::new(OutputFormat::default(), settings.hls_idle));
        let live = Arc::new(LiveHub::new(
            tokio::runtime::Handle::current(),
            store.clone(),
            studios.clone(),
            images.clone(),
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
        let ledger =
            StockLedger::start(store.connect()?, effects, crate::control::outcome::render)?;
        let commerce = Commerce {
            ledger,
            live,
            webhook_wake,
        };
        let overlay_counters = Arc::new(OverlayCounters::default());
        let onscreen = OnscreenRecord::start(store.connect()?)?;
        let recorder = Recorder::open(
            settings.data.join("recordings"),
            store.clone(),
            settings.recording_budget,
            settings.recording_retention,
            settings
                .recording_store
                .as_deref()
                .map(crate::record::archive::Archive::open)
                .transpose()?,
        )?;
        recorder.spawn_sweeper();
        recorder.spawn_archive_check();
        let shows = Shows {
            store: store.clone(),
            studios: studios.clone(),
            live: commerce.live.clone(),
            egress: egress.clone(),
            overlay_counters: overlay_counters.clone(),
            links: Arc::new(Links {
                public_url: settings.public_url.clone(),
                public_ip: settings.public_ip,
                http: bound.http,
                rtmp: bound.rtmp,
                srt: bound.srt,
            }),
            images,
            reconnect_grace: settings.reconnect_grace,
            onscreen,
            recorder,
            restreams: Arc::new(fieldcast_engine::restream::Restreams::default()),
        };
        let ingest = Ingest {
            publishers: Arc::new(shows.clone()),
            limits: Arc::new(IngestLimits::new(
                settings.rtmp_max_connections,
                settings.rtmp_max_connections_per_address,
                settings.ipv6_prefix,
            )),
            board: Arc::new(IngestBoard::default()),
        };
        let public = Arc::new(PublicLimits::new(PublicRates {
            orders: settings.rate_orders,
            orders_per_address: settings.rate_orders_per_address,
            likes: settings.rate_likes,
            whep: settings.rate_whep,
            devices: settings.rate_devices,
            max_events_per_address: settings.max_events_per_address,
        }));
        let shutdown = tokio::sync::watch::Sender::new(false);
        let control = ControlState::new(ControlParts {
            shows: shows.clone(),
            store: store.clone(),
            studios,
            live: commerce.live.clone(),
            ledger: commerce.ledger.clone(),
            public: public.clone(),
            devices,
            buyer_tokens: Arc::new(BuyerTokens::new(
                settings.buyer_tokens.secret.clone(),
                settings.buyer_tokens.jwks_url.clone(),
                settings.buyer_tokens.issuer.clone(),
                settings.buyer_tokens.audience.clone(),
            )),
            egress,
            whip,
            hls: Arc::new(HlsCounters::new(settings.hls_max_waiting)),
            connections: crate::connections::Connections::new(
                match settings.http_max_connections {
                    0 => crate::connections::default_max_connections(),
                    n => n,
                },
                settings.http_max_connections_per_address,
                settings.trusted_proxies.clone(),
                settings.ipv6_prefix,
            ),
            ingest: ingest.limits.clone(),
            ingest_health: ingest.board.clone(),
            overlay_counters,
            recorder: shows.recorder.clone(),
            restreams: shows.restreams.clone(),
            onscreen: shows.onscreen.clone(),
            shutdown: shutdown.clone(),
            operator: OperatorToken(Arc::from(api_token.as_str())),
            metrics_token: crate::control::MetricsToken(
                settings.metrics_token.as_deref().map(Arc::from),
            ),
            settings: settings.clone(),
        });
        crate::commerce::spawn_background(&commerce, store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_IDLE_EVERY);
            loop {
                tick.tick().await;
                public.forget_idle();
            }
        });
        Ok(AppState(Arc::new(App {
            shows,
            commerce,
            control,
            ingest,
            shutdown,
            api_token,
            bound,
        })))
    }
}
