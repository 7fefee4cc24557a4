//! The running gate: the HTTPS listener (rustls handshake, then HTTP/1.1 or HTTP/2 with upgrades), the HTTP
//! listener that redirects to HTTPS, the metrics listener, the certificate watcher, health checks, SIGHUP reloads
//! (an invalid new config is logged and counted; the old one stays) and the drain on shutdown.
//!
//! The HTTPS side runs nginx's model: one serving thread per core (`listen.workers`), each a current-thread
//! tokio runtime with its own `SO_REUSEPORT` listener, so the kernel spreads connections over the threads and a
//! request — TLS, policy, the upstream exchange on that thread's keep-alive pool — never leaves its thread.
//!
//! ```text
//!  SIGHUP ─► reload task ──(new State)──► ArcSwap<State> ◄── every request
//!                 │                            ▲
//!  cert watcher ──┴─► ArcSwap<CertStore> ◄─ SNI resolver (TLS handshakes)
//!  https accept loop × workers (one per thread) ─► per-connection tasks (graceful watcher) ─► proxy::handle
//!  http accept loop (redirects), metrics, health checks, reloads: on the main runtime
//! ```

use crate::balance::{Balance, Handoff};
use crate::config::GateConfig;
use crate::metrics::GateMetrics;
use crate::proxy::{self, req_host};
use crate::state::{origin, BuildError, State};
use crate::tls::{server_config, CertFiles, CertHolder, CertStore, CheckOutcome, TlsError};
use crate::upstream::{empty, Body};
use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use yagura_daemon::{ConfigError, RuntimeMetrics};

/// Why the gate cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Secrets and providers.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Signals or runtime.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// A started gate.
#[derive(Debug)]
pub struct Running {
    /// Bound HTTPS address.
    pub https: SocketAddr,
    /// Bound HTTP (redirect) address.
    pub http: Option<SocketAddr>,
    /// Bound metrics address.
    pub metrics: Option<SocketAddr>,
    /// Set once the first health-check round finished.
    pub ready: Arc<AtomicBool>,
    done: JoinHandle<()>,
}

impl Running {
    /// Waits until the gate has drained and stopped.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

fn cert_files(cfg: &GateConfig) -> Vec<CertFiles> {
    cfg.certificates
        .iter()
        .map(|c| CertFiles {
            cert: PathBuf::from(c.cert_file.as_str()),
            key: PathBuf::from(c.key_file.as_str()),
        })
        .collect()
}

/// An HTTPS listener with `SO_REUSEPORT`, so every serving thread can have its own on the same address.
fn bind_shared(addr: SocketAddr) -> Result<TcpListener, GateError> {
    let listen = |addr: SocketAddr| {
        let sock = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        sock.set_reuseaddr(true)?;
        sock.set_reuseport(true)?;
        sock.bind(addr)?;
        sock.listen(1024)
    };
    listen(addr).map_err(|source| GateError::Listen { addr, source })
}

/// Runs serving thread `i`: a current-thread runtime accepting on `listener` until shutdown and drained.
/// The receiver resolves when the thread is done.
fn spawn_worker(
    i: usize,
    listener: std::net::TcpListener,
    fair: (Arc<Balance>, UnboundedReceiver<Handoff>),
    acceptor: TlsAcceptor,
    state: Arc<ArcSwap<State>>,
    drain: Duration,
    shutdown: CancellationToken,
) -> Result<tokio::sync::oneshot::Receiver<()>, GateError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GateError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("gate-{i}"))
        .spawn(move || {
            crate::worker::set(i);
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => accept_https(i, l, fair, acceptor, state, drain, shutdown).await,
                    Err(e) => {
                        tracing::error!(worker = i, error = %e, "cannot use the HTTPS listener")
                    }
                }
            });
            drop(rt);
            let _ = tx.send(());
        })
        .map_err(GateError::Runtime)?;
    Ok(rx)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, GateError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GateError::Listen { addr, source })
}

fn spawn_health(st: &Arc<State>, ready: &Arc<AtomicBool>) {
    let pending = Arc::new(AtomicUsize::new(st.pools.len()));
    if st.pools.is_empty() {
        ready.store(true, Ordering::Relaxed);
    }
    for p in &st.pools {
        let (pending, ready) = (Arc::clone(&pending), Arc::clone(ready));
        tokio::spawn(
            Arc::clone(p).health_loop(st.metrics.clone(), st.stop.clone(), move || {
                if pending.fetch_sub(1, Ordering::Relaxed) == 1 {
                    ready.store(true, Ordering::Relaxed);
                }
            }),
        );
    }
}

/// Starts the gate with the config at `path` (already checked by the caller or not): binds every listener,
/// loads certificates and secrets, and serves until `shutdown` is cancelled. Each message on `reload` re-reads
/// the file.
pub async fn start(
    path: &Path,
    shutdown: CancellationToken,
    mut reload: mpsc::Receiver<()>,
) -> Result<Running, GateError> {
    let loaded = yagura_daemon::config::load::<GateConfig>(path)?;
    if !loaded.warnings.is_empty() {
        tracing::warn!("{}", loaded.warnings.trim_end());
    }
    let cfg = loaded.config;
    let workers = cfg
        .listen
        .workers
        .map_or_else(crate::worker::default_count, std::num::NonZeroUsize::get);
    let https = bind_shared(cfg.listen.https)?;
    let https_addr = https.local_addr().map_err(GateError::Runtime)?;
    // The other serving threads' listeners, on the address actually bound (the port may have been 0).
    let mut more_https = Vec::with_capacity(workers - 1);
    for _ in 1..workers {
        more_https.push(
            bind_shared(https_addr)?
                .into_std()
                .map_err(GateError::Runtime)?,
        );
    }
    let port = cfg.listen.public_https_port.unwrap_or(https_addr.port());
    let http = match cfg.listen.http {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
    let metrics_l = match cfg.listen.metrics {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let metrics_addr = metrics_l.as_ref().and_then(|l| l.local_addr().ok());

    let certs: CertHolder = Arc::new(ArcSwap::from_pointee(CertStore::load(cert_files(&cfg))?));
    let acceptor = TlsAcceptor::from(Arc::new(server_config(Arc::clone(&certs))?));

    let mut registry = Registry::default();
    let runtime = RuntimeMetrics::register(&mut registry, "gate");
    let gm = GateMetrics::register(&mut registry);
    let cert_interval = cfg.listen.cert_check_interval;
    let drain = cfg.listen.drain_timeout;
    let listen = cfg.listen.clone();
    let st = Arc::new(State::build(cfg, workers, port, gm.clone(), &shutdown)?);
    let ready = Arc::new(AtomicBool::new(false));
    spawn_health(&st, &ready);
    let state = Arc::new(ArcSwap::new(st));

    let mut tasks: Vec<JoinHandle<()>> = Vec::new();

    // HTTPS, one accept loop per serving thread (each drains its connections itself after shutdown).
    let (balance, inboxes) = Balance::new(workers, gm.clone());
    let mut inboxes = inboxes.into_iter();
    let main_inbox = inboxes
        .next()
        .ok_or_else(|| GateError::Runtime(std::io::Error::other("no serving thread")))?;
    let mut workers_done = Vec::with_capacity(more_https.len());
    for ((i, l), inbox) in more_https.into_iter().enumerate().zip(inboxes) {
        workers_done.push(spawn_worker(
            i + 1,
            l,
            (Arc::clone(&balance), inbox),
            acceptor.clone(),
            Arc::clone(&state),
            drain,
            shutdown.clone(),
        )?);
    }
    let main = tokio::spawn(accept_https(
        0,
        https,
        (balance, main_inbox),
        acceptor,
        Arc::clone(&state),
        drain,
        shutdown.clone(),
    ));
    // HTTP → HTTPS.
    if let Some(l) = http {
        tasks.push(tokio::spawn(accept_http(
            l,
            Arc::clone(&state),
            shutdown.clone(),
        )));
    }
    // Metrics.
    if let Some(l) = metrics_l {
        let router = yagura_daemon::http::metrics_router(Arc::new(registry))
            .merge(yagura_daemon::http::health_router(Arc::clone(&ready)));
        let tok = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = yagura_daemon::http::serve(l, router, tok).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        }));
    }
    // Certificate files.
    {
        let (certs, tok, gm) = (Arc::clone(&certs), shutdown.clone(), gm.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(cert_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tok.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let store = certs.load_full();
                let outcome = tokio::task::spawn_blocking(move || store.check()).await;
                match outcome {
                    Ok(CheckOutcome::Unchanged) => {}
                    Ok(CheckOutcome::Reloaded) => {
                        gm.cert_reload("ok");
                        tracing::info!("certificates reloaded");
                    }
                    Ok(CheckOutcome::Failed(why)) => {
                        gm.cert_reload("failed");
                        tracing::error!(%why, "certificate files changed but do not load; keeping the old ones");
                    }
                    Err(_) => {}
                }
            }
        }));
    }
    // Reloads.
    {
        let (state, certs, ready, tok) = (
            Arc::clone(&state),
            Arc::clone(&certs),
            Arc::clone(&ready),
            shutdown.clone(),
        );
        let path = path.to_path_buf();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tok.cancelled() => return,
                    m = reload.recv() => if m.is_none() { return },
                }
                let ok = reload_once(
                    &path, &state, &certs, &ready, &listen, workers, port, &gm, &tok,
                );
                runtime.reload(ok);
            }
        }));
    }

    let done = tokio::spawn(async move {
        let _ = main.await;
        for w in workers_done {
            let _ = w.await;
        }
        for t in tasks {
            t.abort();
        }
    });
    Ok(Running {
        https: https_addr,
        http: http_addr,
        metrics: metrics_addr,
        ready,
        done,
    })
}

#[allow(clippy::too_many_arguments)]
fn reload_once(
    path: &Path,
    state: &Arc<ArcSwap<State>>,
    certs: &CertHolder,
    ready: &Arc<AtomicBool>,
    listen: &crate::config::Listen,
    workers: usize,
    port: u16,
    gm: &GateMetrics,
    shutdown: &CancellationToken,
) -> bool {
    let cfg = match yagura_daemon::config::load::<GateConfig>(path) {
        Ok(l) => l.config,
        Err(e) => {
            tracing::error!("reload refused, the running config stays in force:\n{e}");
            return false;
        }
    };
    if cfg.listen.https != listen.https
        || cfg.listen.http != listen.http
        || cfg.listen.metrics != listen.metrics
        || cfg.listen.workers != listen.workers
    {
        tracing::warn!(
            "listener addresses or workers changed; they take effect at the next restart"
        );
    }
    let files = cert_files(&cfg);
    let new_certs = if certs.load().same_files(&files) {
        None
    } else {
        match CertStore::load(files) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "reload refused, the running config stays in force");
                return false;
            }
        }
    };
    let port = cfg.listen.public_https_port.unwrap_or(port);
    let st = match State::build(cfg, workers, port, gm.clone(), shutdown) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "reload refused, the running config stays in force");
            return false;
        }
    };
    if let Some(c) = new_certs {
        certs.store(Arc::new(c));
    }
    spawn_health(&st, &Arc::new(AtomicBool::new(false)));
    let old = state.swap(st);
    old.stop.cancel();
    let _ = ready;
    tracing::info!("configuration reloaded");
    true
}

/// Serving thread `worker`'s HTTPS accept loop: connections from its listener, or handed over by another thread
/// that serves more ([`Balance`]); each is served on this thread until it ends.
async fn accept_https(
    worker: usize,
    listener: TcpListener,
    (balance, mut inbox): (Arc<Balance>, UnboundedReceiver<Handoff>),
    acceptor: TlsAcceptor,
    state: Arc<ArcSwap<State>>,
    drain: Duration,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer, open) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    let to = balance.pick(worker);
                    if to == worker {
                        (tcp, peer, balance.open(worker))
                    } else {
                        // Served by a less busy thread; kept here if it cannot be handed over.
                        let Ok(std) = tcp.into_std() else { continue };
                        match balance.hand_over(to, (std, peer, balance.open(to))) {
                            Ok(()) => continue,
                            Err((std, peer, _)) => match TcpStream::from_std(std) {
                                Ok(tcp) => (tcp, peer, balance.open(worker)),
                                Err(_) => continue,
                            },
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some((std, peer, open)) = inbox.recv() => match TcpStream::from_std(std) {
                Ok(tcp) => (tcp, peer, open),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take over a connection");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _open = open;
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            // The client's address as a header value, formatted once for all the connection's requests.
            let client_ip = http::HeaderValue::from_str(&peer.ip().to_string()).ok();
            let svc = service_fn(move |req: Request<Incoming>| {
                let st = state.load_full();
                let ip = client_ip.clone();
                async move { Ok::<_, Infallible>(proxy::handle(st, req, ip).await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("draining HTTPS connections");
    if yagura_daemon::drain("HTTPS connections", drain, graceful.shutdown()).await {
        tracing::info!("drained");
    }
}

fn https_redirect(st: &State, req: &Request<Incoming>) -> Response<Body> {
    let known = req_host(req).filter(|h| *h == st.cfg.auth_host || st.routes.has_host(h));
    let Some(host) = known else {
        let mut r = Response::new(crate::upstream::full("unknown host\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = http::HeaderValue::from_str(&format!("{}{pq}", origin(&host, st.port))) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

async fn accept_http(
    listener: TcpListener,
    state: Arc<ArcSwap<State>>,
    shutdown: CancellationToken,
) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let st = state.load_full();
                async move {
                    let r = https_redirect(&st, &req);
                    st.metrics.request("_redirect", r.status().as_u16(), 0.0);
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// `yagura gate --config FILE`: logs, signals, start, serve until SIGTERM, drain. Blocks. The main thread is
/// serving thread 0 (a current-thread runtime that also runs reloads, health checks and metrics); [`start`]
/// adds one thread per further worker.
pub fn run_blocking(path: &Path, log: yagura_daemon::log::LogFormat) -> Result<(), GateError> {
    yagura_daemon::log::init(log);
    // Fail before starting anything when the file is invalid.
    yagura_daemon::config::load::<GateConfig>(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GateError::Runtime)?;
    rt.block_on(async {
        let sig = yagura_daemon::signals::install().map_err(GateError::Runtime)?;
        let running = start(path, sig.shutdown.clone(), sig.reload).await?;
        tracing::info!(https = %running.https, http = ?running.http, metrics = ?running.metrics, "gate serving");
        running.wait().await;
        Ok(())
    })
}
