//! Buyer tokens: a shop that has its own customer login vouches for its customer.
//!
//! The shop's page (the embed, for example) passes a signed JWT as `Fieldcast-Buyer` with its
//! orders. When it verifies, the order's buyer is the token's subject: the per-buyer limit
//! holds per customer, not per typed phone, and the per-network share of an offer does not
//! apply, because the shop, not the network, says who this is. The device and address rate
//! limits still hold, with the customer as the device.
//!
//! Keys: HS256 with a shared secret (`buyer_token_secret`), or RS256 and ES256 keys from the
//! shop's JWKS URL (`buyer_token_jwks_url`), fetched at start and every 10 minutes, and again
//! (at most every 30 s) when a token names a key id not yet seen. A token must carry `sub`
//! and `exp`; `nbf`, `iss` and `aud` are checked when present or configured. Anything else
//! is refused with the reason, and costs at most one signature check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest token looked at.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock difference tolerated on `exp` and `nbf`.
const LEEWAY_S: i64 = 60;
/// How often the JWKS is fetched again, and how soon at the earliest for an unknown key id.
const JWKS_REFRESH: Duration = Duration::from_secs(600);
const JWKS_UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(30);
/// Largest JWKS document read.
const MAX_JWKS_BYTES: u64 = 256 * 1024;

/// Why a buyer token was refused: said to the client as is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("this server takes no buyer tokens (no buyer_token_secret or buyer_token_jwks_url)")]
    NotConfigured,
    #[error("not a JWT (three base64url parts with JSON header and claims)")]
    Malformed,
    #[error(
        "alg {0:?} is not accepted (HS256 with the shared secret, RS256 or ES256 from the JWKS)"
    )]
    Algorithm(String),
    #[error("no key with this kid in the shop's JWKS")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("expired, or no exp claim")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("no sub claim")]
    NoSubject,
    #[error("iss is not this shop's")]
    Issuer,
    #[error("aud is not this server")]
    Audience,
}

/// A public key from the JWKS.
#[derive(Debug, Clone)]
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point (0x04, x, y).
    P256(Vec<u8>),
}

struct Jwks {
    url: String,
    keys: RwLock<HashMap<String, PublicKey>>,
    /// A token named a key id not in the set: fetch again soon.
    wanted: AtomicBool,
}

/// What verifies buyer tokens; configured from the settings.
pub struct BuyerTokens {
    secret: Option<Vec<u8>>,
    jwks: Option<Arc<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl BuyerTokens {
    pub fn new(
        secret: Option<String>,
        jwks_url: Option<String>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        let jwks = jwks_url.map(|url| {
            Arc::new(Jwks {
                url,
                keys: RwLock::new(HashMap::new()),
                wanted: AtomicBool::new(false),
            })
        });
        if let Some(jwks) = &jwks {
            let jwks = jwks.clone();
            std::thread::Builder::new()
                .name("jwks".into())
                .spawn(move || refresh_forever(&jwks))
                .expect("spawn the JWKS thread");
        }
        Self {
            secret: secret.map(String::into_bytes),
            jwks,
            issuer,
            audience,
        }
    }

    pub fn configured(&self) -> bool {
        self.secret.is_some() || self.jwks.is_some()
    }

    /// Verifies `token` at `now_s` (Unix seconds). The buyer key: the issuer and subject
    /// under a hash, what the per-buyer limit then holds on.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<String, TokenError> {
        if !self.configured() {
            return Err(TokenError::NotConfigured);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = json_part(head)?;
        let claims: Value = json_part(body)?;
        let signature = base64url(sig).ok_or(TokenError::Malformed)?;
        let signed = &token[..head.len() + 1 + body.len()];
        let alg = header["alg"].as_str().unwrap_or_default();
        match (alg, &self.secret, &self.jwks) {
            ("HS256", Some(secret), _) => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::Signature)?;
                mac.update(signed.as_bytes());
                mac.verify_slice(&signature)
                    .map_err(|_| TokenError::Signature)?;
            }
            ("RS256" | "ES256", _, Some(jwks)) => {
                let kid = header["kid"].as_str().unwrap_or_default();
                let key = jwks.key(kid).ok_or(TokenError::UnknownKey)?;
                let ok = match (alg, &key) {
                    ("RS256", PublicKey::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
                        .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
                        .is_ok(),
                    ("ES256", PublicKey::P256(point)) => {
                        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                            .verify(signed.as_bytes(), &signature)
                            .is_ok()
                    }
                    _ => false,
                };
                if !ok {
                    return Err(TokenError::Signature);
                }
            }
            _ => return Err(TokenError::Algorithm(alg.chars().take(16).collect())),
        }
        let exp = claims["exp"].as_i64().ok_or(TokenError::Expired)?;
        if now_s > exp + LEEWAY_S {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = claims["nbf"].as_i64()
            && now_s + LEEWAY_S < nbf
        {
            return Err(TokenError::NotYetValid);
        }
        if let Some(issuer) = &self.issuer
            && claims["iss"].as_str() != Some(issuer)
        {
            return Err(TokenError::Issuer);
        }
        if let Some(audience) = &self.audience {
            let named = match &claims["aud"] {
                Value::String(a) => a == audience,
                Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !named {
                return Err(TokenError::Audience);
            }
        }
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::NoSubject)?;
        let issuer = claims["iss"].as_str().unwrap_or_default();
        let digest = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("buyer:{hex}"))
    }
}

impl Jwks {
    fn key(&self, kid: &str) -> Option<PublicKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(kid).cloned().or_else(|| {
            // A set of one key may be used without a kid.
            (kid.is_empty() && keys.len() == 1)
                .then(|| keys.values().next().cloned())
                .flatten()
        });
        if key.is_none() {
            self.wanted.store(true, Ordering::Relaxed);
        }
        key
    }
}

fn refresh_forever(jwks: &Jwks) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut last: Option<Instant> = None;
    loop {
        let due = match last {
            None => true,
            Some(at) => {
                at.elapsed() >= JWKS_REFRESH
                    || (jwks.wanted.load(Ordering::Relaxed)
                        && at.elapsed() >= JWKS_UNKNOWN_KID_REFRESH)
            }
        };
        if due {
            jwks.wanted.store(false, Ordering::Relaxed);
            match fetch(&agent, &jwks.url) {
                Ok(keys) => {
                    tracing::info!(url = %jwks.url, keys = keys.len(), "buyer-token keys fetched");
                    *jwks.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
                }
                // The keys held stay in use until a fetch succeeds.
                Err(e) => {
                    tracing::warn!(url = %jwks.url, error = %e, "buyer-token keys not fetched")
                }
            }
            last = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<HashMap<String, PublicKey>, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_JWKS_BYTES)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    parse_jwks(&text)
}

/// The usable keys of a JWKS document, by key id: RSA, and EC on P-256. Others are skipped.
fn parse_jwks(text: &str) -> Result<HashMap<String, PublicKey>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc["keys"].as_array().ok_or("no \"keys\" array")?;
    let field = |k: &Value, name: &str| k[name].as_str().and_then(base64url);
    let mut out = HashMap::new();
    for k in keys {
        if k["use"].as_str().is_some_and(|u| u != "sig") {
            continue;
        }
        let kid = k["kid"].as_str().unwrap_or_default().to_string();
        let key = match (k["kty"].as_str(), k["crv"].as_str()) {
            (Some("RSA"), _) => match (field(k, "n"), field(k, "e")) {
                (Some(n), Some(e)) => PublicKey::Rsa { n, e },
                _ => continue,
            },
            (Some("EC"), Some("P-256")) => match (field(k, "x"), field(k, "y")) {
                (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                    PublicKey::P256([&[4u8][..], &x, &y].concat())
                }
                _ => continue,
            },
            _ => continue,
        };
        out.insert(kid, key);
    }
    Ok(out)
}

fn json_part(part: &str) -> Result<Value, TokenError> {
    let bytes = base64url(part).ok_or(TokenError::Malformed)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(TokenError::Malformed)
    }
}

/// Unpadded base64url (RFC 7515), as JWTs use it: what a shop's login (or a test) writes.
pub fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            acc |= (b as u32) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(acc >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Unpadded base64url (RFC 7515), as JWTs use it; `None` for anything else.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::base64url_encode as encode;

    fn hs256(secret: &str, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            encode(claims.to_string().as_bytes())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", encode(&mac.finalize().into_bytes()))
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url(&encode(&bytes)), Some(bytes));
        }
        assert_eq!(base64url("a"), None);
        assert_eq!(base64url("ab+/"), None);
    }

    #[test]
    fn an_hs256_token_names_its_customer_and_is_refused_with_the_reason_when_wrong() {
        let now = 1_800_000_000;
        let tokens = BuyerTokens::new(
            Some("shop-secret".into()),
            None,
            Some("https://shop.example".into()),
            Some("fieldcast".into()),
        );
        let good = serde_json::json!({"sub": "customer-17", "exp": now + 600, "iss": "https://shop.example", "aud": ["x", "fieldcast"]});
        let key = tokens
            .verify(&hs256("shop-secret", good.clone()), now)
            .unwrap();
        assert!(key.starts_with("buyer:") && key.len() == 38, "{key}");
        // The same customer in another token is the same buyer; another customer is not.
        let again = serde_json::json!({"sub": "customer-17", "exp": now + 60, "iss": "https://shop.example", "aud": "fieldcast"});
        assert_eq!(
            tokens.verify(&hs256("shop-secret", again), now).unwrap(),
            key
        );
        let other = serde_json::json!({"sub": "customer-18", "exp": now + 60, "iss": "https://shop.example", "aud": "fieldcast"});
        assert_ne!(
            tokens.verify(&hs256("shop-secret", other), now).unwrap(),
            key
        );

        let with = |change: &dyn Fn(&mut Value)| {
            let mut claims = good.clone();
            change(&mut claims);
            tokens.verify(&hs256("shop-secret", claims), now)
        };
        assert_eq!(
            tokens.verify(&hs256("guessed", good.clone()), now),
            Err(TokenError::Signature)
        );
        assert_eq!(
            with(&|c| c["exp"] = (now - 61).into()),
            Err(TokenError::Expired)
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Err(TokenError::Expired)
        );
        assert_eq!(
            with(&|c| c["nbf"] = (now + 120).into()),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            with(&|c| c["iss"] = "https://other.example".into()),
            Err(TokenError::Issuer)
        );
        assert_eq!(
            with(&|c| c["aud"] = "someone-else".into()),
            Err(TokenError::Audience)
        );
        assert_eq!(with(&|c| c["sub"] = "".into()), Err(TokenError::NoSubject));
        assert_eq!(tokens.verify("a.b", now), Err(TokenError::Malformed));
        assert_eq!(
            tokens.verify(&"x".repeat(MAX_TOKEN_LEN + 1), now),
            Err(TokenError::Malformed)
        );
        // alg "none", and RS256 with no JWKS configured: refused before any key is looked for.
        let none = format!(
            "{}.{}.",
            encode(br#"{"alg":"none"}"#),
            encode(good.to_string().as_bytes())
        );
        assert_eq!(
            tokens.verify(&none, now),
            Err(TokenError::Algorithm("none".into()))
        );
        let unconfigured = BuyerTokens::new(None, None, None, None);
        assert_eq!(
            unconfigured.verify(&hs256("shop-secret", good), now),
            Err(TokenError::NotConfigured)
        );
    }

    #[test]
    fn a_jwks_yields_its_rsa_and_p256_signing_keys_and_skips_the_rest() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r1", "n": encode(&[0xC1; 256]), "e": "AQAB", "use": "sig"},
            {"kty": "EC", "crv": "P-256", "kid": "e1", "x": encode(&[1; 32]), "y": encode(&[2; 32])},
            {"kty": "EC", "crv": "P-384", "kid": "e2", "x": encode(&[1; 48]), "y": encode(&[2; 48])},
            {"kty": "RSA", "kid": "enc", "n": encode(&[0xC1; 256]), "e": "AQAB", "use": "enc"},
            {"kty": "oct", "kid": "o1", "k": "c2VjcmV0"}
        ]});
        let keys = parse_jwks(&doc.to_string()).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["e1", "r1"]);
        assert!(parse_jwks("[]").is_err());
    }
}
