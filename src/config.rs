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
pub const DEFAULT_WEBRTC_UDP: &str = "127.0.0.1:8189";
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
    /// Directory for the SQLite database and uploads [default: ./data]
    #[arg(long, env = "FIELDCAST_DATA")]
    pub data: Option<PathBuf>,
    /// Operator bearer token; generated and stored in the data directory when unset
    #[arg(long, env = "FIELDCAST_API_TOKEN")]
    pub api_token: Option<String>,
    /// UDP address of the one WebRTC socket that serves all viewers [default: 127.0.0.1:8189]
    #[arg(long, env = "FIELDCAST_WEBRTC_UDP")]
    pub webrtc_udp: Option<String>,
    /// Public IP announced in SDP answers (NAT 1:1, Docker); default: the UDP bind address
    #[arg(long, env = "FIELDCAST_PUBLIC_IP")]
    pub public_ip: Option<String>,
    /// Base URL that links (watch_url, whep_url, rtmp_url) use; default from --http
    #[arg(long, env = "FIELDCAST_PUBLIC_URL")]
    pub public_url: Option<String>,
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
    data: Option<PathBuf>,
    api_token: Option<String>,
    webrtc_udp: Option<String>,
    public_ip: Option<String>,
    public_url: Option<String>,
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub data: PathBuf,
    pub api_token: Option<String>,
    pub webrtc_udp: SocketAddr,
    pub public_ip: Option<IpAddr>,
    pub public_url: Option<String>,
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
        let webrtc_udp = addr(
            "webrtc_udp",
            &pick(&args.webrtc_udp, &file.webrtc_udp, DEFAULT_WEBRTC_UDP),
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
        let settings = Settings {
            http,
            rtmp,
            data,
            api_token,
            webrtc_udp,
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
        if self.webrtc_udp.ip().is_unspecified() && self.public_ip.is_none() {
            return Err(invalid(
                "public_ip",
                format!(
                    "webrtc_udp binds {} (all interfaces): set public_ip to the address viewers reach",
                    self.webrtc_udp
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
