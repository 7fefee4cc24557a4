//! TLS: the server side (several certificates chosen by SNI, swapped in place when their files change — cert-manager
//! rewrites them — with a bad new file logged and the old certificate kept) and the client side (webpki roots plus
//! an optional extra CA file) for upstreams and identity providers. rustls with the `ring` provider throughout.

use arc_swap::ArcSwap;
use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why certificates or CAs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Unreadable or not PEM.
    #[error("{path}: {what}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_err(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        what: what.into(),
    }
}

/// A certificate and key as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    leaf: CertificateDer<'static>,
}

/// The certificates in force and a per-name cache of SNI choices.
struct CertSet {
    certs: Vec<Loaded>,
    fingerprint: Vec<u8>,
    by_name: Mutex<HashMap<String, usize>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))
}

fn load_one(f: &CertFiles, cert_pem: &[u8], key_pem: &[u8]) -> Result<Loaded, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&f.cert, format!("not a PEM certificate chain: {e}")))?;
    let leaf = chain
        .first()
        .cloned()
        .ok_or_else(|| file_err(&f.cert, "no certificate in the file"))?;
    webpki::EndEntityCert::try_from(&leaf).map_err(|e| {
        file_err(
            &f.cert,
            format!("the first certificate does not parse: {e}"),
        )
    })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| file_err(&f.key, format!("not a PEM private key: {e}")))?;
    let signing = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_err(&f.key, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()
        .map_err(|e| file_err(&f.key, format!("does not match {}: {e}", f.cert.display())))?;
    Ok(Loaded {
        key: Arc::new(ck),
        leaf,
    })
}

fn load_set(files: &[CertFiles]) -> Result<CertSet, TlsError> {
    let mut certs = Vec::new();
    let mut fp = ring::digest::Context::new(&ring::digest::SHA256);
    for f in files {
        let c = read(&f.cert)?;
        let k = read(&f.key)?;
        fp.update(&c);
        fp.update(&k);
        certs.push(load_one(f, &c, &k)?);
    }
    Ok(CertSet {
        certs,
        fingerprint: fp.finish().as_ref().to_vec(),
        by_name: Mutex::new(HashMap::new()),
    })
}

fn fingerprint(files: &[CertFiles]) -> Option<Vec<u8>> {
    let mut fp = ring::digest::Context::new(&ring::digest::SHA256);
    for f in files {
        fp.update(&std::fs::read(&f.cert).ok()?);
        fp.update(&std::fs::read(&f.key).ok()?);
    }
    Some(fp.finish().as_ref().to_vec())
}

/// The server's certificates: an SNI resolver over a set that [`CertStore::check`] swaps when files change.
pub struct CertStore {
    files: Vec<CertFiles>,
    set: ArcSwap<CertSet>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("files", &self.files)
            .finish()
    }
}

/// What a [`CertStore::check`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Files unchanged.
    Unchanged,
    /// New certificates are in force.
    Reloaded,
    /// The files changed but do not load; the old certificates stay.
    Failed(String),
}

impl CertStore {
    /// Loads every certificate (start-up: any problem is an error).
    pub fn load(files: Vec<CertFiles>) -> Result<Self, TlsError> {
        let set = load_set(&files)?;
        Ok(Self {
            files,
            set: ArcSwap::from_pointee(set),
        })
    }

    /// Re-reads the files; swaps the set when they changed and load.
    pub fn check(&self) -> CheckOutcome {
        let Some(fp) = fingerprint(&self.files) else {
            return CheckOutcome::Failed("a certificate or key file cannot be read".into());
        };
        if fp == self.set.load().fingerprint {
            return CheckOutcome::Unchanged;
        }
        match load_set(&self.files) {
            Ok(set) => {
                self.set.store(Arc::new(set));
                CheckOutcome::Reloaded
            }
            Err(e) => CheckOutcome::Failed(e.to_string()),
        }
    }

    /// Same files as `other`?
    pub fn same_files(&self, other: &[CertFiles]) -> bool {
        self.files == other
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        let first = set.certs.first().map(|c| c.key.clone());
        let Some(name) = sni else { return first };
        let name = name.to_ascii_lowercase();
        if let Ok(cache) = set.by_name.lock() {
            if let Some(&i) = cache.get(&name) {
                return set.certs.get(i).map(|c| c.key.clone());
            }
        }
        let Ok(server_name) = ServerName::try_from(name.clone()) else {
            return first;
        };
        let found = set.certs.iter().position(|c| {
            webpki::EndEntityCert::try_from(&c.leaf)
                .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&server_name).is_ok())
        });
        let i = found.unwrap_or(0);
        if let Ok(mut cache) = set.by_name.lock() {
            if cache.len() < 4096 {
                cache.insert(name, i);
            }
        }
        set.certs.get(i).map(|c| c.key.clone())
    }
}

/// The certificate store in force (replaced whole when a reload changes the list of files).
pub type CertHolder = Arc<ArcSwap<CertStore>>;

#[derive(Debug)]
struct Resolver(CertHolder);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().pick(hello.server_name())
    }
}

/// The server config: SNI over `store`, ALPN h2 then http/1.1.
pub fn server_config(store: CertHolder) -> Result<rustls::ServerConfig, TlsError> {
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(store)));
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(c)
}

/// A client config trusting the webpki roots and the certificates in `ca_file` (ALPN is set by the connector).
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(p) = ca_file {
        let pem = read(p)?;
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(&pem) {
            let c = c.map_err(|e| file_err(p, format!("not PEM: {e}")))?;
            roots
                .add(c)
                .map_err(|e| file_err(p, format!("not a CA certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(file_err(p, "no certificate in the file"));
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
