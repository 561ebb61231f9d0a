//! A value handed from a thread of the gateway's own (`cache-sync`, the
//! embedder) to the shard task waiting for it: the thread fills the slot
//! and wakes the task; the task polls it on its own event loop (monoio's
//! wakers may be woken from any thread).
//!
//! Invariants: filled at most once per wait; a wait given up (its timeout
//! ran out) leaves the slot to be filled and dropped, never blocks the
//! thread; a fill of `None` means "answered, nothing there".

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The slot.
pub struct Handoff<T> {
    slot: Mutex<Slot<T>>,
}

struct Slot<T> {
    /// `Some(None)`: answered, nothing there.
    value: Option<Option<T>>,
    waker: Option<Waker>,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff {
            slot: Mutex::new(Slot {
                value: None,
                waker: None,
            }),
        }
    }
}

impl<T> Handoff<T> {
    /// Fills the slot (from the thread) and wakes its waiter.
    pub fn fill(&self, value: Option<T>) {
        let waker = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Waits for the fill (from the shard task).
    pub fn wait(this: Arc<Self>) -> impl Future<Output = Option<T>> {
        Wait(this)
    }
}

struct Wait<T>(Arc<Handoff<T>>);

impl<T> Future for Wait<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_from_another_thread_wakes_the_waiting_task() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let slot = Arc::new(Handoff::default());
            let filler = slot.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                filler.fill(Some(7u32));
            });
            assert_eq!(Handoff::wait(slot).await, Some(7));
            t.join().unwrap();
            let empty = Arc::new(Handoff::<u32>::default());
            empty.fill(None);
            assert_eq!(Handoff::wait(empty).await, None);
            let never = Arc::new(Handoff::<u32>::default());
            let waited = monoio::time::timeout(
                std::time::Duration::from_millis(10),
                Handoff::wait(never.clone()),
            )
            .await;
            assert!(waited.is_err());
            never.fill(Some(1));
        });
    }
}
