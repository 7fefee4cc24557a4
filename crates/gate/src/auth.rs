//! The auth host: the sign-in page, the start of a flow (`state`, PKCE verifier and nonce sealed in a cookie of
//! their own), the OAuth/OIDC callback (state checked in constant time, code exchanged with the verifier, identity
//! and membership read, session cookie set), sign-out, forward-auth (`/auth` → 202/401/403) and the JWKS.

use crate::github::AuthError;
use crate::pages::{self, Action, Provider, Tone, Who};
use crate::policy::{normalize_path, safe_return_url, Decision};
use crate::proxy::{
    add_cookie, forbidden, html, identity_headers, is_browser, json, now, read_session, redirect,
    seal_session,
};
use crate::session::{
    clear_cookie, cookie_values, flow_cookie_name, set_cookie, CookieAttrs, Flow, Session,
};
use crate::state::State;
use crate::upstream::{full, Body};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::time::Duration;

/// How long a sign-in may take between start and callback.
const FLOW_TTL: Duration = Duration::from_secs(600);

/// 32 random bytes, base64url.
pub fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(B64.encode(b))
}

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn eq_ct(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn page(
    status: StatusCode,
    chip: &str,
    tone: Tone,
    title: &str,
    text: &str,
    actions: &[Action<'_>],
) -> Response<Body> {
    html(
        status,
        pages::message(chip, tone, title, &[pages::esc(text)], None, actions, None),
    )
}

fn bad_return() -> Response<Body> {
    page(
        StatusCode::BAD_REQUEST,
        "400 · Refused",
        Tone::Error,
        "That return address is not allowed",
        "After signing in, the gate only sends you back to the services it publishes. The link you followed points elsewhere.",
        &[],
    )
}

/// Serves a request for the auth host.
pub async fn handle(st: &State, req: Request<Incoming>) -> Response<Body> {
    let path = normalize_path(req.uri().path()).unwrap_or_default();
    match path.as_str() {
        "/" | "/sign_in" => sign_in(st, &req).await,
        "/start" => start(st, &req).await,
        "/oauth2/callback" => callback(st, &req).await,
        "/sign_out" => sign_out(st),
        "/auth" => forward_auth(st, &req).await,
        "/.well-known/jwks.json" => {
            let mut r = Response::new(full(st.signer.jwks().to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            r
        }
        "/healthz" => Response::new(full("ok\n")),
        _ => page(
            StatusCode::NOT_FOUND,
            "404 · Not found",
            Tone::Info,
            "Nothing here",
            "This page does not exist.",
            &[],
        ),
    }
}

/// The checked `rd` parameter: `Ok(None)` when absent, `Err(())` when it is not one of ours.
fn return_url(st: &State, q: &HashMap<String, String>) -> Result<Option<String>, ()> {
    match q.get("rd").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(rd) => safe_return_url(rd, &st.cfg.auth_host, &st.routes, st.port)
            .map(Some)
            .ok_or(()),
    }
}

async fn sign_in(st: &State, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let rd = match return_url(st, &q) {
        Ok(rd) => rd,
        Err(()) => return bad_return(),
    };
    let read = read_session(st, req.headers()).await;
    if let Some(s) = &read.session {
        let mut r = match &rd {
            Some(rd) => redirect(rd),
            None => html(
                StatusCode::OK,
                pages::message(
                    "Signed in",
                    Tone::Info,
                    "You're signed in",
                    &["You can close this tab and go back to the service you were using.".into()],
                    Some(Who {
                        user: &s.who.user,
                        via: if s.who.provider == "github" {
                            "GitHub"
                        } else {
                            "single sign-on"
                        },
                    }),
                    &[Action {
                        label: "Sign out",
                        href: "/sign_out",
                    }],
                    None,
                ),
            ),
        };
        if let Some(c) = &read.set_cookie {
            add_cookie(&mut r, c);
        }
        return r;
    }
    let rd_q = rd
        .as_deref()
        .map(|r| {
            format!(
                "&rd={}",
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    let mut providers = Vec::new();
    if st.github.is_some() {
        providers.push(Provider {
            kind: "github",
            label: "Continue with GitHub".into(),
            href: format!("/start?provider=github{rd_q}"),
        });
    }
    if let Some(o) = &st.oidc {
        providers.push(Provider {
            kind: "oidc",
            label: format!("Continue with {}", o.name()),
            href: format!("/start?provider=oidc{rd_q}"),
        });
    }
    let target = rd
        .as_deref()
        .and_then(|r| url::Url::parse(r).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    let mut r = html(
        StatusCode::OK,
        pages::sign_in(target.as_deref(), &providers),
    );
    if let Some(c) = &read.set_cookie {
        add_cookie(&mut r, c);
    }
    r
}

fn unavailable_page(what: &str) -> Response<Body> {
    page(
        StatusCode::BAD_GATEWAY,
        "502 · Sign-in unavailable",
        Tone::Error,
        "Sign-in is unavailable",
        &format!("The gate could not reach {what}. Try again in a moment."),
        &[Action {
            label: "Try again",
            href: "/sign_in",
        }],
    )
}

async fn start(st: &State, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let rd = match return_url(st, &q) {
        Ok(rd) => rd.unwrap_or_else(|| format!("{}/sign_in", st.auth_origin)),
        Err(()) => return bad_return(),
    };
    let (Some(state), Some(verifier), Some(nonce)) =
        (random_token(), random_token(), random_token())
    else {
        return unavailable_page("a random number generator");
    };
    let challenge = pkce_challenge(&verifier);
    let provider = q.get("provider").map(String::as_str).unwrap_or("github");
    let target = match provider {
        "github" => match &st.github {
            Some(g) => g.authorize_url(&st.redirect_uri(), &state, &challenge),
            None => return bad_provider(),
        },
        "oidc" => match &st.oidc {
            Some(o) => match o
                .authorize_url(&st.redirect_uri(), &state, &challenge, &nonce)
                .await
            {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(error = %e, "OIDC discovery failed");
                    st.metrics.sign_in("oidc", e.label());
                    return unavailable_page("the identity provider");
                }
            },
            None => return bad_provider(),
        },
        _ => return bad_provider(),
    };
    let flow = Flow {
        state: state.clone(),
        verifier,
        nonce,
        rd,
        provider: provider.to_string(),
        exp: now() + FLOW_TTL.as_secs(),
    };
    let name = flow_cookie_name(&state);
    let Some(sealed) = st.sealer.seal(&name, &flow) else {
        return unavailable_page("its cookie keys");
    };
    let mut r = redirect(&target);
    add_cookie(
        &mut r,
        &set_cookie(
            &name,
            &sealed,
            &CookieAttrs {
                domain: None,
                max_age: FLOW_TTL,
            },
        ),
    );
    r
}

fn bad_provider() -> Response<Body> {
    page(
        StatusCode::BAD_REQUEST,
        "400 · Unknown provider",
        Tone::Error,
        "Unknown sign-in provider",
        "This gate does not offer that way of signing in.",
        &[Action {
            label: "Back to sign-in",
            href: "/sign_in",
        }],
    )
}

fn flow_failed(st: &State, provider: &'static str, why: &str) -> Response<Body> {
    st.metrics.sign_in(provider, "state_mismatch");
    tracing::info!(why, "sign-in callback refused");
    page(
        StatusCode::BAD_REQUEST,
        "400 · Sign-in expired",
        Tone::Warn,
        "This sign-in can't be completed",
        "The sign-in link expired, was already used, or was started in another browser. Start again from the service you wanted to reach.",
        &[Action {
            label: "Start again",
            href: "/sign_in",
        }],
    )
}

fn find_flow(st: &State, headers: &HeaderMap, state: &str) -> Option<Flow> {
    let name = flow_cookie_name(state);
    let found = cookie_values(headers, &name)
        .filter_map(|v| st.sealer.open::<Flow>(&name, v))
        .find(|f| eq_ct(&f.state, state) && f.exp > now());
    found
}

async fn callback(st: &State, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let state = q.get("state").cloned().unwrap_or_default();
    if state.len() < 16 {
        return flow_failed(st, "unknown", "no state");
    }
    let Some(flow) = find_flow(st, req.headers(), &state) else {
        return flow_failed(st, "unknown", "no flow cookie matches the state");
    };
    let provider: &'static str = if flow.provider == "oidc" {
        "oidc"
    } else {
        "github"
    };
    let clear_flow = clear_cookie(&flow_cookie_name(&state), None);
    let mut r = if let Some(e) = q.get("error") {
        st.metrics.sign_in(provider, "refused");
        let d = q
            .get("error_description")
            .cloned()
            .unwrap_or_else(|| e.clone());
        page(
            StatusCode::FORBIDDEN,
            "403 · Not authorized",
            Tone::Warn,
            "Sign-in was not authorized",
            &format!("The identity provider said: {d}"),
            &[Action {
                label: "Try again",
                href: "/sign_in",
            }],
        )
    } else {
        let code = q.get("code").cloned().unwrap_or_default();
        match complete(st, &flow, &code).await {
            Ok(session) => {
                st.metrics.sign_in(provider, "ok");
                tracing::info!(user = %session.who.user, provider, "signed in");
                let mut r = redirect(&flow.rd);
                if let Some(c) = seal_session(st, &session) {
                    add_cookie(&mut r, &c);
                }
                r
            }
            Err(e) => {
                st.metrics.sign_in(provider, e.label());
                tracing::info!(provider, error = %e, "sign-in failed");
                sign_in_error(st, &e)
            }
        }
    };
    add_cookie(&mut r, &clear_flow);
    r
}

async fn complete(st: &State, flow: &Flow, code: &str) -> Result<Session, AuthError> {
    if code.is_empty() {
        return Err(AuthError::Exchange("no code".into()));
    }
    let (who, tok, rt) = if flow.provider == "oidc" {
        let o = st
            .oidc
            .as_ref()
            .ok_or_else(|| AuthError::Protocol("OIDC is not configured".into()))?;
        let g = o
            .exchange(code, &flow.verifier, &st.redirect_uri(), &flow.nonce)
            .await?;
        (g.who, g.access, g.refresh)
    } else {
        let gh = st
            .github
            .as_ref()
            .ok_or_else(|| AuthError::Protocol("GitHub is not configured".into()))?;
        let tok = gh
            .exchange(code, &flow.verifier, &st.redirect_uri())
            .await?;
        (gh.identity(&tok).await?, tok, None)
    };
    let n = now();
    Ok(Session {
        sid: random_token().ok_or_else(|| AuthError::Protocol("no randomness".into()))?,
        who,
        iat: n,
        exp: n + st.cfg.session_ttl.as_secs(),
        chk: n,
        tok,
        rt,
        cache: Default::default(),
    })
}

fn sign_in_error(st: &State, e: &AuthError) -> Response<Body> {
    let retry = [Action {
        label: "Try again",
        href: "/sign_in",
    }];
    match e {
        AuthError::Restricted(org) => {
            let web = st.github.as_ref().map(|g| g.web_url()).unwrap_or("https://github.com");
            html(
                StatusCode::FORBIDDEN,
                pages::message(
                    "403 · Organization restricts apps",
                    Tone::Warn,
                    &format!("{org} hasn't approved this app"),
                    &[format!(
                        "The <b>{}</b> organization restricts third-party OAuth applications, so GitHub won't tell the gate whether you are a member.",
                        pages::esc(org)
                    )],
                    None,
                    &[Action {
                        label: "Review the app on GitHub",
                        href: &format!("{web}/settings/applications"),
                    }],
                    Some(&format!(
                        "Ask an owner of <b>{}</b> to approve it (Organization settings → Third-party access → OAuth application policy), then sign in again. Signing in again before that will not help.",
                        pages::esc(org)
                    )),
                ),
            )
        }
        AuthError::NotMember(org) => page(
            StatusCode::FORBIDDEN,
            "403 · Not a member",
            Tone::Warn,
            "You're not a member of this organization",
            &format!("Only active members of {org} can sign in here. A pending invitation must be accepted first."),
            &retry,
        ),
        AuthError::Scope(s) => page(
            StatusCode::FORBIDDEN,
            "403 · Permission missing",
            Tone::Warn,
            "A permission was not granted",
            &format!("The gate needs the `{s}` permission to read your organization membership."),
            &retry,
        ),
        AuthError::Unavailable(_) => unavailable_page("the identity provider"),
        AuthError::Exchange(_) => page(
            StatusCode::BAD_REQUEST,
            "400 · Sign-in failed",
            Tone::Error,
            "Sign-in could not be completed",
            "The identity provider did not accept the sign-in code. It may have expired; start again.",
            &retry,
        ),
        _ => page(
            StatusCode::BAD_GATEWAY,
            "502 · Sign-in failed",
            Tone::Error,
            "Sign-in could not be completed",
            "The identity provider gave an unexpected answer.",
            &retry,
        ),
    }
}

fn sign_out(st: &State) -> Response<Body> {
    let mut r = page(
        StatusCode::OK,
        "Signed out",
        Tone::Info,
        "You're signed out",
        "Your session on every service behind this gate has ended in this browser.",
        &[Action {
            label: "Sign in again",
            href: "/sign_in",
        }],
    );
    add_cookie(
        &mut r,
        &clear_cookie(&st.cfg.cookie_name, st.cookie_domain()),
    );
    r
}

/// The host and path a forward-auth request is about: `X-Forwarded-Host` + `X-Forwarded-Uri` (Traefik),
/// `X-Original-URL` (nginx `auth_request`). The query string is never part of the match.
fn forwarded_target(h: &HeaderMap) -> Option<(String, String)> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if let (Some(host), Some(uri)) = (get("x-forwarded-host"), get("x-forwarded-uri")) {
        let host = host.split(':').next()?.to_ascii_lowercase();
        let path = uri.split('?').next()?;
        return Some((host, normalize_path(path)?));
    }
    let u = url::Url::parse(get("x-original-url")?).ok()?;
    Some((
        u.host_str()?.to_ascii_lowercase(),
        normalize_path(u.path())?,
    ))
}

async fn forward_auth(st: &State, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let route = match q.get("route") {
        Some(name) => st.routes.iter().find(|r| &r.name == name),
        None => forwarded_target(req.headers()).and_then(|(h, p)| st.routes.find(&h, &p)),
    };
    let Some(route) = route else {
        st.metrics.forward_auth("no_route");
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "no_route", "hint": "pass ?route=NAME or X-Forwarded-Host/X-Forwarded-Uri or X-Original-URL"}),
        );
    };
    let read = read_session(st, req.headers()).await;
    let mut r = match route.decide(read.session.as_ref().map(|s| &s.who)) {
        Decision::Allow => {
            st.metrics.forward_auth("202");
            let mut r = Response::new(full(""));
            *r.status_mut() = StatusCode::ACCEPTED;
            if let Some(s) = &read.session {
                identity_headers(st, &route.host, s, r.headers_mut());
            }
            r
        }
        Decision::SignIn => {
            st.metrics.forward_auth("401");
            let sign_in = format!("{}/sign_in", st.auth_origin);
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "sign_in_required", "sign_in": sign_in}),
            );
            if let Ok(v) = HeaderValue::from_str(&sign_in) {
                r.headers_mut().insert("x-yagura-sign-in", v);
            }
            r
        }
        Decision::Forbidden => {
            st.metrics.forward_auth("403");
            match &read.session {
                Some(s) => forbidden(st, is_browser(req), route, s),
                None => json(
                    StatusCode::FORBIDDEN,
                    serde_json::json!({"error": "forbidden"}),
                ),
            }
        }
    };
    if let Some(c) = &read.set_cookie {
        add_cookie(&mut r, c);
    }
    r
}
