//! Settings: defaults → TOML file → `FIELDCAST_*` environment → flags, then validation.
//!
//! Clap reads flags and their environment variables (a flag beats its variable); the TOML
//! file sits below both. Every error names the setting it is about.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
pub const DEFAULT_RTMP: &str = "127.0.0.1:1935";
pub const DEFAULT_SRT: &str = "127.0.0.1:8890";
pub const DEFAULT_WEBRTC_UDP: &str = "127.0.0.1:8189";
pub const DEFAULT_WHIP_UDP: &str = "127.0.0.1:8190";
/// ICE-TCP for viewers whose network drops UDP: the WebRTC port's number, on TCP.
pub const DEFAULT_WEBRTC_TCP: &str = "127.0.0.1:8189";
pub const DEFAULT_DATA: &str = "./data";

/// The flags of `fieldcast serve`; each also reads `FIELDCAST_<NAME>`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// HTTP address for the API, WHEP and the pages [default: 127.0.0.1:8080]
    #[arg(long, env = "FIELDCAST_HTTP")]
    pub http: Option<String>,
    /// RTMP ingest address [default: 127.0.0.1:1935]
    #[arg(long, env = "FIELDCAST_RTMP")]
    pub rtmp: Option<String>,
    /// SRT ingest address (UDP) [default: 127.0.0.1:8890]
    #[arg(long, env = "FIELDCAST_SRT")]
    pub srt: Option<String>,
    /// Directory for the SQLite database and uploads [default: ./data]
    #[arg(long, env = "FIELDCAST_DATA")]
    pub data: Option<PathBuf>,
    /// Operator bearer token; generated and stored in the data directory when unset
    #[arg(long, env = "FIELDCAST_API_TOKEN")]
    pub api_token: Option<String>,
    /// UDP address of the one WebRTC socket that serves all viewers [default: 127.0.0.1:8189]
    #[arg(long, env = "FIELDCAST_WEBRTC_UDP")]
    pub webrtc_udp: Option<String>,
    /// TCP address where viewers whose network drops UDP reach WebRTC (ICE-TCP, RFC 6544),
    /// or `off` [default: 127.0.0.1:8189]
    #[arg(long, env = "FIELDCAST_WEBRTC_TCP")]
    pub webrtc_tcp: Option<String>,
    /// UDP address of the one WebRTC socket for WHIP publishers [default: 127.0.0.1:8190]
    #[arg(long, env = "FIELDCAST_WHIP_UDP")]
    pub whip_udp: Option<String>,
    /// Public IP announced in SDP answers (NAT 1:1, Docker); default: the UDP bind address
    #[arg(long, env = "FIELDCAST_PUBLIC_IP")]
    pub public_ip: Option<String>,
    /// Base URL that links (watch_url, whep_url, rtmp_url) use; default from --http
    #[arg(long, env = "FIELDCAST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// RTMP connections open at once, from everyone [default: 256]
    #[arg(long, env = "FIELDCAST_RTMP_MAX_CONNECTIONS")]
    pub rtmp_max_connections: Option<usize>,
    /// RTMP connections open at once from one IP address [default: 8]
    #[arg(long, env = "FIELDCAST_RTMP_MAX_CONNECTIONS_PER_ADDRESS")]
    pub rtmp_max_connections_per_address: Option<usize>,
    /// Proxies whose X-Forwarded-For is believed, comma-separated IPs [default: none]
    #[arg(long, env = "FIELDCAST_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// TURN servers the watch page may relay WebRTC through, comma-separated
    /// (`turn:HOST:3478?transport=udp,turns:HOST:443?transport=tcp`) [default: none]
    #[arg(long, env = "FIELDCAST_TURN_URLS")]
    pub turn_urls: Option<String>,
    /// The TURN servers' shared secret (coturn's `use-auth-secret`/`static-auth-secret`):
    /// viewers get time-limited credentials made with it
    #[arg(long, env = "FIELDCAST_TURN_SECRET")]
    pub turn_secret: Option<String>,
    /// Bits of an IPv6 client address that per-address limits key on (the rest is one
    /// subscriber's) [default: 64]
    #[arg(long, env = "FIELDCAST_IPV6_PREFIX")]
    pub ipv6_prefix: Option<u8>,
    /// HTTP connections open at once, from everyone [default: the open-file limit less 4096]
    #[arg(long, env = "FIELDCAST_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// HTTP connections open at once from one client network; trusted proxies are not
    /// capped [default: 4096]
    #[arg(long, env = "FIELDCAST_HTTP_MAX_CONNECTIONS_PER_ADDRESS")]
    pub http_max_connections_per_address: Option<usize>,
    /// LL-HLS blocking requests held at once, from everyone; past it they answer 503
    /// [default: 8192]
    #[arg(long, env = "FIELDCAST_HLS_MAX_WAITING")]
    pub hls_max_waiting: Option<usize>,
    /// Bearer token /metrics asks for; unset, /metrics is open [default: none]
    #[arg(long, env = "FIELDCAST_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// File holding the metrics token (a container secret), instead of metrics_token
    #[arg(long, env = "FIELDCAST_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Orders per client address, as BURST:PER_SECOND [default: 5:0.5]
    #[arg(long, env = "FIELDCAST_RATE_ORDERS")]
    pub rate_orders: Option<String>,
    /// Like requests per client address, as BURST:PER_SECOND [default: 40:20]
    #[arg(long, env = "FIELDCAST_RATE_LIKES")]
    pub rate_likes: Option<String>,
    /// WHEP offers per client address, as BURST:PER_SECOND [default: 10:1]
    #[arg(long, env = "FIELDCAST_RATE_WHEP")]
    pub rate_whep: Option<String>,
    /// Device tokens minted per client address, as BURST:PER_SECOND [default: 200:5]
    #[arg(long, env = "FIELDCAST_RATE_DEVICES")]
    pub rate_devices: Option<String>,
    /// Orders per client address from pages with device tokens (whose own limit is
    /// rate_orders, per device): a flood cap, as BURST:PER_SECOND [default: 1000:100]
    #[arg(long, env = "FIELDCAST_RATE_ORDERS_PER_ADDRESS")]
    pub rate_orders_per_address: Option<String>,
    /// Country calling code that national phone numbers (no + or 00) belong to, for the
    /// per-buyer limit; "" keeps them as typed [default: 86]
    #[arg(long, env = "FIELDCAST_PHONE_COUNTRY_CODE")]
    pub phone_country_code: Option<String>,
    /// Share of each offer one network (an IPv4 address or an IPv6 /64) may buy, in percent,
    /// at least 10 units; 0 turns it off [default: 20]
    #[arg(long, env = "FIELDCAST_ADDRESS_SHARE_PERCENT")]
    pub address_share_percent: Option<u8>,
    /// Shared secret for buyer tokens signed HS256 by the shop's own login (`Fieldcast-Buyer`
    /// on orders); best given by environment or file, not on the command line [default: none]
    #[arg(long, env = "FIELDCAST_BUYER_TOKEN_SECRET", hide_env_values = true)]
    pub buyer_token_secret: Option<String>,
    /// JWKS URL of the shop's login, for buyer tokens signed RS256 or ES256 [default: none]
    #[arg(long, env = "FIELDCAST_BUYER_TOKEN_JWKS_URL")]
    pub buyer_token_jwks_url: Option<String>,
    /// The `iss` buyer tokens must carry [default: not checked]
    #[arg(long, env = "FIELDCAST_BUYER_TOKEN_ISSUER")]
    pub buyer_token_issuer: Option<String>,
    /// The `aud` buyer tokens must name [default: not checked]
    #[arg(long, env = "FIELDCAST_BUYER_TOKEN_AUDIENCE")]
    pub buyer_token_audience: Option<String>,
    /// Live-state (SSE) streams open at once per client address [default: 16]
    #[arg(long, env = "FIELDCAST_MAX_EVENTS_PER_ADDRESS")]
    pub max_events_per_address: Option<usize>,
    /// WebRTC viewers of one session; past it WHEP answers 503 [default: 500]
    #[arg(long, env = "FIELDCAST_MAX_VIEWERS_PER_SESSION")]
    pub max_viewers_per_session: Option<usize>,
    /// WHEP viewers not yet connected, from everyone [default: 256]
    #[arg(long, env = "FIELDCAST_WHEP_MAX_PENDING")]
    pub whep_max_pending: Option<usize>,
    /// WHEP viewers not yet connected, from one client address [default: 8]
    #[arg(long, env = "FIELDCAST_WHEP_MAX_PENDING_PER_ADDRESS")]
    pub whep_max_pending_per_address: Option<usize>,
    /// What a purchase toast on the video shows: name-and-city, city or nothing [default: name-and-city]
    #[arg(long, env = "FIELDCAST_TOAST_BUYER")]
    pub toast_buyer: Option<String>,
    /// Seconds a show waits for its publisher to come back (viewers see the slate) before it ends [default: 30]
    #[arg(long, env = "FIELDCAST_RECONNECT_GRACE")]
    pub reconnect_grace: Option<u64>,
    /// Seconds HLS keeps running after its last request [default: 60]
    #[arg(long, env = "FIELDCAST_HLS_IDLE")]
    pub hls_idle: Option<u64>,
    /// Megabytes all recordings may take under DATA/recordings; the oldest go first [default: 10240]
    #[arg(long, env = "FIELDCAST_RECORDING_BUDGET_MB")]
    pub recording_budget_mb: Option<u64>,
    /// Days a recording is kept [default: 30]
    #[arg(long, env = "FIELDCAST_RECORDING_RETENTION_DAYS")]
    pub recording_retention_days: Option<u64>,
    /// An S3-compatible object store recordings move to, s3://BUCKET/PREFIX (credentials and endpoint from AWS_* variables) [default: none, they stay on disk]
    #[arg(long, env = "FIELDCAST_RECORDING_STORE")]
    pub recording_store: Option<String>,
    /// TOML file with any of the settings above (keys as the flags, with underscores)
    #[arg(long, env = "FIELDCAST_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file: every key optional, same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    http: Option<String>,
    rtmp: Option<String>,
    srt: Option<String>,
    data: Option<PathBuf>,
    api_token: Option<String>,
    webrtc_udp: Option<String>,
    webrtc_tcp: Option<String>,
    whip_udp: Option<String>,
    public_ip: Option<String>,
    public_url: Option<String>,
    rtmp_max_connections: Option<usize>,
    rtmp_max_connections_per_address: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    turn_urls: Option<Vec<String>>,
    turn_secret: Option<String>,
    ipv6_prefix: Option<u8>,
    http_max_connections: Option<usize>,
    http_max_connections_per_address: Option<usize>,
    hls_max_waiting: Option<usize>,
    metrics_token: Option<String>,
    metrics_token_file: Option<PathBuf>,
    rate_orders: Option<String>,
    rate_likes: Option<String>,
    rate_whep: Option<String>,
    max_events_per_address: Option<usize>,
    max_viewers_per_session: Option<usize>,
    whep_max_pending: Option<usize>,
    whep_max_pending_per_address: Option<usize>,
    rate_devices: Option<String>,
    rate_orders_per_address: Option<String>,
    address_share_percent: Option<u8>,
    phone_country_code: Option<String>,
    buyer_token_secret: Option<String>,
    buyer_token_jwks_url: Option<String>,
    buyer_token_issuer: Option<String>,
    buyer_token_audience: Option<String>,
    toast_buyer: Option<String>,
    reconnect_grace: Option<u64>,
    hls_idle: Option<u64>,
    recording_budget_mb: Option<u64>,
    recording_retention_days: Option<u64>,
    recording_store: Option<String>,
}

/// Where buyer tokens' keys come from, and what they must say (`commerce::buyers`).
#[derive(Debug, Clone, Default)]
pub struct BuyerTokenSettings {
    pub secret: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

impl Rate {
    fn parse(name: &'static str, text: &str) -> Result<Self, ConfigError> {
        let bad = || {
            invalid(
                name,
                format!(
                    "{text:?} is not BURST:PER_SECOND, e.g. 5:0.5 (five at once, then one every 2 s)"
                ),
            )
        };
        let (burst, rate) = text.split_once(':').ok_or_else(bad)?;
        let burst: f64 = burst.trim().parse().map_err(|_| bad())?;
        let per_second: f64 = rate.trim().parse().map_err(|_| bad())?;
        if !(burst >= 1.0 && burst.is_finite() && per_second > 0.0 && per_second.is_finite()) {
            return Err(bad());
        }
        Ok(Rate { burst, per_second })
    }
}

/// What a purchase toast burned into the video says about the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastBuyer {
    /// "Aysha from Kashgar"
    NameAndCity,
    /// "someone from Kashgar"
    City,
    /// "someone"
    Nothing,
}

/// TURN servers for viewers, with the secret their time-limited credentials are made with.
#[derive(Clone)]
pub struct Turn {
    pub urls: Vec<String>,
    pub secret: String,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("urls", &self.urls)
            .field("secret", &"(set)")
            .finish()
    }
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// SRT ingest (UDP).
    pub srt: SocketAddr,
    pub data: PathBuf,
    pub api_token: Option<String>,
    pub webrtc_udp: SocketAddr,
    /// ICE-TCP for viewers (`None`: off).
    pub webrtc_tcp: Option<SocketAddr>,
    /// WHIP publishers' WebRTC (UDP).
    pub whip_udp: SocketAddr,
    pub public_ip: Option<IpAddr>,
    pub public_url: Option<String>,
    pub rtmp_max_connections: usize,
    pub rtmp_max_connections_per_address: usize,
    /// Canonical (an IPv4-mapped address as IPv4), as client addresses are compared.
    pub trusted_proxies: Vec<IpAddr>,
    /// TURN servers for viewers' ICE, and their shared secret (both or neither).
    pub turn: Option<Turn>,
    pub ipv6_prefix: u8,
    pub http_max_connections: usize,
    pub http_max_connections_per_address: usize,
    pub hls_max_waiting: usize,
    pub metrics_token: Option<String>,
    pub rate_orders: Rate,
    pub rate_likes: Rate,
    pub rate_whep: Rate,
    pub rate_devices: Rate,
    pub rate_orders_per_address: Rate,
    pub address_share_percent: u8,
    pub phone_country_code: String,
    pub buyer_tokens: BuyerTokenSettings,
    pub max_events_per_address: usize,
    pub max_viewers_per_session: usize,
    pub whep_max_pending: usize,
    pub whep_max_pending_per_address: usize,
    pub toast_buyer: ToastBuyer,
    pub reconnect_grace: std::time::Duration,
    pub hls_idle: std::time::Duration,
    /// All recordings together, at most (bytes).
    pub recording_budget: u64,
    pub recording_retention: std::time::Duration,
    /// Where recordings move to once written (`s3://BUCKET/PREFIX`), if anywhere.
    pub recording_store: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{name}`: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn addr(name: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        invalid(
            name,
            format!("{value:?} is not an address like 127.0.0.1:8080"),
        )
    })
}

impl Settings {
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let pick = |flag: &Option<String>, file: &Option<String>, default: &str| {
            flag.clone()
                .or_else(|| file.clone())
                .unwrap_or_else(|| default.to_string())
        };
        let http = addr("http", &pick(&args.http, &file.http, DEFAULT_HTTP))?;
        let rtmp = addr("rtmp", &pick(&args.rtmp, &file.rtmp, DEFAULT_RTMP))?;
        let srt = addr("srt", &pick(&args.srt, &file.srt, DEFAULT_SRT))?;
        let webrtc_udp = addr(
            "webrtc_udp",
            &pick(&args.webrtc_udp, &file.webrtc_udp, DEFAULT_WEBRTC_UDP),
        )?;
        let webrtc_tcp = match pick(&args.webrtc_tcp, &file.webrtc_tcp, DEFAULT_WEBRTC_TCP) {
            off if off == "off" => None,
            bind => Some(addr("webrtc_tcp", &bind)?),
        };
        let whip_udp = addr(
            "whip_udp",
            &pick(&args.whip_udp, &file.whip_udp, DEFAULT_WHIP_UDP),
        )?;
        let data = args
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let api_token = args.api_token.clone().or(file.api_token);
        let public_ip = match args.public_ip.clone().or(file.public_ip) {
            Some(ip) => Some(
                ip.parse::<IpAddr>()
                    .map_err(|_| invalid("public_ip", format!("{ip:?} is not an IP address")))?,
            ),
            None => None,
        };
        let public_url = args.public_url.clone().or(file.public_url);
        let rtmp_max_connections = args
            .rtmp_max_connections
            .or(file.rtmp_max_connections)
            .unwrap_or(fieldcast_engine::ingest::limits::DEFAULT_MAX_CONNECTIONS);
        let rtmp_max_connections_per_address = args
            .rtmp_max_connections_per_address
            .or(file.rtmp_max_connections_per_address)
            .unwrap_or(fieldcast_engine::ingest::limits::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS);
        let trusted_proxies = match args
            .trusted_proxies
            .as_ref()
            .map(|list| list.split(',').map(|s| s.trim().to_string()).collect())
            .or(file.trusted_proxies)
        {
            Some(list) => list
                .iter()
                .filter(|s: &&String| !s.is_empty())
                .map(|s| {
                    s.parse::<IpAddr>()
                        .map(|ip| ip.to_canonical())
                        .map_err(|_| {
                            invalid("trusted_proxies", format!("{s:?} is not an IP address"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let turn_urls: Vec<String> = args
            .turn_urls
            .as_ref()
            .map(|list| list.split(',').map(|s| s.trim().to_string()).collect())
            .or(file.turn_urls.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|s: &String| !s.is_empty())
            .collect();
        let turn = match (
            turn_urls.is_empty(),
            args.turn_secret.clone().or(file.turn_secret.clone()),
        ) {
            (true, None) => None,
            (false, Some(secret)) if !secret.is_empty() => {
                if let Some(bad) = turn_urls
                    .iter()
                    .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
                {
                    return Err(invalid(
                        "turn_urls",
                        format!("{bad:?} is not a TURN URL (turn:HOST:PORT or turns:HOST:PORT)"),
                    ));
                }
                Some(Turn {
                    urls: turn_urls,
                    secret,
                })
            }
            (false, _) => {
                return Err(invalid(
                    "turn_secret",
                    "turn_urls is set: set the TURN servers' shared secret too (coturn's static-auth-secret)",
                ));
            }
            (true, Some(_)) => {
                return Err(invalid(
                    "turn_urls",
                    "turn_secret is set: set the TURN servers' URLs too",
                ));
            }
        };
        let rate = |name, flag: &Option<String>, file: &Option<String>, default: &str| {
            Rate::parse(name, &pick(flag, file, default))
        };
        let rate_orders = rate("rate_orders", &args.rate_orders, &file.rate_orders, "5:0.5")?;
        let rate_likes = rate("rate_likes", &args.rate_likes, &file.rate_likes, "40:20")?;
        let rate_whep = rate("rate_whep", &args.rate_whep, &file.rate_whep, "10:1")?;
        let rate_devices = rate(
            "rate_devices",
            &args.rate_devices,
            &file.rate_devices,
            "200:5",
        )?;
        let rate_orders_per_address = rate(
            "rate_orders_per_address",
            &args.rate_orders_per_address,
            &file.rate_orders_per_address,
            "1000:100",
        )?;
        let address_share_percent = args
            .address_share_percent
            .or(file.address_share_percent)
            .unwrap_or(20);
        let phone_country_code = pick(&args.phone_country_code, &file.phone_country_code, "86");
        if !(phone_country_code.is_empty()
            || (phone_country_code.len() <= 3
                && phone_country_code.bytes().all(|b| b.is_ascii_digit())))
        {
            return Err(invalid(
                "phone_country_code",
                format!(
                    "{phone_country_code:?} is not a country calling code (1 to 3 digits, or empty)"
                ),
            ));
        }
        let optional = |flag: &Option<String>, file: &Option<String>| {
            flag.clone()
                .or_else(|| file.clone())
                .filter(|v| !v.is_empty())
        };
        let buyer_tokens = BuyerTokenSettings {
            secret: optional(&args.buyer_token_secret, &file.buyer_token_secret),
            jwks_url: optional(&args.buyer_token_jwks_url, &file.buyer_token_jwks_url),
            issuer: optional(&args.buyer_token_issuer, &file.buyer_token_issuer),
            audience: optional(&args.buyer_token_audience, &file.buyer_token_audience),
        };
        if buyer_tokens.secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(invalid(
                "buyer_token_secret",
                "at least 32 characters (a guessable secret lets anyone sign as any customer)",
            ));
        }
        if let Some(url) = &buyer_tokens.jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid(
                "buyer_token_jwks_url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        if address_share_percent > 100 {
            return Err(invalid(
                "address_share_percent",
                format!("{address_share_percent} is not a percentage (0 to 100)"),
            ));
        }
        let count =
            |flag: Option<usize>, file: Option<usize>, default| flag.or(file).unwrap_or(default);
        let toast_buyer = match pick(&args.toast_buyer, &file.toast_buyer, "name-and-city").as_str()
        {
            "name-and-city" => ToastBuyer::NameAndCity,
            "city" => ToastBuyer::City,
            "nothing" => ToastBuyer::Nothing,
            other => {
                return Err(invalid(
                    "toast_buyer",
                    format!("{other:?} is not one of name-and-city, city, nothing"),
                ));
            }
        };
        let ipv6_prefix = args
            .ipv6_prefix
            .or(file.ipv6_prefix)
            .unwrap_or(fieldcast_core::address::DEFAULT_IPV6_PREFIX);
        if !(16..=128).contains(&ipv6_prefix) {
            return Err(invalid(
                "ipv6_prefix",
                format!("{ipv6_prefix} is not a prefix length from 16 to 128"),
            ));
        }
        let mut metrics_token = optional(&args.metrics_token, &file.metrics_token);
        if let Some(path) = args.metrics_token_file.clone().or(file.metrics_token_file) {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "metrics_token_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            metrics_token = Some(text.trim().to_string());
        }
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid(
                "metrics_token",
                "at least 16 characters, or unset to keep /metrics open",
            ));
        }
        let settings = Settings {
            trusted_proxies,
            turn,
            ipv6_prefix,
            // 0 (the default): what the open-file limit leaves, known once it is raised.
            http_max_connections: count(args.http_max_connections, file.http_max_connections, 0),
            http_max_connections_per_address: count(
                args.http_max_connections_per_address,
                file.http_max_connections_per_address,
                crate::connections::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            )
            .max(1),
            hls_max_waiting: count(
                args.hls_max_waiting,
                file.hls_max_waiting,
                fieldcast_engine::hls::DEFAULT_MAX_WAITING,
            ),
            metrics_token,
            rate_orders,
            rate_likes,
            rate_whep,
            rate_devices,
            rate_orders_per_address,
            address_share_percent,
            phone_country_code,
            buyer_tokens,
            max_events_per_address: count(
                args.max_events_per_address,
                file.max_events_per_address,
                16,
            ),
            max_viewers_per_session: count(
                args.max_viewers_per_session,
                file.max_viewers_per_session,
                fieldcast_engine::egress::admission::DEFAULT_MAX_VIEWERS_PER_SESSION,
            ),
            whep_max_pending: count(
                args.whep_max_pending,
                file.whep_max_pending,
                fieldcast_engine::egress::admission::DEFAULT_MAX_PENDING,
            ),
            whep_max_pending_per_address: count(
                args.whep_max_pending_per_address,
                file.whep_max_pending_per_address,
                fieldcast_engine::egress::admission::DEFAULT_MAX_PENDING_PER_ADDRESS,
            ),
            toast_buyer,
            reconnect_grace: std::time::Duration::from_secs(
                args.reconnect_grace.or(file.reconnect_grace).unwrap_or(30),
            ),
            recording_budget: args
                .recording_budget_mb
                .or(file.recording_budget_mb)
                .unwrap_or(10_240)
                .saturating_mul(1 << 20),
            recording_retention: std::time::Duration::from_secs(
                args.recording_retention_days
                    .or(file.recording_retention_days)
                    .unwrap_or(30)
                    .saturating_mul(86_400),
            ),
            recording_store: optional(&args.recording_store, &file.recording_store),
            hls_idle: std::time::Duration::from_secs(
                args.hls_idle
                    .or(file.hls_idle)
                    .unwrap_or(fieldcast_engine::hls::IDLE_AFTER.as_secs())
                    .max(1),
            ),
            rtmp_max_connections,
            rtmp_max_connections_per_address,
            http,
            rtmp,
            srt,
            data,
            api_token,
            webrtc_udp,
            webrtc_tcp,
            whip_udp,
            public_ip,
            public_url,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.api_token
            && (token.len() < 16 || token.chars().any(|c| c.is_whitespace()))
        {
            return Err(invalid(
                "api_token",
                "must be at least 16 characters, without spaces",
            ));
        }
        let tcp_everywhere = self.webrtc_tcp.is_some_and(|a| a.ip().is_unspecified());
        if (self.webrtc_udp.ip().is_unspecified()
            || self.whip_udp.ip().is_unspecified()
            || tcp_everywhere)
            && self.public_ip.is_none()
        {
            return Err(invalid(
                "public_ip",
                format!(
                    "webrtc_udp ({}), webrtc_tcp or whip_udp ({}) binds all interfaces, so the server cannot tell which address to give viewers and publishers in its ICE candidates (in a container or behind NAT its own address reaches nobody): set FIELDCAST_PUBLIC_IP (or public_ip, --public-ip) to the address they reach",
                    self.webrtc_udp, self.whip_udp
                ),
            ));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "public_url",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        for (name, value) in [
            ("rtmp_max_connections", self.rtmp_max_connections),
            (
                "rtmp_max_connections_per_address",
                self.rtmp_max_connections_per_address,
            ),
            ("max_events_per_address", self.max_events_per_address),
            ("max_viewers_per_session", self.max_viewers_per_session),
            ("whep_max_pending", self.whep_max_pending),
            (
                "whep_max_pending_per_address",
                self.whep_max_pending_per_address,
            ),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if self.data.as_os_str().is_empty() {
            return Err(invalid("data", "must not be empty"));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("fc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fieldcast.toml");
        std::fs::write(
            &path,
            "http = \"127.0.0.1:9000\"\nrtmp = \"127.0.0.1:9935\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            rtmp: Some("127.0.0.1:1936".into()),
            config: Some(path),
            ..Default::default()
        };
        let s = Settings::load(&args).unwrap();
        assert_eq!(s.http.port(), 9000);
        assert_eq!(s.rtmp.port(), 1936);
        assert_eq!(s.webrtc_udp.port(), 8189);
    }

    #[test]
    fn a_bad_value_names_the_setting() {
        let args = ServeArgs {
            http: Some("nonsense".into()),
            ..Default::default()
        };
        let err = Settings::load(&args).unwrap_err().to_string();
        assert!(err.contains("`http`"), "{err}");
        let args = ServeArgs {
            webrtc_udp: Some("0.0.0.0:8189".into()),
            ..Default::default()
        };
        let err = Settings::load(&args).unwrap_err().to_string();
        assert!(err.contains("public_ip"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("fc-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fieldcast.toml");
        std::fs::write(&path, "htpp = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(
            Settings::load(&args)
                .unwrap_err()
                .to_string()
                .contains("htpp")
        );
    }
}
