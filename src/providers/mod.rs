//! Provider families: base URL, auth style and quirks. A `Provider` is built
//! once from config (URL split, DNS resolved, auth header rendered, TLS
//! connector made) so the hot path only copies prepared bytes.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;

use crate::config::{ConfigError, ProviderConfig};
use crate::upstream::UpstreamUrl;

/// One configured upstream provider.
pub struct Provider {
    pub name: String,
    pub url: UpstreamUrl,
    /// Resolved at start-up and reload; empty when resolution failed (each
    /// request then gets a 502 that says so).
    pub addrs: Vec<SocketAddr>,
    /// The auth header sent upstream in place of the client's, rendered.
    pub auth_header: Option<(&'static [u8], Vec<u8>)>,
    pub tls: Option<(monoio_rustls::TlsConnector, ServerName<'static>)>,
}

impl Provider {
    pub fn from_config(name: &str, cfg: &ProviderConfig) -> Result<Provider, ConfigError> {
        let field = |f: &str| format!("providers.{name}.{f}");
        let url = UpstreamUrl::parse(&cfg.base_url).map_err(|m| ConfigError {
            field: field("base_url"),
            message: m,
        })?;
        let addrs = url.resolve().unwrap_or_default();
        let auth_header = cfg
            .api_key
            .as_ref()
            .map(|k| (&b"authorization"[..], format!("Bearer {k}").into_bytes()));
        let tls = if url.tls {
            let name = ServerName::try_from(url.host.clone()).map_err(|e| ConfigError {
                field: field("base_url"),
                message: format!("bad TLS server name: {e}"),
            })?;
            Some((default_tls_connector(), name))
        } else {
            None
        };
        Ok(Provider {
            name: name.to_string(),
            url,
            addrs,
            auth_header,
            tls,
        })
    }
}

/// A rustls client verifying against the webpki roots, offering ALPN
/// http/1.1, with rustls' in-memory session resumption cache.
fn default_tls_connector() -> monoio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    monoio_rustls::TlsConnector::from(config.clone())
}
