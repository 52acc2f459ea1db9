//! `fieldcast serve`: opens the store, checks GStreamer, binds the three sockets, resumes the
//! sessions that were on air, and runs until Ctrl-C or SIGTERM.

use std::path::Path;

use crate::app::{App, AppState, Bound};
use crate::commerce::devices::DeviceKeys;
use crate::config::Settings;
use crate::store::Store;
use fieldcast_core::ids::{random_hex, redact};
use fieldcast_engine::egress::Egress;
use fieldcast_engine::ingest::whip::Whip;
use fieldcast_engine::media;

/// Title of the session `--demo` creates.
pub const DEMO_TITLE: &str = "Demo: rose jam from the greenhouse";

/// Reads the operator token from the settings or the data directory, or makes one.
fn operator_token(settings: &Settings) -> anyhow::Result<String> {
    if let Some(token) = &settings.api_token {
        return Ok(token.clone());
    }
    let path = settings.data.join("api-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let token = format!("fc_{}", random_hex(24));
    write_private(&path, &token)?;
    // Never the token itself: the output is a terminal's scrollback, `docker logs` or the
    // journal, which more people read than the token's file.
    println!(
        "operator token generated and stored in {} (read it: cat {})",
        path.display(),
        path.display()
    );
    Ok(token)
}

/// The secret that signs device tokens and keys addresses (`commerce::devices`): read from
/// the data directory, or made there (0600) on first start. Kept across restarts, so pages'
/// tokens stay good.
fn device_keys(settings: &Settings) -> anyhow::Result<DeviceKeys> {
    let path = settings.data.join("device-secret");
    let parse = |text: &str| -> Option<[u8; 32]> {
        let text = text.trim();
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        bytes.try_into().ok()
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        return parse(&text).map(DeviceKeys::new).ok_or_else(|| {
            anyhow::anyhow!(
                "{} is not 64 hex digits: remove it to make a new one (pages then ask for new device tokens)",
                path.display()
            )
        });
    }
    let secret: [u8; 32] = rand::random();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &hex)?;
    Ok(DeviceKeys::new(secret))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    crate::files::write_durably(path, contents.as_bytes(), true)?;
    Ok(())
}

/// Makes aws-lc-rs the process's TLS crypto for outgoing HTTPS (webhooks, a shop's JWKS, the
/// WHEP client). Called before any HTTP agent is made; a second call does nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub async fn serve(settings: Settings, demo: bool) -> anyhow::Result<()> {
    install_tls_provider();
    fieldcast_engine::process::raise_fd_limit();
    std::fs::create_dir_all(&settings.data).map_err(|e| {
        anyhow::anyhow!(
            "setting `data`: cannot create {}: {e}",
            settings.data.display()
        )
    })?;
    media::init()?;
    // Temporaries of writes a crash cut short (photos, tokens).
    for dir in [
        settings.data.clone(),
        settings.data.join("images"),
        settings.data.join("images").join("by-hash"),
    ] {
        crate::files::remove_leftovers(&dir);
    }
    let store = Store::open(&settings.data.join("fieldcast.db"))?;
    let api_token = operator_token(&settings)?;
    let devices = device_keys(&settings)?;
    let pending = fieldcast_engine::slots::AddressSlots::new(
        settings.whep_max_pending,
        settings.whep_max_pending_per_address,
    );
    let egress = Egress::start(
        settings.webrtc_udp,
        settings.webrtc_tcp,
        settings.public_ip,
        pending,
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "setting `webrtc_udp` or `webrtc_tcp`: cannot bind {} (UDP) or {} (TCP): {e}",
            settings.webrtc_udp,
            settings
                .webrtc_tcp
                .map_or("off".to_string(), |a| a.to_string())
        )
    })?;
    let whip = Whip::start(settings.whip_udp, settings.public_ip)
        .await
        .map_err(|e| {
            anyhow::anyhow!("setting `whip_udp`: cannot bind {}: {e}", settings.whip_udp)
        })?;
    let http = listen(settings.http)
        .map_err(|e| anyhow::anyhow!("setting `http`: cannot bind {}: {e}", settings.http))?;
    let rtmp = tokio::net::TcpListener::bind(settings.rtmp)
        .await
        .map_err(|e| anyhow::anyhow!("setting `rtmp`: cannot bind {}: {e}", settings.rtmp))?;
    let (srt_listener, srt_incoming, srt) = fieldcast_engine::ingest::srt::bind(settings.srt)
        .await
        .map_err(|e| anyhow::anyhow!("setting `srt`: cannot bind {}: {e}", settings.srt))?;
    let bound = Bound {
        http: http.local_addr()?,
        rtmp: rtmp.local_addr()?,
        srt,
    };
    let app = App::assemble(settings, store, (egress, whip), api_token, devices, bound)?;
    app.shows.resume_live_sessions()?;
    if demo {
        start_demo(&app)?;
    }
    tokio::spawn(fieldcast_engine::ingest::serve(rtmp, app.ingest.clone()));
    tokio::spawn(fieldcast_engine::ingest::srt::serve(
        srt_listener,
        srt_incoming,
        app.ingest.clone(),
    ));
    let router = crate::control::router(app.control.clone());
    println!("console:       {}/console", app.shows.http_base());
    // One machine-readable line for scripts and tests.
    println!(
        "fieldcast ready http={} rtmp={} webrtc={} srt={} whip={} webrtc_tcp={}",
        app.bound.http,
        app.bound.rtmp,
        app.control.egress.local,
        app.bound.srt,
        app.control.whip.local,
        app.control
            .egress
            .local_tcp
            .map_or("off".to_string(), |a| a.to_string())
    );
    tracing::info!(http = %app.bound.http, rtmp = %app.bound.rtmp, srt = %app.bound.srt, webrtc = %app.control.egress.local, "listening");
    let stopping = app.clone();
    crate::connections::serve(http, router, app.control.connections.clone(), async move {
        shutdown_signal().await;
        // New requests are refused from here; SSE streams send `end` and close, so the
        // server's wait for open connections ends.
        tracing::info!("shutting down: refusing new work");
        stopping.shutdown.send_replace(true);
        let viewers = stopping.control.egress.end_all().await;
        tracing::info!(viewers, "viewers' sessions closed");
    })
    .await;
    crate::commerce::flush_likes(&app.commerce.live, &app.shows.store);
    // Every order the ledger has taken is answered; then its database connection closes.
    app.commerce.ledger.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Pending connections the HTTP listener queues: a flash sale opens thousands at once, and
/// a full queue makes clients wait a whole SYN retransmit (1 s). Capped by net.core.somaxconn.
pub const HTTP_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(HTTP_BACKLOG)
}

/// The demo session: created once, on air at once with the built-in test pattern.
fn start_demo(app: &AppState) -> anyhow::Result<()> {
    let existing = app
        .shows
        .store
        .sessions()?
        .into_iter()
        .find(|r| r.test_pattern);
    let row = match existing {
        Some(row) => row,
        None => app.shows.create_session(DEMO_TITLE, true)?,
    };
    app.shows.go_live(&row)?;
    let base = app.shows.http_base();
    println!("demo session {}:", row.id);
    println!("  watch:       {base}/watch/{}", row.id);
    println!("  OBS server:  {}", app.shows.rtmp_server());
    // Masked like every key in the output; the console shows it to the operator.
    println!(
        "  stream key:  {} (the console shows it whole)",
        redact(&row.stream_key)
    );
    tracing::info!(session.id = %row.id, stream_key = %redact(&row.stream_key), "demo session on air");
    crate::demo::start(app.bound.http, &app.api_token, &row.id);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
