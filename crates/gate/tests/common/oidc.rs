//! A stand-in OpenID provider (what Dex or Keycloak serve): discovery, an authorize endpoint that redirects back
//! with a code, a token endpoint (authorization_code with PKCE S256, refresh_token), a JWKS and userinfo. ID
//! tokens are ES256 JWTs with `iss`, `aud`, `exp`, `nonce`, `preferred_username`, `email` and `groups`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePrivateKey;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "gate";
pub const CLIENT_SECRET: &str = "oidc-standin-secret";

#[derive(Default)]
struct Inner {
    issuer: String,
    groups: HashMap<String, Vec<String>>,
    next: Option<String>,
    codes: HashMap<String, (String, String, String)>, // code → (user, challenge, nonce)
    refresh: HashMap<String, String>,
    seq: u64,
    pkcs8: Vec<u8>,
    jwk: serde_json::Value,
    /// Sign with a key the JWKS does not list (tampered provider).
    forge: bool,
}

#[derive(Clone)]
pub struct Oidc {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

type S = Arc<Mutex<Inner>>;

fn key() -> (Vec<u8>, serde_json::Value) {
    let rng = ring::rand::SystemRandom::new();
    let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let sk = p256::SecretKey::from_pkcs8_der(doc.as_ref()).unwrap();
    let p = sk.public_key().to_encoded_point(false);
    let jwk = json!({"kty":"EC","crv":"P-256","x":B64.encode(p.x().unwrap()),"y":B64.encode(p.y().unwrap()),"kid":"k1","alg":"ES256","use":"sig"});
    (doc.as_ref().to_vec(), jwk)
}

impl Oidc {
    pub async fn start() -> Oidc {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (pkcs8, jwk) = key();
        let inner: S = Arc::new(Mutex::new(Inner {
            issuer: format!("http://{addr}/dex"),
            pkcs8,
            jwk,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/dex/.well-known/openid-configuration", get(discovery))
            .route("/dex/auth", get(authorize))
            .route("/dex/token", post(token))
            .route("/dex/keys", get(keys))
            .route("/dex/userinfo", get(userinfo))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Oidc { addr, inner }
    }

    pub fn issuer(&self) -> String {
        self.inner.lock().unwrap().issuer.clone()
    }

    pub fn config(&self) -> String {
        format!(
            "[oidc]\nname = \"Dex\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{{dir}}/oidc.secret\"\n",
            self.issuer()
        )
    }

    pub fn user(&self, name: &str, groups: &[&str]) {
        self.inner
            .lock()
            .unwrap()
            .groups
            .insert(name.into(), groups.iter().map(|s| s.to_string()).collect());
    }
    pub fn next_user(&self, name: &str) {
        self.inner.lock().unwrap().next = Some(name.into());
    }
    pub fn forge(&self, on: bool) {
        self.inner.lock().unwrap().forge = on;
    }

    pub async fn authorize(&self, url: &str) -> String {
        let r = super::plain_get(url).await;
        assert_eq!(r.status, StatusCode::FOUND, "authorize: {}", r.text());
        r.location()
    }
}

async fn discovery(State(s): State<S>) -> Response {
    let i = s.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": i, "authorization_endpoint": format!("{i}/auth"), "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/keys"), "userinfo_endpoint": format!("{i}/userinfo"),
        "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256", "plain"]
    }))
    .into_response()
}

async fn authorize(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut g = s.lock().unwrap();
    let Some(user) = g.next.clone() else {
        return (StatusCode::OK, "login form").into_response();
    };
    g.seq += 1;
    let code = format!("oc{}", g.seq);
    g.codes.insert(
        code.clone(),
        (user, q["code_challenge"].clone(), q["nonce"].clone()),
    );
    found(&format!(
        "{}?code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
    .into_response()
}

fn id_token(g: &Inner, user: &str, nonce: Option<&str>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": g.issuer, "aud": CLIENT_ID, "sub": format!("sub-{user}"), "iat": now, "exp": now + 300,
        "nonce": nonce, "preferred_username": user, "email": format!("{user}@example.org"), "email_verified": true,
        "groups": g.groups.get(user).cloned().unwrap_or_default(),
    });
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    let pk = if g.forge { key().0 } else { g.pkcs8.clone() };
    jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&pk)).unwrap()
}

async fn token(State(s): State<S>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut g = s.lock().unwrap();
    if f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let user = match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((user, challenge, nonce)) = g.codes.remove(&f["code"]) else {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant"})),
                )
                    .into_response();
            };
            let v = f.get("code_verifier").cloned().unwrap_or_default();
            if B64.encode(ring::digest::digest(&ring::digest::SHA256, v.as_bytes())) != challenge {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant", "error_description": "PKCE"})),
                )
                    .into_response();
            }
            g.seq += 1;
            let rt = format!("rt{}", g.seq);
            g.refresh.insert(rt.clone(), user.clone());
            let idt = id_token(&g, &user, Some(&nonce));
            return Json(json!({"access_token": format!("at-{user}"), "token_type": "Bearer", "id_token": idt, "refresh_token": rt}))
                .into_response();
        }
        Some("refresh_token") => match g.refresh.get(&f["refresh_token"]) {
            Some(u) => u.clone(),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant"})),
                )
                    .into_response()
            }
        },
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response()
        }
    };
    let idt = id_token(&g, &user, None);
    Json(json!({"access_token": format!("at-{user}"), "token_type": "Bearer", "id_token": idt}))
        .into_response()
}

async fn keys(State(s): State<S>) -> Response {
    Json(json!({"keys": [s.lock().unwrap().jwk.clone()]})).into_response()
}

async fn userinfo(State(s): State<S>, h: HeaderMap) -> Response {
    let g = s.lock().unwrap();
    let user = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer at-"))
        .unwrap_or("");
    match g.groups.get(user) {
        Some(gr) => {
            Json(json!({"sub": format!("sub-{user}"), "preferred_username": user, "groups": gr}))
                .into_response()
        }
        None => StatusCode::UNAUTHORIZED.into_response(),
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
