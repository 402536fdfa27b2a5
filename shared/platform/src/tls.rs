//! TLS for listeners (`--tls-cert`, `--tls-key`: PEM files) and for the clients that reach
//! them: a peer URL `https://...` is checked against the certificates of `--ca-cert` when
//! given, else against the system's roots. rustls with ring, as tonic's `tls-ring` builds it.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// The process-wide rustls crypto provider (ring), for the clients that do not pick one
/// themselves (the OpenID Connect client). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A listener's certificate chain and private key, read once at start, and the rustls
/// configuration made of them.
#[derive(Clone)]
pub struct ServerTls {
    cert_pem: Vec<u8>,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls { .. }")
    }
}

impl ServerTls {
    /// Reads and checks the PEM files: at least one certificate, and a private key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| format!("cannot read the TLS {what} {}: {e}", p.display()))
        };
        let tls = Self::from_pem(read(cert, "certificate")?, read(key, "key")?)?;
        Ok(tls)
    }

    pub fn from_pem(cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Result<Self, String> {
        let chain = certificates(&cert_pem)?;
        if chain.is_empty() {
            return Err("the TLS certificate file holds no PEM certificate".into());
        }
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("the TLS key file holds no PEM private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the TLS certificate and key do not make a pair: {e}"))?;
        // HTTP/2 for gRPC; HTTP/1.1 for Connect's callers that speak only that (tonic's own
        // TLS would offer h2 alone, and such a client's handshake would fail).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            cert_pem,
            config: Arc::new(config),
        })
    }

    /// The listener's rustls configuration (`server::accept` does the handshakes).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// How a client on this machine reaches this listener (`cosell serve`'s services reach each
    /// other so): its own certificates as roots (and `extra_ca`), and the name it is for.
    pub fn loopback(
        &self,
        addr: std::net::SocketAddr,
        extra_ca: Option<&[u8]>,
    ) -> Result<Endpoint, String> {
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.cert_pem));
        if let Some(ca) = extra_ca {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        config = config.with_native_roots();
        let name = served_name(&self.cert_pem, addr.ip())?;
        Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| e.to_string())?
            .tls_config(config.domain_name(name))
            .map_err(|e| e.to_string())
    }
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate file is not PEM: {e}"))
}

/// The name to check the leaf certificate for: its first DNS name, else the listener's
/// address (a certificate for an IP address).
fn served_name(cert_pem: &[u8], ip: std::net::IpAddr) -> Result<String, String> {
    let certs = certificates(cert_pem)?;
    let leaf = certs.first().ok_or("no certificate")?;
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the TLS certificate cannot be read: {e:?}"))?;
    let ip = if ip.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    };
    Ok(cert
        .valid_dns_names()
        .find(|n| !n.starts_with('*'))
        .map(str::to_owned)
        .unwrap_or_else(|| ip.to_string()))
}

/// An endpoint for a peer URL: `https://` verifies the peer against `ca_pem` when given, else
/// the system's roots; `http://` is plaintext.
pub fn endpoint(url: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, String> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url}: {e}"))?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let config = match ca_pem {
        Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    endpoint
        .tls_config(config)
        .map_err(|e| format!("{url}: {e}"))
}

/// Reads a `--ca-cert` file.
pub fn read_ca(path: Option<&Path>) -> Result<Option<Vec<u8>>, String> {
    path.map(|p| {
        let pem = std::fs::read(p)
            .map_err(|e| format!("cannot read the CA certificate {}: {e}", p.display()))?;
        if certificates(&pem)?.is_empty() {
            return Err(format!("{} holds no PEM certificate", p.display()));
        }
        Ok(pem)
    })
    .transpose()
}
