//! Test helpers: a CA and certificates (rcgen), an upstream that echoes what it received (and a websocket echo),
//! an HTTP(S) client that dials 127.0.0.1 with any SNI/Host, a cookie jar, and a gate started in-process from a
//! config written to a temp directory. Every listener is on an ephemeral 127.0.0.1 port.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod github;
pub mod oidc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub const DOMAIN: &str = "gate.test";
pub const AUTH: &str = "auth.gate.test";

/// A CA and a leaf for some names.
pub struct Pki {
    pub ca_pem: String,
    ca: rcgen::CertifiedKey,
}

impl Pki {
    pub fn new() -> Self {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "yagura test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            ca: rcgen::CertifiedKey {
                cert,
                key_pair: key,
            },
        }
    }

    /// (cert PEM, key PEM) for `names`.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca.cert, &self.ca.key_pair).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        c
    }
}

use rustls_pki_types::pem::PemObject;

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
    pub fn header(&self, n: &str) -> Option<String> {
        self.headers.get(n).map(|v| v.to_str().unwrap().to_string())
    }
}

/// Sends one request over a fresh connection to `addr` (TLS with SNI `host` when `tls` is given).
pub async fn send(
    addr: SocketAddr,
    tls: Option<(&rustls::ClientConfig, &str)>,
    req: Request<Full<Bytes>>,
) -> Resp {
    let tcp = TcpStream::connect(addr).await.unwrap();
    match tls {
        Some((cfg, sni)) => {
            let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg.clone()));
            let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
            let s = conn.connect(name, tcp).await.unwrap();
            let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
            exchange(TokioIo::new(s), h2, req).await
        }
        None => exchange(TokioIo::new(tcp), false, req).await,
    }
}

async fn exchange<T>(io: TokioIo<T>, h2: bool, req: Request<Full<Bytes>>) -> Resp
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let res = if h2 {
        let (mut s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(c);
        s.send_request(req).await.unwrap()
    } else {
        let (mut s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(c);
        s.send_request(req).await.unwrap()
    };
    let version = res.version();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
        version,
    }
}

/// A cookie jar that keeps name → value (domains are all under gate.test here).
#[derive(Default, Debug, Clone)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    pub fn take(&mut self, r: &Resp) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || val.is_empty() {
                self.0.remove(k);
            } else {
                self.0.insert(k.to_string(), val.to_string());
            }
        }
    }
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// An upstream: `/…` echoes method, path, headers as JSON; `/ws` is a websocket echo; `/slow` waits 3 s,
/// `/wait500` 0.5 s;
/// `/health` is 200. Counts requests.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub stop: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn upstream(name: &'static str) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (h, s) = (hits.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = s.cancelled() => return,
                r = l.accept() => r.unwrap(),
            };
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    h.fetch_add(1, Ordering::Relaxed);
                    async move {
                        if req.uri().path().ends_with("/ws") {
                            let key = req
                                .headers()
                                .get("sec-websocket-key")
                                .map(|k| k.as_bytes().to_vec())
                                .unwrap_or_default();
                            let accept =
                                tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
                            let on = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let up = on.await.unwrap();
                                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                                    TokioIo::new(up),
                                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                                    None,
                                )
                                .await;
                                use futures_util::{SinkExt, StreamExt};
                                while let Some(Ok(m)) = ws.next().await {
                                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                                        return;
                                    }
                                }
                            });
                            let r = http::Response::builder()
                                .status(101)
                                .header("connection", "upgrade")
                                .header("upgrade", "websocket")
                                .header("sec-websocket-accept", accept)
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            return Ok::<_, Infallible>(r);
                        }
                        if req.uri().path() == "/slow" {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                        }
                        if req.uri().path() == "/wait500" {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        let headers: BTreeMap<String, Vec<String>> = req
                            .headers()
                            .keys()
                            .map(|k| {
                                (
                                    k.as_str().to_string(),
                                    req.headers()
                                        .get_all(k)
                                        .iter()
                                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                                        .collect(),
                                )
                            })
                            .collect();
                        let body = serde_json::json!({
                            "upstream": name,
                            "method": req.method().as_str(),
                            "path": req.uri().path(),
                            "query": req.uri().query(),
                            "headers": headers,
                        });
                        Ok(http::Response::builder()
                            .header("content-type", "application/json")
                            .header("connection", "keep-alive")
                            .body(Full::new(Bytes::from(body.to_string())))
                            .unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream { addr, hits, stop }
}

/// Polls `f` until it is true or `deadline` passes.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gate running in-process.
pub struct Gate {
    pub dir: tempfile::TempDir,
    pub running: Option<yagura_gate::Running>,
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub stop: CancellationToken,
    pub reload: tokio::sync::mpsc::Sender<()>,
    pub pki: Arc<Pki>,
    pub tls: rustls::ClientConfig,
    pub tls_h1: rustls::ClientConfig,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes the key file (one base64 key) shared by replicas.
pub fn key_file(dir: &Path) -> PathBuf {
    write(
        dir,
        "cookie.key",
        "# test key\nMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm\n",
    )
}

impl Gate {
    /// Starts a gate; `body` is the config after the generated `[listen]`, certificates and keys
    /// (`{dir}` is replaced by the temp directory).
    pub async fn start(pki: Arc<Pki>, body: &str) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pki.leaf(&[&format!("*.{DOMAIN}"), DOMAIN]);
        write(dir.path(), "gate.crt", &cert);
        write(dir.path(), "gate.key", &key);
        let (cert2, key2) = pki.leaf(&["other.example"]);
        write(dir.path(), "other.crt", &cert2);
        write(dir.path(), "other.key", &key2);
        key_file(dir.path());
        write(dir.path(), "gh.secret", github::CLIENT_SECRET);
        write(dir.path(), "oidc.secret", oidc::CLIENT_SECRET);
        let d = dir.path().display().to_string();
        let text = format!(
            r#"auth_host = "{AUTH}"
cookie_secret_file = "{d}/cookie.key"
cookie_domain = "{DOMAIN}"
{body}

[listen]
https = "127.0.0.1:0"
http = "127.0.0.1:0"
metrics = "127.0.0.1:0"
cert_check_interval = "100ms"
drain_timeout = "2s"

[[certificates]]
cert_file = "{d}/gate.crt"
key_file = "{d}/gate.key"

[[certificates]]
cert_file = "{d}/other.crt"
key_file = "{d}/other.key"
"#
        )
        .replace("{dir}", &d);
        let path = write(dir.path(), "gate.toml", &text);
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let running = match yagura_gate::start(&path, stop.clone(), rx).await {
            Ok(r) => r,
            Err(e) => panic!("gate did not start: {e}\n{text}"),
        };
        let tls = pki.client_config(&[b"h2", b"http/1.1"]);
        let tls_h1 = pki.client_config(&[b"http/1.1"]);
        Gate {
            https: running.https,
            http: running.http,
            metrics: running.metrics,
            running: Some(running),
            dir,
            stop,
            reload: tx,
            pki,
            tls,
            tls_h1,
        }
    }

    pub fn port(&self) -> u16 {
        self.https.port()
    }

    /// `https://host:port/path`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port())
    }

    /// A GET over HTTPS (HTTP/1.1) with `headers`.
    pub async fn get(
        &self,
        host: &str,
        path: &str,
        jar: Option<&Jar>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::get(path).header("host", host);
        if let Some(j) = jar {
            if !j.0.is_empty() {
                b = b.header("cookie", j.header());
            }
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(
            self.https,
            Some((&self.tls_h1, host)),
            b.body(Full::new(Bytes::new())).unwrap(),
        )
        .await
    }

    /// A GET as a browser navigation.
    pub async fn browse(&self, host: &str, path: &str, jar: &Jar) -> Resp {
        self.get(
            host,
            path,
            Some(jar),
            &[("accept", "text/html,*/*"), ("sec-fetch-mode", "navigate")],
        )
        .await
    }

    pub async fn metrics_text(&self) -> String {
        let r = send(
            self.metrics.unwrap(),
            None,
            Request::get("/metrics")
                .header("host", "metrics")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        r.text()
    }

    /// Runs the GitHub sign-in through the stand-in as `login`; returns the callback's response.
    pub async fn sign_in_github(
        &self,
        gh: &github::StandIn,
        login: &str,
        jar: &mut Jar,
        rd: &str,
    ) -> Resp {
        gh.next_user(login);
        let start = self
            .browse(
                AUTH,
                &format!("/start?provider=github&rd={}", urlencode(rd)),
                jar,
            )
            .await;
        assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
        jar.take(&start);
        let authorize = start.location();
        let cb = gh.authorize(&authorize).await;
        self.follow_callback(&cb, jar).await
    }

    /// Follows a callback URL (`https://auth…/oauth2/callback?…`) on the gate.
    pub async fn follow_callback(&self, cb: &str, jar: &mut Jar) -> Resp {
        let u = url::Url::parse(cb).unwrap();
        assert_eq!(u.host_str(), Some(AUTH), "callback {cb}");
        let pq = format!("{}?{}", u.path(), u.query().unwrap_or(""));
        let r = self.browse(AUTH, &pq, jar).await;
        jar.take(&r);
        r
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A plain HTTP GET to 127.0.0.1 (the stand-ins).
pub async fn plain_get(url: &str) -> Resp {
    let u = url::Url::parse(url).unwrap();
    let addr: SocketAddr = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap())
        .parse()
        .unwrap();
    let pq = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    send(
        addr,
        None,
        Request::get(pq)
            .header(
                "host",
                format!("{}:{}", u.host_str().unwrap(), u.port().unwrap()),
            )
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

/// Reads a metric sample's value from OpenMetrics text (first line starting with `prefix`).
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
