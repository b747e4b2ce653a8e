//! A throw-away PKI for tests: a CA, and a server certificate it signs for the names (DNS
//! names or IP addresses) a test needs.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A CA and one server certificate, as PEM.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate: what a client must trust.
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
    /// A client certificate signed by the same CA.
    pub client_cert_pem: String,
    /// The client certificate's private key.
    pub client_key_pem: String,
}

impl TestPki {
    /// A new CA, and a server certificate for `names` signed by it.
    pub fn new(names: &[&str]) -> TestPki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: another test CA must not look like this one's issuer.
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unique = format!("liblanscape-sip test CA {} {serial}", std::process::id());
        ca.distinguished_name.push(DnType::CommonName, unique);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut server = CertificateParams::new(names.clone()).expect("server parameters");
        server.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let key = KeyPair::generate().expect("server key");
        let cert = server.signed_by(&key, &ca).expect("server certificate");
        let mut client =
            CertificateParams::new(vec!["client.test".to_string()]).expect("client parameters");
        client
            .distinguished_name
            .push(DnType::CommonName, "client.test");
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = client
            .signed_by(&client_key, &ca)
            .expect("client certificate");
        TestPki {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// A rustls server configuration presenting the server certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.build_server_config(false)
    }

    /// Like [`TestPki::server_config`], also requiring a client certificate from this CA.
    pub fn server_config_requiring_client_certificates(&self) -> Arc<rustls::ServerConfig> {
        self.build_server_config(true)
    }

    fn build_server_config(&self, require_clients: bool) -> Arc<rustls::ServerConfig> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_clients {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(ca.expect("CA PEM")).expect("CA certificate");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(chain, key)
            .expect("server certificate and key");
        Arc::new(config)
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).expect("PKI directory");
        let paths = (
            dir.join("ca.pem"),
            dir.join("server.pem"),
            dir.join("server.key"),
        );
        std::fs::write(&paths.0, &self.ca_pem).expect("ca.pem");
        std::fs::write(&paths.1, &self.cert_pem).expect("server.pem");
        std::fs::write(&paths.2, &self.key_pem).expect("server.key");
        paths
    }
}
