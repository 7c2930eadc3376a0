//! TLS client settings shared by the channels: which roots to trust.
//!
//! By default the platform verifier (the system's trust store) decides; a mailbox's `ca-file`
//! replaces it with the CAs in that file (private servers, and the loopback test servers).
//! It must not weaken verification in any other way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Errors building a TLS client configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("cannot load CA certificates from `{path}`: {detail}")]
    CaFile { path: PathBuf, detail: String },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs the ring crypto provider as the process default (idempotent). Call once at start.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The PEM certificates of a CA file.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |detail: String| TlsError::CaFile {
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// A rustls client configuration trusting either the platform's roots or only `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    install_crypto_provider();
    let config = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_ca_file(path)? {
                roots.add(cert)?;
            }
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            ClientConfig::builder()
                .with_platform_verifier()?
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}
