//! Listen addresses as the file and the command line write them (`IP:port`
//! strings) and as the code uses them (`SocketAddr`), parsed once so no use
//! site parses again.
//!
//! Invariant: one message per kind of address, whether the address came
//! from the file (through serde, located at its key) or from a flag.

use std::net::SocketAddr;

use serde::{de::Error as _, Deserialize, Deserializer};

use super::error::{bad, ConfigError};

/// `server.listen` (and `--listen`).
pub fn listen_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        bad(
            "server.listen",
            format!("{text:?} is not an IP:port address"),
        )
    })
}

/// `admin.listen` (and `--admin-listen`): empty turns the listener off.
pub fn admin_addr(text: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        bad(
            "admin.listen",
            format!("{text:?} is not an IP:port address (or \"\" to disable)"),
        )
    })
}

pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    listen_addr(&String::deserialize(d)?).map_err(|e| D::Error::custom(e.message))
}

pub(super) fn admin<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    admin_addr(&String::deserialize(d)?).map_err(|e| D::Error::custom(e.message))
}
