//! Per-core shards: one pinned OS thread, one monoio runtime, one listener,
//! and the state only that shard touches (upstream pools, counters).
//!
//! Invariant: nothing here is shared between shards except the read-only
//! `Gateway` behind an `Arc`; everything mutable is `Rc`/`Cell` and cannot
//! cross threads by construction.

mod catch_panic;
mod give_back;
mod topology;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::proxy::route::Router;
use crate::runtime::{build_runtime, Driver};
use crate::telemetry::{AccessLogSender, LabelTable, MetricsSnapshot, RequestIdGen, ShardMetrics};
use crate::upstream::balance::{Balancer, ShardRng};
use crate::upstream::breaker::Breaker;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::UpstreamPool;

pub use catch_panic::CatchPanic;
pub use topology::{allowed_cores, CoreId};

/// What every shard reads: the validated config and the routes built from it.
pub struct Gateway {
    pub config: Config,
    pub router: Router,
}

/// Process-wide control shared with the main thread: config generations
/// for reload and the drain flag. Shards only *read* it on the request path
/// (one relaxed load of a line that rarely changes), and each shard writes
/// only its own padded in-flight counter.
pub struct Control {
    generation: AtomicU64,
    next: Mutex<Arc<Gateway>>,
    draining: AtomicBool,
    in_flight: Vec<PaddedCounter>,
    /// Scrapes: a request number, and each shard's latest answer to it.
    snapshot_request: AtomicU64,
    snapshots: Vec<Mutex<(u64, Option<MetricsSnapshot>)>>,
}

/// A counter alone on its cache line, so shards never share one.
#[repr(align(128))]
#[derive(Default)]
struct PaddedCounter(AtomicUsize);

impl Control {
    pub fn new(gateway: Arc<Gateway>, shards: usize) -> Arc<Control> {
        Arc::new(Control {
            generation: AtomicU64::new(0),
            next: Mutex::new(gateway),
            draining: AtomicBool::new(false),
            in_flight: (0..shards).map(|_| PaddedCounter::default()).collect(),
            snapshot_request: AtomicU64::new(0),
            snapshots: (0..shards).map(|_| Mutex::new((0, None))).collect(),
        })
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

/// One configuration generation as a shard uses it: the gateway and the
/// shard's upstream pools for its providers (indexed like
/// `gateway.router.providers`). Requests hold an `Rc` to the generation
/// they started on.
pub struct Routes {
    pub gateway: Arc<Gateway>,
    pub pools: Vec<UpstreamPool>,
    /// Requests in flight to each provider from this shard.
    in_flight: Vec<Cell<usize>>,
    /// Per configured model (indexed like `gateway.router.model_routes`):
    /// its balancer and one breaker per deployment.
    pub models: Vec<ModelState>,
    /// Retry rules and this shard's retry budget.
    pub retry: RetryPolicy,
    pub rng: ShardRng,
}

/// Copies each breaker's state from the same deployment in `old`.
fn carry_breakers(gateway: &Gateway, models: &[ModelState], old: &Routes) {
    let (new_router, old_router) = (&gateway.router, &old.gateway.router);
    let key = |router: &crate::proxy::route::Router, d: &crate::proxy::route::Deployment| {
        (
            router.providers[d.provider].name.clone(),
            d.upstream_model.clone(),
        )
    };
    for (route, state) in new_router.model_routes.iter().zip(models) {
        let Some(o) = old_router.model_index(&route.name) else {
            continue;
        };
        let old_route = &old_router.model_routes[o];
        for (d, breaker) in route.deployments.iter().zip(&state.breakers) {
            let found = old_route
                .deployments
                .iter()
                .position(|od| key(old_router, od) == key(new_router, d));
            if let Some(i) = found {
                breaker.carry_over(&old.models[o].breakers[i]);
            }
        }
    }
}

/// One configured model's shard-local health and load state.
pub struct ModelState {
    pub balancer: Balancer,
    pub breakers: Vec<Breaker>,
}

impl Routes {
    /// The routes of `gateway`; breakers of deployments that `previous` had
    /// too (same model, provider name and upstream model) keep their state,
    /// so a reload neither forgets an ejection nor ejects anew.
    fn new(gateway: Arc<Gateway>, previous: Option<&Routes>) -> Routes {
        let up = &gateway.config.upstream;
        let pools = gateway
            .router
            .providers
            .iter()
            .map(|_| {
                UpstreamPool::new(
                    up.pool_max_idle,
                    Duration::from_millis(up.pool_idle_timeout_ms),
                )
            })
            .collect();
        let in_flight = gateway
            .router
            .providers
            .iter()
            .map(|_| Cell::new(0))
            .collect();
        let res = &gateway.config.resilience;
        let breaker = res.breaker_config();
        let models: Vec<ModelState> = gateway
            .router
            .model_routes
            .iter()
            .map(|m| ModelState {
                balancer: Balancer::new(m.strategy, &m.weights),
                breakers: m
                    .deployments
                    .iter()
                    .map(|_| Breaker::new(breaker.clone()))
                    .collect(),
            })
            .collect();
        if let Some(old) = previous {
            carry_breakers(&gateway, &models, old);
        }
        let now = std::time::Instant::now();
        let retry = RetryPolicy::new(res.retry_config(), now);
        // Seeded per shard and generation: jitter must differ between shards.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (&now as *const std::time::Instant as u64);
        Routes {
            gateway,
            pools,
            in_flight,
            models,
            retry,
            rng: ShardRng::new(seed),
        }
    }

    /// Takes one of the `limits.max_in_flight_per_upstream` slots for
    /// provider `provider` until the guard drops; `None` when all are taken.
    pub fn upstream_slot(&self, provider: usize) -> Option<UpstreamSlot<'_>> {
        let cell = &self.in_flight[provider];
        if cell.get() >= self.gateway.config.limits.max_in_flight_per_upstream {
            return None;
        }
        cell.set(cell.get() + 1);
        Some(UpstreamSlot(cell))
    }
}

/// A request in flight to one provider (see [`Routes::upstream_slot`]).
pub struct UpstreamSlot<'a>(&'a Cell<usize>);

impl Drop for UpstreamSlot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// An open client connection counted against
/// `limits.max_connections_per_shard` until it drops.
struct OpenConnection(Rc<Shard>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let open = &self.0.open_connections;
        open.set(open.get() - 1);
        self.0.metrics.connection_closed();
    }
}

/// What a shard gets from start-up besides its listener.
pub struct ShardSetup {
    pub labels: Arc<LabelTable>,
    pub access_log: Option<AccessLogSender>,
}

/// One shard's state.
pub struct Shard {
    pub id: usize,
    pub driver: Driver,
    pub metrics: ShardMetrics,
    pub access_log: RefCell<Option<AccessLogSender>>,
    pub request_ids: RequestIdGen,
    control: Arc<Control>,
    routes: RefCell<Rc<Routes>>,
    generation: Cell<u64>,
    /// Client connections open on this shard (being served).
    open_connections: Cell<usize>,
    /// Connections being turned away (503) right now.
    rejecting: Cell<usize>,
}

impl Shard {
    pub fn new(id: usize, driver: Driver, control: Arc<Control>, setup: ShardSetup) -> Shard {
        let generation = control.generation.load(Ordering::Acquire);
        let routes = Rc::new(Routes::new(control.current(), None));
        Shard {
            id,
            driver,
            metrics: ShardMetrics::new(id, driver, setup.labels),
            access_log: RefCell::new(setup.access_log),
            request_ids: RequestIdGen::new(id),
            control,
            routes: RefCell::new(routes),
            generation: Cell::new(generation),
            open_connections: Cell::new(0),
            rejecting: Cell::new(0),
        }
    }

    /// Answers a pending scrape with this shard's snapshot.
    fn answer_scrape(&self) {
        let wanted = self.control.snapshot_request.load(Ordering::Acquire);
        let slot = &self.control.snapshots[self.id];
        let answered = slot.lock().map(|s| s.0).unwrap_or(u64::MAX);
        if answered < wanted {
            let snapshot = self.metrics.snapshot();
            if let Ok(mut s) = slot.lock() {
                *s = (wanted, Some(snapshot));
            }
        }
    }

    /// The routes for a new request: the latest published configuration.
    pub fn routes(&self) -> Rc<Routes> {
        let generation = self.control.generation.load(Ordering::Acquire);
        if generation != self.generation.get() {
            self.generation.set(generation);
            let next = Routes::new(self.control.current(), Some(&self.routes.borrow()));
            *self.routes.borrow_mut() = Rc::new(next);
        }
        self.routes.borrow().clone()
    }

    pub fn is_draining(&self) -> bool {
        self.control.is_draining()
    }

    /// Marks a request in flight until the guard drops.
    pub fn request_guard(&self) -> InFlight<'_> {
        self.control.in_flight[self.id]
            .0
            .fetch_add(1, Ordering::AcqRel);
        InFlight(&self.control.in_flight[self.id].0)
    }
}

/// A request in flight on its shard (see [`Shard::request_guard`]).
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a shard reports that it is accepting (or why it could not start).
pub type ReadySender = std::sync::mpsc::Sender<(usize, std::io::Result<Driver>)>;

/// Starts one thread per listener, each pinned to `cores[i]` when given.
/// Each thread reports its driver on `ready` once it is accepting.
pub fn spawn_shards(
    control: Arc<Control>,
    listeners: Vec<std::net::TcpListener>,
    cores: Vec<Option<CoreId>>,
    setups: Vec<ShardSetup>,
    ready: ReadySender,
) -> Vec<JoinHandle<()>> {
    listeners
        .into_iter()
        .zip(setups)
        .enumerate()
        .map(|(id, (listener, setup))| {
            let control = control.clone();
            let core = cores.get(id).copied().flatten();
            let ready = ready.clone();
            std::thread::Builder::new()
                .name(format!("shard-{id}"))
                .spawn(move || run_shard_thread(id, control, setup, listener, core, ready))
                .expect("spawn shard thread")
        })
        .collect()
}

/// Runs shard `id` on the calling thread until the process ends: pins it,
/// builds its runtime, and serves `listener`.
pub fn run_shard_thread(
    id: usize,
    control: Arc<Control>,
    setup: ShardSetup,
    listener: std::net::TcpListener,
    core: Option<CoreId>,
    ready: ReadySender,
) {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    match build_runtime() {
        Ok((mut rt, driver)) => rt.block_on(run_shard(id, driver, control, setup, listener, ready)),
        Err(e) => {
            let _ = ready.send((id, Err(e)));
        }
    }
}

async fn run_shard(
    id: usize,
    driver: Driver,
    control: Arc<Control>,
    setup: ShardSetup,
    listener: std::net::TcpListener,
    ready: ReadySender,
) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send((id, Err(e)));
            return;
        }
    };
    let shard = Rc::new(Shard::new(id, driver, control, setup));
    let _ = ready.send((id, Ok(driver)));
    drop(ready);
    monoio::spawn(tick(shard.clone()));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let max = shard
                    .routes()
                    .gateway
                    .config
                    .limits
                    .max_connections_per_shard;
                if shard.open_connections.get() >= max {
                    reject_connection(&shard, stream);
                    continue;
                }
                shard.open_connections.set(shard.open_connections.get() + 1);
                shard.metrics.connection_opened();
                let shard = shard.clone();
                monoio::spawn(async move {
                    let _open = OpenConnection(shard.clone());
                    let s = shard.clone();
                    if let Err(panic) =
                        CatchPanic::new(crate::proxy::serve_connection(stream, peer, shard)).await
                    {
                        s.metrics.error(s.metrics.labels().no_provider(), "panic");
                        crate::telemetry::log_error(format_args!(
                            "shard {}: a connection handler panicked ({}); connection closed, shard continues",
                            s.id,
                            catch_panic::panic_message(&panic)
                        ));
                    }
                });
            }
            // The listener was shut down to drain: stop accepting, but keep
            // the runtime (and every in-flight request) running until the
            // process exits.
            Err(_) if shard.is_draining() => break,
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                crate::telemetry::log_error(format_args!("shard {id}: accept failed: {e}"));
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    std::future::pending::<()>().await;
}

/// Turns away a connection over `limits.max_connections_per_shard`: 503
/// with `Retry-After: 1`, then close. Fail fast: the answer is written at
/// once, and what the client already sent is read (briefly, bounded) only so
/// that closing does not reset the connection before the answer is read.
fn reject_connection(shard: &Rc<Shard>, stream: monoio::net::TcpStream) {
    /// Turned-away connections lingering at once; past it, close at once.
    const MAX_LINGERING: usize = 1024;
    const LINGER: Duration = Duration::from_millis(200);
    if shard.rejecting.get() >= MAX_LINGERING {
        return;
    }
    shard.rejecting.set(shard.rejecting.get() + 1);
    let shard = shard.clone();
    monoio::spawn(async move {
        use monoio::io::{AsyncReadRent, AsyncWriteRent};
        let mut stream = stream;
        let err = crate::error::Error::gateway(
            crate::error::Kind::Overloaded,
            "too many connections to this gateway; retry shortly",
        );
        let mut body = Vec::with_capacity(256);
        err.write_openai_body(&mut body);
        let out = crate::proxy::local_response(503, &body, true, false, true);
        let (res, _) = crate::buf::write_all(&mut stream, out).await;
        if res.is_ok() {
            let _ = stream.shutdown().await;
            let deadline = std::time::Instant::now() + LINGER;
            let mut buf = vec![0u8; 4096];
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match monoio::time::timeout(left, stream.read(buf)).await {
                    Ok((Ok(n), b)) if n > 0 => buf = b,
                    _ => break,
                }
            }
        }
        shard.rejecting.set(shard.rejecting.get() - 1);
    });
}

/// The shard's housekeeping, off the request path: flush the access log
/// batch, answer scrapes, close stale pooled connections, give memory back
/// once the load is gone.
async fn tick(shard: Rc<Shard>) {
    const TICK: Duration = Duration::from_millis(50);
    let mut ticks: u64 = 0;
    let mut give_back = give_back::GiveBack::new(std::time::Instant::now());
    loop {
        monoio::time::sleep(TICK).await;
        ticks += 1;
        give_back.on_tick(std::time::Instant::now());
        if let Some(log) = shard.access_log.borrow_mut().as_mut() {
            log.maybe_flush(std::time::Instant::now());
        }
        shard.answer_scrape();
        // Twice a second: a few comparisons per idle connection.
        if ticks % 10 == 0 {
            for pool in &shard.routes().pools {
                pool.sweep();
            }
        }
    }
}
