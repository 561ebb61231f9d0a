//! The process-wide table of keys and teams: records by id, keys by the
//! SHA-256 of their secret, each with its ledger, and a version that every
//! change bumps so the shards' caches ([`super::KeyCache`]) know to look
//! again. Written only by the admin API, the config (start and reload) and
//! the state store's restore, all off the shards; shards take the read lock
//! only on a cache miss.
//!
//! Invariants:
//! - A key's or team's ledger survives every change to its record (a PATCH
//!   keeps the spend); only a DELETE drops it.
//! - A removed key is in no map once the write lock is released, and the
//!   version is bumped before it is, so no shard admits it afterwards.
//! - Config-declared records are replaced as a set on each sync; the API
//!   may not change or remove them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::glob::glob_match;
use super::ledger::{Ledger, Limits};
use super::records::{KeySpec, Origin, TeamSpec};

/// A ledger alone on its cache lines, so two keys' locks never share one.
#[repr(align(128))]
#[derive(Default)]
pub struct LedgerCell(pub Mutex<Ledger>);

impl LedgerCell {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while a ledger was held leaves counters that are still
        // consistent (every update is a few integer writes): keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct TeamEntry {
    pub spec: TeamSpec,
    pub limits: Limits,
    pub ledger: Arc<LedgerCell>,
}

pub struct KeyEntry {
    pub spec: KeySpec,
    pub limits: Limits,
    pub ledger: Arc<LedgerCell>,
    pub team: Option<Arc<TeamEntry>>,
}

impl KeyEntry {
    /// Whether the key may use `model` (as the client sent it) or its
    /// resolved `provider/model` form.
    pub fn allows(&self, model: &str, resolved: &str) -> bool {
        match &self.spec.models {
            None => true,
            Some(globs) => globs
                .iter()
                .any(|g| glob_match(g, model) || glob_match(g, resolved)),
        }
    }

    pub fn expired(&self, now: u64) -> bool {
        self.spec.expires_at.is_some_and(|at| now >= at)
    }

    /// Neither the key nor its team has a model list, a limit or a
    /// budget: nothing a request it makes would have to be checked against
    /// (what a route that meters nothing may serve).
    pub fn unrestricted(&self) -> bool {
        self.spec.models.is_none()
            && self.limits.is_none()
            && self.team.as_ref().is_none_or(|t| t.limits.is_none())
    }
}

#[derive(Default)]
struct Inner {
    keys: BTreeMap<String, Arc<KeyEntry>>,
    by_hash: HashMap<[u8; 32], Arc<KeyEntry>>,
    teams: BTreeMap<String, Arc<TeamEntry>>,
}

/// The table, shared by every shard, the admin thread and the store.
#[derive(Default)]
pub struct Table {
    inner: RwLock<Inner>,
    version: AtomicU64,
}

/// A record and its ledger as the state store keeps them.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct StoredLedger {
    pub period_start: u64,
    pub spent_nanos: u64,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub lifetime_spent_nanos: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct StoredState {
    pub keys: Vec<(KeySpec, StoredLedger)>,
    pub teams: Vec<(TeamSpec, StoredLedger)>,
    /// Files and batches by id, with their provider (`resources`).
    pub resources: Vec<super::resources::StoredResource>,
}

impl StoredLedger {
    fn of(ledger: &Ledger) -> StoredLedger {
        StoredLedger {
            period_start: ledger.period_start,
            spent_nanos: ledger.spent_nanos,
            requests: ledger.totals.requests,
            input_tokens: ledger.totals.input_tokens,
            output_tokens: ledger.totals.output_tokens,
            lifetime_spent_nanos: ledger.totals.spent_nanos,
        }
    }

    fn restore(&self, ledger: &mut Ledger) {
        ledger.period_start = self.period_start;
        ledger.spent_nanos = self.spent_nanos;
        ledger.totals.requests = self.requests;
        ledger.totals.input_tokens = self.input_tokens;
        ledger.totals.output_tokens = self.output_tokens;
        ledger.totals.spent_nanos = self.lifetime_spent_nanos;
    }
}

impl Table {
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` under the write lock, then relinks keys to their
    /// teams and bumps the version.
    fn write<T>(&self, change: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let out = change(&mut inner);
        relink(&mut inner);
        self.version.fetch_add(1, Ordering::AcqRel);
        out
    }

    /// The key whose secret hashes to `hash`.
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<Arc<KeyEntry>> {
        self.read().by_hash.get(hash).cloned()
    }

    pub fn key(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.read().keys.get(id).cloned()
    }

    pub fn team(&self, id: &str) -> Option<Arc<TeamEntry>> {
        self.read().teams.get(id).cloned()
    }

    pub fn keys(&self) -> Vec<Arc<KeyEntry>> {
        self.read().keys.values().cloned().collect()
    }

    pub fn teams(&self) -> Vec<Arc<TeamEntry>> {
        self.read().teams.values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.read();
        inner.keys.is_empty() && inner.teams.is_empty()
    }

    /// Adds or replaces a key record, keeping its ledger if it had one.
    pub fn put_key(&self, spec: KeySpec, hash: [u8; 32]) {
        self.write(|inner| put_key(inner, spec, hash, None));
    }

    pub fn put_team(&self, spec: TeamSpec) {
        self.write(|inner| put_team(inner, spec, None));
    }

    /// Removes a key; whether it was there.
    pub fn remove_key(&self, id: &str) -> bool {
        self.write(|inner| remove_key(inner, id))
    }

    /// Removes a team, unless keys still belong to it (then the ids of
    /// those keys).
    pub fn remove_team(&self, id: &str) -> Result<bool, Vec<String>> {
        self.write(|inner| {
            let members: Vec<String> = inner
                .keys
                .values()
                .filter(|k| k.spec.team.as_deref() == Some(id))
                .map(|k| k.spec.id.clone())
                .collect();
            if !members.is_empty() {
                return Err(members);
            }
            Ok(inner.teams.remove(id).is_some())
        })
    }

    /// Replaces every config-declared record by `keys` and `teams` (with
    /// their hashes); records from the API are kept, and ledgers of records
    /// that stay are kept.
    pub fn sync_declared(&self, keys: Vec<(KeySpec, [u8; 32])>, teams: Vec<TeamSpec>) {
        self.write(|inner| {
            let stale: Vec<String> = inner
                .keys
                .values()
                .filter(|k| k.spec.origin == Origin::Config)
                .map(|k| k.spec.id.clone())
                .collect();
            let mut old_ledgers = HashMap::new();
            for id in stale {
                if let Some(k) = inner.keys.get(&id) {
                    old_ledgers.insert(id.clone(), k.ledger.clone());
                }
                remove_key(inner, &id);
            }
            inner.teams.retain(|_, t| {
                t.spec.origin != Origin::Config || teams.iter().any(|n| n.id == t.spec.id)
            });
            for t in teams {
                put_team(inner, t, None);
            }
            for (spec, hash) in keys {
                let ledger = old_ledgers.remove(&spec.id);
                put_key(inner, spec, hash, ledger);
            }
        })
    }

    /// The records and their ledgers, for the state store.
    pub fn snapshot(&self) -> StoredState {
        let inner = self.read();
        StoredState {
            keys: inner
                .keys
                .values()
                .map(|k| (k.spec.clone(), StoredLedger::of(&k.ledger.lock())))
                .collect(),
            teams: inner
                .teams
                .values()
                .map(|t| (t.spec.clone(), StoredLedger::of(&t.ledger.lock())))
                .collect(),
            resources: Vec::new(),
        }
    }

    /// Loads what the store kept: API records are put back, and every
    /// ledger (config-declared records' too, matched by id) resumes.
    pub fn restore(&self, state: &StoredState) {
        self.write(|inner| {
            for (spec, stored) in &state.teams {
                if spec.origin == Origin::Api {
                    put_team(inner, spec.clone(), None);
                }
                if let Some(t) = inner.teams.get(&spec.id) {
                    stored.restore(&mut t.ledger.lock());
                }
            }
            for (spec, stored) in &state.keys {
                if spec.origin == Origin::Api {
                    if let Some(hash) = super::secret::from_hex(&spec.key_sha256) {
                        put_key(inner, spec.clone(), hash, None);
                    }
                }
                if let Some(k) = inner.keys.get(&spec.id) {
                    stored.restore(&mut k.ledger.lock());
                }
            }
        });
    }
}

fn put_key(inner: &mut Inner, spec: KeySpec, hash: [u8; 32], ledger: Option<Arc<LedgerCell>>) {
    let ledger = ledger
        .or_else(|| inner.keys.get(&spec.id).map(|k| k.ledger.clone()))
        .unwrap_or_default();
    remove_key(inner, &spec.id);
    let entry = Arc::new(KeyEntry {
        limits: spec.limits.limits(),
        team: None,
        ledger,
        spec,
    });
    inner.by_hash.insert(hash, entry.clone());
    inner.keys.insert(entry.spec.id.clone(), entry);
}

fn put_team(inner: &mut Inner, spec: TeamSpec, ledger: Option<Arc<LedgerCell>>) {
    let ledger = ledger
        .or_else(|| inner.teams.get(&spec.id).map(|t| t.ledger.clone()))
        .unwrap_or_default();
    let entry = Arc::new(TeamEntry {
        limits: spec.limits.limits(),
        ledger,
        spec,
    });
    inner.teams.insert(entry.spec.id.clone(), entry);
}

fn remove_key(inner: &mut Inner, id: &str) -> bool {
    match inner.keys.remove(id) {
        Some(old) => {
            inner.by_hash.retain(|_, k| !Arc::ptr_eq(k, &old));
            true
        }
        None => false,
    }
}

/// Points every key at its team's current entry (after a team changed, or
/// a key was put before its team).
fn relink(inner: &mut Inner) {
    let relinked: Vec<(String, [u8; 32], Arc<KeyEntry>)> = inner
        .by_hash
        .iter()
        .filter_map(|(hash, k)| {
            let team = k
                .spec
                .team
                .as_ref()
                .and_then(|t| inner.teams.get(t))
                .cloned();
            let same = match (&team, &k.team) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            (!same).then(|| {
                let entry = Arc::new(KeyEntry {
                    spec: k.spec.clone(),
                    limits: k.limits,
                    ledger: k.ledger.clone(),
                    team,
                });
                (k.spec.id.clone(), *hash, entry)
            })
        })
        .collect();
    for (id, hash, entry) in relinked {
        inner.by_hash.insert(hash, entry.clone());
        inner.keys.insert(id, entry);
    }
}
