//! The signed identity assertion sent upstream (`X-Yagura-Assertion`): a compact JWT (ES256, short expiry) whose
//! public key is published as a JWKS (`https://AUTH_HOST/.well-known/jwks.json`), so an upstream can verify who
//! the gate says the user is instead of trusting a plain header. The key is read with `p256` (PKCS#8 or SEC1 PEM)
//! and signs through `ring` (fast, constant-time); assertions are cached per session and audience for half
//! their lifetime so signing is not on every request.

use crate::state::TailHash;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http::HeaderValue;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Why the signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// Unreadable.
    #[error("cannot read signing key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a P-256 key in PEM.
    #[error("{path}: not a P-256 private key in PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`); make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`")]
    Bad {
        /// The file.
        path: String,
    },
}

/// Claims of an assertion.
#[derive(Debug, Clone, Serialize)]
pub struct Claims<'a> {
    /// `https://AUTH_HOST`.
    pub iss: &'a str,
    /// The route's host.
    pub aud: &'a str,
    /// `github:ID` or `oidc:SUB`.
    pub sub: String,
    /// Issued at.
    pub iat: u64,
    /// Expires.
    pub exp: u64,
    /// Login or preferred username.
    pub user: &'a str,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    /// Groups relevant to the policy.
    pub groups: &'a [String],
}

/// Signed assertions by session id, then audience: expiry and the ready header value.
type Cache = HashMap<Box<str>, HashMap<Box<str>, (u64, HeaderValue), TailHash>, TailHash>;

/// Signs assertions and publishes the key.
pub struct Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    jwks: String,
    /// One cache per serving thread (by [`crate::worker::index`]), so threads never share a lock.
    cache: Box<[Mutex<Cache>]>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(kid={})", self.kid)
    }
}

/// Sessions kept per cache shard before the shard is cleared.
const CACHE_MAX: usize = 10_000;
/// Cache shards: serving thread `i` uses shard `i % SHARDS`.
const SHARDS: usize = 16;

impl Signer {
    /// From a PEM file.
    pub fn from_file(path: &Path) -> Result<Self, SignerError> {
        let p = path.display().to_string();
        let pem = std::fs::read_to_string(path).map_err(|source| SignerError::Io {
            path: p.clone(),
            source,
        })?;
        let key = p256::SecretKey::from_pkcs8_pem(&pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(&pem))
            .map_err(|_| SignerError::Bad { path: p.clone() })?;
        Self::from_secret(&key).ok_or(SignerError::Bad { path: p })
    }

    /// A fresh random key (one replica, or tests).
    pub fn ephemeral() -> Option<Self> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        let key = p256::SecretKey::from_pkcs8_der(doc.as_ref()).ok()?;
        Self::from_secret(&key)
    }

    fn from_secret(key: &p256::SecretKey) -> Option<Self> {
        let rng = SystemRandom::new();
        let der = key.to_pkcs8_der().ok()?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_bytes(), &rng)
            .ok()?;
        let point = key.public_key().to_encoded_point(false);
        let (x, y) = (B64.encode(point.x()?), B64.encode(point.y()?));
        // RFC 7638 thumbprint as the key id.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": kid,
        }]})
        .to_string();
        debug_assert_eq!(pair.public_key().as_ref(), point.as_bytes());
        Some(Self {
            pair,
            rng,
            kid,
            jwks,
            cache: (0..SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    /// The JWKS document.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A signed JWT for `claims`.
    pub fn sign(&self, claims: &Claims<'_>) -> Option<String> {
        let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, self.kid);
        let body = serde_json::to_vec(claims).ok()?;
        let input = format!("{}.{}", B64.encode(header), B64.encode(body));
        let sig = self.pair.sign(&self.rng, input.as_bytes()).ok()?;
        Some(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// The `X-Yagura-Assertion` value for session `sid` at audience `aud`, issued at `iat` and expiring at
    /// `exp`: a cached JWT while at least half its lifetime is left, else a fresh one signed over `claims()`
    /// (which is only built then, so a cache hit allocates nothing).
    pub fn cached<'a>(
        &self,
        sid: &str,
        aud: &str,
        iat: u64,
        exp: u64,
        claims: impl FnOnce() -> Claims<'a>,
    ) -> Option<HeaderValue> {
        let half = exp.saturating_sub(iat) / 2;
        let shard = &self.cache[crate::worker::index(self.cache.len())];
        if let Ok(c) = shard.lock() {
            if let Some((until, jwt)) = c.get(sid).and_then(|m| m.get(aud)) {
                if iat.saturating_add(half) < *until {
                    return Some(jwt.clone());
                }
            }
        }
        let jwt = HeaderValue::from_str(&self.sign(&claims())?).ok()?;
        if let Ok(mut c) = shard.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.entry(sid.into())
                .or_default()
                .insert(aud.into(), (exp, jwt.clone()));
        }
        Some(jwt)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn verifies_with_published_jwks() {
        let s = Signer::ephemeral().unwrap();
        let groups = vec!["ictsc:infra".to_string()];
        let now = 1_700_000_000;
        let jwt = s
            .sign(&Claims {
                iss: "https://auth.test",
                aud: "app.test",
                sub: "github:1".into(),
                iat: now,
                exp: now + 60,
                user: "alice",
                email: None,
                groups: &groups,
            })
            .unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(s.jwks()).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some(s.kid()));
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["app.test"]);
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &v).unwrap();
        assert_eq!(data.claims["user"], "alice");
        assert_eq!(data.claims["groups"][0], "ictsc:infra");
    }
}
