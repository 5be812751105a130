//! HTTPS on the public HTTP listener (`--tls-cert`, `--tls-key`): TLS 1.3 (RFC 8446)
//! and 1.2 (RFC 5246) with rustls on the aws-lc-rs provider, ALPN `http/1.1` only
//! (RFC 7301; the server speaks HTTP/1), no client certificates.
//!
//! Owns: reading and checking the PEM files ([`parse`]), the resolver that hands the
//! current certificate to each handshake and swaps it when the files change
//! ([`ReloadingCert`], checked every [`RELOAD_PERIOD`] by [`Tls::watch`], so a renewed
//! certificate from certbot or cert-manager is served without a restart), and the
//! acceptor with its handshake timeout ([`Tls::accept`]). The accept loop that calls it
//! is [`crate::http_serve`].
//!
//! A reload that fails (a file missing, bad PEM, a key that does not match) keeps the
//! certificate in use, logs a warning once per distinct content of the files, and counts
//! `switchboard_tls_reloads_total{outcome="error"}`. At startup the same failures stop
//! the server with the file and the reason.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, InconsistentKeys, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How often the certificate and key files are read again to see whether they changed.
pub(crate) const RELOAD_PERIOD: Duration = Duration::from_secs(2);

/// Most bytes read from a certificate or key file: a chain of a few certificates is a
/// few KiB; a larger file is refused rather than read whole.
pub(crate) const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The one application protocol offered in ALPN (RFC 7301 §3.1; the IANA name of
/// HTTP/1.1). A client that offers ALPN without it is refused with
/// `no_application_protocol` (RFC 7301 §3.2).
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why a certificate and key could not be loaded. `Display` names the file and the
/// reason, for the operator; it never contains key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is larger than [`MAX_PEM_BYTES`].
    #[error("{}: larger than {MAX_PEM_BYTES} bytes, not a PEM certificate or key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid PEM (a section without its end, bad base64).
    #[error("{}: not valid PEM: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's reason.
        message: String,
    },
    /// No `CERTIFICATE` section in the certificate file.
    #[error("{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// No private key section (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`) in the
    /// key file.
    #[error("{}: no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in it", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is PEM but not a key the provider can sign with.
    #[error("{}: unusable private key: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The first certificate is not a parsable X.509 certificate.
    #[error("{}: bad certificate: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The key's public key is not the first certificate's.
    #[error("{} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration (no protocol version in common with the
    /// provider; not expected with aws-lc-rs).
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// The provider every TLS object here uses, explicitly: the process may have several
/// compiled in, and no process-wide default is installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Read at most [`MAX_PEM_BYTES`] of `path`.
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// A certificate chain (leaf first) and its private key, from the PEM text of the two
/// files (`cert_path` and `key_path` only name them in errors). The key must match the
/// leaf certificate's public key. Other PEM sections in either file are ignored.
///
/// Errors: [`TlsError::Pem`], [`TlsError::NoCertificate`], [`TlsError::NoKey`],
/// [`TlsError::Key`], [`TlsError::Certificate`], [`TlsError::Mismatch`].
pub(crate) fn parse(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem_err = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key_path.to_path_buf(),
            })
        }
        Err(e) => return Err(pem_err(key_path, e)),
    };
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Key {
            path: key_path.to_path_buf(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // A key that cannot tell its public key is taken on trust (rustls does the same).
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        }),
        Err(source) => Err(TlsError::Certificate {
            path: cert_path.to_path_buf(),
            source,
        }),
    }
}

/// What the files held at the last look: their bytes, or why they could not be read.
/// A look that finds the same is not a change (nothing reloaded, nothing logged).
type Snapshot = Result<(Vec<u8>, Vec<u8>), String>;

/// What one [`ReloadingCert::reload_if_changed`] did.
#[derive(Debug)]
pub(crate) enum Reload {
    /// The files are as at the last look.
    Unchanged,
    /// New contents, loaded: the next handshakes use them.
    Reloaded,
    /// New contents that do not load; the previous certificate stays in use.
    Failed(TlsError),
}

/// The server's certificate, as a rustls resolver: each handshake takes the current one
/// (a read lock and an `Arc` clone, once per handshake). [`reload_if_changed`] replaces
/// it when the files hold a new, valid certificate and key.
///
/// [`reload_if_changed`]: ReloadingCert::reload_if_changed
#[derive(Debug)]
pub(crate) struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Snapshot>,
}

impl ReloadingCert {
    /// Load the certificate and key from their files; errors as [`parse`], and
    /// [`TlsError::Read`] / [`TlsError::TooLarge`].
    pub(crate) fn new(cert_path: &Path, key_path: &Path) -> Result<ReloadingCert, TlsError> {
        let provider = provider();
        let cert = read_bounded(cert_path)?;
        let key = read_bounded(key_path)?;
        let certified = parse(&cert, &key, cert_path, key_path, &provider)?;
        Ok(ReloadingCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(Ok((cert, key))),
        })
    }

    /// The certificate and key in use.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read())
    }

    /// Read both files; when they differ from the last look, load them and, if they
    /// are good, use them from the next handshake on. Blocking file I/O (two small
    /// reads): call it off the async workers. Neither logs nor counts (that is
    /// [`ReloadingCert::report`]).
    pub(crate) fn reload_if_changed(&self) -> Reload {
        let read = read_bounded(&self.cert_path)
            .and_then(|cert| Ok((cert, read_bounded(&self.key_path)?)));
        {
            let mut seen = self.seen.lock();
            let same = match (&*seen, &read) {
                (Ok(before), Ok(now)) => before == now,
                (Err(before), Err(now)) => *before == now.to_string(),
                _ => false,
            };
            if same {
                return Reload::Unchanged;
            }
            *seen = match &read {
                Ok(files) => Ok(files.clone()),
                Err(e) => Err(e.to_string()),
            };
        }
        let loaded = read.and_then(|(cert, key)| {
            parse(&cert, &key, &self.cert_path, &self.key_path, &self.provider)
        });
        match loaded {
            Ok(certified) => {
                *self.current.write() = Arc::new(certified);
                Reload::Reloaded
            }
            Err(e) => Reload::Failed(e),
        }
    }

    /// Log and count what [`ReloadingCert::reload_if_changed`] did: a reload at info, a
    /// failure at warn, each in `switchboard_tls_reloads_total`; nothing when unchanged.
    pub(crate) fn report(&self, outcome: &Reload) {
        match outcome {
            Reload::Unchanged => {}
            Reload::Reloaded => {
                crate::metrics::tls_reloaded(true);
                info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
            }
            Reload::Failed(e) => {
                crate::metrics::tls_reloaded(false);
                warn!(error = %e, "TLS certificate not reloaded; the previous one stays in use");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Why a TLS handshake did not complete. Each is counted in
/// `switchboard_tls_handshake_failures_total`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// The client did not finish the handshake in time (it may have sent nothing).
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
    /// The client sent something that is not a TLS handshake we accept (plain HTTP, no
    /// common version or cipher suite, ALPN without `http/1.1`), or the connection broke.
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

/// The TLS side of the public listener: the acceptor and its certificate. Cheap to
/// clone (`Arc`s).
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<ReloadingCert>,
}

impl Tls {
    /// Load `cert_path` and `key_path` (errors as [`ReloadingCert::new`]) and build the
    /// server configuration: TLS 1.3 and 1.2, the provider's default cipher suites,
    /// ALPN `http/1.1`, no client authentication.
    pub(crate) fn new(cert_path: &Path, key_path: &Path) -> Result<Tls, TlsError> {
        let certs = Arc::new(ReloadingCert::new(cert_path, key_path)?);
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&certs.provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
        })
    }

    /// The certificate resolver.
    #[cfg(test)]
    pub(crate) fn certs(&self) -> &Arc<ReloadingCert> {
        &self.certs
    }

    /// Check the files every `period` in a background task, and reload on change
    /// ([`ReloadingCert::reload_if_changed`]). The task ends once every clone of this
    /// `Tls` is gone. Needs a tokio runtime.
    pub(crate) fn watch(&self, period: Duration) {
        let certs: Weak<ReloadingCert> = Arc::downgrade(&self.certs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(certs) = certs.upgrade() else { break };
                // File reads block: on the blocking pool, one at a time.
                let _ = tokio::task::spawn_blocking(move || {
                    let outcome = certs.reload_if_changed();
                    certs.report(&outcome);
                })
                .await;
            }
        });
    }

    /// The server side of a TLS handshake on `stream`, within `timeout`. A failure is
    /// counted (`switchboard_tls_handshake_failures_total`); the caller drops the stream.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let result = match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Err(_) => Err(HandshakeError::Timeout(timeout)),
        };
        if result.is_err() {
            crate::metrics::tls_handshake_failed();
        }
        result
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
