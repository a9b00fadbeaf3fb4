//! The API's TLS on `tcp://` (and `fd://`) listeners, as dockerd's `--tls`, `--tlsverify`,
//! `--tlscacert`, `--tlscert`, `--tlskey`: the server presents `--tlscert`/`--tlskey`; with
//! `--tlsverify` every client must present a certificate issued by `--tlscacert` (and only by
//! it), else the handshake fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {what} {path:?}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {0:?}")]
    NoCertificate(PathBuf),
    #[error("the CA certificate {path:?}: {source}")]
    Ca {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("client verification with the CA {path:?}: {source}")]
    Verifier {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("the server certificate {cert:?} and key {key:?}: {source}")]
    KeyPair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// Where the daemon's TLS material is, and whether clients must present certificates.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `--tlsverify`: a client certificate signed by `ca` is required.
    pub verify: bool,
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// The server configuration of `files`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates("the server certificate", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Read {
        what: "the server key",
        path: files.key.clone(),
        source,
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::KeyPair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    let builder = if files.verify {
        // Only the given CA: the system's roots do not vouch for clients (as dockerd's
        // `ExclusiveRootPools`).
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates("the CA certificate", &files.ca)? {
            roots.add(ca).map_err(|source| TlsError::Ca {
                path: files.ca.clone(),
                source,
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|source| TlsError::Verifier {
                path: files.ca.clone(),
                source,
            })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    // No ALPN: clients offering none (the docker CLI) and clients offering h2 alike get
    // HTTP/1.1, which hijacked attach and exec need.
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::KeyPair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    Ok(Arc::new(config))
}
