//! Exchange deadlines, checked by one watchdog task per executor each tick
//! instead of one reactor timer per exchange (a timer-wheel insert, a removal
//! and the clock reads around them on every request). Invariant: an exchange
//! is given up no earlier than its deadline and at most one tick after it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// One connection's deadline slot, shared with the watchdog.
#[derive(Default)]
pub struct Deadline {
    at: Cell<Option<Instant>>,
    expired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Deadline {
    /// Runs `work` until it ends or `at` passes, whichever comes first.
    pub async fn within<T>(&self, at: Instant, work: impl Future<Output = T>) -> Option<T> {
        self.expired.set(false);
        self.at.set(Some(at));
        let result = futures_lite::future::or(async { Some(work.await) }, async {
            Expired(self).await;
            None
        })
        .await;
        self.at.set(None);
        self.waker.take();
        result
    }

    fn expire_if_due(&self, now: Instant) {
        if self.at.get().is_some_and(|at| at <= now) {
            self.at.set(None);
            self.expired.set(true);
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }
}

struct Expired<'a>(&'a Deadline);

impl Future for Expired<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0.expired.get() {
            return Poll::Ready(());
        }
        // The same task polls every time, so this clones its waker once per exchange.
        let waker = match self.0.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.0.waker.set(Some(waker));
        Poll::Pending
    }
}

/// The tick for a timeout: fine enough to matter (a tenth of it), coarse
/// enough to cost nothing (at most 10 wake-ups a second).
pub fn tick_for(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

/// Expires the slots whose deadline passed, every `tick`, until dropped.
pub async fn watch(slots: Rc<[Rc<Deadline>]>, tick: Duration) {
    loop {
        glommio::timer::sleep(tick).await;
        let now = Instant::now();
        for slot in slots.iter() {
            slot.expire_if_due(now);
        }
    }
}
