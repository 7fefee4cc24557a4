//! GitHub as the identity provider: the OAuth web flow (authorize URL with `state` and PKCE S256, code exchange)
//! and who the user is from the REST API — `/user`, `/user/emails`, `/user/memberships/orgs/{org}` (only
//! `state: active` counts; `pending` is an invitation, not membership; a 403 about OAuth App access restrictions
//! means the org hides itself until an owner approves the app) and `/user/teams` (paginated through `Link`,
//! followed only on the API's own origin so the token never leaves it). Base URLs are configurable for GitHub
//! Enterprise.

use crate::httpc::{Fetch, Reply};
use crate::policy::Identity;
use http::{Method, StatusCode};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Scopes asked for.
pub const SCOPES: &str = "read:org user:email";
const API_VERSION: &str = "2022-11-28";
const MAX_PAGES: usize = 50;

/// Why sign-in or a membership re-check failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The provider (or the user) refused the authorization.
    #[error("authorization refused: {0}")]
    Refused(String),
    /// The code could not be exchanged for a token.
    #[error("code exchange failed: {0}")]
    Exchange(String),
    /// The token no longer works (revoked, app uninstalled).
    #[error("the provider no longer accepts the token")]
    Revoked,
    /// The org that sign-in requires restricts OAuth apps and has not approved this one.
    #[error("organization `{0}` restricts OAuth apps and has not approved this one")]
    Restricted(String),
    /// Not an active member of the org sign-in requires.
    #[error("not an active member of `{0}`")]
    NotMember(String),
    /// A scope was not granted.
    #[error("scope `{0}` was not granted")]
    Scope(String),
    /// The provider is unreachable, failing or rate-limiting (try again later).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something unexpected.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl AuthError {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Refused(_) => "refused",
            AuthError::Exchange(_) => "exchange_failed",
            AuthError::Revoked => "revoked",
            AuthError::Restricted(_) => "org_restricted",
            AuthError::NotMember(_) => "not_member",
            AuthError::Scope(_) => "scope_missing",
            AuthError::Unavailable(_) => "provider_unavailable",
            AuthError::Protocol(_) => "provider_error",
        }
    }
}

/// The GitHub provider.
#[derive(Debug, Clone)]
pub struct GitHub {
    client_id: String,
    secret: String,
    api: String,
    web: String,
    org: Option<String>,
    orgs: BTreeSet<String>,
    teams: BTreeSet<String>,
    fetch: Fetch,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct User {
    login: String,
    id: u64,
    email: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct Membership {
    state: String,
}

#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

#[derive(Deserialize)]
struct ApiMessage {
    message: Option<String>,
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl GitHub {
    /// A provider; `orgs` and `teams` (lower case) are those the policy mentions — only they are read and kept in
    /// the session, which keeps cookies small.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client_id: String,
        secret: String,
        api_url: &str,
        web_url: &str,
        org: Option<String>,
        mut orgs: BTreeSet<String>,
        teams: BTreeSet<String>,
        fetch: Fetch,
    ) -> Self {
        let org = org.map(|o| o.to_ascii_lowercase());
        if let Some(o) = &org {
            orgs.insert(o.clone());
        }
        for t in &teams {
            if let Some((o, _)) = t.split_once(':') {
                orgs.insert(o.to_string());
            }
        }
        Self {
            client_id,
            secret,
            api: api_url.trim_end_matches('/').to_string(),
            web: web_url.trim_end_matches('/').to_string(),
            org,
            orgs,
            teams,
            fetch,
        }
    }

    /// The org sign-in requires, if any.
    pub fn required_org(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// The web base URL.
    pub fn web_url(&self) -> &str {
        &self.web
    }

    /// Where to send the browser.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, challenge: &str) -> String {
        format!(
            "{}/login/oauth/authorize?client_id={}&redirect_uri={}&scope={}&state={}&code_challenge={}&code_challenge_method=S256&allow_signup=false",
            self.web,
            encode(&self.client_id),
            encode(redirect_uri),
            encode(SCOPES),
            encode(state),
            encode(challenge)
        )
    }

    /// Exchanges the code (with the PKCE verifier) for an access token.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<String, AuthError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.secret)
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier)
            .finish();
        let r = self
            .fetch
            .send(
                Method::POST,
                &format!("{}/login/oauth/access_token", self.web),
                &[("accept", "application/json")],
                Some(("application/x-www-form-urlencoded", body.into_bytes())),
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if r.status.is_server_error() {
            return Err(AuthError::Unavailable(format!(
                "token endpoint: {}",
                r.status
            )));
        }
        let t: TokenReply = r.json().ok_or_else(|| {
            AuthError::Protocol(format!("token endpoint: {} without JSON", r.status))
        })?;
        // GitHub answers errors with 200 and an `error` field.
        if let Some(e) = t.error {
            return Err(AuthError::Exchange(match t.error_description {
                Some(d) => format!("{e}: {d}"),
                None => e,
            }));
        }
        let token = t
            .access_token
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::Protocol("no access_token".into()))?;
        if let Some(scope) = t.scope {
            let granted: BTreeSet<&str> = scope.split([',', ' ']).map(str::trim).collect();
            if !self.orgs.is_empty()
                && !granted.contains("read:org")
                && !granted.contains("admin:org")
            {
                return Err(AuthError::Scope("read:org".into()));
            }
        }
        Ok(token)
    }

    async fn get(&self, token: &str, url: &str) -> Result<Reply, AuthError> {
        let auth = format!("Bearer {token}");
        self.fetch
            .send(
                Method::GET,
                url,
                &[
                    ("authorization", &auth),
                    ("accept", "application/vnd.github+json"),
                    ("x-github-api-version", API_VERSION),
                ],
                None,
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))
    }

    fn fail(r: &Reply, what: &str) -> AuthError {
        let limited = r
            .headers
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v.as_bytes() == b"0");
        let msg = r
            .json::<ApiMessage>()
            .and_then(|m| m.message)
            .unwrap_or_default();
        match r.status {
            StatusCode::UNAUTHORIZED => AuthError::Revoked,
            StatusCode::TOO_MANY_REQUESTS => {
                AuthError::Unavailable(format!("{what}: rate limited"))
            }
            StatusCode::FORBIDDEN if limited => {
                AuthError::Unavailable(format!("{what}: rate limited"))
            }
            s if s.is_server_error() => AuthError::Unavailable(format!("{what}: {s}")),
            s => AuthError::Protocol(format!("{what}: {s} {msg}")),
        }
    }

    /// Every item of a paginated list, following `Link: <…>; rel="next"` on the API origin only.
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        first: &str,
    ) -> Result<Vec<T>, AuthError> {
        let mut out = Vec::new();
        let mut url = first.to_string();
        for _ in 0..MAX_PAGES {
            let r = self.get(token, &url).await?;
            if r.status != StatusCode::OK {
                return Err(Self::fail(&r, first));
            }
            let items: Vec<T> = r
                .json()
                .ok_or_else(|| AuthError::Protocol(format!("{first}: not a JSON list")))?;
            out.extend(items);
            match next_link(&r.headers) {
                Some(n) if n.starts_with(&format!("{}/", self.api)) => url = n,
                Some(n) => {
                    return Err(AuthError::Protocol(format!(
                        "pagination leads off the API origin ({n})"
                    )))
                }
                None => return Ok(out),
            }
        }
        Err(AuthError::Protocol(format!(
            "{first}: more than {MAX_PAGES} pages"
        )))
    }

    /// Who the token's user is, with the policy's orgs and teams they actively belong to.
    pub async fn identity(&self, token: &str) -> Result<Identity, AuthError> {
        let r = self.get(token, &format!("{}/user", self.api)).await?;
        if r.status != StatusCode::OK {
            return Err(Self::fail(&r, "/user"));
        }
        let user: User = r
            .json()
            .ok_or_else(|| AuthError::Protocol("/user: unexpected body".into()))?;
        let mut email = user.email.clone();
        match self
            .pages::<Email>(token, &format!("{}/user/emails?per_page=100", self.api))
            .await
        {
            Ok(list) => {
                if let Some(e) = list.iter().find(|e| e.primary && e.verified) {
                    email = Some(e.email.clone());
                }
            }
            Err(e @ (AuthError::Revoked | AuthError::Unavailable(_))) => return Err(e),
            Err(_) => {} // no user:email scope: keep the public e-mail, if any
        }
        let mut groups = Vec::new();
        let mut restricted = Vec::new();
        for org in &self.orgs {
            let r = self
                .get(
                    token,
                    &format!("{}/user/memberships/orgs/{}", self.api, encode(org)),
                )
                .await?;
            match r.status {
                StatusCode::OK => {
                    let m: Membership = r
                        .json()
                        .ok_or_else(|| AuthError::Protocol("membership: unexpected body".into()))?;
                    if m.state == "active" {
                        groups.push(org.clone());
                    }
                }
                StatusCode::NOT_FOUND => {}
                StatusCode::FORBIDDEN
                    if r.json::<ApiMessage>()
                        .and_then(|m| m.message)
                        .is_some_and(|m| m.contains("OAuth App access restrictions")) =>
                {
                    restricted.push(org.clone());
                }
                _ => return Err(Self::fail(&r, "/user/memberships/orgs")),
            }
        }
        if !self.teams.is_empty() && !groups.is_empty() {
            let teams: Vec<Team> = self
                .pages(token, &format!("{}/user/teams?per_page=100", self.api))
                .await?;
            for t in teams {
                let org = t.organization.login.to_ascii_lowercase();
                let key = format!("{org}:{}", t.slug.to_ascii_lowercase());
                if self.teams.contains(&key) && groups.contains(&org) && !groups.contains(&key) {
                    groups.push(key);
                }
            }
        }
        if let Some(org) = &self.org {
            if restricted.contains(org) {
                return Err(AuthError::Restricted(org.clone()));
            }
            if !groups.contains(org) {
                return Err(AuthError::NotMember(org.clone()));
            }
        }
        groups.sort();
        Ok(Identity {
            provider: "github".into(),
            id: user.id.to_string(),
            user: user.login,
            email,
            groups,
            restricted,
        })
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (url, params) = part.trim().split_once(';')?;
            let is_next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
            is_next.then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn link_header() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::LINK,
            "<https://api.github.com/user/teams?page=2>; rel=\"next\", <https://api.github.com/user/teams?page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/user/teams?page=2")
        );
        h.insert(
            http::header::LINK,
            "<https://api.github.com/user/teams?page=1>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }
}
