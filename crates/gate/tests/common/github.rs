//! A stand-in for GitHub (github.com's OAuth endpoints and api.github.com's REST endpoints the gate uses), on
//! 127.0.0.1, scripted per test. It follows GitHub's documented behaviour:
//! - `GET /login/oauth/authorize` redirects back with `code` and `state` (an already-authorized app);
//! - `POST /login/oauth/access_token` answers **200 with an `error` field** for a bad code or a PKCE mismatch
//!   (`bad_verification_code`), as GitHub does, and JSON with `access_token`, `token_type`, `scope` otherwise;
//! - REST calls without a valid token get `401 {"message":"Bad credentials"}`;
//! - `GET /user/memberships/orgs/{org}`: `200 {"state":"active"|"pending"}`, `404 {"message":"Not Found"}` for
//!   non-members, and `403` with the "OAuth App access restrictions" message for orgs that restrict apps (those
//!   orgs are also left out of `/user/orgs`);
//! - lists (`/user/emails`, `/user/orgs`, `/user/teams`) paginate with `per_page` (default 30, max 100) and
//!   `page`, with a `Link` header carrying absolute `next`/`last` (and `prev`/`first`) URLs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::result_large_err,
    dead_code
)]

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

pub const CLIENT_ID: &str = "Iv1.standin";
pub const CLIENT_SECRET: &str = "standin-secret";
pub const RESTRICTED_MSG: &str = "Although you appear to have the correct authorization credentials, the `{org}` organization has enabled OAuth App access restrictions, meaning that data access to third-parties is limited. For more information on these restrictions, including how to enable this app, visit https://docs.github.com/articles/restricting-access-to-your-organization-s-data/";

#[derive(Clone, Debug, Default)]
pub struct User {
    pub login: String,
    pub id: u64,
    pub public_email: Option<String>,
    /// (email, primary, verified)
    pub emails: Vec<(String, bool, bool)>,
    /// org → "active" | "pending"
    pub orgs: BTreeMap<String, String>,
    /// (org, team slug)
    pub teams: Vec<(String, String)>,
}

impl User {
    pub fn new(login: &str, id: u64) -> Self {
        Self {
            login: login.into(),
            id,
            emails: vec![(format!("{login}@example.org"), true, true)],
            ..Default::default()
        }
    }
    pub fn org(mut self, org: &str, state: &str) -> Self {
        self.orgs.insert(org.into(), state.into());
        self
    }
    pub fn team(mut self, org: &str, slug: &str) -> Self {
        self.teams.push((org.into(), slug.into()));
        self
    }
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, User>,
    restricted: BTreeSet<String>,
    next: Option<String>,
    /// code → (login, challenge, redirect_uri)
    codes: HashMap<String, (String, String, String)>,
    tokens: HashMap<String, String>,
    calls: Vec<String>,
    seq: u64,
}

#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) <= 2 {
            self.stop.cancel();
        }
    }
}

type S = Arc<Mutex<Inner>>;

impl StandIn {
    pub async fn start() -> StandIn {
        let inner: S = Arc::new(Mutex::new(Inner::default()));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .route("/user/orgs", get(orgs))
            .route("/user/teams", get(teams))
            .route("/user/memberships/orgs/{org}", get(membership))
            .with_state(inner.clone());
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        StandIn { addr, inner, stop }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `[github]` section for a gate using this stand-in (the secret file is written into `dir`).
    pub fn config(&self, org: Option<&str>) -> String {
        let org = org.map(|o| format!("org = \"{o}\"\n")).unwrap_or_default();
        format!(
            "[github]\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{{dir}}/gh.secret\"\n{org}api_url = \"{b}\"\nweb_url = \"{b}\"\n",
            b = self.base()
        )
    }

    pub fn add(&self, u: User) {
        self.inner.lock().unwrap().users.insert(u.login.clone(), u);
    }
    pub fn edit(&self, login: &str, f: impl FnOnce(&mut User)) {
        f(self.inner.lock().unwrap().users.get_mut(login).unwrap());
    }
    pub fn restrict(&self, org: &str) {
        self.inner.lock().unwrap().restricted.insert(org.into());
    }
    pub fn next_user(&self, login: &str) {
        self.inner.lock().unwrap().next = Some(login.into());
    }
    pub fn revoke_all(&self) {
        self.inner.lock().unwrap().tokens.clear();
    }
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }
    pub fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    /// Follows the authorize URL the gate produced; returns the callback URL (with code and state).
    pub async fn authorize(&self, url: &str) -> String {
        assert!(
            url.starts_with(&self.base()),
            "authorize URL {url} is not on the stand-in"
        );
        let r = super::plain_get(url).await;
        assert_eq!(r.status, StatusCode::FOUND, "authorize: {}", r.text());
        r.location()
    }
}

fn bad_credentials() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response()
}

fn who(s: &S, h: &HeaderMap, call: &str) -> Result<User, Response> {
    let mut g = s.lock().unwrap();
    g.calls.push(call.to_string());
    let tok = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .unwrap_or("");
    let login = g.tokens.get(tok).cloned().ok_or_else(bad_credentials)?;
    g.users.get(&login).cloned().ok_or_else(bad_credentials)
}

async fn authorize(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut g = s.lock().unwrap();
    g.calls.push("authorize".into());
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return (StatusCode::NOT_FOUND, "unknown client").into_response();
    }
    assert_eq!(
        q.get("scope").map(String::as_str),
        Some("read:org user:email")
    );
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    let Some(login) = g.next.clone() else {
        return (StatusCode::OK, "<html>sign in to GitHub</html>").into_response();
    };
    g.seq += 1;
    let code = format!("code{}", g.seq);
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    g.codes.insert(
        code.clone(),
        (
            login,
            q.get("code_challenge").cloned().unwrap_or_default(),
            redirect.clone(),
        ),
    );
    let state = q.get("state").cloned().unwrap_or_default();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    found(&format!(
        "{redirect}{sep}code={code}&state={}",
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    ))
    .into_response()
}

async fn token(State(s): State<S>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut g = s.lock().unwrap();
    g.calls.push("token".into());
    let err = |e: &str, d: &str| {
        Json(json!({"error": e, "error_description": d, "error_uri": "https://docs.github.com/apps/troubleshooting"}))
            .into_response()
    };
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return err(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let code = f.get("code").cloned().unwrap_or_default();
    let Some((login, challenge, redirect)) = g.codes.remove(&code) else {
        return err(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    if f.get("redirect_uri") != Some(&redirect) {
        return err(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    if computed != challenge {
        return err(
            "bad_verification_code",
            "The code_verifier does not match the code_challenge.",
        );
    }
    g.seq += 1;
    let tok = format!("gho_standin{}", g.seq);
    g.tokens.insert(tok.clone(), login);
    Json(json!({"access_token": tok, "token_type": "bearer", "scope": "read:org,user:email"}))
        .into_response()
}

async fn user(State(s): State<S>, h: HeaderMap) -> Response {
    match who(&s, &h, "/user") {
        Ok(u) => Json(json!({"login": u.login, "id": u.id, "email": u.public_email, "name": null, "type": "User"}))
            .into_response(),
        Err(r) => r,
    }
}

fn paginate(base: &str, path: &str, items: Vec<Value>, q: &HashMap<String, String>) -> Response {
    let per = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per).max(1);
    let chunk: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
    let link =
        |p: usize, rel: &str| format!("<{base}{path}?per_page={per}&page={p}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
        links.push(link(1, "first"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    let mut r = Json(Value::Array(chunk)).into_response();
    if !links.is_empty() {
        r.headers_mut()
            .insert("link", links.join(", ").parse().unwrap());
    }
    r
}

async fn emails(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = format!(
        "http://{}",
        h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("")
    );
    match who(&s, &h, "/user/emails") {
        Ok(u) => paginate(
            &base,
            "/user/emails",
            u.emails
                .iter()
                .map(|(e, p, v)| json!({"email": e, "primary": p, "verified": v, "visibility": "private"}))
                .collect(),
            &q,
        ),
        Err(r) => r,
    }
}

async fn orgs(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = format!(
        "http://{}",
        h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("")
    );
    let restricted = s.lock().unwrap().restricted.clone();
    match who(&s, &h, "/user/orgs") {
        Ok(u) => paginate(
            &base,
            "/user/orgs",
            u.orgs
                .iter()
                .filter(|(o, st)| *st == "active" && !restricted.contains(*o))
                .map(|(o, _)| json!({"login": o}))
                .collect(),
            &q,
        ),
        Err(r) => r,
    }
}

async fn teams(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = format!(
        "http://{}",
        h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("")
    );
    let restricted = s.lock().unwrap().restricted.clone();
    let page = q.get("page").cloned().unwrap_or_else(|| "1".into());
    match who(&s, &h, &format!("/user/teams?page={page}")) {
        Ok(u) => paginate(
            &base,
            "/user/teams",
            u.teams
                .iter()
                .filter(|(o, _)| !restricted.contains(o))
                .map(|(o, t)| json!({"slug": t, "name": t, "organization": {"login": o}}))
                .collect(),
            &q,
        ),
        Err(r) => r,
    }
}

async fn membership(State(s): State<S>, h: HeaderMap, Path(org): Path<String>) -> Response {
    let restricted = s.lock().unwrap().restricted.contains(&org);
    match who(&s, &h, &format!("/user/memberships/orgs/{org}")) {
        Ok(_) if restricted => (
            StatusCode::FORBIDDEN,
            Json(json!({"message": RESTRICTED_MSG.replace("{org}", &org), "documentation_url": "https://docs.github.com/articles/restricting-access-to-your-organization-s-data/"})),
        )
            .into_response(),
        Ok(u) => match u.orgs.get(&org) {
            Some(state) => Json(json!({"state": state, "role": "member", "organization": {"login": org}, "user": {"login": u.login}}))
                .into_response(),
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user"})),
            )
                .into_response(),
        },
        Err(r) => r,
    }
}

/// `302 Found` (what the provider sends; axum's `Redirect::to` is 303).
fn found(to: &str) -> Response {
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, to.to_string())],
    )
        .into_response()
}
