//! Upstream TLS client settings (rustls with ring): which roots are trusted,
//! ALPN, session resumption, and turning a failed handshake into a message
//! an operator can act on.
//!
//! Invariants:
//! - Certificates are verified unless a provider explicitly sets
//!   `tls_insecure_skip_verify`, which is logged as a warning every start.
//! - Default trust is the webpki roots plus the system store, loaded once per
//!   process; a provider's `ca_file` replaces them (a private endpoint trusts
//!   its own CA only, like `curl --cacert`).
//! - One `ClientConfig` per distinct trust setting, built off the hot path and
//!   shared by every shard: its session cache is what makes resumption work,
//!   so a connector must never be rebuilt per connection.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::telemetry::log_warn;

/// How a provider's server certificate is checked.
#[derive(Clone, Copy, Debug, Default)]
pub enum Trust<'a> {
    /// webpki roots and the system store.
    #[default]
    Default,
    /// Only the CA certificates in this PEM file.
    CaFile(&'a Path),
    /// No verification at all (explicit opt-in, logged).
    Insecure,
}

/// The client config for `trust`: the process-wide default one, or a new one
/// for a provider's own CA file or insecure mode. `provider` names it in logs.
pub fn client_config(trust: Trust<'_>, provider: &str) -> Result<Arc<ClientConfig>, String> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    Ok(match trust {
        Trust::Default => DEFAULT
            .get_or_init(|| build(Verify::Roots(default_roots().clone())))
            .clone(),
        Trust::CaFile(path) => build(Verify::Roots(Arc::new(load_ca_file(path)?))),
        Trust::Insecure => {
            log_warn(format_args!(
                "provider {provider}: TLS CERTIFICATE VERIFICATION IS DISABLED \
                 (tls_insecure_skip_verify = true); anyone on the path can read and \
                 alter its traffic, including the API key"
            ));
            build(Verify::Nothing)
        }
    })
}

/// Reads the CA certificates of a PEM file into a root store.
pub fn load_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| format!("{}: certificate #{}: {e}", path.display(), i + 1))?;
    }
    Ok(roots)
}

/// webpki roots plus whatever the system store holds. An unreadable system
/// store is not fatal: the webpki roots cover the public providers.
fn default_roots() -> &'static Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            log_warn(format_args!(
                "cannot read the system certificate store ({e}); trusting the webpki roots"
            ));
        }
        // Stores carry expired or odd certificates; skipping them is what
        // every TLS client does.
        let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
        Arc::new(roots)
    })
}

enum Verify {
    Roots(Arc<RootCertStore>),
    Nothing,
}

fn build(verify: Verify) -> Arc<ClientConfig> {
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(crypto.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let mut config = match verify {
        Verify::Roots(roots) => builder.with_root_certificates(roots),
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(
                crypto.signature_verification_algorithms,
            ))),
    }
    .with_no_client_auth();
    // rustls' default resumption (an in-memory cache of 256 sessions, TLS 1.3
    // tickets and TLS 1.2 session IDs/tickets) is kept: it lives in this
    // config, which every shard shares.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Accepts any certificate; handshake signatures are still checked so the
/// peer must at least hold the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What failed in the handshake with `peer`, for the 502 message, and
/// whether it was the certificate (a retry cannot help then). monoio-rustls
/// wraps the rustls error (its own `Display` says only "io error"), so the
/// rustls error is dug out and, for certificate problems, explained.
pub fn describe_handshake_error(e: &monoio_rustls::TlsError, peer: &str) -> (String, bool) {
    let rustls_err = match e {
        monoio_rustls::TlsError::Rustls(r) => Some(r),
        monoio_rustls::TlsError::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
    };
    match (rustls_err, e) {
        (Some(r @ rustls::Error::InvalidCertificate(cert)), _) => (
            format!(
                "TLS certificate verification failed for {peer}: {r}{}",
                hint(cert)
            ),
            true,
        ),
        (Some(r), _) => (format!("TLS handshake with {peer} failed: {r}"), false),
        (None, monoio_rustls::TlsError::Io(io)) => {
            (format!("TLS handshake with {peer} failed: {io}"), false)
        }
        (None, monoio_rustls::TlsError::Rustls(r)) => {
            (format!("TLS handshake with {peer} failed: {r}"), false)
        }
    }
}

fn hint(e: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => {
            " (the certificate is not signed by a trusted CA; for a private CA set the \
             provider's ca_file)"
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            " (the certificate does not name this host; check the provider's base_url)"
        }
        C::Expired | C::ExpiredContext { .. } => " (the certificate has expired)",
        C::NotValidYet | C::NotValidYetContext { .. } => {
            " (the certificate is not valid yet; check the clock)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("sg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        assert!(load_ca_file(&missing).unwrap_err().contains("missing.pem"));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(load_ca_file(&empty)
            .unwrap_err()
            .contains("no PEM certificate"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn certificate_failures_are_explained() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let (msg, cert) = describe_handshake_error(&monoio_rustls::TlsError::Io(io), "h");
        assert!(cert);
        assert!(
            msg.starts_with("TLS certificate verification failed for h: "),
            "{msg}"
        );
        assert!(msg.contains("ca_file"), "{msg}");
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let (msg, cert) = describe_handshake_error(&monoio_rustls::TlsError::Io(io), "h");
        assert!(!cert);
        assert!(msg.starts_with("TLS handshake with h failed"), "{msg}");
    }

    #[test]
    fn default_config_is_shared_and_offers_http11() {
        let a = client_config(Trust::Default, "a").unwrap();
        let b = client_config(Trust::Default, "b").unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "one session cache for every default provider"
        );
        assert_eq!(a.alpn_protocols, [b"http/1.1".to_vec()]);
        let c = client_config(Trust::Insecure, "c").unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
