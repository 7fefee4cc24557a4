//! Connections to one upstream, pooled per serving thread (nginx's per-worker `keepalive`): idle HTTP/1.1
//! connections are hyper `client::conn::http1` senders, reused most recently used first, at most
//! [`IDLE_MAX`] per upstream and thread, closed after [`IDLE_TIMEOUT`] idle; an `https` upstream that picks
//! HTTP/2 by ALPN gets one shared HTTP/2 connection per thread instead. A request takes a connection from its own
//! thread's pool and gives it back once the response body is read — no pool key is hashed, nothing is handed to
//! another thread. A request that a reused connection never sent (the upstream had closed it meanwhile) goes out
//! again on another idle or a fresh connection.

use crate::upstream::Body;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Idle connections kept per upstream and serving thread (nginx's `keepalive 256`).
pub const IDLE_MAX: usize = 256;
/// An idle connection unused this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// No connection could be made (name, TCP or TLS): counts against the upstream's health.
    #[error("cannot connect to {addr}: {why}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        why: String,
    },
    /// The connection failed during the exchange.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl ConnError {
    /// True when no connection could be made.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

/// A sender to an HTTP/1.1 connection.
pub type H1 = http1::SendRequest<Body>;

/// TLS towards an `https` upstream.
struct Tls {
    /// ALPN `h2`, `http/1.1`.
    any: TlsConnector,
    /// ALPN `http/1.1` only (upgrades).
    h1: TlsConnector,
    name: ServerName<'static>,
}

/// One serving thread's connections to the upstream.
#[derive(Default)]
struct Shard {
    /// Idle HTTP/1.1 connections, oldest first (taken from the end).
    idle: Vec<(H1, Instant)>,
    /// The HTTP/2 connection, when the upstream speaks it.
    h2: Option<http2::SendRequest<Body>>,
    /// A task closes idle connections that time out.
    reaping: bool,
}

/// The connections to one upstream, one pool per serving thread.
pub struct Conns {
    scheme: Scheme,
    authority: Authority,
    /// Host to resolve (without IPv6 brackets) and port.
    host: String,
    port: u16,
    tls: Option<Tls>,
    connect_timeout: Duration,
    shards: Box<[Mutex<Shard>]>,
    me: Weak<Conns>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conns({}://{})", self.scheme, self.authority)
    }
}

/// How the response of [`Conns::send`] came: on an HTTP/1.1 connection to give back with [`Conns::release`]
/// once the body is read, or on the shared HTTP/2 connection.
pub type Sent = (Response<Incoming>, Option<H1>);

fn with_alpn(mut c: rustls::ClientConfig, alpn: &[&[u8]]) -> TlsConnector {
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(c))
}

impl Conns {
    /// For `scheme://authority` (`tls` for `https`), `workers` serving threads.
    pub fn new(
        scheme: Scheme,
        authority: Authority,
        tls: Option<rustls::ClientConfig>,
        connect_timeout: Duration,
        workers: usize,
    ) -> Option<Arc<Self>> {
        let https = scheme == Scheme::HTTPS;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match (https, tls) {
            (true, Some(c)) => Some(Tls {
                any: with_alpn(c.clone(), &[b"h2", b"http/1.1"]),
                h1: with_alpn(c, &[b"http/1.1"]),
                name: ServerName::try_from(host.clone()).ok()?,
            }),
            (true, None) => return None,
            (false, _) => None,
        };
        Some(Arc::new_cyclic(|me| Self {
            scheme,
            authority,
            host,
            port,
            tls,
            connect_timeout,
            shards: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
            me: me.clone(),
        }))
    }

    fn shard_index(&self) -> usize {
        crate::worker::index(self.shards.len())
    }

    /// A ready connection of this thread's pool, if any.
    fn checkout(&self) -> Option<Result<H1, http2::SendRequest<Body>>> {
        let mut s = self.shards[self.shard_index()].lock().ok()?;
        if let Some(h2) = &s.h2 {
            if h2.is_closed() {
                s.h2 = None;
            } else if h2.is_ready() {
                return Some(Err(h2.clone()));
            }
        }
        while let Some((tx, _)) = s.idle.pop() {
            if tx.is_ready() {
                return Some(Ok(tx));
            }
        }
        None
    }

    /// Sends `req` (origin-form URI and a `Host` header) on an idle connection of this thread, or a new one.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Sent, ConnError> {
        while let Some(c) = self.checkout() {
            match c {
                Ok(mut tx) => match tx.try_send_request(req).await {
                    Ok(res) => return Ok((res, Some(tx))),
                    Err(mut e) => match e.take_message() {
                        // Never written: the connection had been closed. Try the next one.
                        Some(r) => req = r,
                        None => return Err(ConnError::Http(e.into_error())),
                    },
                },
                Err(tx) => return self.send_h2(tx, req).await,
            }
        }
        // Boxed: the connect path (TCP, TLS) is large and rare, so it stays out of the request's future.
        match Box::pin(self.connect(false)).await? {
            Ok(mut tx) => Ok((tx.send_request(req).await?, Some(tx))),
            Err(tx) => self.send_h2(tx, req).await,
        }
    }

    async fn send_h2(
        &self,
        mut tx: http2::SendRequest<Body>,
        mut req: Request<Body>,
    ) -> Result<Sent, ConnError> {
        // HTTP/2 carries the host as `:authority`: the `Host` the request was given (the upstream's, or the
        // client's with `preserve_host`), else the upstream's.
        let authority = req
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| self.authority.clone());
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(authority);
        *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
        *req.version_mut() = Version::HTTP_2;
        tx.ready().await?;
        Ok((tx.send_request(req).await?, None))
    }

    /// Sends an upgrade request (websocket) on a new HTTP/1.1 connection of its own; the upgraded stream comes
    /// through `hyper::upgrade::on` on the response.
    pub async fn send_upgrade(&self, req: Request<Body>) -> Result<Response<Incoming>, ConnError> {
        match self.connect(true).await? {
            Ok(mut tx) => Ok(tx.send_request(req).await?),
            Err(mut tx) => Ok(tx.send_request(req).await?),
        }
    }

    /// Gives an HTTP/1.1 connection back to this thread's pool once its response was read (at once when it is
    /// ready, else as soon as it is; a connection that closes meanwhile is dropped).
    pub fn release(&self, tx: H1) {
        if tx.is_ready() {
            self.put(tx);
        } else if !tx.is_closed() {
            let me = self.me.clone();
            let mut tx = tx;
            tokio::spawn(async move {
                if tx.ready().await.is_ok() {
                    if let Some(c) = me.upgrade() {
                        c.put(tx);
                    }
                }
            });
        }
    }

    fn put(&self, tx: H1) {
        let i = self.shard_index();
        let Ok(mut s) = self.shards[i].lock() else {
            return;
        };
        if s.idle.len() >= IDLE_MAX {
            return;
        }
        s.idle.push((tx, Instant::now()));
        if !s.reaping {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                s.reaping = true;
                rt.spawn(reap(self.me.clone(), i));
            }
        }
    }

    /// A new connection: TCP within the connect timeout, TLS for `https` (`upgrade`: HTTP/1.1 only, the
    /// connection driven with upgrades). HTTP/2 connections are kept as this thread's shared one.
    async fn connect(
        &self,
        upgrade: bool,
    ) -> Result<Result<H1, http2::SendRequest<Body>>, ConnError> {
        let tcp = self.tcp().await?;
        let Some(tls) = &self.tls else {
            return Ok(Ok(h1(TokioIo::new(tcp), upgrade).await?));
        };
        let c = if upgrade { &tls.h1 } else { &tls.any };
        let s = c
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(|e| self.connect_error(format!("TLS: {e}")))?;
        if upgrade || s.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Ok(Ok(h1(TokioIo::new(s), upgrade).await?));
        }
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(s))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        if let Ok(mut sh) = self.shards[self.shard_index()].lock() {
            if sh.h2.as_ref().is_none_or(http2::SendRequest::is_closed) {
                sh.h2 = Some(tx.clone());
            }
        }
        Ok(Err(tx))
    }

    fn connect_error(&self, why: String) -> ConnError {
        ConnError::Connect {
            addr: format!("{}:{}", self.host, self.port),
            why,
        }
    }

    async fn tcp(&self) -> Result<TcpStream, ConnError> {
        let work = async {
            let mut last = None;
            for a in tokio::net::lookup_host((self.host.as_str(), self.port)).await? {
                match TcpStream::connect(a).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| std::io::Error::other("the name has no address")))
        };
        let s = tokio::time::timeout(self.connect_timeout, work)
            .await
            .map_err(|_| self.connect_error(format!("timed out after {:?}", self.connect_timeout)))?
            .map_err(|e| self.connect_error(e.to_string()))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

/// The HTTP/1.1 handshake on `io`; the connection is driven by a task of the current thread.
async fn h1<T>(io: T, upgrade: bool) -> Result<H1, ConnError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = http1::Builder::new().handshake(io).await?;
    if upgrade {
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
    }
    Ok(tx)
}

/// Closes the idle connections of shard `i` that timed out or closed, until the shard has none left (or the
/// pool is gone).
async fn reap(me: Weak<Conns>, i: usize) {
    let mut wait = IDLE_TIMEOUT;
    loop {
        tokio::time::sleep(wait).await;
        let Some(c) = me.upgrade() else {
            return;
        };
        let Ok(mut s) = c.shards[i].lock() else {
            return;
        };
        let now = Instant::now();
        s.idle
            .retain(|(tx, since)| !tx.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT);
        match s.idle.first() {
            None => {
                s.reaping = false;
                return;
            }
            Some((_, oldest)) => {
                wait = (*oldest + IDLE_TIMEOUT).saturating_duration_since(now)
                    + Duration::from_millis(10);
            }
        }
    }
}
