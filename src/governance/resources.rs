//! Which provider holds each file and batch created through the gateway,
//! by the id the provider gave it, so that a later request naming the id
//! (`/v1/files/{id}`, `/v1/batches/{id}`, a batch's `input_file_id`) goes
//! where the resource is. Process-wide, across reloads, and stored with the
//! rest of the state (`store`), so it survives restarts.
//!
//! A batch's usage is metered once, the first time the gateway relays it
//! completed (its `usage`), however often it is fetched after: the entry
//! remembers that it was.
//!
//! Invariants: bounded ([`MAX_RESOURCES`]: past it a new id is not
//! recorded, and its requests go where the client names, as an unknown
//! id's do); only ids the gateway saw a provider answer are in it; the
//! shards take the lock only on these routes, never on the model routes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::telemetry::log_warn;

/// The most ids kept.
pub const MAX_RESOURCES: usize = 1_000_000;

/// Longest id kept (OpenAI's are under 40 characters).
const MAX_ID: usize = 256;

/// Id → the name of the provider that holds it.
#[derive(Debug, Default)]
pub struct Resources {
    by_id: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    provider: String,
    /// A batch whose usage was metered.
    metered: bool,
}

/// One stored entry.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredResource {
    pub id: String,
    pub provider: String,
    #[serde(default)]
    pub metered: bool,
}

impl Resources {
    /// The provider holding `id`, if the gateway saw it made.
    pub fn provider_of(&self, id: &str) -> Option<String> {
        self.lock().get(id).map(|e| e.provider.clone())
    }

    /// Marks batch `id`'s usage metered; false if it was already (or the
    /// batch is not one the gateway made).
    pub fn meter_once(&self, id: &str) -> bool {
        match self.lock().get_mut(id) {
            Some(e) if !e.metered => {
                e.metered = true;
                true
            }
            _ => false,
        }
    }

    /// Records that `provider` holds `id`.
    pub fn insert(&self, id: &str, provider: &str) {
        if id.is_empty() || id.len() > MAX_ID {
            return;
        }
        let mut by_id = self.lock();
        if by_id.len() >= MAX_RESOURCES && !by_id.contains_key(id) {
            drop(by_id);
            return log_warn(format_args!(
                "{MAX_RESOURCES} files and batches are recorded: {id:?} is not, and requests naming it go to the provider the client names"
            ));
        }
        let entry = Entry {
            provider: provider.to_string(),
            metered: false,
        };
        by_id.insert(id.to_string(), entry);
    }

    /// Forgets `id` (its provider deleted it).
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Every entry, sorted (a stable form for the store to compare).
    pub fn snapshot(&self) -> Vec<StoredResource> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, e)| StoredResource {
                id: id.clone(),
                provider: e.provider.clone(),
                metered: e.metered,
            })
            .collect();
        all.sort();
        all
    }

    /// Takes in what the store kept.
    pub fn restore(&self, stored: &[StoredResource]) {
        let mut by_id = self.lock();
        for r in stored.iter().take(MAX_RESOURCES) {
            let entry = Entry {
                provider: r.provider.clone(),
                metered: r.metered,
            };
            by_id.insert(r.id.clone(), entry);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recorded_forgotten_and_restored() {
        let r = Resources::default();
        r.insert("file-abc", "openai");
        r.insert("batch_1", "azure-east");
        r.insert("", "x");
        r.insert(&"x".repeat(300), "x");
        assert_eq!(r.provider_of("file-abc").as_deref(), Some("openai"));
        r.remove("file-abc");
        assert_eq!(r.provider_of("file-abc"), None);
        assert!(r.meter_once("batch_1"));
        assert!(!r.meter_once("batch_1"), "once");
        assert!(!r.meter_once("batch_unknown"));
        let again = Resources::default();
        again.restore(&r.snapshot());
        let kept = StoredResource {
            id: "batch_1".into(),
            provider: "azure-east".into(),
            metered: true,
        };
        assert_eq!(again.snapshot(), [kept]);
        assert!(
            !again.meter_once("batch_1"),
            "still metered after a restart"
        );
    }
}
