//! Backend health: the rise/fall state (pure, [`Health`]), and the active checks — TCP connect, HTTP or HTTPS
//! GET with an expected status (e.g. the API server's `/readyz` over TLS with a CA file or without
//! verification). Passive ejection (connect failures of real traffic) feeds the same state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::{CheckKind, HealthConfig};

/// The rise/fall state of one backend. Starts down: a backend takes `rise` good checks to receive traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Whether the backend receives new connections.
    pub up: bool,
    successes: u32,
    failures: u32,
}

impl Health {
    /// A state that starts up (used to carry an up backend over a reload).
    pub fn up() -> Self {
        Self {
            up: true,
            successes: 0,
            failures: 0,
        }
    }

    /// Records a check result; returns `true` when `up` changed.
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> bool {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if !self.up && self.successes >= rise {
                self.up = true;
                return true;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.up && self.failures >= fall {
                self.up = false;
                return true;
            }
        }
        false
    }

    /// Passive ejection: marks the backend down at once; returns `true` when it was up.
    pub fn eject(&mut self) -> bool {
        let was = self.up;
        self.up = false;
        self.successes = 0;
        was
    }
}

/// Why a check failed (for logs).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Socket or TLS error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer was not the expected status.
    #[error("status {0}, expected {1}")]
    Status(u16, u16),
    /// The answer was not HTTP.
    #[error("not an HTTP response")]
    Protocol,
    /// The TLS settings could not be built (CA file).
    #[error("TLS: {0}")]
    Tls(String),
}

/// A ready-to-run check for one pool (TLS settings built once).
#[derive(Clone)]
pub struct Checker {
    cfg: HealthConfig,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").field("cfg", &self.cfg).finish()
    }
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(cfg: &HealthConfig) -> Result<ClientConfig, CheckError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CheckError::Tls(e.to_string()))?;
    if cfg.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &cfg.ca_file {
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(ca.as_str())
            .map_err(|e| CheckError::Tls(format!("{ca}: {e}")))?;
        for c in certs {
            let c = c.map_err(|e| CheckError::Tls(format!("{ca}: {e}")))?;
            roots
                .add(c)
                .map_err(|e| CheckError::Tls(format!("{ca}: {e}")))?;
        }
    } else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

impl Checker {
    /// Builds the check (reads the CA file for HTTPS).
    pub fn new(cfg: &HealthConfig) -> Result<Self, CheckError> {
        let tls = match cfg.kind {
            CheckKind::Https => Some(TlsConnector::from(Arc::new(tls_config(cfg)?))),
            _ => None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            tls,
        })
    }

    /// The settings.
    pub fn config(&self) -> &HealthConfig {
        &self.cfg
    }

    /// Runs one check against `backend`; returns its latency on success.
    pub async fn check(&self, backend: SocketAddr) -> Result<Duration, CheckError> {
        let start = Instant::now();
        tokio::time::timeout(self.cfg.timeout, self.run(backend))
            .await
            .map_err(|_| CheckError::Timeout)??;
        Ok(start.elapsed())
    }

    async fn run(&self, backend: SocketAddr) -> Result<(), CheckError> {
        let addr = SocketAddr::new(backend.ip(), self.cfg.port.unwrap_or(backend.port()));
        let tcp = TcpStream::connect(addr).await?;
        let host = self
            .cfg
            .server_name
            .clone()
            .unwrap_or_else(|| addr.ip().to_string());
        match (&self.cfg.kind, &self.tls) {
            (CheckKind::Tcp, _) => Ok(()),
            (CheckKind::Https, Some(tls)) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| CheckError::Tls(e.to_string()))?;
                let s = tls.connect(name, tcp).await?;
                self.http(s, &host).await
            }
            _ => self.http(tcp, &host).await,
        }
    }

    async fn http<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: S,
        host: &str,
    ) -> Result<(), CheckError> {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: yagura-edge\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.cfg.path, host
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let r = s.read(&mut buf[n..]).await?;
            if r == 0 {
                return Err(CheckError::Protocol);
            }
            n += r;
        }
        let status = parse_status(&buf[..n]).ok_or(CheckError::Protocol)?;
        if status == self.cfg.expect_status {
            Ok(())
        } else {
            Err(CheckError::Status(status, self.cfg.expect_status))
        }
    }
}

/// The status code of an HTTP/1.x status line.
pub fn parse_status(b: &[u8]) -> Option<u16> {
    let rest = b.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall() {
        let mut h = Health::default();
        assert!(!h.observe(true, 2, 3));
        assert!(h.observe(true, 2, 3));
        assert!(h.up);
        assert!(!h.observe(false, 2, 3));
        assert!(!h.observe(true, 2, 3));
        assert!(!h.observe(false, 2, 3));
        assert!(!h.observe(false, 2, 3));
        assert!(h.observe(false, 2, 3));
        assert!(!h.up);
        assert!(!h.eject());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(parse_status(b"HTTP/2 200"), None);
        assert_eq!(parse_status(b"garbage"), None);
    }
}
