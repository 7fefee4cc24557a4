//! A generic OpenID Connect provider (Dex, Keycloak…): discovery from `ISSUER/.well-known/openid-configuration`,
//! the authorization code flow with `state`, `nonce` and PKCE, ID tokens verified against the issuer's JWKS
//! (`jsonwebtoken`; asymmetric algorithms only, issuer, audience, expiry and nonce checked), groups from a
//! configurable claim, and membership re-checks through the refresh token (or `userinfo`).

use crate::github::AuthError;
use crate::httpc::Fetch;
use crate::policy::Identity;
use http::{Method, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// What a sign-in or re-check produced.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Who.
    pub who: Identity,
    /// Access token.
    pub access: String,
    /// Refresh token, if any.
    pub refresh: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Meta {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    id_token: Option<String>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The OIDC provider.
#[derive(Debug)]
pub struct Oidc {
    name: String,
    issuer: String,
    client_id: String,
    secret: String,
    groups_claim: String,
    scopes: String,
    fetch: Fetch,
    meta: RwLock<Option<Meta>>,
    jwks: RwLock<Option<(JwkSet, Instant)>>,
}

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

impl Oidc {
    /// A provider (discovery happens on first use and is retried until it works).
    pub fn new(
        name: String,
        issuer: &str,
        client_id: String,
        secret: String,
        groups_claim: String,
        scopes: &[String],
        fetch: Fetch,
    ) -> Self {
        Self {
            name,
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id,
            secret,
            groups_claim,
            scopes: scopes.join(" "),
            fetch,
            meta: RwLock::new(None),
            jwks: RwLock::new(None),
        }
    }

    /// Button label.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn meta(&self) -> Result<Meta, AuthError> {
        if let Some(m) = self.meta.read().await.as_ref() {
            return Ok(m.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let r = self
            .fetch
            .send(Method::GET, &url, &[], None)
            .await
            .map_err(unavailable)?;
        if r.status != StatusCode::OK {
            return Err(unavailable(format!("discovery: {}", r.status)));
        }
        let m: Meta = r
            .json()
            .ok_or_else(|| AuthError::Protocol("discovery document is not valid".into()))?;
        if m.issuer.trim_end_matches('/') != self.issuer {
            return Err(AuthError::Protocol(format!(
                "discovery names issuer `{}`, expected `{}`",
                m.issuer, self.issuer
            )));
        }
        *self.meta.write().await = Some(m.clone());
        Ok(m)
    }

    /// Where to send the browser.
    pub async fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: &str,
        nonce: &str,
    ) -> Result<String, AuthError> {
        let m = self.meta().await?;
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if m.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{q}", m.authorization_endpoint))
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenReply, AuthError> {
        let body = {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            s.append_pair("client_id", &self.client_id)
                .append_pair("client_secret", &self.secret);
            for (k, v) in form {
                s.append_pair(k, v);
            }
            s.finish()
        };
        let m = self.meta().await?;
        let r = self
            .fetch
            .send(
                Method::POST,
                &m.token_endpoint,
                &[("accept", "application/json")],
                Some(("application/x-www-form-urlencoded", body.into_bytes())),
            )
            .await
            .map_err(unavailable)?;
        if r.status.is_server_error() {
            return Err(unavailable(format!("token endpoint: {}", r.status)));
        }
        let t: TokenReply = r
            .json()
            .ok_or_else(|| AuthError::Protocol(format!("token endpoint: {}", r.status)))?;
        if let Some(e) = t.error {
            let msg = match &t.error_description {
                Some(d) => format!("{e}: {d}"),
                None => e.clone(),
            };
            return Err(if e == "invalid_grant" {
                AuthError::Revoked
            } else {
                AuthError::Exchange(msg)
            });
        }
        Ok(t)
    }

    async fn jwks(&self, refresh: bool) -> Result<JwkSet, AuthError> {
        if !refresh {
            if let Some((k, _)) = self.jwks.read().await.as_ref() {
                return Ok(k.clone());
            }
        } else if let Some((k, at)) = self.jwks.read().await.as_ref() {
            // At most one refetch every 30 s, whatever unknown key ids arrive.
            if at.elapsed() < Duration::from_secs(30) {
                return Ok(k.clone());
            }
        }
        let m = self.meta().await?;
        let r = self
            .fetch
            .send(Method::GET, &m.jwks_uri, &[], None)
            .await
            .map_err(unavailable)?;
        let set: JwkSet = r
            .json()
            .filter(|_| r.status == StatusCode::OK)
            .ok_or_else(|| AuthError::Protocol(format!("JWKS: {}", r.status)))?;
        *self.jwks.write().await = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    /// Verifies an ID token; `nonce` must match when given.
    pub async fn verify(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<serde_json::Value, AuthError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| AuthError::Protocol(format!("ID token: {e}")))?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(AuthError::Protocol(format!(
                "ID token algorithm {:?} refused",
                header.alg
            )));
        }
        let find = |set: &JwkSet| match &header.kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&self.jwks(false).await?) {
            Some(k) => k,
            None => find(&self.jwks(true).await?)
                .ok_or_else(|| AuthError::Protocol("ID token signed with an unknown key".into()))?,
        };
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| AuthError::Protocol(format!("JWK: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[&self.client_id]);
        v.set_issuer(&[&self.issuer, &format!("{}/", self.issuer)]);
        v.leeway = 60;
        let data = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v)
            .map_err(|e| AuthError::Protocol(format!("ID token: {e}")))?;
        if let Some(n) = nonce {
            if data.claims.get("nonce").and_then(|x| x.as_str()) != Some(n) {
                return Err(AuthError::Protocol("ID token nonce does not match".into()));
            }
        }
        Ok(data.claims)
    }

    fn identity(&self, c: &serde_json::Value) -> Result<Identity, AuthError> {
        let s = |k: &str| c.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let sub = s("sub").ok_or_else(|| AuthError::Protocol("no `sub` claim".into()))?;
        let verified = c.get("email_verified").and_then(|v| v.as_bool()) != Some(false);
        let email = s("email").filter(|_| verified);
        let user = s("preferred_username")
            .or_else(|| email.clone())
            .unwrap_or_else(|| sub.clone());
        let mut groups: Vec<String> = match c.get(&self.groups_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        groups.sort();
        groups.dedup();
        Ok(Identity {
            provider: "oidc".into(),
            id: sub,
            user,
            email,
            groups,
            restricted: Vec::new(),
        })
    }

    /// Exchanges the code and verifies the ID token.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<Grant, AuthError> {
        let t = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .await
            .map_err(|e| match e {
                AuthError::Revoked => AuthError::Exchange("invalid_grant".into()),
                e => e,
            })?;
        let id = t
            .id_token
            .ok_or_else(|| AuthError::Protocol("no id_token in the token response".into()))?;
        let claims = self.verify(&id, Some(nonce)).await?;
        Ok(Grant {
            who: self.identity(&claims)?,
            access: t.access_token.unwrap_or_default(),
            refresh: t.refresh_token,
        })
    }

    /// Reads the groups again: refresh token grant when there is one, else `userinfo`.
    pub async fn recheck(
        &self,
        sub: &str,
        access: &str,
        refresh: Option<&str>,
    ) -> Result<Grant, AuthError> {
        let (claims, access, refresh) = if let Some(rt) = refresh {
            let t = self
                .token(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
                .await?;
            let access = t.access_token.unwrap_or_else(|| access.to_string());
            let refresh = t.refresh_token.or_else(|| Some(rt.to_string()));
            match t.id_token {
                Some(id) => (self.verify(&id, None).await?, access, refresh),
                None => (self.userinfo(&access).await?, access, refresh),
            }
        } else {
            (self.userinfo(access).await?, access.to_string(), None)
        };
        let who = self.identity(&claims)?;
        if who.id != sub {
            return Err(AuthError::Protocol(
                "the provider answered for another subject".into(),
            ));
        }
        Ok(Grant {
            who,
            access,
            refresh,
        })
    }

    async fn userinfo(&self, access: &str) -> Result<serde_json::Value, AuthError> {
        let m = self.meta().await?;
        let url = m.userinfo_endpoint.ok_or_else(|| {
            AuthError::Protocol("no userinfo endpoint and no refresh token".into())
        })?;
        let auth = format!("Bearer {access}");
        let r = self
            .fetch
            .send(Method::GET, &url, &[("authorization", &auth)], None)
            .await
            .map_err(unavailable)?;
        match r.status {
            StatusCode::OK => r
                .json()
                .ok_or_else(|| AuthError::Protocol("userinfo: not JSON".into())),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(AuthError::Revoked),
            s if s.is_server_error() => Err(unavailable(format!("userinfo: {s}"))),
            s => Err(AuthError::Protocol(format!("userinfo: {s}"))),
        }
    }
}
