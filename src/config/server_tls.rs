//! `[server.tls]`: the certificate and key the listener terminates client
//! TLS with. Only the schema lives here; reading the PEM files, checking
//! that the key matches the certificate and serving it are `net::server_tls`'s
//! (config is a low floor and does no I/O of its own).
//!
//! Invariant: both paths are given whenever the table is; whether TLS is on
//! is decided at start-up (like `server.listen`), while the files behind the
//! paths are read again on every reload.

use std::path::PathBuf;

use serde::Deserialize;

/// `[server.tls]`: when present, every connection to `server.listen` must
/// speak TLS (1.2 or 1.3, ALPN `http/1.1`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain: the server's certificate first, then any
    /// intermediates.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key_file: PathBuf,
}
