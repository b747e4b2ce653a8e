//! TLS client settings for rustls: trust anchors from the system store and from PEM bundles
//! the application adds, and an optional client certificate. TLS 1.2 and 1.3, with the
//! `ring` provider. Certificates are verified against the name the engine gives (the SIP
//! domain, RFC 5922), which rustls also sends as SNI when it is a DNS name.

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, OnceLock};

/// Largest PEM file read, in bytes.
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// What a TLS connection trusts and presents.
#[derive(Debug)]
pub struct TlsSettings {
    /// Trust the operating system's store (the default).
    pub system_roots: bool,
    /// Trust anchors added by the application.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Client certificate chain and key, if the server asks for one.
    pub client: Option<ClientIdentity>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            system_roots: true,
            extra_roots: Vec::new(),
            client: None,
        }
    }
}

impl Clone for TlsSettings {
    fn clone(&self) -> Self {
        TlsSettings {
            system_roots: self.system_roots,
            extra_roots: self.extra_roots.clone(),
            client: self
                .client
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key())),
        }
    }
}

/// A client certificate chain and its private key.
pub type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Trust anchors from PEM text or a PEM file's path (at least one certificate).
pub fn trust_anchors(pem_or_path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    parse_certificates(&read_pem(pem_or_path)?)
}

/// A client certificate chain and key, each PEM text or a PEM file's path. The key's PEM
/// text is wiped after use.
pub fn client_identity(chain: &str, key: &str) -> Result<ClientIdentity, String> {
    let chain = parse_certificates(&read_pem(chain)?)?;
    let key = zeroize::Zeroizing::new(read_pem(key)?);
    Ok((chain, parse_private_key(&key)?))
}

/// PEM text, or the path of a PEM file: text that starts with `-----BEGIN` is taken as it
/// is, anything else is read as a file (at most 4 MiB).
fn read_pem(source: &str) -> Result<Vec<u8>, String> {
    if source.trim_start().starts_with("-----BEGIN") {
        return Ok(source.as_bytes().to_vec());
    }
    let file = std::fs::File::open(source).map_err(|e| format!("cannot open {source}: {e}"))?;
    let mut bytes = Vec::new();
    use std::io::Read;
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {source}: {e}"))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!("{source} is larger than {MAX_PEM_BYTES} bytes"));
    }
    Ok(bytes)
}

/// Every certificate of a PEM bundle (at least one).
fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM text".into());
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("bad PEM private key: {e}"))
}

/// The operating system's trust anchors, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// A rustls client configuration for these settings.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if settings.system_roots {
        // A store entry rustls cannot use is skipped, as browsers do.
        let _ = roots.add_parsable_certificates(system_roots().iter().cloned());
    }
    for cert in &settings.extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| format!("unusable trust anchor: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match &settings.client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("unusable client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
