//! Client TLS settings for the listener: reading `[server.tls]`'s PEM
//! files into a certified key (checked against its certificate), the
//! rustls `ServerConfig` every shard's acceptor shares, and the slot that a
//! reload swaps the certificate in.
//!
//! Invariants:
//! - A key that does not belong to the first certificate of the chain is
//!   refused at start-up and on reload, naming `server.tls.key_file`; a
//!   refused reload leaves the served certificate as it was.
//! - One `ServerConfig` for the whole process, built once: its session
//!   cache is what lets a client resume, and a reload swaps only the
//!   certificate behind [`ServerCert`], so handshakes in flight and open
//!   connections are not touched (a connection holds its own `Arc` of the
//!   key it was accepted with, if rustls still needs it).
//! - TLS 1.3 and 1.2 only, ALPN `http/1.1` only: a client that offers
//!   ALPN without `http/1.1` (h2 alone) is refused by the handshake rather
//!   than served a protocol it did not ask for.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::{ConfigError, ServerTlsConfig};

const CERT_FIELD: &str = "server.tls.cert_file";
const KEY_FIELD: &str = "server.tls.key_file";

fn bad(field: &str, message: String) -> ConfigError {
    ConfigError {
        field: field.into(),
        message,
    }
}

/// Reads the certificate chain and key `tls` names and checks that the key
/// is the first certificate's. Errors name the file's key.
pub fn load_certified_key(tls: &ServerTlsConfig) -> Result<Arc<CertifiedKey>, ConfigError> {
    let certs = read_chain(&tls.cert_file).map_err(|m| bad(CERT_FIELD, m))?;
    let key = read_key(&tls.key_file).map_err(|m| bad(KEY_FIELD, m))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        bad(
            KEY_FIELD,
            format!("{}: not a usable private key: {e}", tls.key_file.display()),
        )
    })?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(bad(
            KEY_FIELD,
            format!(
                "{} is not the private key of the certificate in {} (the first \
                 certificate of the chain must be the server's own)",
                tls.key_file.display(),
                tls.cert_file.display()
            ),
        )),
        Err(e) => Err(bad(
            CERT_FIELD,
            format!(
                "{}: the first certificate cannot be parsed: {e}",
                tls.cert_file.display()
            ),
        )),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {}", path.display(), pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "{} is not a PEM certificate file: {}",
                path.display(),
                pem_error(e)
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY \
             or EC PRIVATE KEY)",
            path.display()
        ),
        e => format!("cannot read {}: {}", path.display(), pem_error(e)),
    })
}

fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        e => format!("{e:?}"),
    }
}

/// The certificate new handshakes are answered with; a reload replaces it.
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<ServerCert> {
        Arc::new(ServerCert {
            current: RwLock::new(key),
        })
    }

    /// Serves `key` to every handshake from now on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // One uncontended read lock per handshake: next to the handshake's
        // key exchange and signature it is noise, and it keeps the
        // ServerConfig (and its session cache) the same across reloads.
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The rustls server settings every shard accepts with.
pub fn server_config(cert: Arc<ServerCert>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pair(dir: &Dir, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (
            dir.0.join(format!("{name}.crt")),
            dir.0.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn cfg(cert_file: &Path, key_file: &Path) -> ServerTlsConfig {
        ServerTlsConfig {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }

    #[test]
    fn loads_a_matching_pair_and_names_the_key_at_fault() {
        let dir = Dir(std::env::temp_dir().join(format!("sg-stls-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let (a_crt, a_key) = pair(&dir, "a");
        let (b_crt, b_key) = pair(&dir, "b");
        assert!(load_certified_key(&cfg(&a_crt, &a_key)).is_ok());
        assert!(load_certified_key(&cfg(&b_crt, &b_key)).is_ok());

        let e = load_certified_key(&cfg(&a_crt, &b_key)).unwrap_err();
        assert_eq!(e.field, KEY_FIELD, "{e}");
        assert!(e.message.contains("is not the private key"), "{e}");

        let e = load_certified_key(&cfg(&dir.0.join("missing.crt"), &a_key)).unwrap_err();
        assert_eq!(e.field, CERT_FIELD, "{e}");
        assert!(e.message.contains("missing.crt"), "{e}");

        // A certificate where the key should be, and the other way round.
        let e = load_certified_key(&cfg(&a_crt, &a_crt)).unwrap_err();
        assert_eq!(e.field, KEY_FIELD, "{e}");
        assert!(e.message.contains("no PEM private key"), "{e}");
        let e = load_certified_key(&cfg(&a_key, &a_key)).unwrap_err();
        assert_eq!(e.field, CERT_FIELD, "{e}");
        assert!(e.message.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn offers_http11_only() {
        let dir = Dir(std::env::temp_dir().join(format!("sg-stls2-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let (crt, key) = pair(&dir, "a");
        let cert = ServerCert::new(load_certified_key(&cfg(&crt, &key)).unwrap());
        let config = server_config(cert);
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
