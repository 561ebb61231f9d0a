//! Per-core shards: one pinned OS thread, one monoio runtime, one listener,
//! and the state only that shard touches (upstream pools, counters).
//!
//! Invariant: nothing here is shared between shards except the read-only
//! `Gateway` behind an `Arc`; everything mutable is `Rc`/`Cell` and cannot
//! cross threads by construction.

mod catch_panic;
mod topology;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::proxy::route::Router;
use crate::runtime::{build_runtime, Driver};
use crate::upstream::UpstreamPool;

pub use catch_panic::CatchPanic;
pub use topology::{allowed_cores, CoreId};

/// What every shard reads: the validated config and the routes built from it.
pub struct Gateway {
    pub config: Config,
    pub router: Router,
}

/// Per-shard counters; merged by whoever reads them, never shared.
#[derive(Default)]
pub struct ShardStats {
    pub connections: Cell<u64>,
    pub requests: Cell<u64>,
    pub panics: Cell<u64>,
    pub upstream_connects: Cell<u64>,
    pub upstream_reuses: Cell<u64>,
}

impl ShardStats {
    pub fn bump(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
}

/// One shard's state.
pub struct Shard {
    pub id: usize,
    pub driver: Driver,
    pub gateway: Arc<Gateway>,
    /// One pool per provider, indexed like `gateway.router.providers`.
    pub pools: Vec<UpstreamPool>,
    pub stats: ShardStats,
}

impl Shard {
    pub fn new(id: usize, driver: Driver, gateway: Arc<Gateway>) -> Shard {
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
        Shard {
            id,
            driver,
            gateway,
            pools,
            stats: ShardStats::default(),
        }
    }
}

/// Where a shard reports that it is accepting (or why it could not start).
pub type ReadySender = std::sync::mpsc::Sender<(usize, std::io::Result<Driver>)>;

/// Starts one thread per listener, each pinned to `cores[i]` when given.
/// Each thread reports its driver on `ready` once it is accepting.
pub fn spawn_shards(
    gateway: Arc<Gateway>,
    listeners: Vec<std::net::TcpListener>,
    cores: Vec<Option<CoreId>>,
    ready: ReadySender,
) -> Vec<JoinHandle<()>> {
    listeners
        .into_iter()
        .enumerate()
        .map(|(id, listener)| {
            let gateway = gateway.clone();
            let core = cores.get(id).copied().flatten();
            let ready = ready.clone();
            std::thread::Builder::new()
                .name(format!("shard-{id}"))
                .spawn(move || run_shard_thread(id, gateway, listener, core, ready))
                .expect("spawn shard thread")
        })
        .collect()
}

/// Runs shard `id` on the calling thread until the process ends: pins it,
/// builds its runtime, and serves `listener`.
pub fn run_shard_thread(
    id: usize,
    gateway: Arc<Gateway>,
    listener: std::net::TcpListener,
    core: Option<CoreId>,
    ready: ReadySender,
) {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    match build_runtime() {
        Ok((mut rt, driver)) => rt.block_on(run_shard(id, driver, gateway, listener, ready)),
        Err(e) => {
            let _ = ready.send((id, Err(e)));
        }
    }
}

async fn run_shard(
    id: usize,
    driver: Driver,
    gateway: Arc<Gateway>,
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
    let shard = Rc::new(Shard::new(id, driver, gateway));
    let _ = ready.send((id, Ok(driver)));
    drop(ready);
    monoio::spawn(sweep_pools(shard.clone()));
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                ShardStats::bump(&shard.stats.connections);
                let shard = shard.clone();
                monoio::spawn(async move {
                    let s = shard.clone();
                    if let Err(panic) =
                        CatchPanic::new(crate::proxy::serve_connection(stream, shard)).await
                    {
                        ShardStats::bump(&s.stats.panics);
                        crate::telemetry::log_error(format_args!(
                            "shard {}: a connection handler panicked ({}); connection closed, shard continues",
                            s.id,
                            catch_panic::panic_message(&panic)
                        ));
                    }
                });
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                crate::telemetry::log_error(format_args!("shard {id}: accept failed: {e}"));
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn sweep_pools(shard: Rc<Shard>) {
    loop {
        monoio::time::sleep(Duration::from_secs(5)).await;
        for pool in &shard.pools {
            pool.sweep();
        }
    }
}
