//! `GET /api/v1/ice-servers`: the TURN servers a viewer's browser may relay WebRTC through,
//! with time-limited credentials (the TURN REST API convention that coturn's
//! `use-auth-secret` checks: the username is the expiry time, the password an HMAC-SHA1 of it
//! under the shared secret). The watch page asks before it makes its offer; with no TURN
//! configured, the list is empty and the page tries UDP, then ICE-TCP, then HLS.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::config::{Settings, Turn};
use fieldcast_core::time::now_ms;

handles! {
    /// What the ICE servers route uses.
    Ice {
        settings: Arc<Settings>,
    }
}

/// How long a viewer's TURN credentials stay good: a show, and then some.
pub const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(6 * 3600);

#[derive(Serialize, utoipa::ToSchema)]
pub struct IceServer {
    /// `turn:` and `turns:` URLs (RFC 7065).
    urls: Vec<String>,
    /// `EXPIRY:fieldcast`, the expiry in Unix seconds.
    username: String,
    /// Base64 of HMAC-SHA1(shared secret, username).
    credential: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IceServers {
    /// For `RTCPeerConnection`'s `iceServers`; empty when no TURN server is configured.
    ice_servers: Vec<IceServer>,
}

/// The ICE servers for a viewer's browser, with credentials made now.
#[utoipa::path(get, path = "/api/v1/ice-servers", tag = "playing",
    responses((status = 200, description = "TURN servers with time-limited credentials (an empty list when none is configured)", body = IceServers)))]
pub async fn list(State(state): State<Ice>) -> impl IntoResponse {
    let expiry = now_ms() / 1000 + CREDENTIAL_LIFETIME.as_secs() as i64;
    let ice_servers = state
        .settings
        .turn
        .iter()
        .map(|turn| credentials(turn, expiry))
        .collect();
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(IceServers { ice_servers }),
    )
}

fn credentials(turn: &Turn, expiry: i64) -> IceServer {
    let username = format!("{expiry}:fieldcast");
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        turn.secret.as_bytes(),
    );
    let tag = aws_lc_rs::hmac::sign(&key, username.as_bytes());
    IceServer {
        urls: turn.urls.clone(),
        username,
        credential: base64(tag.as_ref()),
    }
}

/// Standard base64 with padding (RFC 4648 §4), as coturn compares the password.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn credentials_follow_the_turn_rest_convention() {
        let turn = Turn {
            urls: vec!["turn:turn.example:3478".into()],
            secret: "north".into(),
        };
        let server = credentials(&turn, 1_796_500_000);
        assert_eq!(server.username, "1796500000:fieldcast");
        // `printf %s 1796500000:fieldcast | openssl dgst -sha1 -hmac north -binary | base64`
        assert_eq!(server.credential, "bWwF1uA9JsRr5s2J5zgws42/D3k=");
        assert_eq!(server.urls, turn.urls);
    }
}
