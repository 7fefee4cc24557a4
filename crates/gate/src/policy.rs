//! Pure decisions: which route a request belongs to (host, then the longest path prefix on whole segments of a
//! normalized path), who a route lets in, which return URLs are ours, and which request headers claim an identity.
//! No I/O and no clock, so every rule is unit-tested.

use crate::config::{normalize_prefix, Access, RouteConfig};
use std::collections::{BTreeSet, HashMap};

/// Who a request is, as the session says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// `github` or `oidc`.
    pub provider: String,
    /// Stable id at the provider (GitHub user id, OIDC `sub`).
    pub id: String,
    /// Login (GitHub) or preferred username (OIDC).
    pub user: String,
    /// Primary verified e-mail, when known.
    pub email: Option<String>,
    /// Groups that matter to the policy: GitHub `org` and `org:team` (lower case), OIDC groups as given.
    pub groups: Vec<String>,
    /// GitHub orgs that refused to tell because they restrict OAuth apps.
    #[serde(default)]
    pub restricted: Vec<String>,
}

/// The outcome of checking a request against its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it through.
    Allow,
    /// Nobody is signed in and the route needs someone.
    SignIn,
    /// Signed in, but not someone this route lets in.
    Forbidden,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index in the config's `routes`.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Normalized prefix (`/` or `/a/b`).
    pub prefix: String,
    /// Access.
    pub access: Access,
    users: BTreeSet<String>,
    orgs: BTreeSet<String>,
    teams: BTreeSet<String>,
    groups: BTreeSet<String>,
}

impl Route {
    /// Compiles a route from its config.
    pub fn new(index: usize, c: &RouteConfig) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        Self {
            index,
            name: c.name.clone(),
            host: c.host.clone(),
            prefix: normalize_prefix(&c.path),
            access: c.access,
            users: lower(&c.allow_users),
            orgs: lower(&c.allow_orgs),
            teams: lower(&c.allow_teams),
            groups: c.allow_groups.iter().cloned().collect(),
        }
    }

    /// Who may pass.
    pub fn decide(&self, who: Option<&Identity>) -> Decision {
        match (self.access, who) {
            (Access::Public, _) => Decision::Allow,
            (_, None) => Decision::SignIn,
            (Access::SignedIn, Some(_)) => Decision::Allow,
            (Access::Allow, Some(id)) => {
                if self.allows(id) {
                    Decision::Allow
                } else {
                    Decision::Forbidden
                }
            }
        }
    }

    fn allows(&self, id: &Identity) -> bool {
        if self.users.contains(&id.user.to_ascii_lowercase()) {
            return true;
        }
        match id.provider.as_str() {
            "github" => id
                .groups
                .iter()
                .any(|g| self.orgs.contains(g) || self.teams.contains(g)),
            _ => id.groups.iter().any(|g| self.groups.contains(g)),
        }
    }

    /// GitHub orgs this route's policy mentions (lower case).
    pub fn github_orgs(&self) -> impl Iterator<Item = String> + '_ {
        self.orgs.iter().cloned().chain(
            self.teams
                .iter()
                .filter_map(|t| t.split_once(':').map(|(o, _)| o.to_string())),
        )
    }

    /// GitHub teams this route's policy mentions (`org:team`, lower case).
    pub fn github_teams(&self) -> impl Iterator<Item = &String> {
        self.teams.iter()
    }

    /// OIDC groups this route's policy mentions.
    pub fn oidc_groups(&self) -> impl Iterator<Item = &String> {
        self.groups.iter()
    }

    /// True when `path` (normalized) is under this route's prefix, on a segment boundary.
    pub fn matches_path(&self, path: &str) -> bool {
        self.prefix == "/"
            || path == self.prefix
            || (path.starts_with(&self.prefix)
                && path.as_bytes().get(self.prefix.len()) == Some(&b'/'))
    }
}

/// Routes by host, each host's routes longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    by_host: HashMap<String, Vec<Route>>,
}

impl RouteTable {
    /// Compiles every route.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut by_host: HashMap<String, Vec<Route>> = HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            by_host
                .entry(r.host.clone())
                .or_default()
                .push(Route::new(i, r));
        }
        for v in by_host.values_mut() {
            v.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        }
        Self { by_host }
    }

    /// The route for `host` (lower case, no port) and a normalized `path` (no query).
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        self.by_host
            .get(host)?
            .iter()
            .find(|r| r.matches_path(path))
    }

    /// True when some route serves `host`.
    pub fn has_host(&self, host: &str) -> bool {
        self.by_host.contains_key(host)
    }

    /// Every route.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.by_host.values().flatten()
    }
}

/// Normalizes a request path for matching *and* forwarding, so that what is checked is what the upstream sees:
/// percent-encoded unreserved characters are decoded (`%61dmin` → `admin`), dot segments are resolved, empty
/// segments are kept. Returns `None` for paths that are not origin-form or escape the root.
pub fn normalize_path(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    // Nothing to decode and no dot segment (the usual case): the path is already normal.
    let plain = raw
        .bytes()
        .all(|b| b != b'%' && b != b'\\' && b >= 0x20 && b != 0x7f)
        && !raw[1..].split('/').any(|s| s == "." || s == "..");
    if plain {
        return Some(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (h, l) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            );
            let (h, l) = (h?, l?);
            let v = (h * 16 + l) as u8;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                decoded.push(v as char);
            } else {
                decoded.push('%');
                decoded.push_str(&format!("{v:02X}"));
            }
            i += 3;
        } else if b == b'\\' || b < 0x20 || b == 0x7f {
            return None;
        } else {
            decoded.push(b as char);
            i += 1;
        }
    }
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = decoded[1..].split('/').collect();
    let n = segs.len();
    for (k, s) in segs.iter().enumerate() {
        match *s {
            "." => {
                if k == n - 1 {
                    out.push("");
                }
            }
            ".." => {
                out.pop()?;
                if k == n - 1 {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    Some(format!("/{}", out.join("/")))
}

/// Checks a return URL: only absolute `https` URLs on the auth host or a route host (with the public port) are
/// accepted; anything else (other hosts, other schemes, user info, relative or protocol-relative URLs) is an open
/// redirect and refused.
pub fn safe_return_url(
    raw: &str,
    auth_host: &str,
    routes: &RouteTable,
    port: u16,
) -> Option<String> {
    if raw.len() > 4096 || raw.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let u = url::Url::parse(raw).ok()?;
    if u.scheme() != "https" || !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    let host = match u.host()? {
        url::Host::Domain(d) => d.to_ascii_lowercase(),
        _ => return None,
    };
    if host != auth_host && !routes.has_host(&host) {
        return None;
    }
    if u.port_or_known_default() != Some(port) {
        return None;
    }
    Some(u.to_string())
}

/// Identity headers a client must never be able to send upstream, compared after lower-casing and turning `_`
/// into `-` (so `X_Yagura_User` and `x-yagura-user` are one header). Prefixes end with `-`.
const IDENTITY_HEADERS: &[&str] = &[
    "x-yagura-",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-",
    "x-remote-user",
    "x-remote-group",
    "x-remote-email",
    "remote-user",
    "x-webauth-",
    "x-pomerium-",
    "x-user",
    "x-email",
    "x-groups",
];

/// True when a header (any spelling) claims an identity, or is one of the `extra` names from the config.
pub fn is_identity_header(name: &str, extra: &[String]) -> bool {
    // Compared byte by byte with `_` read as `-` and ASCII case folded (no allocation per header).
    fn fold(c: u8) -> u8 {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    }
    fn same(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
    }
    let n = name.as_bytes();
    IDENTITY_HEADERS.iter().any(|h| {
        let h = h.as_bytes();
        if h.ends_with(b"-") {
            n.len() >= h.len() && same(&n[..h.len()], h)
        } else {
            same(n, h)
        }
    }) || extra.iter().any(|e| same(n, e.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn route(access: Access, f: impl FnOnce(&mut RouteConfig)) -> Route {
        let mut c: RouteConfig = toml::from_str(
            r#"name = "r"
host = "a.test"
upstream = "http://127.0.0.1:1""#,
        )
        .unwrap();
        c.access = access;
        f(&mut c);
        Route::new(0, &c)
    }

    fn gh(user: &str, groups: &[&str]) -> Identity {
        Identity {
            provider: "github".into(),
            id: "1".into(),
            user: user.into(),
            email: None,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            restricted: vec![],
        }
    }

    #[test]
    fn policy() {
        let r = route(Access::Allow, |c| {
            c.allow_teams = vec!["ICTSC:infra".into()];
            c.allow_users = vec!["Alice".into()];
        });
        assert_eq!(r.decide(None), Decision::SignIn);
        assert_eq!(r.decide(Some(&gh("alice", &[]))), Decision::Allow);
        assert_eq!(
            r.decide(Some(&gh("bob", &["ictsc:infra"]))),
            Decision::Allow
        );
        assert_eq!(r.decide(Some(&gh("bob", &["ictsc"]))), Decision::Forbidden);
        assert_eq!(
            r.decide(Some(&gh("bob", &["ictsc:other"]))),
            Decision::Forbidden
        );
        // An OIDC group with the team's name does not count as the GitHub team.
        let mut o = gh("carol", &["ictsc:infra"]);
        o.provider = "oidc".into();
        assert_eq!(r.decide(Some(&o)), Decision::Forbidden);
        let p = route(Access::Public, |_| {});
        assert_eq!(p.decide(None), Decision::Allow);
        let s = route(Access::SignedIn, |_| {});
        assert_eq!(s.decide(None), Decision::SignIn);
        assert_eq!(s.decide(Some(&gh("x", &[]))), Decision::Allow);
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(normalize_path("/%61dmin/x").as_deref(), Some("/admin/x"));
        assert_eq!(normalize_path("/a/../admin").as_deref(), Some("/admin"));
        assert_eq!(normalize_path("/a/./b/").as_deref(), Some("/a/b/"));
        assert_eq!(normalize_path("/a%2Fb").as_deref(), Some("/a%2Fb"));
        assert_eq!(normalize_path("/a%2fb").as_deref(), Some("/a%2Fb"));
        assert_eq!(normalize_path("/../x"), None);
        assert_eq!(normalize_path("/%zz"), None);
        assert_eq!(normalize_path("a"), None);
        assert_eq!(normalize_path("/a\\b"), None);
        let r = route(Access::Public, |c| c.path = "/admin/".into());
        assert!(r.matches_path("/admin"));
        assert!(r.matches_path("/admin/x"));
        assert!(!r.matches_path("/administrator"));
    }

    #[test]
    fn table_longest_prefix() {
        let mk = |name: &str, path: &str| -> RouteConfig {
            toml::from_str(&format!(
                "name = \"{name}\"\nhost = \"a.test\"\npath = \"{path}\"\nupstream = \"http://127.0.0.1:1\""
            ))
            .unwrap()
        };
        let t = RouteTable::new(&[mk("root", "/"), mk("api", "/api"), mk("deep", "/api/v2")]);
        assert_eq!(t.find("a.test", "/x").unwrap().name, "root");
        assert_eq!(t.find("a.test", "/api").unwrap().name, "api");
        assert_eq!(t.find("a.test", "/api/v2/x").unwrap().name, "deep");
        assert_eq!(t.find("a.test", "/apiv2").unwrap().name, "root");
        assert!(t.find("b.test", "/").is_none());
    }

    #[test]
    fn return_urls() {
        let mk: RouteConfig =
            toml::from_str("name = \"r\"\nhost = \"app.test\"\nupstream = \"http://127.0.0.1:1\"")
                .unwrap();
        let t = RouteTable::new(&[mk]);
        let ok = |u: &str| safe_return_url(u, "auth.test", &t, 443);
        assert!(ok("https://app.test/x?y=1").is_some());
        assert!(ok("https://auth.test/").is_some());
        assert!(ok("https://APP.test/").is_some());
        for bad in [
            "https://evil.test/",
            "http://app.test/",
            "//evil.test/",
            "/relative",
            "https://app.test@evil.test/",
            "https://evil.test\\@app.test/",
            "https:\\\\evil.test",
            "https://app.test.evil.test/",
            "https://app.test:8443/",
            "javascript:alert(1)",
            "https://user:pw@app.test/",
        ] {
            assert!(ok(bad).is_none(), "{bad} must be refused");
        }
    }

    #[test]
    fn identity_headers_any_spelling() {
        for h in [
            "X-Yagura-User",
            "x_yagura_user",
            "X_YAGURA_GROUPS",
            "x-yagura-assertion",
            "X-Forwarded-User",
            "x_forwarded_email",
            "X-Auth-Request-User",
            "Remote-User",
            "remote_user",
            "X-Pomerium-Jwt-Assertion",
        ] {
            assert!(is_identity_header(h, &[]), "{h}");
        }
        assert!(!is_identity_header("x-forwarded-for", &[]));
        assert!(!is_identity_header("authorization", &[]));
        assert!(is_identity_header(
            "X_Grafana_User",
            &["x-grafana-user".into()]
        ));
    }
}
