//! What the shards share with the main thread: the published `Gateway`
//! (config generations, for reload), the drain flag, per-shard in-flight
//! counters and the metrics scrape hand-off.
//!
//! Invariant: shards only read it on the request path (one relaxed load of
//! a line that rarely changes), and each shard writes only its own padded
//! counter and its own snapshot slot.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cache::key::KeyDigest;
use crate::cache::partitioned::Partitioned;
use crate::cache::semantic_tier::SemanticTier;
use crate::cache::shared::SharedTier;
use crate::config::Config;
use crate::governance::Governance;
use crate::providers::router::Router;
use crate::runtime::Driver;
use crate::telemetry::MetricsSnapshot;

/// What every shard reads: the validated config and the routes built from it.
pub struct Gateway {
    pub config: Config,
    pub router: Router,
    /// The exact response cache, with `[cache]` on: carried from one
    /// generation to the next by a reload.
    pub cache: Option<Arc<Partitioned>>,
    /// Its shared tier, with `cache.shared` and a Redis state backend
    /// (carried too: one `cache-sync` thread however many reloads).
    pub shared_cache: Option<Arc<SharedTier>>,
    /// The semantic cache, with `[cache.semantic]` and a model opted in.
    pub semantic: Option<SemanticTier>,
}

impl Gateway {
    /// The generation after `old` (none at start): `old`'s cache is kept,
    /// with this generation's bounds (evicting to fit them), so a reload
    /// does not throw its answers away. Entries stay keyed by the client's
    /// model name: an answer kept before a reload that moved its model
    /// elsewhere is served until its TTL (or a `DELETE /admin/cache`).
    pub fn new(config: Config, router: Router, old: Option<&Gateway>) -> Result<Gateway, String> {
        let c = &config.cache;
        let wants_shared = c.enabled && c.shared && config.state.backend == "redis";
        // Keys a shared tier holds are SHA-256 (the same on every
        // instance); others are keyed per process. A reload that adds or
        // drops the shared tier starts a new store: the old one's entries
        // could no longer be found.
        let same_keys = |kept: &Partitioned| (kept.digest == KeyDigest::Sha256) == wants_shared;
        let cache = match (c.enabled, old.and_then(|o| o.cache.as_ref())) {
            (false, _) => None,
            (true, Some(kept)) if same_keys(kept) => {
                kept.set_bounds(c.max_bytes, c.max_entry_bytes);
                Some(kept.clone())
            }
            (true, _) => {
                let digest = match wants_shared {
                    true => KeyDigest::Sha256,
                    false => KeyDigest::random(),
                };
                Some(Arc::new(Partitioned::new(
                    c.max_bytes,
                    c.max_entry_bytes,
                    digest,
                )))
            }
        };
        let shared_cache = match (wants_shared, old.and_then(|o| o.shared_cache.as_ref())) {
            (false, _) => None,
            (true, Some(kept)) => Some(kept.clone()),
            (true, None) => Some(Arc::new(SharedTier::spawn(
                &config.state,
                c.shared_wait_ms,
            )?)),
        };
        let semantic = SemanticTier::build(&config, &router)?;
        Ok(Gateway {
            config,
            router,
            cache,
            shared_cache,
            semantic,
        })
    }
}

/// Process-wide control shared with the main thread: config generations
/// for reload and the drain flag. Shards only *read* it on the request path
/// (one relaxed load of a line that rarely changes), and each shard writes
/// only its own padded in-flight counter.
pub struct Control {
    pub(super) generation: AtomicU64,
    next: Mutex<Arc<Gateway>>,
    draining: AtomicBool,
    pub(super) in_flight: Vec<PaddedCounter>,
    /// Scrapes: a request number, and each shard's latest answer to it.
    pub(super) snapshot_request: AtomicU64,
    pub(super) snapshots: Vec<Mutex<(u64, Option<MetricsSnapshot>)>>,
    /// Keys, teams and their ledgers: process-wide, across reloads.
    pub governance: Arc<Governance>,
    /// Reloads applied and refused, and when the running configuration
    /// was applied (unix seconds).
    reloads: ([AtomicU64; 2], AtomicU64),
    /// Each shard's driver once it accepts (0 until then; see
    /// [`Control::driver`]), written once by that shard.
    drivers: Vec<AtomicU8>,
    /// When this control was made: the process's start, near enough.
    started: Instant,
}

/// A counter alone on its cache line, so shards never share one.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct PaddedCounter(pub(super) AtomicUsize);

impl Control {
    pub fn new(gateway: Arc<Gateway>, shards: usize) -> Arc<Control> {
        Control::with_governance(gateway, shards, Governance::new())
    }

    pub fn with_governance(
        gateway: Arc<Gateway>,
        shards: usize,
        governance: Arc<Governance>,
    ) -> Arc<Control> {
        Arc::new(Control {
            governance,
            generation: AtomicU64::new(0),
            next: Mutex::new(gateway),
            draining: AtomicBool::new(false),
            in_flight: (0..shards).map(|_| PaddedCounter::default()).collect(),
            snapshot_request: AtomicU64::new(0),
            snapshots: (0..shards).map(|_| Mutex::new((0, None))).collect(),
            reloads: (
                [AtomicU64::new(0), AtomicU64::new(0)],
                AtomicU64::new(crate::governance::unix_now()),
            ),
            drivers: (0..shards).map(|_| AtomicU8::new(0)).collect(),
            started: Instant::now(),
        })
    }

    /// Shard `id` runs on `driver` and is about to accept.
    pub(super) fn set_driver(&self, id: usize, driver: Driver) {
        let code = match driver {
            Driver::IoUring => 1,
            Driver::Epoll => 2,
        };
        if let Some(slot) = self.drivers.get(id) {
            slot.store(code, Ordering::Release);
        }
    }

    /// Shard `id`'s driver; `None` while it has not started.
    pub fn driver(&self, id: usize) -> Option<Driver> {
        match self.drivers.get(id)?.load(Ordering::Acquire) {
            1 => Some(Driver::IoUring),
            2 => Some(Driver::Epoll),
            _ => None,
        }
    }

    pub fn shards(&self) -> usize {
        self.in_flight.len()
    }

    /// Reloads published since start (0 before the first).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Requests being served by shard `id`.
    pub fn shard_in_flight(&self, id: usize) -> usize {
        self.in_flight
            .get(id)
            .map_or(0, |c| c.0.load(Ordering::Acquire))
    }

    /// How long since this control was made (the gateway's start).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks every shard for a metrics snapshot and waits (up to `timeout`)
    /// for the answers; a shard that does not answer in time contributes
    /// its previous snapshot.
    pub fn scrape(&self, timeout: Duration) -> Vec<MetricsSnapshot> {
        let wanted = self.snapshot_request.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let answered = self
                .snapshots
                .iter()
                .all(|s| s.lock().map(|s| s.0 >= wanted).unwrap_or(true));
            if answered || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.snapshots
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|s| s.1.clone()))
            .collect()
    }

    /// Publishes a new configuration; each shard picks it up at its next
    /// request, in-flight requests finish on the one they started with.
    pub fn publish(&self, gateway: Arc<Gateway>) {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = gateway;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Counts a reload's outcome (a refused one changes nothing else).
    pub fn note_reload(&self, applied: bool) {
        let (count, at) = &self.reloads;
        match applied {
            true => {
                count[0].fetch_add(1, Ordering::Relaxed);
                at.store(crate::governance::unix_now(), Ordering::Relaxed);
            }
            false => {
                count[1].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The reload counts, for `/metrics`.
    pub fn reload_counts(&self) -> crate::telemetry::prometheus::ReloadCounts {
        let (count, at) = &self.reloads;
        crate::telemetry::prometheus::ReloadCounts {
            generation: self.generation(),
            applied: count[0].load(Ordering::Relaxed),
            refused: count[1].load(Ordering::Relaxed),
            applied_at_unix: at.load(Ordering::Relaxed),
        }
    }

    pub fn current(&self) -> Arc<Gateway> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Requests being served across all shards.
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .iter()
            .map(|c| c.0.load(Ordering::Acquire))
            .sum()
    }
}
