//! Outbound HTTP for the identity providers (GitHub, OIDC): hyper's pooled client over rustls, a deadline per
//! request and a cap on response bodies.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Largest provider response read.
pub const MAX_BODY: usize = 1 << 20;

/// Why a provider call failed before an answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("{0}")]
    Transport(String),
    /// Answer too large.
    #[error("response larger than {MAX_BODY} bytes")]
    TooLarge,
    /// A URL that cannot be requested.
    #[error("bad URL `{0}`")]
    BadUrl(String),
}

/// A provider's answer.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (at most [`MAX_BODY`]).
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// HTTPS connector over `tls`, resolving names and connecting with a deadline.
pub fn connector(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
    h2: bool,
) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    if h2 {
        b.enable_http2().wrap_connector(http)
    } else {
        b.wrap_connector(http)
    }
}

/// A client for provider calls.
#[derive(Clone, Debug)]
pub struct Fetch {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Fetch {
    /// With a TLS config (roots and extra CA) and a per-request deadline.
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector(tls, timeout, true));
        Self { client, timeout }
    }

    /// Sends one request; `body` is `(content type, bytes)`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Reply, FetchError> {
        let uri: http::Uri = url.parse().map_err(|_| FetchError::BadUrl(url.into()))?;
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::USER_AGENT, "yagura-gate");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some((ct, bytes)) => b
                .header(http::header::CONTENT_TYPE, ct)
                .body(Full::new(Bytes::from(bytes))),
            None => b.body(Full::new(Bytes::new())),
        }
        .map_err(|e| FetchError::BadUrl(format!("{url}: {e}")))?;
        let work = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Transport(error_chain(&e)))?;
            let (parts, body) = res.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge
                    } else {
                        FetchError::Transport(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
