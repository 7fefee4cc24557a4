//! One generation of the gate's configuration, compiled: routes, upstream pools, cookie keys, the assertion
//! signer and the providers. Built whole from a config (reading its secrets) and swapped whole on reload, so a
//! request sees one consistent generation.

use crate::assertion::{Signer, SignerError};
use crate::config::GateConfig;
use crate::github::GitHub;
use crate::httpc::Fetch;
use crate::metrics::{GateMetrics, RouteMetrics};
use crate::oidc::Oidc;
use crate::policy::RouteTable;
use crate::session::{KeyError, Sealer, Session};
use crate::tls::{client_config, TlsError};
use crate::upstream::Pool;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yagura_config::{EnvName, FilePath};

/// Why a config cannot be put in force.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Cookie keys.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Assertion key.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// A CA file.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A client secret.
    #[error("{0}")]
    Secret(String),
}

/// A compiled config generation.
#[derive(Debug)]
pub struct State {
    /// The config.
    pub cfg: GateConfig,
    /// Routes.
    pub routes: RouteTable,
    /// Upstream pools, by route index.
    pub pools: Vec<Arc<Pool>>,
    /// Cookie sealing.
    pub sealer: Sealer,
    /// Assertion signing.
    pub signer: Arc<Signer>,
    /// GitHub.
    pub github: Option<GitHub>,
    /// OIDC.
    pub oidc: Option<Arc<Oidc>>,
    /// Public HTTPS port.
    pub port: u16,
    /// `https://AUTH_HOST[:PORT]`.
    pub auth_origin: String,
    /// Metrics.
    pub metrics: GateMetrics,
    /// Each route's request and decision metrics, by route index.
    pub route_metrics: Vec<RouteMetrics>,
    /// Cancelled when this generation is replaced (stops its health checks).
    pub stop: CancellationToken,
    /// Cancelled at process shutdown (closes websockets after the drain).
    pub shutdown: CancellationToken,
    /// Membership re-checks in flight or just done, by session id, so a page loading fifty assets when its
    /// session turns stale asks the provider once.
    pub rechecks: Rechecks,
    /// Session cookies already opened (decrypted and parsed), by sealed value, one map per serving thread.
    pub opened: Opened,
}

/// Sessions already opened, by their sealed cookie value: opening is deterministic for a key set, and a
/// generation's keys never change, so a hit is exactly what opening again would give (expiry and membership
/// staleness are still checked on every request). One map per serving thread, each bounded (cleared when full).
#[derive(Debug)]
pub struct Opened(Box<[OpenedShard]>);

/// One serving thread's opened sessions.
type OpenedShard = std::sync::Mutex<std::collections::HashMap<Box<str>, Arc<Session>, TailHash>>;

/// Hashes keys by their last 16 bytes only, mixed with a random per-map seed. Sealed cookie values end in their
/// AES-GCM tag (random), so the tail alone spreads them, for a fraction of the cost of SipHash over a value of
/// several hundred bytes. Only values the gate sealed itself are ever stored, so a client crafting a colliding
/// value costs one string comparison per lookup, nothing more.
#[derive(Debug, Clone)]
pub struct TailHash(u64);

impl Default for TailHash {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Self(std::collections::hash_map::RandomState::new().hash_one(0u8) | 1)
    }
}

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0)
    }
}

/// The hasher of [`TailHash`].
#[derive(Debug)]
pub struct TailHasher(u64);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        for chunk in tail.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(w)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            self.0 ^= self.0 >> 29;
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// Entries kept per serving thread before the map is cleared.
const OPENED_MAX: usize = 2048;

impl Opened {
    /// For `workers` serving threads.
    pub fn new(workers: usize) -> Self {
        Self((0..workers.max(1)).map(|_| Default::default()).collect())
    }

    fn shard(&self) -> &OpenedShard {
        &self.0[crate::worker::index(self.0.len())]
    }

    /// The session sealed as `sealed`, if it was opened before.
    pub fn get(&self, sealed: &str) -> Option<Arc<Session>> {
        self.shard().lock().ok()?.get(sealed).cloned()
    }

    /// Remembers that `sealed` opens to `s`.
    pub fn put(&self, sealed: &str, s: Arc<Session>) {
        if let Ok(mut m) = self.shard().lock() {
            if m.len() >= OPENED_MAX {
                m.clear();
            }
            m.insert(sealed.into(), s);
        }
    }
}

/// One slot per session id holding the latest re-checked session.
pub type RecheckSlot = Arc<tokio::sync::Mutex<Option<crate::session::Session>>>;

/// Re-check slots (bounded: cleared when it grows past 10,000 sessions).
#[derive(Debug, Default)]
pub struct Rechecks(std::sync::Mutex<std::collections::HashMap<String, RecheckSlot>>);

impl Rechecks {
    /// The slot of session `sid`.
    pub fn slot(&self, sid: &str) -> RecheckSlot {
        match self.0.lock() {
            Ok(mut m) => {
                if m.len() >= 10_000 {
                    m.clear();
                }
                Arc::clone(m.entry(sid.to_string()).or_default())
            }
            Err(_) => RecheckSlot::default(),
        }
    }
}

fn secret(
    env: &Option<EnvName>,
    file: &Option<FilePath>,
    what: &str,
) -> Result<String, BuildError> {
    match (env, file) {
        (Some(e), _) => e.read().map(|s| s.trim().to_string()).map_err(|_| {
            BuildError::Secret(format!("{what}: environment variable {e} is not set"))
        }),
        (None, Some(f)) => std::fs::read_to_string(f.as_str())
            .map(|s| s.trim().to_string())
            .map_err(|e| BuildError::Secret(format!("{what}: cannot read {f}: {e}"))),
        (None, None) => Err(BuildError::Secret(format!("{what}: no secret configured"))),
    }
}

/// `https://host` with the port when it is not 443.
pub fn origin(host: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    }
}

impl State {
    /// Compiles `cfg` for `workers` serving threads.
    pub fn build(
        cfg: GateConfig,
        workers: usize,
        port: u16,
        metrics: GateMetrics,
        shutdown: &CancellationToken,
    ) -> Result<Self, BuildError> {
        let routes = RouteTable::new(&cfg.routes);
        let mut pools = Vec::with_capacity(cfg.routes.len());
        for r in &cfg.routes {
            pools.push(Arc::new(Pool::new(r, workers)?));
        }
        let sealer = Sealer::from_file(Path::new(cfg.cookie_secret_file.as_str()))?;
        let signer = match &cfg.signing_key_file {
            Some(f) => Signer::from_file(Path::new(f.as_str()))?,
            None => Signer::ephemeral()
                .ok_or_else(|| BuildError::Secret("cannot generate an assertion key".into()))?,
        };
        let github = match &cfg.github {
            Some(g) => {
                let ca = g
                    .ca_file
                    .as_ref()
                    .map(|p| Path::new(p.as_str()).to_path_buf());
                let fetch = Fetch::new(client_config(ca.as_deref())?, Duration::from_secs(10));
                let mut orgs = BTreeSet::new();
                let mut teams = BTreeSet::new();
                for r in routes.iter() {
                    orgs.extend(r.github_orgs());
                    teams.extend(r.github_teams().cloned());
                }
                Some(GitHub::new(
                    g.client_id.clone(),
                    secret(
                        &g.client_secret_env,
                        &g.client_secret_file,
                        "github client secret",
                    )?,
                    &g.api_url,
                    &g.web_url,
                    g.org.clone(),
                    orgs,
                    teams,
                    fetch,
                ))
            }
            None => None,
        };
        let oidc = match &cfg.oidc {
            Some(o) => {
                let ca = o
                    .ca_file
                    .as_ref()
                    .map(|p| Path::new(p.as_str()).to_path_buf());
                let fetch = Fetch::new(client_config(ca.as_deref())?, Duration::from_secs(10));
                Some(Arc::new(Oidc::new(
                    o.name.clone(),
                    &o.issuer,
                    o.client_id.clone(),
                    secret(
                        &o.client_secret_env,
                        &o.client_secret_file,
                        "oidc client secret",
                    )?,
                    o.groups_claim.clone(),
                    &o.scopes,
                    fetch,
                )))
            }
            None => None,
        };
        let auth_origin = origin(&cfg.auth_host, port);
        let route_metrics = cfg
            .routes
            .iter()
            .map(|r| metrics.for_route(&r.name))
            .collect();
        Ok(Self {
            routes,
            pools,
            sealer,
            signer: Arc::new(signer),
            github,
            oidc,
            port,
            auth_origin,
            metrics,
            route_metrics,
            stop: shutdown.child_token(),
            shutdown: shutdown.clone(),
            rechecks: Rechecks::default(),
            opened: Opened::new(workers),
            cfg,
        })
    }

    /// `https://AUTH/oauth2/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth2/callback", self.auth_origin)
    }

    /// The cookie domain, if any.
    pub fn cookie_domain(&self) -> Option<&str> {
        self.cfg.cookie_domain.as_deref()
    }
}
