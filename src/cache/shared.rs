//! The exact cache's shared tier (`state.backend = "redis"`): entries kept
//! in Redis too, so one instance's miss is another's hit. The in-process
//! store stays in front of it: a shard asks this tier only when its own
//! store has nothing, and keeps what it gets there.
//!
//! The shards never talk to Redis. One thread per process, `cache-sync`,
//! owns the connection; a shard hands it a job through a bounded queue and,
//! for a lookup, waits for the answer at most `cache.shared_wait_ms` on
//! its event loop (the thread wakes it). The thread pipelines whatever jobs
//! are queued (`GET sg:cache:<key>`, `SET … PX <ttl>`) in one round trip.
//!
//! Invariants:
//! - Redis unavailable means misses, never errors, and never a wait past
//!   the bound: while the thread knows the store is down (`up` false) the
//!   shards do not ask at all; a lookup that outlives its wait is a miss;
//!   a full queue drops the job (a lookup is a miss, a store is skipped).
//! - Every call to Redis has `state.redis_timeout_ms`; any failure drops
//!   the connection and marks the tier down; the thread reconnects once a
//!   second (and pings an idle connection as often, so a store that went
//!   away is noticed before a request finds out).
//! - What comes back is decoded (`wire`) and checked like any entry: bytes
//!   that are not one, or an expired one, are a miss.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handoff::Handoff;
use super::key::CacheKey;
use super::store::Entry;
use super::wire;
use crate::config::StateConfig;
use crate::governance::shared::resp::{parse_url, Conn, Reply, Target};
use crate::telemetry::{log_info, log_warn};

/// Jobs waiting for the thread, at most; past it a job is dropped.
const QUEUE: usize = 1024;
/// Jobs sent to Redis in one round trip, at most.
const BATCH: usize = 64;
/// How often the thread reconnects, or pings an idle connection.
const TICK: Duration = Duration::from_secs(1);

/// What the shards hold of the tier.
pub struct SharedTier {
    jobs: SyncSender<Job>,
    up: Arc<AtomicBool>,
    wait: Duration,
    pub counts: Arc<Counts>,
}

/// The tier's counters, for its metrics.
#[derive(Default)]
pub struct Counts {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Lookups not asked (the store down, the queue full) or not answered
    /// within the wait.
    pub unavailable: AtomicU64,
    pub stored: AtomicU64,
    /// Stores not made (the store down, the queue full, a failed call).
    pub dropped: AtomicU64,
}

enum Job {
    Get(CacheKey, Arc<Handoff<Vec<u8>>>),
    Put(CacheKey, Vec<u8>, u64),
    /// Every entry deleted (`DELETE /admin/cache`).
    Purge,
}

impl SharedTier {
    /// Starts `cache-sync` against `state`'s Redis; lookups wait at most
    /// `wait`. The tier starts down and comes up once the thread connects.
    pub fn spawn(state: &StateConfig, wait: Duration) -> Result<SharedTier, String> {
        let url = state
            .redis_url
            .as_deref()
            .ok_or("state.backend = \"redis\" needs state.redis_url")?;
        let target = parse_url(url).map_err(|e| format!("state.redis_url: {e}"))?;
        let (jobs, queue) = mpsc::sync_channel(QUEUE);
        let up = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let thread = Thread {
            queue,
            target,
            timeout: state.redis_timeout_ms,
            up: up.clone(),
            counts: counts.clone(),
            conn: None,
            next_try: Instant::now(),
        };
        std::thread::Builder::new()
            .name("cache-sync".into())
            .spawn(move || thread.run())
            .map_err(|e| format!("cannot start the cache-sync thread: {e}"))?;
        Ok(SharedTier {
            jobs,
            up,
            wait,
            counts,
        })
    }

    /// Whether the thread holds a working connection.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The entry Redis holds for `key`, if it answers within the wait.
    pub async fn get(&self, key: &CacheKey) -> Option<Entry> {
        let answer = Arc::new(Handoff::default());
        let asked = self.is_up() && self.jobs.try_send(Job::Get(*key, answer.clone())).is_ok();
        let got = match asked {
            true => monoio::time::timeout(self.wait, Handoff::wait(answer))
                .await
                .ok(),
            false => None,
        };
        let (counter, entry) = match got {
            Some(Some(bytes)) => match wire::decode(&bytes) {
                Some(entry) => (&self.counts.hits, Some(entry)),
                None => (&self.counts.misses, None),
            },
            Some(None) => (&self.counts.misses, None),
            None => (&self.counts.unavailable, None),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        entry
    }

    /// Stores `entry` under `key` until it expires (`now` in Unix
    /// seconds), without waiting.
    pub fn put(&self, key: &CacheKey, entry: &Entry, now: u64) {
        let ttl_ms = entry.expires_at.saturating_sub(now).saturating_mul(1000);
        if !self.is_up() || ttl_ms == 0 {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self
            .jobs
            .try_send(Job::Put(*key, wire::encode(entry), ttl_ms))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl SharedTier {
    /// Deletes every entry Redis holds, off the caller's thread; false if
    /// it could not be asked (the tier down, the queue full).
    pub fn purge(&self) -> bool {
        self.is_up() && self.jobs.try_send(Job::Purge).is_ok()
    }
}

/// `cache-sync`'s state.
struct Thread {
    queue: Receiver<Job>,
    target: Target,
    timeout: Duration,
    up: Arc<AtomicBool>,
    counts: Arc<Counts>,
    conn: Option<Conn>,
    next_try: Instant,
}

impl Thread {
    fn run(mut self) {
        loop {
            if self.conn.is_none() && Instant::now() >= self.next_try {
                self.connect();
            }
            let first = match self.queue.recv_timeout(TICK) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.ping();
                    continue;
                }
                // The generations holding the tier are gone.
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match self.queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.serve(batch);
        }
    }

    fn connect(&mut self) {
        match Conn::open(&self.target, self.timeout) {
            Ok(conn) => {
                self.conn = Some(conn);
                self.up.store(true, Ordering::Relaxed);
                log_info(format_args!(
                    "cache: shared tier connected to Redis at {}",
                    self.target.addr
                ));
            }
            Err(e) => {
                self.next_try = Instant::now() + TICK;
                log_warn(format_args!(
                    "cache: shared tier cannot reach Redis at {} ({e}); lookups miss meanwhile",
                    self.target.addr
                ));
            }
        }
    }

    fn ping(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            if !matches!(conn.call(&[b"PING"]), Ok(Reply::Simple(_))) {
                self.down("the ping failed");
            }
        }
    }

    fn down(&mut self, why: &str) {
        self.conn = None;
        self.up.store(false, Ordering::Relaxed);
        self.next_try = Instant::now() + TICK;
        log_warn(format_args!(
            "cache: shared tier lost Redis at {} ({why}); lookups miss until it is back",
            self.target.addr
        ));
    }

    /// Deletes `sg:cache:*`, a `SCAN` page at a time.
    fn purge(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut cursor = b"0".to_vec();
        loop {
            let page = match conn.call(&[
                &b"SCAN"[..],
                &cursor,
                b"MATCH",
                b"sg:cache:*",
                b"COUNT",
                b"1000",
            ]) {
                Ok(Reply::Array(Some(page))) if page.len() == 2 => page,
                _ => return self.down("a purge's SCAN failed"),
            };
            let keys = page[1].array();
            if !keys.is_empty() {
                let mut args: Vec<&[u8]> = vec![b"UNLINK"];
                args.extend(keys.iter().filter_map(Reply::bytes));
                if conn.call(&args).is_err() {
                    return self.down("a purge's UNLINK failed");
                }
            }
            match page[0].bytes() {
                Some(b"0") | None => return,
                Some(next) => cursor = next.to_vec(),
            }
        }
    }

    /// One round trip for `batch`; every lookup in it is answered.
    fn serve(&mut self, mut batch: Vec<Job>) {
        // A purge goes first: what the batch stores after it stays.
        let jobs = batch.len();
        batch.retain(|j| !matches!(j, Job::Purge));
        if batch.len() < jobs {
            self.purge();
        }
        if batch.is_empty() {
            return;
        }
        let replies = match self.conn.as_mut() {
            Some(conn) => {
                for job in &batch {
                    match job {
                        Job::Get(key, _) => conn.queue(&[b"GET", redis_key(key).as_bytes()]),
                        // Taken out above.
                        Job::Purge => {}
                        Job::Put(key, value, ttl_ms) => conn.queue(&[
                            b"SET",
                            redis_key(key).as_bytes(),
                            value,
                            b"PX",
                            itoa::Buffer::new().format(*ttl_ms).as_bytes(),
                        ]),
                    }
                }
                conn.flush(batch.len()).map_err(|e| e.to_string())
            }
            None => Err("not connected".into()),
        };
        if let Err(why) = &replies {
            if self.conn.is_some() {
                self.down(why);
            }
        }
        let mut replies = replies.unwrap_or_default().into_iter();
        for job in batch {
            let reply = replies.next();
            match job {
                Job::Get(_, answer) => answer.fill(match reply {
                    Some(Reply::Bulk(Some(bytes))) => Some(bytes),
                    _ => None,
                }),
                Job::Purge => {}
                Job::Put(..) => {
                    let counter = match reply {
                        Some(Reply::Simple(_)) => &self.counts.stored,
                        _ => &self.counts.dropped,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Where an entry lives in Redis (beside the governance keys, `sg:`).
fn redis_key(key: &CacheKey) -> String {
    format!("sg:cache:{}", key.hex())
}
