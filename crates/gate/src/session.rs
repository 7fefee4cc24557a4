//! Sessions in the browser: the session (identity, provider tokens, times) is serialized to JSON and sealed with
//! AES-256-GCM through the `cookie` crate's private jar — encrypted, and authenticated (a tampered value fails to
//! open) with the cookie's name bound in. Keys come from a file every replica shares; the first key seals, all keys
//! open, so keys can be rotated without signing everyone out.

use crate::policy::Identity;
use base64::Engine;
use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Unreadable.
    #[error("cannot read cookie keys from {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not base64 of at least 32 bytes.
    #[error("{path}:{line}: a cookie key is base64 of at least 32 random bytes (e.g. `openssl rand -base64 64`)")]
    Bad {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
    },
    /// No key at all.
    #[error("{path}: no cookie key in the file")]
    Empty {
        /// The file.
        path: String,
    },
}

/// Seals and opens cookie values.
#[derive(Clone)]
pub struct Sealer {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

impl Sealer {
    /// Keys from master secrets (each ≥ 32 bytes); the first one seals.
    pub fn new(masters: &[Vec<u8>]) -> Option<Self> {
        if masters.is_empty() || masters.iter().any(|m| m.len() < 32) {
            return None;
        }
        Some(Self {
            keys: masters.iter().map(|m| Key::derive_from(m)).collect(),
        })
    }

    /// Reads the key file: one base64 key per line, `#` comments and blank lines ignored.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: p.clone(),
            source,
        })?;
        let mut masters = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(l)
                .ok()
                .filter(|b| b.len() >= 32)
                .ok_or(KeyError::Bad {
                    path: p.clone(),
                    line: i + 1,
                })?;
            masters.push(bytes);
        }
        Self::new(&masters).ok_or(KeyError::Empty { path: p })
    }

    /// Seals `value` as the value of a cookie named `name`.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Option<String> {
        let json = serde_json::to_string(value).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(self.keys.first()?)
            .add(Cookie::new(name.to_string(), json));
        jar.get(name).map(|c| c.value().to_string())
    }

    /// Opens a sealed value; `None` when it was tampered with, sealed with an unknown key, or is not a `T`.
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let cookie = Cookie::new(name.to_string(), sealed.to_string());
        self.keys.iter().find_map(|k| {
            let mut jar = CookieJar::new();
            jar.add_original(cookie.clone());
            let c = jar.private(k).get(name)?;
            serde_json::from_str(c.value()).ok()
        })
    }
}

/// What a session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Random id (for caches and logs; not a secret).
    pub sid: String,
    /// Who.
    pub who: Identity,
    /// Signed in at (unix seconds).
    pub iat: u64,
    /// Expires at (unix seconds).
    pub exp: u64,
    /// Membership last read from the provider (unix seconds).
    pub chk: u64,
    /// Provider access token (to re-read membership).
    pub tok: String,
    /// OIDC refresh token, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt: Option<String>,
    /// The identity header values, built on first use (not sealed; see [`IdentityCache`]).
    #[serde(skip)]
    pub cache: IdentityCache,
}

/// `X-Yagura-User`, `X-Yagura-Email` and `X-Yagura-Groups` of a session as ready header values (`None` where
/// a value cannot be a header value, or there is no e-mail).
#[derive(Debug, Clone, Default)]
pub struct IdentityValues {
    /// The login.
    pub user: Option<http::HeaderValue>,
    /// The e-mail.
    pub email: Option<http::HeaderValue>,
    /// The groups, comma-separated.
    pub groups: Option<http::HeaderValue>,
}

/// The identity header values of a session, built once per opened session (sessions are shared from the
/// per-thread cache of opened cookies) instead of once per request. A clone starts empty — sessions are cloned
/// to be changed (membership re-check), so a changed identity never keeps old values — and the cache takes no
/// part in comparisons.
#[derive(Default)]
pub struct IdentityCache(std::sync::OnceLock<IdentityValues>);

impl Clone for IdentityCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for IdentityCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IdentityCache {}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityCache")
    }
}

impl Session {
    /// The identity header values (built on the first call for this session value).
    pub fn identity_values(&self) -> &IdentityValues {
        self.cache.0.get_or_init(|| {
            let v = |s: &str| http::HeaderValue::from_str(s).ok();
            IdentityValues {
                user: v(&self.who.user),
                email: self.who.email.as_deref().and_then(v),
                groups: v(&self.who.groups.join(",")),
            }
        })
    }

    /// True at or after expiry.
    pub fn expired(&self, now: u64) -> bool {
        now >= self.exp
    }

    /// True when membership should be read again.
    pub fn stale(&self, now: u64, recheck: Duration) -> bool {
        now >= self.chk.saturating_add(recheck.as_secs().max(1))
    }
}

/// The short-lived state of one sign-in in flight (one cookie per flow, named after its state, so parallel
/// sign-ins in several tabs do not overwrite each other).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    /// The `state` sent to the provider.
    pub state: String,
    /// PKCE code verifier.
    pub verifier: String,
    /// OIDC nonce.
    pub nonce: String,
    /// Where to go afterwards (already checked).
    pub rd: String,
    /// `github` or `oidc`.
    pub provider: String,
    /// Expires at (unix seconds).
    pub exp: u64,
}

/// Name of the cookie holding the flow with `state`.
pub fn flow_cookie_name(state: &str) -> String {
    let tag: String = state.chars().take(12).collect();
    format!("_yagura_flow_{tag}")
}

/// Attributes of a cookie the gate sets.
#[derive(Debug, Clone)]
pub struct CookieAttrs<'a> {
    /// `Domain`, or host-only.
    pub domain: Option<&'a str>,
    /// `Max-Age`.
    pub max_age: Duration,
}

/// A `Set-Cookie` value: `Secure; HttpOnly; SameSite=Lax; Path=/`.
pub fn set_cookie(name: &str, value: &str, a: &CookieAttrs<'_>) -> String {
    let mut c = Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(a.max_age.as_secs()).unwrap_or(i64::MAX),
        ));
    if let Some(d) = a.domain {
        c = c.domain(d.to_string());
    }
    c.build().to_string()
}

/// A `Set-Cookie` that removes the cookie.
pub fn clear_cookie(name: &str, domain: Option<&str>) -> String {
    set_cookie(
        name,
        "",
        &CookieAttrs {
            domain,
            max_age: Duration::ZERO,
        },
    )
}

/// The values of every cookie called `name` in the request's `Cookie` headers.
pub fn cookie_values<'a>(
    headers: &'a http::HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The `Cookie` header without the cookies whose names `drop` rejects (the session never reaches upstreams):
/// `None` when nothing is left, the value itself (not copied) when nothing was dropped.
pub fn without_cookies(
    value: &http::HeaderValue,
    drop: impl Fn(&[u8]) -> bool,
) -> Option<http::HeaderValue> {
    // `;` found by memchr: a session cookie is a few hundred bytes, looked at on every request.
    let pairs = || {
        memchr::memchr_iter(b';', value.as_bytes())
            .chain(std::iter::once(value.len()))
            .scan(0, |start, end| {
                let kv = &value.as_bytes()[*start..end];
                *start = end + 1;
                Some(kv.trim_ascii())
            })
            .filter(|kv| !kv.is_empty())
    };
    let name = |kv: &[u8]| -> bool {
        let k = memchr::memchr(b'=', kv).map_or(kv, |i| &kv[..i]);
        drop(k)
    };
    let (mut dropped, mut kept) = (false, false);
    for kv in pairs() {
        if name(kv) {
            dropped = true;
        } else {
            kept = true;
        }
    }
    if !kept {
        return None;
    }
    if !dropped {
        return Some(value.clone());
    }
    let mut out = Vec::with_capacity(value.len());
    for kv in pairs().filter(|kv| !name(kv)) {
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(kv);
    }
    http::HeaderValue::from_bytes(&out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sealer(b: u8) -> Sealer {
        Sealer::new(&[vec![b; 32]]).unwrap()
    }

    #[test]
    fn seal_open_tamper_rotate() {
        let s = sealer(1);
        let v = s.seal("n", &vec![1, 2, 3]).unwrap();
        assert_eq!(s.open::<Vec<i32>>("n", &v), Some(vec![1, 2, 3]));
        // The name is bound in: the same value under another name does not open.
        assert_eq!(s.open::<Vec<i32>>("m", &v), None);
        // Any changed character fails.
        let mut t = v.clone().into_bytes();
        let i = t.len() / 2;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.open::<Vec<i32>>("n", &String::from_utf8(t).unwrap()),
            None
        );
        // Another key does not open it; a rotated set (new first, old second) does.
        assert_eq!(sealer(2).open::<Vec<i32>>("n", &v), None);
        let rotated = Sealer::new(&[vec![2; 32], vec![1; 32]]).unwrap();
        assert_eq!(rotated.open::<Vec<i32>>("n", &v), Some(vec![1, 2, 3]));
        assert!(Sealer::new(&[vec![1; 31]]).is_none());
    }

    #[test]
    fn cookie_helpers() {
        let c = set_cookie(
            "s",
            "v",
            &CookieAttrs {
                domain: Some("example.net"),
                max_age: Duration::from_secs(60),
            },
        );
        for part in [
            "s=v",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Domain=example.net",
            "Max-Age=60",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        let hv = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(
            without_cookies(&hv("a=1; _yagura_session=x; b=2"), |n| n
                == b"_yagura_session")
            .as_ref()
            .map(|v| v.to_str().unwrap()),
            Some("a=1; b=2")
        );
        assert_eq!(
            without_cookies(&hv("_yagura_session=x"), |n| n == b"_yagura_session"),
            None
        );
        // Nothing dropped: the value itself; empty pairs and spaces do not count as cookies.
        assert_eq!(
            without_cookies(&hv("a=1;; b=2 ;"), |n| n == b"_yagura_session"),
            Some(hv("a=1;; b=2 ;"))
        );
        assert_eq!(without_cookies(&hv(" ; ;"), |_| false), None);
    }
}
