//! One executor's share of a run: its connections, each looping over
//! exchanges, closed loop (send when the last answer arrived) or open loop
//! (send at scheduled times). In open loop latency is measured from the
//! scheduled time, not the actual send, so a slow server cannot hide its
//! queueing by slowing the generator (coordinated omission).

use crate::client::{Conn, Target};
use crate::deadline::{self, Deadline};
use crate::rng::Rng;
use crate::stats::{Stats, LATE};
use crate::validate::ErrorClass;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    Constant,
    Poisson,
}

/// This executor's part of the run.
#[derive(Clone)]
pub struct Plan {
    pub connections: usize,
    pub start: Instant,
    /// Requests started before this are warmup: sent, never recorded.
    pub measure_from: Instant,
    pub stop_at: Option<Instant>,
    /// Measured requests this executor sends at most.
    pub quota: Option<u64>,
    /// Open loop: this executor's rate (req/s) and arrival process.
    pub rate: Option<(f64, Arrivals)>,
    pub seed: u64,
    /// The run-wide number of this executor's first connection.
    pub first_connection: u64,
    /// `--unique`: what sets this run's prompts apart from other runs'.
    pub nonce: u32,
}

/// Completions so far, read by the progress line from another thread.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

/// Hands out send times (open loop) or permission to send (closed loop),
/// enforcing the stop time and the measured-request quota for all
/// connections of the executor.
struct Gate {
    plan: Plan,
    quota_left: Cell<Option<u64>>,
    next_offset: Cell<f64>,
    rng: RefCell<Rng>,
}

impl Gate {
    /// The next request's send time (now, in closed loop) and whether it is measured.
    fn next(&self) -> Option<(Instant, bool)> {
        let at = match self.plan.rate {
            None => Instant::now(),
            Some((rate, arrivals)) => {
                let offset = self.next_offset.get();
                let gap = match arrivals {
                    Arrivals::Constant => 1.0 / rate,
                    Arrivals::Poisson => self.rng.borrow_mut().exponential(1.0 / rate),
                };
                self.next_offset.set(offset + gap);
                self.plan.start + Duration::from_secs_f64(offset)
            }
        };
        if self.plan.stop_at.is_some_and(|stop| at >= stop) {
            return None;
        }
        let measured = at >= self.plan.measure_from;
        if measured {
            match self.quota_left.get() {
                Some(0) => return None,
                Some(n) => self.quota_left.set(Some(n - 1)),
                None => {}
            }
        }
        Some((at, measured))
    }
}

pub async fn drive(target: Arc<Target>, plan: Plan, progress: Arc<Progress>) -> Stats {
    let stats = Rc::new(RefCell::new(Stats::new()));
    let gate = Rc::new(Gate {
        quota_left: Cell::new(plan.quota),
        next_offset: Cell::new(0.0),
        rng: RefCell::new(Rng::new(plan.seed)),
        plan,
    });
    let deadlines: Rc<[Rc<Deadline>]> = (0..gate.plan.connections).map(|_| Rc::default()).collect();
    let watchdog = glommio::spawn_local(deadline::watch(
        deadlines.clone(),
        deadline::tick_for(target.timeout),
    ));
    let tasks: Vec<_> = (gate.plan.first_connection..)
        .zip(deadlines.iter())
        .map(|(number, slot)| {
            glommio::spawn_local(connection(
                Conn::new(slot.clone(), gate.plan.nonce, number),
                target.clone(),
                gate.clone(),
                stats.clone(),
                progress.clone(),
            ))
        })
        .collect();
    for task in tasks {
        task.await;
    }
    drop(watchdog);
    Rc::try_unwrap(stats)
        .ok()
        .expect("all connection tasks finished")
        .into_inner()
}

async fn connection(
    mut conn: Conn,
    target: Arc<Target>,
    gate: Rc<Gate>,
    stats: Rc<RefCell<Stats>>,
    progress: Arc<Progress>,
) {
    while let Some((at, measured)) = gate.next() {
        // Closed loop: `at` was read from the clock just now.
        let mut sent = at;
        if gate.plan.rate.is_some() {
            let now = Instant::now();
            if at > now {
                glommio::timer::sleep(at - now).await;
                sent = Instant::now();
                let lag = sent.saturating_duration_since(at);
                if measured && lag > LATE {
                    let mut s = stats.borrow_mut();
                    s.generator_late += 1;
                    s.generator_max_lag = s.generator_max_lag.max(lag);
                }
            } else {
                sent = now;
                if measured && now - at > LATE {
                    stats.borrow_mut().queued_late += 1;
                }
            }
        }
        let result = conn.exchange(&target, sent + target.timeout).await;
        let end = Instant::now();
        progress.done.fetch_add(1, Relaxed);
        if result.is_err() {
            progress.errors.fetch_add(1, Relaxed);
        }
        if measured {
            let mut s = stats.borrow_mut();
            s.widen_window(at, end);
            match &result {
                Ok(x) => {
                    s.ok += 1;
                    s.bytes_in += x.bytes_in;
                    Stats::record(&mut s.latency, end - at);
                    if let Some(first) = x.first_event {
                        Stats::record(&mut s.ttft, first - at);
                    }
                    for &gap in &conn.gaps {
                        Stats::record(&mut s.gaps, gap);
                    }
                }
                Err(class) => s.error(*class),
            }
        }
        if matches!(result, Err(ErrorClass::Connect)) {
            // A refused connect returns at once; pause so a down server is not a busy loop.
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
}
