//! A throw-away certificate authority and one server certificate signed by it.
//!
//! rustls refuses a self-signed certificate used as a server certificate
//! (`CaUsedAsEndEntity`), so the servers get a leaf (`CA:FALSE`, `serverAuth`, SAN
//! `localhost` and `127.0.0.1`) issued by a separate CA, and clients trust only that CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};

/// Paths of the PEM files written by [`Pki::write`].
pub struct Pki {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    ca_der: CertificateDer<'static>,
}

impl Pki {
    /// Makes a fresh CA and leaf and writes `ca.pem`, `server.pem` and `server.key` into `dir`.
    pub fn write(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "deskprobe test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("generate server key");
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server cert params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("sign server cert");

        let pki = Pki {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
            ca_der: ca_cert.der().clone(),
        };
        std::fs::write(&pki.ca_pem, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&pki.cert_pem, leaf_cert.pem()).expect("write server.pem");
        std::fs::write(&pki.key_pem, leaf_key.serialize_pem()).expect("write server.key");
        pki
    }

    /// A TLS connector that trusts only this CA (no system roots).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("add test CA to roots");
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// The name the servers' certificate is valid for.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("valid server name")
}

/// rustls needs one process-wide crypto provider; the crate uses ring.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
