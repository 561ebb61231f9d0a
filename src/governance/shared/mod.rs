//! The shared store (`state.backend = "redis"`): keys, teams, spend and
//! rate counters shared by every instance through one Redis, all of it on
//! one thread per process, `state-sync`. The shards never talk to Redis:
//! they take and give back leases in their ledgers (`ledger.rs`), read
//! [`Flags`] once per request, and at most nudge this thread awake.
//!
//! What the thread does, each `state.sync_interval_ms` (and at once when a
//! request found no lease):
//! - records: pushes the admin API's changes (`HSET sg:keys <id> <json>`,
//!   `HDEL`, then `INCR sg:version`), polls `sg:version` every 200 ms and
//!   loads the others' changes into the [`Table`](super::Table);
//! - leases: per active subject one `EVALSHA` of [`scripts::LEASE`]
//!   (pipelined across subjects): settles the spend batch, registers what
//!   this instance holds, tops the budget lease and the rpm chunk up, and
//!   refreshes the grant before it expires (`lease.rs` has the arithmetic);
//! - spend: reads every subject's spend once a second (`MGET`), so spend
//!   made elsewhere shows within 2 s;
//! - outages: any failed call marks the store unavailable (the shards then
//!   follow `state.on_unavailable`) and drops the connection; the next tick
//!   reconnects. A store that came back empty (`sg:seeded` missing, or
//!   holding another seeding's epoch than the one this instance saw) is
//!   re-seeded by every instance with its records (`HSETNX`) and the spend
//!   it last knew (the highest wins, into a seed beside the counter), every
//!   hold is registered again, then the batches kept meanwhile are settled
//!   (exactly once: see `lease.rs`).
//!
//! Invariants: no lock is held across a call to Redis; every call has the
//! `state.redis_timeout_ms` deadline; the thread is the only writer of
//! `Flags::unavailable`.

pub mod lease;
pub(crate) mod resp;
mod scripts;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::clock::unix_now;
use super::ledger::{Limits, View};
use super::records::{KeySpec, Origin, TeamSpec};
use super::table::LedgerCell;
use super::Governance;
use crate::config::{StateConfig, Unavailable};
use crate::telemetry::{log_error, log_info, log_warn};
use lease::{Answer, Op, Subject};
use resp::{Conn, Reply, Target};

const SHARED: u8 = 1;
const UNAVAILABLE: u8 = 2;
const BUDGET_OPEN: u8 = 4;
const RATE_OPEN: u8 = 8;

/// What the shards and the admin thread share with `state-sync`.
#[derive(Default)]
pub struct Flags {
    bits: AtomicU8,
    wait_ms: AtomicU64,
    wake: OnceLock<SyncSender<()>>,
    /// Records the admin API changed, still to be written to the store.
    dirty: Mutex<Vec<Record>>,
}

/// A record the admin API changed (created, patched or deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Key(String),
    Team(String),
}

impl Flags {
    /// How the store stands, for one request: one atomic load.
    pub fn view(&self) -> View {
        let b = self.bits.load(Ordering::Relaxed);
        View {
            shared: b & SHARED != 0,
            unavailable: b & UNAVAILABLE != 0,
            budget_fail_open: b & BUDGET_OPEN != 0,
            rate_fail_open: b & RATE_OPEN != 0,
        }
    }

    /// The longest a request waits for a lease.
    pub fn wait(&self) -> Duration {
        Duration::from_millis(self.wait_ms.load(Ordering::Relaxed))
    }

    /// Asks the sync thread to run now (never blocks: a wake already
    /// queued is enough).
    pub fn wake(&self) {
        if let Some(tx) = self.wake.get() {
            let _ = tx.try_send(());
        }
    }

    /// Notes that the admin API changed `record`.
    pub fn changed(&self, record: Record) {
        if self.bits.load(Ordering::Relaxed) & SHARED == 0 {
            return;
        }
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
        self.wake();
    }

    fn set_unavailable(&self, down: bool) {
        if down {
            self.bits.fetch_or(UNAVAILABLE, Ordering::Relaxed);
        } else {
            self.bits.fetch_and(!UNAVAILABLE, Ordering::Relaxed);
        }
    }

    fn take_dirty(&self) -> Vec<Record> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn put_back_dirty(&self, mut records: Vec<Record>) {
        let mut d = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        records.append(&mut d);
        *d = records;
    }

    fn is_dirty(&self, r: &Record) -> bool {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(r)
    }
}

/// The running `state-sync` thread.
pub struct SyncThread {
    stop: Arc<AtomicBool>,
    gov: Arc<Governance>,
    thread: Option<JoinHandle<()>>,
}

impl SyncThread {
    /// Settles what is owed and gives the leases back (if the store is
    /// there), then stops.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.gov.shared.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts `state-sync` for `gov`: connects and loads the store's records
/// first (so a gateway starts with them), or starts unavailable if the
/// store cannot be reached — the records already known stay valid.
pub fn spawn(gov: &Arc<Governance>, state: &StateConfig) -> Result<SyncThread, String> {
    let url = state
        .redis_url
        .as_deref()
        .ok_or("state.backend = \"redis\" needs state.redis_url")?;
    let target = resp::parse_url(url).map_err(|e| format!("state.redis_url: {e}"))?;
    let flags = &gov.shared;
    let mut bits = SHARED | UNAVAILABLE;
    if state.on_unavailable.budget == Unavailable::FailOpen {
        bits |= BUDGET_OPEN;
    }
    if state.on_unavailable.rate_limit == Unavailable::FailOpen {
        bits |= RATE_OPEN;
    }
    flags.bits.store(bits, Ordering::Relaxed);
    flags.wait_ms.store(
        state.unavailable_wait_ms.as_millis() as u64,
        Ordering::Relaxed,
    );
    let (tx, rx) = mpsc::sync_channel(1);
    let _ = flags.wake.set(tx);
    let mut sync = Sync {
        gov: gov.clone(),
        target,
        timeout: state.redis_timeout_ms,
        interval: state.sync_interval_ms,
        ttl_ms: state.lease_ttl_ms.as_millis() as u64,
        inst: super::secret::new_id("inst").ok_or("the system gave no random bytes")?,
        conn: None,
        sha_lease: String::new(),
        sha_seed: String::new(),
        subjects: HashMap::new(),
        version: None,
        seeding: None,
        next_poll: Instant::now(),
        next_spend: Instant::now(),
        epoch: Instant::now(),
        down_since: None,
    };
    sync.tick();
    if sync.conn.is_none() {
        log_warn(format_args!(
            "state store {} unreachable at start: serving the keys known locally; budgets \
             follow state.on_unavailable until it answers",
            sync.target.addr
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("state-sync".into())
        .spawn(move || sync.run(&rx, &stopping))
        .map_err(|e| format!("cannot start the state-sync thread: {e}"))?;
    Ok(SyncThread {
        stop,
        gov: gov.clone(),
        thread: Some(thread),
    })
}

struct Sync {
    gov: Arc<Governance>,
    target: Target,
    timeout: Duration,
    interval: Duration,
    ttl_ms: u64,
    /// This process's name in the store's lease hashes.
    inst: String,
    conn: Option<Conn>,
    sha_lease: String,
    sha_seed: String,
    subjects: HashMap<String, Subject>,
    version: Option<Vec<u8>>,
    /// The store's seeding this instance knows (`sg:seeded`).
    seeding: Option<Vec<u8>>,
    next_poll: Instant,
    next_spend: Instant,
    epoch: Instant,
    down_since: Option<Instant>,
}

/// How often `sg:version` is read.
const POLL: Duration = Duration::from_millis(200);
/// How often every subject's spend is read.
const SPEND_EVERY: Duration = Duration::from_millis(1000);

/// One subject as the thread sees it this tick.
struct Live {
    tag: String,
    ledger: Arc<LedgerCell>,
    limits: Limits,
}

fn spend_key(tag: &str, period: u64) -> String {
    format!("{tag}:spend:{period}")
}

fn seed_key(tag: &str, period: u64) -> String {
    format!("{tag}:seed:{period}")
}

impl Sync {
    fn run(&mut self, wake: &Receiver<()>, stop: &AtomicBool) {
        loop {
            let _ = wake.recv_timeout(self.interval);
            if stop.load(Ordering::Relaxed) {
                self.give_back_all();
                return;
            }
            self.tick();
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn live(&self) -> Vec<Live> {
        let t = &self.gov.table;
        let keys = t.keys().into_iter().map(|k| Live {
            tag: scripts::subject_tag(false, &k.spec.id),
            ledger: k.ledger.clone(),
            limits: k.limits,
        });
        let teams = t.teams().into_iter().map(|t| Live {
            tag: scripts::subject_tag(true, &t.spec.id),
            ledger: t.ledger.clone(),
            limits: t.limits,
        });
        keys.chain(teams).collect()
    }

    fn tick(&mut self) {
        if self.conn.is_none() {
            self.connect();
        }
        if self.conn.is_some() {
            if let Err(e) = self.exchange() {
                self.down(&e);
            }
        }
        // Leases end on time even while the store is away.
        let now_ms = self.now_ms();
        for s in self.live() {
            if let Some(sub) = self.subjects.get_mut(&s.tag) {
                sub.expire(&mut s.ledger.lock(), now_ms);
            }
        }
    }

    fn connect(&mut self) {
        let opened = Conn::open(&self.target, self.timeout).and_then(|mut c| {
            c.queue(&[b"SCRIPT", b"LOAD", scripts::LEASE.as_bytes()]);
            c.queue(&[b"SCRIPT", b"LOAD", scripts::SEED.as_bytes()]);
            let r = c.flush(2)?;
            match (r[0].bytes(), r[1].bytes()) {
                (Some(a), Some(b)) => {
                    self.sha_lease = String::from_utf8_lossy(a).into_owned();
                    self.sha_seed = String::from_utf8_lossy(b).into_owned();
                    Ok(c)
                }
                _ => Err(io::Error::other(format!("SCRIPT LOAD: {:?}", r))),
            }
        });
        match opened {
            Ok(c) => {
                self.conn = Some(c);
                self.version = None;
                self.next_poll = Instant::now();
                self.next_spend = Instant::now();
                if let Some(since) = self.down_since.take() {
                    log_info(format_args!(
                        "state store {} reachable again after {:.1} s",
                        self.target.addr,
                        since.elapsed().as_secs_f64()
                    ));
                }
                self.gov.shared.set_unavailable(false);
            }
            Err(e) => self.down(&e),
        }
    }

    fn down(&mut self, e: &io::Error) {
        self.conn = None;
        self.gov.shared.set_unavailable(true);
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            log_warn(format_args!(
                "state store {} unavailable: {e}; budgets and rate limits follow \
                 state.on_unavailable until it answers",
                self.target.addr
            ));
        }
    }

    fn conn(&mut self) -> io::Result<&mut Conn> {
        self.conn
            .as_mut()
            .ok_or_else(|| io::Error::other("not connected"))
    }

    /// One round with the store; an error means the connection is gone.
    fn exchange(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if now >= self.next_poll {
            self.next_poll = now + POLL;
            let r = self.conn()?.call(&[b"MGET", b"sg:version", b"sg:seeded"])?;
            let (version, seeded) = match r.array() {
                [v, s] => (v.bytes().map(<[u8]>::to_vec), s.bytes().map(<[u8]>::to_vec)),
                _ => return Err(io::Error::other(format!("MGET: {r:?}"))),
            };
            match seeded {
                None => {
                    self.seed(true)?;
                    self.version = None;
                }
                Some(e) if self.seeding.as_ref().is_some_and(|mine| *mine != e) => {
                    // Another instance re-seeded a store that came back
                    // empty: what this one knew goes in too.
                    self.seed(false)?;
                    self.seeding = Some(e);
                    self.version = None;
                }
                Some(e) => {
                    self.seeding.get_or_insert(e);
                    if version != self.version {
                        self.load_records()?;
                        self.version = version;
                    }
                }
            }
        }
        self.push_records()?;
        self.leases()?;
        if Instant::now() >= self.next_spend {
            self.next_spend = Instant::now() + SPEND_EVERY;
            self.read_spend()?;
        }
        Ok(())
    }

    /// Writes the admin API's changes.
    fn push_records(&mut self) -> io::Result<()> {
        let dirty = self.gov.shared.take_dirty();
        if dirty.is_empty() {
            return Ok(());
        }
        let mut n = 0;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| io::Error::other("not connected"))?;
        for r in &dirty {
            let (hash, id, json) = match r {
                Record::Key(id) => (
                    &b"sg:keys"[..],
                    id,
                    self.gov
                        .table
                        .key(id)
                        .filter(|k| k.spec.origin == Origin::Api)
                        .and_then(|k| serde_json::to_vec(&k.spec).ok()),
                ),
                Record::Team(id) => (
                    &b"sg:teams"[..],
                    id,
                    self.gov
                        .table
                        .team(id)
                        .filter(|t| t.spec.origin == Origin::Api)
                        .and_then(|t| serde_json::to_vec(&t.spec).ok()),
                ),
            };
            match json {
                Some(j) => conn.queue(&[b"HSET", hash, id.as_bytes(), &j]),
                None => conn.queue(&[b"HDEL", hash, id.as_bytes()]),
            }
            n += 1;
        }
        conn.queue(&[b"INCR", b"sg:version"]);
        match conn.flush(n + 1) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.gov.shared.put_back_dirty(dirty);
                Err(e)
            }
        }
    }

    /// Loads the store's records into the table: new and changed ones put,
    /// API records the store no longer has removed (unless changed here
    /// and not yet written).
    fn load_records(&mut self) -> io::Result<()> {
        let conn = self.conn()?;
        conn.queue(&[b"HGETALL", b"sg:teams"]);
        conn.queue(&[b"HGETALL", b"sg:keys"]);
        let r = conn.flush(2)?;
        let pairs = |r: &Reply| -> BTreeMap<String, Vec<u8>> {
            r.array()
                .chunks(2)
                .filter_map(|p| match p {
                    [k, v] => Some((
                        String::from_utf8_lossy(k.bytes()?).into_owned(),
                        v.bytes()?.to_vec(),
                    )),
                    _ => None,
                })
                .collect()
        };
        let table = &self.gov.table;
        let flags = &self.gov.shared;
        let teams = pairs(&r[0]);
        let keys = pairs(&r[1]);
        for (id, json) in &teams {
            let Ok(spec) = serde_json::from_slice::<TeamSpec>(json) else {
                log_error(format_args!("state store: team {id}: unreadable record"));
                continue;
            };
            match table.team(id) {
                Some(t) if t.spec.origin == Origin::Config || t.spec == spec => {}
                _ if flags.is_dirty(&Record::Team(id.clone())) => {}
                _ => table.put_team(spec),
            }
        }
        for (id, json) in &keys {
            let Ok(spec) = serde_json::from_slice::<KeySpec>(json) else {
                log_error(format_args!("state store: key {id}: unreadable record"));
                continue;
            };
            let Some(hash) = super::secret::from_hex(&spec.key_sha256) else {
                continue;
            };
            match table.key(id) {
                Some(k) if k.spec.origin == Origin::Config || k.spec == spec => {}
                _ if flags.is_dirty(&Record::Key(id.clone())) => {}
                _ => table.put_key(spec, hash),
            }
        }
        for k in table.keys() {
            let id = &k.spec.id;
            if k.spec.origin == Origin::Api
                && !keys.contains_key(id)
                && !flags.is_dirty(&Record::Key(id.clone()))
            {
                table.remove_key(id);
            }
        }
        for t in table.teams() {
            let id = &t.spec.id;
            if t.spec.origin == Origin::Api
                && !teams.contains_key(id)
                && !flags.is_dirty(&Record::Team(id.clone()))
            {
                let _ = table.remove_team(id);
            }
        }
        self.gov.note_keys();
        Ok(())
    }

    /// Writes this instance's records and last known spend into a store
    /// that lost them (first start, or it came back empty); `claim`: this
    /// instance found it empty and names the seeding.
    fn seed(&mut self, claim: bool) -> io::Result<()> {
        let now_s = unix_now();
        let live = self.live();
        let mut spends = Vec::new();
        for s in &live {
            let mut ledger = s.ledger.lock();
            ledger.spent_nanos(&s.limits, now_s);
            let known = self
                .subjects
                .get(&s.tag)
                .map_or(ledger.spent_nanos, |sub| sub.known_spend(&ledger));
            if known > 0 {
                spends.push((seed_key(&s.tag, ledger.period_start), known));
            }
        }
        // Every hold is registered again at once (the store lost them).
        for s in &live {
            self.subjects.entry(s.tag.clone()).or_default().force();
        }
        let table = &self.gov.table;
        let mut records = Vec::new();
        for k in table.keys() {
            if k.spec.origin == Origin::Api {
                if let Ok(j) = serde_json::to_vec(&k.spec) {
                    records.push((&b"sg:keys"[..], k.spec.id.clone(), j));
                }
            }
        }
        for t in table.teams() {
            if t.spec.origin == Origin::Api {
                if let Ok(j) = serde_json::to_vec(&t.spec) {
                    records.push((&b"sg:teams"[..], t.spec.id.clone(), j));
                }
            }
        }
        let sha = self.sha_seed.clone();
        let epoch = super::secret::new_id("seed").unwrap_or_else(|| self.inst.clone());
        let conn = self.conn()?;
        // HSETNX: a record another instance seeded (or changed since) wins.
        for (hash, id, j) in &records {
            conn.queue(&[b"HSETNX", hash, id.as_bytes(), j]);
        }
        for (key, v) in &spends {
            conn.queue(&[
                b"EVALSHA",
                sha.as_bytes(),
                b"1",
                key.as_bytes(),
                v.to_string().as_bytes(),
            ]);
        }
        let mut n = records.len() + spends.len();
        if claim {
            conn.queue(&[b"SET", b"sg:seeded", epoch.as_bytes(), b"NX"]);
            conn.queue(&[b"GET", b"sg:seeded"]);
            n += 2;
        }
        conn.queue(&[b"INCR", b"sg:version"]);
        let replies = conn.flush(n + 1)?;
        if let Some(Reply::Error(e)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
            return Err(io::Error::other(format!("seeding: {e}")));
        }
        if claim {
            self.seeding = replies[n - 1].bytes().map(<[u8]>::to_vec);
        }
        log_info(format_args!(
            "state store {} had lost its state: seeded it with {} record(s) and {} spend \
             counter(s)",
            self.target.addr,
            records.len(),
            spends.len()
        ));
        Ok(())
    }

    /// Plans, sends and applies every subject's due op, pipelined.
    fn leases(&mut self) -> io::Result<()> {
        let now_ms = self.now_ms();
        let now_s = unix_now();
        let ttl = self.ttl_ms;
        let live = self.live();
        // Subjects removed from the table are forgotten once nothing of
        // theirs is still to be sent.
        let tags: std::collections::HashSet<&str> = live.iter().map(|s| s.tag.as_str()).collect();
        self.subjects
            .retain(|tag, sub| sub.pending.is_some() || tags.contains(tag.as_str()));
        let mut sent: Vec<(Live, Op)> = Vec::new();
        for s in live {
            if s.limits == Limits::default() && !self.subjects.contains_key(&s.tag) {
                // No limit: only spend to share, which settle marks.
                let l = s.ledger.lock();
                if l.lease.unsynced_nanos == 0 {
                    continue;
                }
            }
            let sub = self.subjects.entry(s.tag.clone()).or_default();
            let op = sub.plan(&mut s.ledger.lock(), &s.limits, now_ms, now_s, ttl);
            if let Some(op) = op {
                sent.push((s, op));
            }
        }
        if sent.is_empty() {
            return Ok(());
        }
        let (sha, inst) = (self.sha_lease.clone(), self.inst.clone());
        let conn = self.conn()?;
        for (s, op) in &sent {
            let num = |v: u64| v.to_string();
            let opt = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
            let args = [
                num(op.seq),
                num(ttl),
                num(op.period),
                opt(op.budget),
                num(op.batch),
                num(op.hold),
                num(op.want),
                num(op.floor),
                opt(op.rpm),
                num(op.rpm_hold),
                num(op.rpm_want),
                num(op.rpm_unsynced),
            ];
            let lease_key = format!("{}:lease", s.tag);
            let spend = spend_key(&s.tag, op.period);
            let rpm = format!("{}:rpm:", s.tag);
            let seed = seed_key(&s.tag, op.period);
            let mut cmd: Vec<&[u8]> = vec![
                b"EVALSHA",
                sha.as_bytes(),
                b"4",
                lease_key.as_bytes(),
                spend.as_bytes(),
                rpm.as_bytes(),
                seed.as_bytes(),
                inst.as_bytes(),
            ];
            cmd.extend(args.iter().map(String::as_bytes));
            conn.queue(&cmd);
        }
        let replies = conn.flush(sent.len())?;
        let now_ms = self.now_ms();
        let now_s = unix_now();
        let mut reload = false;
        for ((s, op), reply) in sent.iter().zip(replies) {
            let sub = self.subjects.entry(s.tag.clone()).or_default();
            let mut ledger = s.ledger.lock();
            match answer(&reply) {
                Some(a) => sub.applied(&mut ledger, &s.limits, op, &a, now_ms, now_s, ttl),
                None => match reply {
                    // Scripts flushed (a restart between our calls): load
                    // them again; the op is sent again as it was.
                    Reply::Error(e) if e.starts_with("NOSCRIPT") => reload = true,
                    other => {
                        log_error(format_args!("state store: lease for {}: {other:?}", s.tag));
                        sub.refused(&mut ledger);
                    }
                },
            }
        }
        if reload {
            self.conn = None;
            self.connect();
        }
        Ok(())
    }

    /// Reads every subject's spend this period, so spend made by others
    /// shows here.
    fn read_spend(&mut self) -> io::Result<()> {
        let now_s = unix_now();
        let live = self.live();
        let keys: Vec<(String, String, u64)> = live
            .iter()
            .map(|s| {
                let mut l = s.ledger.lock();
                l.spent_nanos(&s.limits, now_s);
                let p = l.period_start;
                (spend_key(&s.tag, p), seed_key(&s.tag, p), p)
            })
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd: Vec<&[u8]> = vec![b"MGET"];
        for (k, seed, _) in &keys {
            cmd.push(k.as_bytes());
            cmd.push(seed.as_bytes());
        }
        let r = self.conn()?.call(&cmd)?;
        for ((s, (_, _, period)), v) in live.iter().zip(&keys).zip(r.array().chunks(2)) {
            let n = |x: Option<&Reply>| x.and_then(Reply::int).unwrap_or(0).max(0) as u64;
            let spend = n(v.first()) + n(v.get(1));
            let sub = self.subjects.entry(s.tag.clone()).or_default();
            sub.refresh_spend(&mut s.ledger.lock(), &s.limits, *period, spend, now_s);
        }
        Ok(())
    }

    /// At a clean stop: one last settle with every lease given back.
    fn give_back_all(&mut self) {
        let live = self.live();
        for s in &live {
            let mut l = s.ledger.lock();
            l.lease.nanos = 0;
            l.lease.live = false;
            if let Some(sub) = self.subjects.get_mut(&s.tag) {
                sub.force();
            }
        }
        if self.conn.is_none() {
            self.connect();
        }
        if self.conn.is_some() {
            if let Err(e) = self.push_records().and_then(|()| self.leases()) {
                log_warn(format_args!(
                    "state store: the last settle at stop failed: {e}; this instance's \
                     unsettled spend is in its local state only"
                ));
            }
        }
    }
}

/// The six integers of a lease answer.
fn answer(r: &Reply) -> Option<Answer> {
    let v: Vec<u64> = r
        .array()
        .iter()
        .map(|x| x.int().map(|n| n.max(0) as u64))
        .collect::<Option<_>>()?;
    match v[..] {
        [granted, spend, target, rpm_granted, rpm_target, retry] => Some(Answer {
            granted,
            spend,
            target,
            rpm_granted,
            rpm_target,
            retry,
        }),
        _ => None,
    }
}
