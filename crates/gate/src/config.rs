//! The gate's TOML config (`yagura gate --config FILE`): listeners, certificates, sign-in providers, sessions and
//! routes, with every semantic check reported at its key path. Mirrors the platform spec's `[gate]` section, which
//! a render step turns into this file.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use yagura_config::{fields_of, Diagnostic, EnvName, FilePath, KeyPath};

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
pub struct GateConfig {
    /// Listening addresses.
    pub listen: Listen,
    /// Host serving sign-in, the OAuth callback, `/auth` and the JWKS (`auth.example.net`).
    pub auth_host: String,
    /// File with the session keys: one base64 key (≥ 32 bytes) per line; the first seals new cookies, all open
    /// them (rotation). Every replica reads the same file, so any replica accepts any session.
    pub cookie_secret_file: FilePath,
    /// Session cookie name.
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// Cookie `Domain` (e.g. `example.net`, so one sign-in covers every route host below it); host-only when unset.
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// Absolute session lifetime from sign-in.
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How often membership is re-read from the provider during a session.
    #[serde(default = "default_recheck", with = "humantime_serde")]
    pub membership_recheck: Duration,
    /// PEM file with the P-256 key (PKCS#8 or SEC1) signing the identity assertion; an ephemeral key when unset
    /// (fine for one replica; replicas must share one).
    #[serde(default)]
    pub signing_key_file: Option<FilePath>,
    /// Lifetime of the signed identity assertion sent upstream.
    #[serde(default = "default_assertion_ttl", with = "humantime_serde")]
    pub assertion_ttl: Duration,
    /// Extra request headers to strip (besides the built-in identity headers), any spelling.
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// Certificates (SNI picks by host; the first is the default).
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// GitHub OAuth app.
    #[serde(default)]
    pub github: Option<GithubConfig>,
    /// Generic OIDC provider (Dex, Keycloak).
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// Routes, matched by host then longest path prefix.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[listen]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Listen {
    /// HTTPS listener.
    pub https: SocketAddr,
    /// Plain HTTP listener that redirects to HTTPS (none when unset).
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// `/metrics`, `/healthz`, `/readyz` (none when unset).
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// The HTTPS port clients use (in redirects); the listener's own port when unset.
    #[serde(default)]
    pub public_https_port: Option<u16>,
    /// How often certificate files are checked for changes.
    #[serde(default = "default_cert_check", with = "humantime_serde")]
    pub cert_check_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(default = "default_drain", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Serving threads, each with its own runtime and `SO_REUSEPORT` HTTPS listener (one per core when unset).
    #[serde(default)]
    pub workers: Option<std::num::NonZeroUsize>,
}

/// `[[certificates]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Certificate {
    /// PEM chain (leaf first).
    pub cert_file: FilePath,
    /// PEM private key.
    pub key_file: FilePath,
}

/// `[github]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubConfig {
    /// OAuth app client id (public).
    pub client_id: String,
    /// Environment variable with the client secret.
    #[serde(default)]
    pub client_secret_env: Option<EnvName>,
    /// File with the client secret.
    #[serde(default)]
    pub client_secret_file: Option<FilePath>,
    /// When set, only active members of this organization may sign in at all.
    #[serde(default)]
    pub org: Option<String>,
    /// REST API base (GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// Web base for the OAuth flow (GitHub Enterprise: `https://HOST`).
    #[serde(default = "default_github_web")]
    pub web_url: String,
    /// Extra CA certificates (PEM) to trust for these URLs.
    #[serde(default)]
    pub ca_file: Option<FilePath>,
}

/// `[oidc]`.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcConfig {
    /// Name on the sign-in button (`Dex`, `Keycloak`).
    #[serde(default = "default_oidc_name")]
    pub name: String,
    /// Issuer URL (discovery at `/.well-known/openid-configuration`).
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Environment variable with the client secret.
    #[serde(default)]
    pub client_secret_env: Option<EnvName>,
    /// File with the client secret.
    #[serde(default)]
    pub client_secret_file: Option<FilePath>,
    /// Claim with the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Scopes requested.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// Extra CA certificates (PEM) to trust for the issuer.
    #[serde(default)]
    pub ca_file: Option<FilePath>,
}

/// `[[routes]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RouteConfig {
    /// Name (metrics label, logs).
    pub name: String,
    /// Host (exact, lower case).
    pub host: String,
    /// Path prefix, matched on whole segments.
    #[serde(default = "default_path")]
    pub path: String,
    /// One upstream URL (`http://svc.ns.svc:3000`).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Several upstream URLs (round robin over the healthy ones). A route with none is only for `/auth`.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// Who may pass.
    #[serde(default)]
    pub access: Access,
    /// GitHub users (logins) or OIDC users (preferred username) allowed.
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// GitHub orgs whose active members are allowed.
    #[serde(default)]
    pub allow_orgs: Vec<String>,
    /// GitHub teams allowed, `org:team` (team slug).
    #[serde(default)]
    pub allow_teams: Vec<String>,
    /// OIDC groups allowed.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Connecting to an upstream.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Waiting for the upstream's response headers.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra attempts on other upstreams for idempotent requests without a body that failed to connect or timed
    /// out.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Send the client's `Host` to the upstream (default: the upstream's own host).
    #[serde(default)]
    pub preserve_host: bool,
    /// Active health check.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Extra CA certificates (PEM) for `https` upstreams.
    #[serde(default)]
    pub ca_file: Option<FilePath>,
}

/// `health_check = { path = "/healthz", … }`.
#[derive(Debug, Clone, Deserialize)]
pub struct HealthCheck {
    /// Path requested with GET; 2xx/3xx is healthy.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Between checks.
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Per check.
    #[serde(default = "default_health_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Successes before an upstream is used again.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Failures before an upstream is taken out.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

/// Access policy of a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No sign-in.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Only the users, orgs, teams or groups listed.
    #[default]
    Allow,
}

fn default_cookie_name() -> String {
    "_yagura_session".into()
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}
fn default_recheck() -> Duration {
    Duration::from_secs(300)
}
fn default_assertion_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_cert_check() -> Duration {
    Duration::from_secs(10)
}
fn default_drain() -> Duration {
    Duration::from_secs(20)
}
fn default_github_api() -> String {
    "https://api.github.com".into()
}
fn default_github_web() -> String {
    "https://github.com".into()
}
fn default_oidc_name() -> String {
    "single sign-on".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_oidc_scopes() -> Vec<String> {
    ["openid", "email", "profile", "groups"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_path() -> String {
    "/".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_retries() -> u32 {
    1
}
fn default_health_path() -> String {
    "/".into()
}
fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

impl RouteConfig {
    /// Every upstream URL of the route (`upstream` first).
    pub fn all_upstreams(&self) -> Vec<String> {
        self.upstream
            .iter()
            .chain(self.upstreams.iter())
            .cloned()
            .collect()
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h == h.to_ascii_lowercase()
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn check_secret(
    d: &mut Vec<Diagnostic>,
    p: &KeyPath,
    env: &Option<EnvName>,
    file: &Option<FilePath>,
) {
    match (env, file) {
        (None, None) => d.push(
            Diagnostic::error("missing-secret", "the client secret is not given")
                .at(p)
                .hint("set `client_secret_env` (a variable name) or `client_secret_file`"),
        ),
        (Some(_), Some(_)) => d.push(
            Diagnostic::error(
                "conflict",
                "both `client_secret_env` and `client_secret_file` are set",
            )
            .at(&p.key("client_secret_file"))
            .hint("keep one"),
        ),
        (Some(e), None) => {
            if let Err(m) = e.check() {
                d.push(Diagnostic::error("secret-literal", m).at(&p.key("client_secret_env")));
            }
        }
        (None, Some(_)) => {}
    }
}

fn check_base_url(d: &mut Vec<Diagnostic>, p: &KeyPath, s: &str) {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {
            if u.scheme() == "http" && !is_loopback_url(&u) {
                d.push(
                    Diagnostic::warning("insecure-url", format!("`{s}` is plain http"))
                        .at(p)
                        .hint("tokens cross this link; use https outside of tests"),
                );
            }
        }
        _ => d.push(
            Diagnostic::error("bad-url", format!("`{s}` is not an http(s) URL"))
                .at(p)
                .hint("e.g. https://github.example.net/api/v3"),
        ),
    }
}

fn is_loopback_url(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl yagura_daemon::DaemonConfig for GateConfig {
    fn fields_at(path: &KeyPath) -> &'static [&'static str] {
        match path.shape().as_slice() {
            [] => fields_of::<GateConfig>(),
            ["listen"] => fields_of::<Listen>(),
            ["certificates"] => fields_of::<Certificate>(),
            ["github"] => fields_of::<GithubConfig>(),
            ["oidc"] => fields_of::<OidcConfig>(),
            ["routes"] => fields_of::<RouteConfig>(),
            ["routes", "health_check"] => fields_of::<HealthCheck>(),
            _ => &[],
        }
    }

    fn validate(&self) -> Vec<Diagnostic> {
        let mut d = Vec::new();
        let root = KeyPath::root();
        if !valid_host(&self.auth_host) {
            d.push(
                Diagnostic::error(
                    "bad-host",
                    format!("`{}` is not a lower-case host name", self.auth_host),
                )
                .at(&root.key("auth_host")),
            );
        }
        if let Some(cd) = &self.cookie_domain {
            let cd = cd.trim_start_matches('.');
            if !valid_host(cd) {
                d.push(
                    Diagnostic::error("bad-host", format!("`{cd}` is not a domain"))
                        .at(&root.key("cookie_domain")),
                );
            } else if self.auth_host != cd && !self.auth_host.ends_with(&format!(".{cd}")) {
                d.push(
                    Diagnostic::error(
                        "cookie-domain",
                        format!("auth host `{}` is not inside `{cd}`", self.auth_host),
                    )
                    .at(&root.key("cookie_domain"))
                    .hint("the session cookie is set on the auth host, so it must be within the cookie domain"),
                );
            }
        }
        if self.cookie_name.is_empty()
            || !self
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            d.push(
                Diagnostic::error("bad-name", "cookie names are letters, digits, `_` and `-`")
                    .at(&root.key("cookie_name")),
            );
        }
        if self.session_ttl < Duration::from_secs(60) {
            d.push(
                Diagnostic::error("too-short", "session_ttl must be at least 1m")
                    .at(&root.key("session_ttl")),
            );
        }
        if self.membership_recheck < Duration::from_secs(1)
            || self.membership_recheck > self.session_ttl
        {
            d.push(
                Diagnostic::error(
                    "bad-interval",
                    "membership_recheck must be between 1s and session_ttl",
                )
                .at(&root.key("membership_recheck")),
            );
        }
        if self.assertion_ttl < Duration::from_secs(5)
            || self.assertion_ttl > Duration::from_secs(3600)
        {
            d.push(
                Diagnostic::error("bad-interval", "assertion_ttl must be between 5s and 1h")
                    .at(&root.key("assertion_ttl")),
            );
        }
        if self.listen.cert_check_interval < Duration::from_millis(100) {
            d.push(
                Diagnostic::error("bad-interval", "cert_check_interval must be at least 100ms")
                    .at(&root.key("listen").key("cert_check_interval")),
            );
        }
        if self.certificates.is_empty() {
            d.push(
                Diagnostic::error(
                    "no-certificate",
                    "the HTTPS listener needs at least one certificate",
                )
                .at(&root.key("listen"))
                .hint("add [[certificates]] with cert_file and key_file"),
            );
        }
        for (i, h) in self.strip_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                d.push(
                    Diagnostic::error("bad-header", format!("`{h}` is not a header name"))
                        .at(&root.key("strip_headers").index(i)),
                );
            }
        }
        if let Some(g) = &self.github {
            let p = root.key("github");
            check_secret(&mut d, &p, &g.client_secret_env, &g.client_secret_file);
            check_base_url(&mut d, &p.key("api_url"), &g.api_url);
            check_base_url(&mut d, &p.key("web_url"), &g.web_url);
            if g.client_id.is_empty() {
                d.push(Diagnostic::error("empty", "client_id is empty").at(&p.key("client_id")));
            }
        }
        if let Some(o) = &self.oidc {
            let p = root.key("oidc");
            check_secret(&mut d, &p, &o.client_secret_env, &o.client_secret_file);
            check_base_url(&mut d, &p.key("issuer"), &o.issuer);
            if !o.scopes.iter().any(|s| s == "openid") {
                d.push(
                    Diagnostic::error("missing-scope", "scopes must include `openid`")
                        .at(&p.key("scopes")),
                );
            }
        }
        let mut seen_names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut seen_places: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let p = root.key("routes").index(i);
            if let Some(first) = seen_names.insert(&r.name, i) {
                d.push(
                    Diagnostic::error(
                        "duplicate",
                        format!("route name `{}` is used twice", r.name),
                    )
                    .at(&p.key("name"))
                    .related(&root.key("routes").index(first).key("name"), "first here"),
                );
            }
            if r.name.is_empty()
                || !r
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                d.push(
                    Diagnostic::error("bad-name", "route names are letters, digits, `-`, `_`, `.`")
                        .at(&p.key("name")),
                );
            }
            if !valid_host(&r.host) {
                d.push(
                    Diagnostic::error(
                        "bad-host",
                        format!("`{}` is not a lower-case host name", r.host),
                    )
                    .at(&p.key("host")),
                );
            }
            if r.host == self.auth_host {
                d.push(
                    Diagnostic::error("auth-host", "a route cannot use the auth host")
                        .at(&p.key("host"))
                        .hint("the auth host serves sign-in, /auth and the JWKS"),
                );
            }
            if !r.path.starts_with('/') || r.path.contains("..") || r.path.contains('?') {
                d.push(
                    Diagnostic::error("bad-path", format!("`{}` is not a path prefix", r.path))
                        .at(&p.key("path"))
                        .hint("e.g. \"/\" or \"/api\""),
                );
            }
            if !seen_places.insert((r.host.clone(), normalize_prefix(&r.path))) {
                d.push(
                    Diagnostic::error(
                        "duplicate",
                        format!("another route already has {}{}", r.host, r.path),
                    )
                    .at(&p.key("path")),
                );
            }
            for (j, u) in r.all_upstreams().iter().enumerate() {
                let key = if r.upstream.is_some() && j == 0 {
                    p.key("upstream")
                } else {
                    p.key("upstreams")
                        .index(j - usize::from(r.upstream.is_some()))
                };
                match url::Url::parse(u) {
                    Ok(url)
                        if matches!(url.scheme(), "http" | "https")
                            && url.host_str().is_some()
                            && url.query().is_none() => {}
                    _ => d.push(
                        Diagnostic::error(
                            "bad-url",
                            format!("`{u}` is not an http(s) upstream URL"),
                        )
                        .at(&key)
                        .hint("e.g. http://grafana.monitoring.svc:3000"),
                    ),
                }
            }
            let lists = !r.allow_users.is_empty()
                || !r.allow_orgs.is_empty()
                || !r.allow_teams.is_empty()
                || !r.allow_groups.is_empty();
            match r.access {
                Access::Allow if !lists => d.push(
                    Diagnostic::error("empty-policy", "access = \"allow\" with nobody allowed")
                        .at(&p.key("access"))
                        .hint("list allow_users, allow_orgs, allow_teams or allow_groups, or use access = \"signed_in\""),
                ),
                Access::Public | Access::SignedIn if lists => d.push(
                    Diagnostic::warning(
                        "ignored-policy",
                        "allow_* lists are ignored unless access = \"allow\"",
                    )
                    .at(&p.key("access")),
                ),
                _ => {}
            }
            for (j, t) in r.allow_teams.iter().enumerate() {
                let ok = t
                    .split_once(':')
                    .is_some_and(|(o, s)| !o.is_empty() && !s.is_empty() && !s.contains(':'));
                if !ok {
                    d.push(
                        Diagnostic::error("bad-team", format!("`{t}` is not `org:team`"))
                            .at(&p.key("allow_teams").index(j))
                            .hint("the team's slug, e.g. \"ictsc:ictsc_infra\""),
                    );
                }
            }
            if (!r.allow_orgs.is_empty() || !r.allow_teams.is_empty()) && self.github.is_none() {
                d.push(
                    Diagnostic::error("no-provider", "allow_orgs/allow_teams need [github]")
                        .at(&p.key("access")),
                );
            }
            if !r.allow_groups.is_empty() && self.oidc.is_none() {
                d.push(
                    Diagnostic::error("no-provider", "allow_groups needs [oidc]")
                        .at(&p.key("allow_groups")),
                );
            }
            if r.timeout.is_zero() || r.connect_timeout.is_zero() {
                d.push(
                    Diagnostic::error("bad-interval", "timeouts must be positive")
                        .at(&p.key("timeout")),
                );
            }
            if r.retries > 5 {
                d.push(Diagnostic::error("too-many", "at most 5 retries").at(&p.key("retries")));
            }
            if let Some(h) = &r.health_check {
                if h.rise == 0 || h.fall == 0 || h.interval.is_zero() || h.timeout.is_zero() {
                    d.push(
                        Diagnostic::error(
                            "bad-health-check",
                            "rise, fall, interval and timeout must be positive",
                        )
                        .at(&p.key("health_check")),
                    );
                }
                if !h.path.starts_with('/') {
                    d.push(
                        Diagnostic::error("bad-path", "health check path must start with /")
                            .at(&p.key("health_check").key("path")),
                    );
                }
            }
        }
        if self.routes.iter().any(|r| r.access != Access::Public)
            && self.github.is_none()
            && self.oidc.is_none()
        {
            d.push(
                Diagnostic::error(
                    "no-provider",
                    "routes need sign-in but no provider is configured",
                )
                .at(&root)
                .hint("add [github] or [oidc]"),
            );
        }
        d
    }
}

/// A path prefix without a trailing `/` (except the root).
pub fn normalize_prefix(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.into()
    }
}
