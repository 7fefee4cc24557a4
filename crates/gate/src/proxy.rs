//! One request through the gate: find the route (host, normalized path), read and re-check the session, apply
//! the route's policy (browser → sign-in redirect, API/XHR → 401, signed in but not allowed → 403), then forward
//! with identity headers stripped and re-added (`X-Yagura-*` and the signed assertion), retries for idempotent
//! requests, and websocket tunnels held to the same policy for as long as they are open.

use crate::assertion::Claims;
use crate::auth;
use crate::github::AuthError;
use crate::h1::{Outgoing, Target};
use crate::pages::{self, Action, Tone, Who};
use crate::policy::{is_identity_header, normalize_path, Decision, Route};
use crate::session::{self, clear_cookie, cookie_values, set_cookie, CookieAttrs, Session};
use crate::state::{origin, State};
use crate::upstream::{empty, full, Body, Pool, Upstream};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_YAGURA_USER: HeaderName = HeaderName::from_static("x-yagura-user");
const X_YAGURA_EMAIL: HeaderName = HeaderName::from_static("x-yagura-email");
const X_YAGURA_GROUPS: HeaderName = HeaderName::from_static("x-yagura-groups");
const X_YAGURA_ASSERTION: HeaderName = HeaderName::from_static("x-yagura-assertion");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

/// Headers the gate sets itself towards upstreams.
const OWN: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

/// An HTML page response.
pub fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(pages::CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A JSON response.
pub fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A `302 Found` to `to`.
pub fn redirect(to: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Adds a `Set-Cookie`.
pub fn add_cookie(r: &mut Response<Body>, c: &str) {
    if let Ok(v) = HeaderValue::from_str(c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The request's host (lower case, without port or trailing dot).
pub fn req_host<B>(req: &Request<B>) -> Option<String> {
    // The usual case — a `Host` of lower-case letters, digits, dots and dashes with at most a numeric port — is
    // taken as it is; anything else goes through the full authority parser below.
    if req.uri().authority().is_none() {
        if let Some(h) = req.headers().get(header::HOST).map(HeaderValue::as_bytes) {
            let (name, port) = match h.iter().position(|&b| b == b':') {
                Some(i) => (&h[..i], Some(&h[i + 1..])),
                None => (h, None),
            };
            let plain =
                |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-');
            let port_ok = port.is_none_or(|p| {
                !p.is_empty()
                    && p.iter().all(u8::is_ascii_digit)
                    && std::str::from_utf8(p).is_ok_and(|p| p.parse::<u16>().is_ok())
            });
            if !name.is_empty() && name.iter().all(plain) && port_ok {
                let name = std::str::from_utf8(name).ok()?.trim_end_matches('.');
                return (!name.is_empty()).then(|| name.to_string());
            }
        }
    }
    let raw = req
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            let h = req.headers().get(header::HOST)?.to_str().ok()?;
            let a: http::uri::Authority = h.parse().ok()?;
            Some(a.host().to_string())
        })?;
    let h = raw.trim_end_matches('.').to_ascii_lowercase();
    (!h.is_empty()).then_some(h)
}

/// True for a top-level browser navigation (which may be redirected to sign-in); API calls, XHR/fetch and
/// websockets get a 401 instead, so scripts never follow a redirect into an HTML sign-in page.
pub fn is_browser<B>(req: &Request<B>) -> bool {
    if !matches!(*req.method(), Method::GET | Method::HEAD) || is_upgrade(req) {
        return false;
    }
    let h = req.headers();
    let get = |n: &HeaderName| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    match get(&SEC_FETCH_MODE) {
        "navigate" => true,
        "" => get(&header::ACCEPT).contains("text/html") && get(&X_REQUESTED_WITH).is_empty(),
        _ => false,
    }
}

/// True for an HTTP/1.1 websocket (or other) upgrade request.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The session on a request, after expiry and membership re-check, and the `Set-Cookie` to send back (a
/// refreshed session, or a removal when the session ended).
pub struct SessionRead {
    /// The session, when valid (shared with the per-thread cache of opened cookies, not copied per request).
    pub session: Option<Arc<Session>>,
    /// `Set-Cookie` to add to the response.
    pub set_cookie: Option<String>,
    /// Why a presented session was dropped.
    pub ended: Option<AuthError>,
}

/// Reads the session cookie.
pub async fn read_session(st: &State, headers: &HeaderMap) -> SessionRead {
    let name = &st.cfg.cookie_name;
    let now = now();
    let mut presented = false;
    let mut found = None;
    for v in cookie_values(headers, name) {
        presented = true;
        let opened = st.opened.get(v).or_else(|| {
            let s = Arc::new(st.sealer.open::<Session>(name, v)?);
            st.opened.put(v, Arc::clone(&s));
            Some(s)
        });
        if let Some(s) = opened {
            if !s.expired(now) {
                found = Some(s);
                break;
            }
        }
    }
    let clear = || Some(clear_cookie(name, st.cookie_domain()));
    let Some(shared) = found else {
        return SessionRead {
            session: None,
            set_cookie: if presented { clear() } else { None },
            ended: None,
        };
    };
    if !shared.stale(now, st.cfg.membership_recheck) {
        return SessionRead {
            session: Some(shared),
            set_cookie: None,
            ended: None,
        };
    }
    // Boxed: the re-check (provider calls) is rare and its future large; it stays out of every request's.
    Box::pin(refresh(st, &shared, now)).await
}

/// The membership re-check of a stale session (one per session at a time).
async fn refresh(st: &State, shared: &Session, now: u64) -> SessionRead {
    let name = &st.cfg.cookie_name;
    let clear = || Some(clear_cookie(name, st.cookie_domain()));
    let mut s = Session::clone(shared);
    // One re-check per session at a time; requests arriving meanwhile wait and reuse its result.
    let slot = st.rechecks.slot(&s.sid);
    let mut done = slot.lock().await;
    if let Some(fresh) = done
        .as_ref()
        .filter(|f| !f.stale(now, st.cfg.membership_recheck))
    {
        let fresh = fresh.clone();
        let c = seal_session(st, &fresh);
        return SessionRead {
            session: Some(Arc::new(fresh)),
            set_cookie: c,
            ended: None,
        };
    }
    let result = recheck(st, &mut s).await;
    if result.is_ok() {
        *done = Some(s.clone());
    }
    drop(done);
    match result {
        Ok(()) => {
            st.metrics.recheck("ok");
            let c = seal_session(st, &s);
            SessionRead {
                session: Some(Arc::new(s)),
                set_cookie: c,
                ended: None,
            }
        }
        Err(AuthError::Unavailable(why)) => {
            // The provider is down: keep the session for one more interval, then give up.
            let grace = st.cfg.membership_recheck.as_secs().saturating_mul(2);
            if now < s.chk.saturating_add(grace) {
                st.metrics.recheck("unavailable_kept");
                tracing::warn!(user = %s.who.user, %why, "membership re-check failed; keeping the session for now");
                SessionRead {
                    session: Some(Arc::new(s)),
                    set_cookie: None,
                    ended: None,
                }
            } else {
                st.metrics.recheck("unavailable_ended");
                SessionRead {
                    session: None,
                    set_cookie: clear(),
                    ended: Some(AuthError::Unavailable(why)),
                }
            }
        }
        Err(e) => {
            st.metrics.recheck(e.label());
            tracing::info!(user = %s.who.user, reason = %e, "session ended by membership re-check");
            SessionRead {
                session: None,
                set_cookie: clear(),
                ended: Some(e),
            }
        }
    }
}

/// Reads identity and membership again from the provider.
pub async fn recheck(st: &State, s: &mut Session) -> Result<(), AuthError> {
    match s.who.provider.as_str() {
        "github" => {
            let gh = st.github.as_ref().ok_or_else(|| {
                AuthError::Protocol("GitHub sign-in is no longer configured".into())
            })?;
            let who = gh.identity(&s.tok).await?;
            if who.id != s.who.id {
                return Err(AuthError::Protocol("token belongs to another user".into()));
            }
            s.who = who;
        }
        _ => {
            let o = st.oidc.as_ref().ok_or_else(|| {
                AuthError::Protocol("OIDC sign-in is no longer configured".into())
            })?;
            let g = o.recheck(&s.who.id, &s.tok, s.rt.as_deref()).await?;
            s.who = g.who;
            s.tok = g.access;
            s.rt = g.refresh;
        }
    }
    s.chk = now();
    // The identity may have changed: header values are built again.
    s.cache = Default::default();
    Ok(())
}

/// The `Set-Cookie` for a session.
pub fn seal_session(st: &State, s: &Session) -> Option<String> {
    let v = st.sealer.seal(&st.cfg.cookie_name, s)?;
    let left = s.exp.saturating_sub(now());
    Some(set_cookie(
        &st.cfg.cookie_name,
        &v,
        &CookieAttrs {
            domain: st.cookie_domain(),
            max_age: Duration::from_secs(left),
        },
    ))
}

fn provider_label(p: &str) -> &'static str {
    if p == "github" {
        "GitHub"
    } else {
        "single sign-on"
    }
}

/// The 403 page or body for `who` at `route`.
pub fn forbidden(st: &State, browser: bool, route: &Route, s: &Session) -> Response<Body> {
    let restricted: Vec<&String> = s
        .who
        .restricted
        .iter()
        .filter(|o| route.github_orgs().any(|r| &r == *o))
        .collect();
    if !browser {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "forbidden", "route": route.name, "user": s.who.user,
                "restricted_orgs": restricted}),
        );
    }
    let sign_out = format!("{}/sign_out", st.auth_origin);
    let mut paras = vec![format!(
        "Your account is signed in, but <span class=\"target\">{}</span> is only open to specific people, organizations or teams.",
        pages::esc(&route.host)
    )];
    let hint;
    if let Some(org) = restricted.first() {
        paras.push(format!(
            "The <b>{}</b> organization restricts third-party applications and has not approved this gate, so your membership could not be read.",
            pages::esc(org)
        ));
        hint = format!(
            "An owner of <b>{}</b> can approve the app under <i>Settings → Third-party access</i>; members can request approval from their GitHub application settings. Then sign in again.",
            pages::esc(org)
        );
    } else {
        hint = "If you were just added to a team, sign out and sign in again. Membership is re-read every few minutes.".into();
    }
    html(
        StatusCode::FORBIDDEN,
        pages::message(
            "403 · Access denied",
            Tone::Warn,
            "You don't have access",
            &paras,
            Some(Who {
                user: &s.who.user,
                via: provider_label(&s.who.provider),
            }),
            &[Action {
                label: "Sign in with another account",
                href: &sign_out,
            }],
            Some(&hint),
        ),
    )
}

fn error_page(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    html(
        status,
        pages::message(
            &format!(
                "{} · {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
            if status.is_server_error() {
                Tone::Error
            } else {
                Tone::Info
            },
            title,
            &[pages::esc(text)],
            None,
            &[],
            None,
        ),
    )
}

/// Which route a request was counted under: a configured route (by index) or one of the fixed labels.
enum Label {
    Fixed(&'static str),
    Route(usize),
}

/// Serves one request on the HTTPS listener.
///
/// `client_ip` is the client's address as a header value (`X-Forwarded-For`, `X-Real-IP`), formatted once per
/// connection.
pub async fn handle(
    st: Arc<State>,
    req: Request<Incoming>,
    client_ip: Option<HeaderValue>,
) -> Response<Body> {
    let started = Instant::now();
    let (label, res) = route_request(&st, req, client_ip.as_ref()).await;
    let (status, secs) = (res.status().as_u16(), started.elapsed().as_secs_f64());
    match label {
        Label::Route(i) => {
            if let Some(m) = st.route_metrics.get(i) {
                m.request(status, secs);
            }
        }
        Label::Fixed(l) => st.metrics.request(l, status, secs),
    }
    res
}

async fn route_request(
    st: &Arc<State>,
    req: Request<Incoming>,
    client_ip: Option<&HeaderValue>,
) -> (Label, Response<Body>) {
    let Some(host) = req_host(&req) else {
        return (
            Label::Fixed("_none"),
            error_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request names no host.",
            ),
        );
    };
    if host == st.cfg.auth_host {
        // Boxed, like every rare path with provider calls, so the request future stays small.
        return (Label::Fixed("_auth"), Box::pin(auth::handle(st, req)).await);
    }
    let Some(path) = normalize_path(req.uri().path()) else {
        return (
            Label::Fixed("_none"),
            error_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request path is not valid.",
            ),
        );
    };
    if path == "/.yagura/sign_out" {
        return (
            Label::Fixed("_auth"),
            redirect(&format!("{}/sign_out", st.auth_origin)),
        );
    }
    let Some(route) = st.routes.find(&host, &path) else {
        return (
            Label::Fixed("_none"),
            error_page(
                StatusCode::NOT_FOUND,
                "Nothing here",
                "No service is published at this address.",
            ),
        );
    };
    let label = Label::Route(route.index);
    let rm = &st.route_metrics[route.index];
    let mut read = read_session(st, req.headers()).await;
    let decision = route.decide(read.session.as_ref().map(|s| &s.who));
    let mut res = match decision {
        Decision::SignIn => {
            rm.decision("sign_in");
            let here = {
                let mut u = format!("{}{path}", origin(&host, st.port));
                if let Some(q) = req.uri().query() {
                    u.push('?');
                    u.push_str(q);
                }
                u
            };
            let sign_in = format!(
                "{}/sign_in?rd={}",
                st.auth_origin,
                url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
            );
            if is_browser(&req) {
                redirect(&sign_in)
            } else {
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "sign_in_required", "sign_in": sign_in}),
                );
                if let Ok(v) = HeaderValue::from_str(&sign_in) {
                    r.headers_mut().insert("x-yagura-sign-in", v);
                }
                r
            }
        }
        Decision::Forbidden => {
            rm.decision("forbidden");
            match &read.session {
                Some(s) => forbidden(st, is_browser(&req), route, s),
                None => error_page(StatusCode::FORBIDDEN, "Access denied", "Access denied."),
            }
        }
        Decision::Allow => {
            rm.decision("allow");
            let pool = Arc::clone(&st.pools[route.index]);
            forward(
                st,
                req,
                client_ip,
                route,
                &pool,
                &host,
                &path,
                read.session.take(),
            )
            .await
        }
    };
    if let Some(c) = &read.set_cookie {
        add_cookie(&mut res, c);
    }
    (label, res)
}

/// Identity headers for the forward-auth answer.
pub fn identity_headers(st: &State, audience: &str, s: &Session, h: &mut HeaderMap) {
    identity_fields(st, audience, s, |n, v| {
        h.insert(n, v);
    });
}

/// The identity fields (user, email, groups, the signed assertion), each given to `add`.
fn identity_fields(
    st: &State,
    audience: &str,
    s: &Session,
    mut add: impl FnMut(HeaderName, HeaderValue),
) {
    // Built once per opened session and kept with it.
    let v = s.identity_values();
    for (n, v) in [
        (X_YAGURA_USER, &v.user),
        (X_YAGURA_EMAIL, &v.email),
        (X_YAGURA_GROUPS, &v.groups),
    ] {
        if let Some(v) = v {
            add(n, v.clone());
        }
    }
    let iat = now();
    let exp = iat + st.cfg.assertion_ttl.as_secs();
    let jwt = st.signer.cached(&s.sid, audience, iat, exp, || Claims {
        iss: &st.auth_origin,
        aud: audience,
        sub: format!("{}:{}", s.who.provider, s.who.id),
        iat,
        exp,
        user: &s.who.user,
        email: s.who.email.as_deref(),
        groups: &s.who.groups,
    });
    if let Some(jwt) = jwt {
        add(X_YAGURA_ASSERTION, jwt);
    }
}

/// The header fields added to a request on its way upstream, after the client's (edited) ones: written straight
/// into the request head, so the client's map is not grown for them.
pub type Added = Vec<(HeaderName, HeaderValue)>;

/// The headers sent upstream, made in place from the client's: hop-by-hop (and those named in `Connection`),
/// `Host`, identity claims (any spelling), forwarding headers and the gate's own cookies removed. Returns the
/// fresh forwarding and identity headers to add.
fn upstream_headers(
    st: &State,
    h: &mut HeaderMap,
    client_ip: Option<&HeaderValue>,
    pool: &Pool,
    host: &str,
    session: Option<&Session>,
    upgrade: bool,
) -> Added {
    let listed: Vec<String> = if h.contains_key(header::CONNECTION) {
        h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    // One pass over the names present; the few to drop are removed afterwards (nothing allocated when none is).
    let mut drop: Vec<HeaderName> = Vec::new();
    let mut stripped = 0;
    for k in h.keys() {
        let n = k.as_str();
        if n == "host"
            || OWN.contains(&n)
            || ((HOP.contains(&n) || listed.iter().any(|l| l == n))
                && !(upgrade && (n == "upgrade" || n == "connection")))
        {
            drop.push(k.clone());
        } else if is_identity_header(n, &st.cfg.strip_headers) {
            stripped += h.get_all(k).iter().count() as u64;
            drop.push(k.clone());
        }
    }
    for k in &drop {
        h.remove(k);
    }
    st.metrics.stripped(stripped);
    if let http::header::Entry::Occupied(mut e) = h.entry(header::COOKIE) {
        let own = |name: &[u8]| {
            name == st.cfg.cookie_name.as_bytes() || name.starts_with(b"_yagura_flow_")
        };
        if e.iter().nth(1).is_none() {
            // One `Cookie` header (the usual case): kept as it is when it holds none of the gate's cookies.
            match session::without_cookies(e.get(), own) {
                Some(v) => {
                    if v.as_bytes().len() != e.get().as_bytes().len() {
                        e.insert(v);
                    }
                }
                None => {
                    e.remove();
                }
            }
        } else {
            let all: Vec<HeaderValue> = e
                .remove_entry_mult()
                .1
                .filter_map(|v| session::without_cookies(&v, own))
                .collect();
            for v in all {
                h.append(header::COOKIE, v);
            }
        }
    }
    let mut added = Added::with_capacity(8);
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Some(v) = client_ip {
        added.push((X_FORWARDED_FOR, v.clone()));
        added.push((X_REAL_IP, v.clone()));
    }
    added.push((X_FORWARDED_PROTO, HeaderValue::from_static("https")));
    if let Some(v) = pool.host_value(host) {
        added.push((X_FORWARDED_HOST, v));
    }
    if let Some(s) = session {
        identity_fields(st, host, s, |n, v| added.push((n, v)));
    }
    added
}

fn strip_response_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the (few) names present, then only those found are removed, instead of seven lookups.
    let mut found: [Option<HeaderName>; HOP.len()] = [const { None }; HOP.len()];
    let mut n = 0;
    for k in h.keys() {
        if HOP.contains(&k.as_str())
            && !(keep_upgrade && (k == header::UPGRADE || k == header::CONNECTION))
            && n < found.len()
        {
            found[n] = Some(k.clone());
            n += 1;
        }
    }
    for k in found.iter().flatten() {
        h.remove(k);
    }
}

fn bad_gateway(route: &str, why: &str) -> Response<Body> {
    tracing::warn!(route, why, "upstream failed");
    error_page(
        StatusCode::BAD_GATEWAY,
        "The service is not answering",
        "The gate could not reach the service behind this address. Try again in a moment.",
    )
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    st: &Arc<State>,
    mut req: Request<Incoming>,
    client_ip: Option<&HeaderValue>,
    route: &Route,
    pool: &Arc<Pool>,
    host: &str,
    path: &str,
    session: Option<Arc<Session>>,
) -> Response<Body> {
    if !pool.has_upstreams() {
        return error_page(
            StatusCode::NOT_FOUND,
            "Nothing here",
            "This address is protected through forward-auth only.",
        );
    }
    let upgrade = is_upgrade(&req);
    let mut headers = std::mem::take(req.headers_mut());
    let added = upstream_headers(
        st,
        &mut headers,
        client_ip,
        pool,
        host,
        session.as_deref(),
        upgrade,
    );
    let query = req.uri().query().map(str::to_string);
    let method = req.method().clone();
    if upgrade {
        let down = hyper::upgrade::on(&mut req);
        for (n, v) in added {
            headers.insert(n, v);
        }
        return Box::pin(websocket(
            st,
            route,
            pool,
            host,
            path,
            query.as_deref(),
            headers,
            session,
            down,
        ))
        .await;
    }
    let body_empty = req.body().is_end_stream();
    let retryable = crate::conns::repeatable(&method) && body_empty;
    let attempts = if retryable {
        pool.retries as usize + 1
    } else {
        1
    };
    let mut body = Some(req.into_body());
    let start = pool.start();
    let mut last = String::from("no upstream");
    // With `preserve_host`, the client's `Host` goes upstream (made once); else each upstream's own.
    let client_host = if pool.preserve_host {
        HeaderValue::from_str(host).ok()
    } else {
        None
    };
    for attempt in 0..attempts {
        let Some(up) = pool.pick(start, attempt) else {
            break;
        };
        let b = if body_empty {
            None
        } else {
            match body.take() {
                Some(b) => Some(b.map_err(Into::into).boxed_unsync()),
                None => break,
            }
        };
        // The head is written from the header map as it is, so a retry needs no copy of it.
        let out = Outgoing {
            method: &method,
            target: Target {
                base: up.base(),
                path,
                query: query.as_deref(),
            },
            host: client_host.as_ref().unwrap_or(up.host_header()),
            headers: &headers,
            added: &added,
        };
        if attempt > 0 {
            st.metrics.retry(&route.name);
        }
        // One deadline per attempt covers the response head and, for a small body, the body.
        let sent = tokio::select! {
            biased;
            r = up.conns().send(&out, b) => Some(r),
            () = tokio::time::sleep(pool.timeout) => None,
        };
        match sent {
            Some(Ok(res)) => {
                let (mut parts, b) = res.into_parts();
                strip_response_hop(&mut parts.headers, false);
                parts.version = Version::HTTP_11;
                return Response::from_parts(parts, b);
            }
            Some(Err(e)) => {
                last = crate::httpc::error_chain(&e);
                if e.is_connect() {
                    pool.connect_failed(&up, &st.metrics);
                } else if !retryable {
                    break;
                }
            }
            None => {
                last = format!("no response within {:?}", pool.timeout);
                if attempt + 1 == attempts {
                    tracing::warn!(route = %route.name, upstream = %up.url, "{last}");
                    return error_page(
                        StatusCode::GATEWAY_TIMEOUT,
                        "The service is too slow",
                        "The service behind this address did not answer in time. Try again in a moment.",
                    );
                }
            }
        }
    }
    bad_gateway(&route.name, &last)
}

fn set_host(h: &mut HeaderMap, pool: &Pool, up: &Upstream, host: &str) {
    if !pool.preserve_host {
        h.insert(header::HOST, up.host_header().clone());
    } else if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(header::HOST, v);
    }
}

#[allow(clippy::too_many_arguments)]
async fn websocket(
    st: &Arc<State>,
    route: &Route,
    pool: &Arc<Pool>,
    host: &str,
    path: &str,
    query: Option<&str>,
    headers: HeaderMap,
    session: Option<Arc<Session>>,
    down: hyper::upgrade::OnUpgrade,
) -> Response<Body> {
    let start = pool.start();
    let Some(up) = pool.pick(start, 0) else {
        return bad_gateway(&route.name, "no upstream");
    };
    let Some(uri) = up.uri(path, query) else {
        return bad_gateway(&route.name, "bad upstream URI");
    };
    let mut out = Request::new(empty());
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    set_host(out.headers_mut(), pool, &up, host);
    let mut res = match tokio::time::timeout(pool.timeout, up.conns().send_upgrade(out)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if e.is_connect() {
                pool.connect_failed(&up, &st.metrics);
            }
            return bad_gateway(&route.name, &crate::httpc::error_chain(&e));
        }
        Err(_) => return bad_gateway(&route.name, "websocket upgrade timed out"),
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, b) = res.into_parts();
        strip_response_hop(&mut parts.headers, false);
        return Response::from_parts(parts, b.map_err(Into::into).boxed_unsync());
    }
    let up_upgrade = hyper::upgrade::on(&mut res);
    let (mut parts, _) = res.into_parts();
    strip_response_hop(&mut parts.headers, true);
    let st2 = Arc::clone(st);
    let route2 = route.clone();
    tokio::spawn(async move {
        let (d, u) = match tokio::join!(down, up_upgrade) {
            (Ok(d), Ok(u)) => (d, u),
            _ => return,
        };
        let mut d = hyper_util::rt::TokioIo::new(d);
        let mut u = hyper_util::rt::TokioIo::new(u);
        st2.metrics.websocket(&route2.name, 1);
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut d, &mut u) => {}
            reason = watch_policy(&st2, &route2, session) => {
                st2.metrics.websocket_cut(&route2.name);
                tracing::info!(route = %route2.name, reason, "websocket closed by policy");
            }
            _ = st2.shutdown.cancelled() => {}
        }
        st2.metrics.websocket(&route2.name, -1);
    });
    Response::from_parts(parts, empty())
}

/// Resolves when an open tunnel must close: the session expired or lost access at a membership re-check.
/// Never resolves for public routes.
async fn watch_policy(st: &State, route: &Route, session: Option<Arc<Session>>) -> &'static str {
    let Some(mut s) = session.map(|s| Session::clone(&s)) else {
        return std::future::pending().await;
    };
    if route.decide(None) == Decision::Allow {
        return std::future::pending().await;
    }
    loop {
        let n = now();
        let until_exp = s.exp.saturating_sub(n);
        let until_chk = s
            .chk
            .saturating_add(st.cfg.membership_recheck.as_secs().max(1))
            .saturating_sub(n);
        tokio::time::sleep(Duration::from_secs(until_exp.min(until_chk).max(1))).await;
        if s.expired(now()) {
            return "session expired";
        }
        if s.stale(now(), st.cfg.membership_recheck) {
            match recheck(st, &mut s).await {
                Ok(()) => {
                    st.metrics.recheck("ok");
                    if route.decide(Some(&s.who)) != Decision::Allow {
                        return "access removed";
                    }
                }
                Err(AuthError::Unavailable(_))
                    if now()
                        < s.chk
                            .saturating_add(st.cfg.membership_recheck.as_secs() * 2) => {}
                Err(e) => {
                    st.metrics.recheck(e.label());
                    return "session ended";
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The fast path of `req_host` gives what parsing the `Host` as an authority gives.
    #[test]
    fn req_host_fast_path_matches_authority_parsing() {
        let slow = |h: &str| -> Option<String> {
            let a: http::uri::Authority = h.parse().ok()?;
            let h = a.host().trim_end_matches('.').to_ascii_lowercase();
            (!h.is_empty()).then_some(h)
        };
        for h in [
            "app.bench.test",
            "App.Bench.Test",
            "app.bench.test:8443",
            "app.bench.test.",
            "app.bench.test.:443",
            "app.bench.test:",
            "app.bench.test:99999",
            "app.bench.test:12a",
            "app.bench.test:65535",
            "[::1]:443",
            "198.18.0.1:80",
            ".",
            "a-b.c",
            "a b",
            "user@app.bench.test",
        ] {
            let req = Request::builder()
                .uri("/x")
                .header(header::HOST, h)
                .body(())
                .unwrap();
            assert_eq!(req_host(&req), slow(h), "Host: {h}");
        }
    }
}
