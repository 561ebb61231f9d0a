//! Per-core shards: the state one pinned thread (one monoio runtime, one
//! listener) keeps for itself — its metrics, access-log sender, tracer,
//! request ids, connection counts and the configuration generation it serves.
//! Starting the threads and accepting connections is `server`'s.
//!
//! Invariant: nothing here is shared between shards except the read-only
//! `Gateway` behind an `Arc` and the `Control` counters; everything mutable
//! is `Rc`/`Cell` and cannot cross threads by construction.

mod catch_panic;
mod control;
mod generation;
mod give_back;
mod housekeeping;
mod status;
mod topology;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::runtime::Driver;
use crate::telemetry::trace::ShardTracer;
use crate::telemetry::{AccessLogSender, LabelTable, RequestIdGen, ShardMetrics};

pub use catch_panic::{panic_message, CatchPanic};
pub use control::{Control, Gateway};
pub use generation::{Generation, ModelState, UpstreamSlot};
pub use housekeeping::housekeeping;
pub use status::{render_status, ShardStatus, Status};
pub use topology::{allowed_cores, CoreId};

/// What a shard gets from start-up besides its listener.
pub struct ShardSetup {
    pub labels: Arc<LabelTable>,
    pub access_log: Option<AccessLogSender>,
    /// `[tracing]`: the shard's tracer, when tracing is on.
    pub tracer: Option<ShardTracer>,
    /// `[server.tls]`: the listener's TLS settings, shared by every shard.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// One shard's state.
pub struct Shard {
    pub id: usize,
    pub driver: Driver,
    pub metrics: ShardMetrics,
    pub access_log: RefCell<Option<AccessLogSender>>,
    /// None with tracing off: the request path's one branch.
    pub tracer: Option<RefCell<ShardTracer>>,
    pub request_ids: RequestIdGen,
    control: Arc<Control>,
    /// The generation new requests start on, and its number in `control`.
    current: RefCell<Rc<Generation>>,
    current_no: Cell<u64>,
    /// Client connections open on this shard (being served).
    open_connections: Cell<usize>,
    /// Connections being turned away (503) right now.
    rejecting: Cell<usize>,
    /// Which presented secret is which key, on this shard.
    pub keys: crate::governance::KeyCache,
}

impl Shard {
    pub fn new(id: usize, driver: Driver, control: Arc<Control>, setup: ShardSetup) -> Shard {
        let current_no = control.generation.load(Ordering::Acquire);
        let current = Rc::new(Generation::new(control.current(), None));
        control.set_driver(id, driver);
        Shard {
            id,
            driver,
            metrics: ShardMetrics::new(id, driver, setup.labels),
            access_log: RefCell::new(setup.access_log),
            tracer: setup.tracer.map(RefCell::new),
            request_ids: RequestIdGen::new(id),
            control,
            current: RefCell::new(current),
            current_no: Cell::new(current_no),
            open_connections: Cell::new(0),
            rejecting: Cell::new(0),
            keys: Default::default(),
        }
    }

    pub fn governance(&self) -> &crate::governance::Governance {
        &self.control.governance
    }

    /// Answers a pending scrape with this shard's snapshot.
    pub(crate) fn answer_scrape(&self) {
        let wanted = self.control.snapshot_request.load(Ordering::Acquire);
        let slot = &self.control.snapshots[self.id];
        let answered = slot.lock().map(|s| s.0).unwrap_or(u64::MAX);
        if answered < wanted {
            let mut snapshot = self.metrics.snapshot();
            snapshot.deployments = self.current.borrow().deployment_health();
            if let Ok(mut s) = slot.lock() {
                *s = (wanted, Some(snapshot));
            }
        }
    }

    /// The generation for a new request: the latest published configuration.
    pub fn generation(&self) -> Rc<Generation> {
        let published = self.control.generation.load(Ordering::Acquire);
        if published != self.current_no.get() {
            self.current_no.set(published);
            let next = Generation::new(self.control.current(), Some(&self.current.borrow()));
            *self.current.borrow_mut() = Rc::new(next);
        }
        self.current.borrow().clone()
    }

    pub fn is_draining(&self) -> bool {
        self.control.is_draining()
    }

    /// Counts a newly accepted client connection until the guard drops;
    /// `None` when `limits.max_connections_per_shard` are already open.
    pub fn open_connection(self: &Rc<Self>, max: usize) -> Option<OpenConnection> {
        if self.open_connections.get() >= max {
            return None;
        }
        self.open_connections.set(self.open_connections.get() + 1);
        self.metrics.connection_opened();
        Some(OpenConnection(self.clone()))
    }

    /// Counts a connection being turned away until the guard drops; `None`
    /// when `max` already linger.
    pub fn rejecting(self: &Rc<Self>, max: usize) -> Option<Rejecting> {
        if self.rejecting.get() >= max {
            return None;
        }
        self.rejecting.set(self.rejecting.get() + 1);
        Some(Rejecting(self.clone()))
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

/// An open client connection counted against
/// `limits.max_connections_per_shard` until it drops.
pub struct OpenConnection(Rc<Shard>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let open = &self.0.open_connections;
        open.set(open.get() - 1);
        self.0.metrics.connection_closed();
    }
}

/// A connection being turned away, counted until it drops.
pub struct Rejecting(Rc<Shard>);

impl Drop for Rejecting {
    fn drop(&mut self) {
        self.0.rejecting.set(self.0.rejecting.get() - 1);
    }
}
