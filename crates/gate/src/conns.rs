//! Connections to one upstream, pooled per serving thread (nginx's per-worker `keepalive`): idle HTTP/1.1
//! connections ([`h1::Conn`], driven by the request that uses them, no connection task) are reused most
//! recently used first, at most [`IDLE_MAX`] per upstream and thread, closed after [`IDLE_TIMEOUT`] idle; an
//! `https` upstream that picks HTTP/2 by ALPN gets one shared hyper HTTP/2 connection per thread instead, and a
//! websocket upgrade a hyper HTTP/1.1 connection of its own. A request takes a connection from its own thread's
//! pool and gives it back once the response body is read — no pool key is hashed, nothing is handed to another
//! thread. A request without a body that a reused connection lost before the upstream saw it (the upstream had
//! closed it meanwhile), or — when its method may be repeated — before any byte of the response came back, goes
//! out again on another idle or a fresh connection.

use crate::h1::{self, Framing, H1Error, Home, Outgoing};
use crate::upstream::{empty, full, Body};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
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
/// Largest response body (with a `Content-Length`) read whole before the response is sent on, so the head and
/// the body leave in one TLS record and one write (as nginx's proxy buffering does).
pub const BUFFER_MAX: u64 = 64 * 1024;

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
    /// An HTTP/1.1 exchange failed.
    #[error(transparent)]
    H1(#[from] H1Error),
    /// An HTTP/2 or upgrade exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// The request target cannot be a URI.
    #[error("bad upstream URI")]
    Uri,
}

impl ConnError {
    /// True when no connection could be made.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

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
    idle: Vec<(h1::Conn, Instant)>,
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

/// A connection taken from the pool or made.
enum Taken {
    H1(h1::Conn),
    H2(http2::SendRequest<Body>),
}

fn with_alpn(mut c: rustls::ClientConfig, alpn: &[&[u8]]) -> TlsConnector {
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(c))
}

impl Home for Conns {
    fn put(&self, c: h1::Conn) {
        let i = self.shard_index();
        let Ok(mut s) = self.shards[i].lock() else {
            return;
        };
        if s.idle.len() >= IDLE_MAX {
            return;
        }
        s.idle.push((c, Instant::now()));
        if !s.reaping {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                s.reaping = true;
                rt.spawn(reap(self.me.clone(), i));
            }
        }
    }
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

    /// A usable connection of this thread's pool, if any (idle HTTP/1.1 ones that closed are dropped).
    fn checkout(&self) -> Option<Taken> {
        let mut s = self.shards[self.shard_index()].lock().ok()?;
        if let Some(h2) = &s.h2 {
            if h2.is_closed() {
                s.h2 = None;
            } else if h2.is_ready() {
                return Some(Taken::H2(h2.clone()));
            }
        }
        while let Some((mut c, _)) = s.idle.pop() {
            if c.idle_ok() {
                return Some(Taken::H1(c));
            }
        }
        None
    }

    /// Sends a request (with `body`, if any) on an idle connection of this thread, or a new one, and returns
    /// the response; a small body of known length is read whole first ([`BUFFER_MAX`]), a larger one is passed
    /// on as it arrives. The connection goes back to the pool once the body is read.
    pub async fn send(
        &self,
        out: &Outgoing<'_>,
        mut body: Option<Body>,
    ) -> Result<Response<Body>, ConnError> {
        while let Some(c) = self.checkout() {
            match c {
                Taken::H1(mut conn) => {
                    let no_body = body.is_none();
                    match conn.exchange(out, body.take()).await {
                        Ok(head) => return self.respond(conn, head).await,
                        // Lost before the upstream saw the request, or before the response began to a request
                        // that may be repeated: try the next connection.
                        Err(H1Error::Unwritten(_)) if no_body => {}
                        Err(H1Error::Stale(_)) if no_body && repeatable(out.method) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Taken::H2(tx) => return self.send_h2(tx, out, body).await,
            }
        }
        // Boxed: the connect path (TCP, TLS) is large and rare, so it stays out of the request's future.
        match Box::pin(self.connect()).await? {
            Taken::H1(mut conn) => {
                let head = conn.exchange(out, body).await?;
                self.respond(conn, head).await
            }
            Taken::H2(tx) => self.send_h2(tx, out, body).await,
        }
    }

    async fn respond(
        &self,
        mut conn: h1::Conn,
        head: h1::codec::Head,
    ) -> Result<Response<Body>, ConnError> {
        let mut res = Response::new(empty());
        *res.status_mut() = head.status;
        *res.version_mut() = head.version;
        *res.headers_mut() = head.headers;
        match head.framing {
            Framing::None => {
                if head.keep_alive && conn.clean() {
                    self.put(conn);
                }
            }
            Framing::Length(n) if n <= BUFFER_MAX => {
                let data = conn.read_exact(n as usize).await?;
                if head.keep_alive && conn.clean() {
                    self.put(conn);
                }
                *res.body_mut() = full(data);
            }
            f => {
                let home: Weak<dyn Home> = self.me.clone();
                *res.body_mut() = conn.into_body(f, head.keep_alive, home).boxed_unsync();
            }
        }
        Ok(res)
    }

    async fn send_h2(
        &self,
        mut tx: http2::SendRequest<Body>,
        out: &Outgoing<'_>,
        body: Option<Body>,
    ) -> Result<Response<Body>, ConnError> {
        // HTTP/2 carries the host as `:authority`: the `Host` the request was given (the upstream's, or the
        // client's with `preserve_host`), else the upstream's.
        let authority =
            Authority::try_from(out.host.as_bytes()).unwrap_or_else(|_| self.authority.clone());
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(out.target.to_path_and_query())
            .build()
            .map_err(|_| ConnError::Uri)?;
        let mut req = Request::new(body.unwrap_or_else(empty));
        *req.method_mut() = out.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        let mut headers = out.headers.clone();
        for (k, v) in out.added {
            headers.insert(k.clone(), v.clone());
        }
        *req.headers_mut() = headers;
        tx.ready().await?;
        let res = tx.send_request(req).await?;
        Ok(buffer_small(res, out.method).await?)
    }

    /// Sends an upgrade request (websocket) on a new HTTP/1.1 connection of its own; the upgraded stream comes
    /// through `hyper::upgrade::on` on the response.
    pub async fn send_upgrade(&self, req: Request<Body>) -> Result<Response<Incoming>, ConnError> {
        let tcp = self.tcp().await?;
        let mut tx = match &self.tls {
            None => h1_upgradable(TokioIo::new(tcp)).await?,
            Some(tls) => {
                let s = tls
                    .h1
                    .connect(tls.name.clone(), tcp)
                    .await
                    .map_err(|e| self.connect_error(format!("TLS: {e}")))?;
                h1_upgradable(TokioIo::new(s)).await?
            }
        };
        Ok(tx.send_request(req).await?)
    }

    /// A new connection: TCP within the connect timeout, TLS for `https`. HTTP/2 connections are kept as this
    /// thread's shared one.
    async fn connect(&self) -> Result<Taken, ConnError> {
        let tcp = self.tcp().await?;
        let Some(tls) = &self.tls else {
            return Ok(Taken::H1(h1::Conn::new(h1::Io::Plain(tcp))));
        };
        let s = tls
            .any
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(|e| self.connect_error(format!("TLS: {e}")))?;
        if s.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Ok(Taken::H1(h1::Conn::new(h1::Io::Tls(Box::new(s)))));
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
        Ok(Taken::H2(tx))
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

/// Methods whose request may be sent twice (RFC 9110 §9.2.2).
pub fn repeatable(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A hyper response with its body as [`Body`]; a small body of known length read whole first.
async fn buffer_small(
    res: Response<Incoming>,
    method: &Method,
) -> Result<Response<Body>, hyper::Error> {
    let (parts, b) = res.into_parts();
    let small = *method != Method::HEAD
        && !parts.status.is_informational()
        && parts.status != StatusCode::NO_CONTENT
        && parts.status != StatusCode::NOT_MODIFIED
        && http_body::Body::size_hint(&b)
            .exact()
            .is_some_and(|n| n <= BUFFER_MAX);
    if !small {
        return Ok(Response::from_parts(
            parts,
            b.map_err(Into::into).boxed_unsync(),
        ));
    }
    let data = b.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, full(data)))
}

/// The HTTP/1.1 handshake on `io` for an upgrade; the connection is driven by a task of the current thread.
async fn h1_upgradable<T>(io: T) -> Result<http1::SendRequest<Body>, ConnError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = http1::Builder::new().handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
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
        s.idle.retain_mut(|(conn, since)| {
            now.duration_since(*since) < IDLE_TIMEOUT && conn.idle_ok()
        });
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
