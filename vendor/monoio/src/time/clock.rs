//! Source of time abstraction.
//!
//! By default, `std::time::Instant::now()` is used. However, when the
//! `test-util` feature flag is enabled, the values returned for `now()` are
//! configurable.
//!
//! shardgate patch: the loop clock. While a runtime with timers runs on a
//! thread, its time driver reads the clock once per trip round the event loop
//! (when it wakes from a park, or submits instead of parking) and keeps the
//! instant here; `sleep`, `timeout` and [`cached_now`] read it instead of the
//! clock. The instant only moves forward, and is `None` outside the runtime
//! (so a thread without one, or after it, reads the clock).

use std::cell::Cell;

use crate::time::Instant;

thread_local! {
    // shardgate patch: the loop clock (see the module header).
    static LOOP_NOW: Cell<Option<std::time::Instant>> = const { Cell::new(None) };
}

#[derive(Default, Debug, Clone)]
pub(crate) struct Clock {}

pub(crate) fn now() -> Instant {
    Instant::from_std(std::time::Instant::now())
}

/// shardgate patch: reads the clock and makes it this thread's loop clock.
pub(crate) fn refresh() -> Instant {
    let now = std::time::Instant::now();
    LOOP_NOW.with(|c| c.set(Some(now)));
    Instant::from_std(now)
}

/// shardgate patch: the instant the event loop last read (when it last woke or
/// submitted); the clock itself outside a runtime with timers.
///
/// It lags the clock by at most the time the loop has spent running tasks
/// since it woke. A deadline computed from it is early by that much, never
/// late; a duration measured with it is off by up to that much, so latency
/// measurements should read the clock ([`Instant::now`]).
pub fn cached_now() -> Instant {
    match LOOP_NOW.with(Cell::get) {
        Some(now) => Instant::from_std(now),
        None => now(),
    }
}

/// shardgate patch: keeps the loop clock for as long as it lives (a runtime's
/// `block_on`), then clears it, unwinding included.
pub(crate) struct LoopClock(());

impl LoopClock {
    pub(crate) fn start() -> LoopClock {
        refresh();
        LoopClock(())
    }
}

impl Drop for LoopClock {
    fn drop(&mut self) {
        LOOP_NOW.with(|c| c.set(None));
    }
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {}
    }

    pub(crate) fn now(&self) -> Instant {
        now()
    }
}
