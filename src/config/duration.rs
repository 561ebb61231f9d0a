//! Durations as the file writes them (whole milliseconds, `*_ms` keys) and
//! as the code uses them (`Duration`), converted once at parse time so no
//! use site converts again.
//!
//! Invariant: the TOML format is unchanged: a `*_ms` key takes a whole
//! number of milliseconds, 0 or more, and nothing else.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A `*_ms` key: whole milliseconds.
pub(super) fn ms<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// An optional `*_ms` key (a provider's own timeouts).
pub(super) fn opt_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<u64>::deserialize(d).map(|v| v.map(Duration::from_millis))
}
