//! The governance part of the file: `[auth]`, `[governance]`, `[state]`,
//! `[[keys]]` and `[[teams]]`, and the limit fields keys and teams share.
//! Schema only; `governance` reads these into its records.
//!
//! Invariant: a declared key names where its secret comes from
//! (`key_sha256` or `key_env`), never the secret itself.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::duration::ms;
use super::error::{bad, ConfigError};

/// How often a budget starts again, on the UTC boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    /// ISO weeks: from Monday 00:00 UTC.
    Week,
    /// From the 1st of the month, 00:00 UTC.
    Month,
    /// Never resets.
    #[default]
    Total,
}

/// The limits both keys and teams have; absent is no limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitFields {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub budget_usd: Option<f64>,
    pub budget_period: Period,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Serve model routes without keys on a non-loopback address. Without
    /// it (and without keys or an admin token) the gateway refuses to start
    /// anywhere but on loopback: anyone who reaches the port would spend
    /// the provider keys.
    pub allow_unauthenticated: bool,
}

/// `[governance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// Output tokens reserved for a request that gives no `max_tokens`
    /// (nor `max_completion_tokens`, `max_output_tokens`); a stream that
    /// goes past its reservation takes more as it runs, or is cut.
    pub default_max_output_tokens: u64,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            default_max_output_tokens: 4096,
        }
    }
}

/// What a limit does while the shared store is unreachable and no lease
/// covers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// 503 `state_unavailable` with `Retry-After: 1`.
    FailClosed,
    /// Served under this instance's own count of the limit only.
    FailOpen,
}

/// `[state.on_unavailable]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnUnavailable {
    /// Budgets (money) fail closed by default: an outage must not become
    /// unmetered spend.
    pub budget: Unavailable,
    /// Rate limits (rpm) fail open by default: each instance keeps its own
    /// sliding minute.
    pub rate_limit: Unavailable,
}

impl Default for OnUnavailable {
    fn default() -> Self {
        OnUnavailable {
            budget: Unavailable::FailClosed,
            rate_limit: Unavailable::FailOpen,
        }
    }
}

/// `[state]`: where keys, teams and spend live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `local` (an embedded store under `dir`) or `redis` (keys, teams,
    /// spend and rate counters shared by every instance through
    /// `redis_url`; `dir` still keeps this instance's last known copy).
    pub backend: String,
    /// `redis://[user:password@]host[:port][/db]`; `SHARDGATE_REDIS_URL`
    /// when unset.
    pub redis_url: Option<String>,
    pub on_unavailable: OnUnavailable,
    /// The longest a request waits on the shared store (for a first lease),
    /// milliseconds; past it the limit's `on_unavailable` applies.
    #[serde(deserialize_with = "ms")]
    pub unavailable_wait_ms: Duration,
    /// How long a budget lease is good for without a word from the store,
    /// milliseconds (refreshed at half of it while in use).
    #[serde(deserialize_with = "ms")]
    pub lease_ttl_ms: Duration,
    /// How often the sync thread settles spend, tops leases up and expires
    /// them, milliseconds (it also runs at once when a request lacks one).
    #[serde(deserialize_with = "ms")]
    pub sync_interval_ms: Duration,
    /// Connect, read and write timeout of each call to the store.
    #[serde(deserialize_with = "ms")]
    pub redis_timeout_ms: Duration,
    /// Defaults to `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else
    /// `./shardgate-state`.
    pub dir: Option<PathBuf>,
    /// The store is written at most this long after a change: what a
    /// SIGKILL can lose, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub flush_interval_ms: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: "local".into(),
            redis_url: None,
            on_unavailable: OnUnavailable::default(),
            unavailable_wait_ms: Duration::from_millis(50),
            lease_ttl_ms: Duration::from_millis(3000),
            sync_interval_ms: Duration::from_millis(100),
            redis_timeout_ms: Duration::from_millis(250),
            dir: None,
            flush_interval_ms: Duration::from_millis(1000),
        }
    }
}

impl StateConfig {
    /// The state directory in force.
    pub fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .or_else(|| {
                // systemd may give several, colon-separated: the first is ours.
                std::env::var_os("STATE_DIRECTORY").and_then(|v| {
                    v.to_str()
                        .and_then(|s| s.split(':').next())
                        .filter(|s| !s.is_empty())
                        .map(PathBuf::from)
                })
            })
            .unwrap_or_else(|| PathBuf::from("shardgate-state"))
    }
}

/// One `[[keys]]` entry (the limit fields are spelt out, not flattened:
/// serde cannot refuse unknown keys through a flattened struct).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Defaults to `cfg_<name>`.
    pub id: Option<String>,
    pub name: String,
    /// Hex SHA-256 of the secret (`printf %s "$KEY" | sha256sum`).
    pub key_sha256: Option<String>,
    /// An environment variable holding the secret.
    pub key_env: Option<String>,
    pub team: Option<String>,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub budget_period: Period,
    /// RFC 3339 (read by `governance`, which names the key if it is not).
    pub expires_at: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// One `[[teams]]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub id: String,
    pub name: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub budget_period: Period,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl KeyConfig {
    pub fn limits(&self) -> LimitFields {
        LimitFields {
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
        }
    }
}

impl TeamConfig {
    pub fn limits(&self) -> LimitFields {
        LimitFields {
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
        }
    }
}

impl super::Config {
    /// The governance sections' own checks: one backend we have, declared
    /// keys and teams well-formed, unique and pointing at declared teams.
    pub(super) fn validate_governance(&self) -> Result<(), ConfigError> {
        match self.state.backend.as_str() {
            "local" => {}
            "redis" => match &self.state.redis_url {
                None => return Err(bad(
                    "state.redis_url",
                    "state.backend = \"redis\" needs a redis:// URL here or in SHARDGATE_REDIS_URL",
                )),
                Some(u) if !u.starts_with("redis://") || u.len() <= "redis://".len() => {
                    return Err(bad(
                        "state.redis_url",
                        format!("{u:?} is not a redis://host[:port] URL"),
                    ))
                }
                Some(_) => {}
            },
            other => {
                return Err(bad(
                    "state.backend",
                    format!("{other:?} is not a backend; \"local\" and \"redis\" are"),
                ))
            }
        }
        let st = &self.state;
        for (field, v) in [
            ("state.lease_ttl_ms", st.lease_ttl_ms),
            ("state.sync_interval_ms", st.sync_interval_ms),
            ("state.redis_timeout_ms", st.redis_timeout_ms),
        ] {
            if v.is_zero() {
                return Err(bad(field, "must be above 0"));
            }
        }
        if st.sync_interval_ms * 2 > st.lease_ttl_ms {
            return Err(bad(
                "state.lease_ttl_ms",
                "must be at least twice state.sync_interval_ms: a lease is refreshed at half its life",
            ));
        }
        if self.admin.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(bad(
                "admin.token",
                "must be at least 16 characters: it guards every key and budget",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, t) in self.teams.iter().enumerate() {
            if t.id.is_empty() || !ids.insert(t.id.as_str()) {
                return Err(bad(format!("teams[{i}].id"), "must be present and unique"));
            }
            check_limits(&format!("teams[{i}]"), &t.limits())?;
        }
        let mut ids = std::collections::HashSet::new();
        for (i, k) in self.keys.iter().enumerate() {
            let at = format!("keys[{i}]");
            if k.name.is_empty() {
                return Err(bad(format!("{at}.name"), "is required"));
            }
            let id = k.id.clone().unwrap_or_else(|| format!("cfg_{}", k.name));
            if !ids.insert(id) {
                return Err(bad(
                    format!("{at}.id"),
                    "two keys have the same id (or name)",
                ));
            }
            match (&k.key_sha256, &k.key_env) {
                (Some(h), None) if h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()) => {}
                (Some(_), None) => {
                    return Err(bad(format!("{at}.key_sha256"), "must be 64 hex digits"))
                }
                (None, Some(v)) if !v.is_empty() => {}
                _ => {
                    return Err(bad(
                        &at,
                        "needs exactly one of key_sha256 (hex SHA-256 of the secret) or key_env",
                    ))
                }
            }
            if let Some(team) = &k.team {
                if !self.teams.iter().any(|t| &t.id == team) {
                    return Err(bad(
                        format!("{at}.team"),
                        format!("no [[teams]] entry has id {team:?}"),
                    ));
                }
            }
            if k.models
                .as_ref()
                .is_some_and(|m| m.iter().any(String::is_empty))
            {
                return Err(bad(format!("{at}.models"), "globs must not be empty"));
            }
            check_limits(&at, &k.limits())?;
        }
        Ok(())
    }
}

fn check_limits(at: &str, l: &LimitFields) -> Result<(), ConfigError> {
    for (field, v) in [
        ("rpm", l.rpm),
        ("tpm", l.tpm),
        ("max_concurrent", l.max_concurrent),
    ] {
        if v == Some(0) {
            return Err(bad(
                format!("{at}.{field}"),
                "must be above 0 (leave it out for no limit)",
            ));
        }
    }
    if l.budget_usd.is_some_and(|b| !(b.is_finite() && b >= 0.0)) {
        return Err(bad(
            format!("{at}.budget_usd"),
            "must be a finite amount, 0 or more",
        ));
    }
    Ok(())
}
