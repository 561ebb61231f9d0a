//! Governance: who may call (virtual keys), what they may call (model
//! allow-lists), and how much (rate, token and concurrency limits, budgets
//! in US dollars), for keys and the teams they belong to.
//!
//! - `records` what a key or team is; `table` all of them, by id and by
//!   secret hash, shared by the process; `ledger` the live counters and the
//!   decision over them; `window` the one-minute sliding counts; `clock`
//!   UTC periods and RFC 3339; `glob`, `secret` the small pieces;
//! - `admission` a request's reservation, from before it goes upstream to
//!   its settle, and the `x-ratelimit-*` headers;
//! - `admin_api` the `/admin/keys` and `/admin/teams` endpoints; `metrics`
//!   their families on `/metrics` (bounded: the 100 busiest keys by name);
//! - `store` the local backend's state under `state.dir`, written off the
//!   shards (kept under the Redis backend too, as this instance's last
//!   known copy);
//! - `shared` the Redis backend: records, spend and rate counters shared
//!   by every instance, through leases taken by one `state-sync` thread.
//!
//! Invariants: the request path never blocks on anything but a key's and
//! its team's ledger locks (held for a few integer updates, key before
//! team); secrets exist only in requests and in the shards' key caches,
//! never in the table, the store or a log.

mod admin_api;
mod admission;
mod clock;
mod glob;
mod ledger;
pub mod metrics;
mod records;
pub mod resources;
mod secret;
pub mod shared;
pub mod store;
mod table;
mod window;

pub use admin_api::{handle_admin, presents_admin_token, AdminAnswer};
pub use admission::{admit, Admission, Denied, RateHeaders};
pub use clock::{format_rfc3339, parse_rfc3339, unix_now, Period};
pub use ledger::{Need, Refusal, Used, View};
pub use records::{usd_to_nanos, KeySpec, Origin, TeamSpec};
pub use secret::{from_hex as sha256_from_hex, hash as sha256};
pub use table::{KeyEntry, Table, TeamEntry};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::{Config, KeyConfig, TeamConfig};

/// Process-wide governance state, shared by shards, the admin thread and the
/// store's writer.
#[derive(Default)]
pub struct Governance {
    pub table: Table,
    /// Model routes need a key.
    enabled: AtomicBool,
    /// The shared store's state, as the shards read it.
    pub shared: shared::Flags,
    /// Which provider holds each file and batch made through the gateway.
    pub resources: resources::Resources,
}

impl Governance {
    pub fn new() -> Arc<Governance> {
        Arc::new(Governance::default())
    }

    /// Whether model routes need a key.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Takes in the keys and teams `config` declares (at start and on each
    /// reload) and whether auth is on. Fails, changing nothing, when a
    /// declared key's secret cannot be had.
    pub fn sync_config(&self, config: &Config) -> Result<(), String> {
        let keys = config
            .keys
            .iter()
            .map(declared_key)
            .collect::<Result<Vec<_>, _>>()?;
        let teams = config.teams.iter().map(declared_team).collect();
        self.table.sync_declared(keys, teams);
        self.refresh_enabled(config);
        Ok(())
    }

    /// Auth is on once an admin token is set or any key exists.
    pub fn refresh_enabled(&self, config: &Config) {
        let on = config.admin.token.is_some() || !self.table.keys().is_empty();
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Keys arrived from the shared store: auth is on from now.
    fn note_keys(&self) {
        if !self.table.keys().is_empty() {
            self.enabled.store(true, Ordering::Relaxed);
        }
    }
}

/// Governance's threads: the local store's writer, and `state-sync` under
/// the Redis backend.
pub struct Running {
    store: store::Writer,
    sync: Option<shared::SyncThread>,
}

impl Running {
    /// Settles with the shared store and gives its leases back, then
    /// writes the local store a last time.
    pub fn stop(self) {
        if let Some(s) = self.sync {
            s.stop();
        }
        self.store.stop();
    }
}

/// The secure-by-default rule: with keys off, model routes are served only
/// on a loopback address, unless `auth.allow_unauthenticated` says so.
pub fn check_exposure(gov: &Governance, config: &Config) -> Result<(), String> {
    let listen = config.server.listen;
    if gov.enabled() || config.auth.allow_unauthenticated || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve {listen} without authentication: anyone who reaches it would spend \
         the provider keys. Set admin.token (or SHARDGATE_ADMIN_TOKEN) and create keys, declare \
         [[keys]], listen on a loopback address, or set auth.allow_unauthenticated = true if \
         something in front of the gateway authenticates its clients"
    ))
}

/// Loads the local store (records and spend) into `gov`, takes in the
/// config's keys and teams, starts `state-sync` under the Redis backend
/// (which loads the shared records), checks the exposure rule, and starts
/// the store's writer.
pub fn start(gov: &Arc<Governance>, config: &Config) -> Result<Running, String> {
    let dir = config.state.dir();
    let opened = store::Store::at(&dir);
    if let Some(state) = opened
        .load()
        .map_err(|e| format!("state.dir {}: {e}", dir.display()))?
    {
        gov.table.restore(&state);
        gov.resources.restore(&state.resources);
    }
    gov.sync_config(config)?;
    // The declared records' spend was restored before they were declared:
    // restore once more so their ledgers resume too.
    if let Some(state) = opened.load().ok().flatten() {
        gov.table.restore(&state);
    }
    let sync = match config.state.backend.as_str() {
        "redis" => Some(shared::spawn(gov, &config.state)?),
        _ => None,
    };
    check_exposure(gov, config)?;
    if gov.enabled() {
        // Made now, so that a directory it cannot write stops the start.
        opened
            .create()
            .map_err(|e| format!("state.dir {}: {e}", dir.display()))?;
    }
    let store = store::spawn_writer(gov.clone(), opened, config.state.flush_interval_ms)
        .map_err(|e| format!("cannot start the state store's writer: {e}"))?;
    Ok(Running { store, sync })
}

fn declared_team(t: &TeamConfig) -> TeamSpec {
    TeamSpec {
        id: t.id.clone(),
        name: t.name.clone().unwrap_or_else(|| t.id.clone()),
        limits: t.limits(),
        metadata: t.metadata.clone(),
        created_at: 0,
        origin: Origin::Config,
    }
}

fn declared_key(k: &KeyConfig) -> Result<(KeySpec, [u8; 32]), String> {
    let hash = match (&k.key_sha256, &k.key_env) {
        (Some(hex), _) => secret::from_hex(hex)
            .ok_or_else(|| format!("keys `{}`: key_sha256 must be 64 hex digits", k.name))?,
        (None, Some(var)) => match std::env::var(var) {
            Ok(s) if !s.is_empty() => secret::hash(s.as_bytes()),
            _ => {
                return Err(format!(
                    "keys `{}`: key_env names `{var}`, which is not set",
                    k.name
                ))
            }
        },
        (None, None) => return Err(format!("keys `{}`: give key_sha256 or key_env", k.name)),
    };
    let expires_at = match &k.expires_at {
        None => None,
        Some(s) => Some(clock::parse_rfc3339(s).ok_or_else(|| {
            format!(
                "keys `{}`: expires_at `{s}` is not an RFC 3339 date-time",
                k.name
            )
        })?),
    };
    let spec = KeySpec {
        id: k.id.clone().unwrap_or_else(|| format!("cfg_{}", k.name)),
        name: k.name.clone(),
        team: k.team.clone(),
        models: k.models.clone(),
        limits: k.limits(),
        expires_at,
        metadata: k.metadata.clone(),
        created_at: 0,
        key_sha256: secret::to_hex(&hash),
        origin: Origin::Config,
    };
    Ok((spec, hash))
}

/// A key as a shard holds it: an `Rc` around the table's `Arc`, so that a
/// request takes its key with a non-atomic increment on the shard's own
/// line, not an atomic one on the `Arc`'s count, which every shard would
/// share (and bounce) for a busy key.
#[allow(clippy::redundant_allocation)]
pub type ShardKey = Rc<Arc<KeyEntry>>;

/// The most secrets a shard remembers; past it the cache starts over (a
/// client cycling through random keys only costs hashing).
const KEY_CACHE_ENTRIES: usize = 4096;

/// A shard's memory of which presented secret is which key, so a request
/// costs one SipHash and a compare, not a SHA-256 and a shared lock.
/// Keyed by the secret itself with a randomly seeded hasher (a client
/// cannot aim collisions), dropped whole when the table's version moves.
#[derive(Default)]
pub struct KeyCache {
    version: Cell<u64>,
    map: RefCell<HashMap<Box<[u8]>, ShardKey>>,
}

impl KeyCache {
    /// The key whose secret is `secret`, if there is one.
    pub fn resolve(&self, table: &Table, secret: &[u8]) -> Option<ShardKey> {
        let version = table.version();
        let mut map = self.map.borrow_mut();
        if version != self.version.get() {
            map.clear();
            self.version.set(version);
        }
        if let Some(k) = map.get(secret) {
            return Some(k.clone());
        }
        let entry = Rc::new(table.by_hash(&secret::hash(secret))?);
        if map.len() >= KEY_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(secret.into(), entry.clone());
        Some(entry)
    }
}

/// A connection's last key: the next request on it that presents the same
/// secret (compared in constant time: a proxy in front may carry several
/// clients on one connection) under the same table version is that key,
/// with no hashing and no map.
pub struct KeyMemo {
    secret: Box<[u8]>,
    version: u64,
    key: ShardKey,
}

impl KeyCache {
    /// [`KeyCache::resolve`] through the connection's `memo`.
    pub fn resolve_with(
        &self,
        table: &Table,
        secret: &[u8],
        memo: &mut Option<KeyMemo>,
    ) -> Option<ShardKey> {
        let version = table.version();
        if let Some(m) = memo.as_ref() {
            if m.version == version && constant_time_eq(&m.secret, secret) {
                return Some(m.key.clone());
            }
        }
        let key = self.resolve(table, secret)?;
        *memo = Some(KeyMemo {
            secret: secret.into(),
            version,
            key: key.clone(),
        });
        Some(key)
    }
}

/// Equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The secret a request presents: `Authorization: Bearer …` (OpenAI's
/// SDKs) or `x-api-key` (Anthropic's).
pub fn presented_secret<'a>(
    authorization: Option<&'a [u8]>,
    x_api_key: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    if let Some(v) = authorization {
        if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
            let token = v[7..].trim_ascii();
            if !token.is_empty() {
                return Some(token);
            }
        }
    }
    x_api_key.map(<[u8]>::trim_ascii).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_either_header() {
        assert_eq!(
            presented_secret(Some(b"Bearer sk-1"), None),
            Some(&b"sk-1"[..])
        );
        assert_eq!(
            presented_secret(Some(b"bearer  sk-1 "), None),
            Some(&b"sk-1"[..])
        );
        assert_eq!(presented_secret(None, Some(b"sk-2")), Some(&b"sk-2"[..]));
        assert_eq!(
            presented_secret(Some(b"Basic abc"), Some(b"sk-2")),
            Some(&b"sk-2"[..])
        );
        assert_eq!(presented_secret(Some(b"Bearer "), None), None);
        assert_eq!(presented_secret(None, Some(b"  ")), None);
    }

    #[test]
    fn the_cache_forgets_a_removed_key() {
        let table = Table::default();
        let spec = KeySpec {
            id: "k1".into(),
            name: "one".into(),
            ..KeySpec::default()
        };
        table.put_key(spec, secret::hash(b"sk-one"));
        let cache = KeyCache::default();
        assert!(cache.resolve(&table, b"sk-one").is_some());
        assert!(cache.resolve(&table, b"sk-two").is_none());
        assert!(table.remove_key("k1"));
        assert!(cache.resolve(&table, b"sk-one").is_none());
    }

    #[test]
    fn a_connection_memo_never_outlives_a_change() {
        let table = Table::default();
        let spec = |id: &str| KeySpec {
            id: id.into(),
            name: id.into(),
            ..KeySpec::default()
        };
        table.put_key(spec("a"), secret::hash(b"sk-a"));
        table.put_key(spec("b"), secret::hash(b"sk-b"));
        let (cache, mut memo) = (KeyCache::default(), None);
        assert_eq!(
            cache
                .resolve_with(&table, b"sk-a", &mut memo)
                .unwrap()
                .spec
                .id,
            "a"
        );
        assert_eq!(
            cache
                .resolve_with(&table, b"sk-b", &mut memo)
                .unwrap()
                .spec
                .id,
            "b",
            "another secret is looked up"
        );
        assert!(cache.resolve_with(&table, b"sk-bb", &mut memo).is_none());
        table.remove_key("a");
        assert!(cache.resolve_with(&table, b"sk-a", &mut memo).is_none());
        assert!(
            constant_time_eq(b"abc", b"abc")
                && !constant_time_eq(b"abc", b"abd")
                && !constant_time_eq(b"ab", b"abc")
        );
    }
}
