//! Giving memory back to the OS once a shard's load is gone.
//!
//! A burst (thousands of connections, a large translation) leaves its
//! memory behind twice over: the shard's buffer arena keeps up to its bound
//! of free buffers, and mimalloc keeps the pages it freed until something
//! on the same thread allocates again (its purge runs lazily, from its own
//! allocation path). An idle shard allocates nothing, so RSS stayed at the
//! burst's level (47 MB after 5,000 idle connections closed, baseline 6 MB).
//!
//! Invariant: [`GiveBack::on_tick`] runs on the shard's own thread (the
//! arena and mimalloc's heap are both per thread: each shard gives back its
//! own), and does its work only when the shard went quiet after taking
//! buffers, so a busy shard never pays for it and an idle one pays once.

use std::time::{Duration, Instant};

use crate::buf::{arena_stats, trim_free_buffers};

// mimalloc is the binary's global allocator (src/main.rs). Naming the crate
// links it into every artifact of this library, tests included, where the
// call below then finds an unused heap and returns at once.
use mimalloc as _;

extern "C" {
    /// Frees the calling thread's empty pages and, with `force`, purges
    /// (returns to the OS) all freed memory at once rather than after
    /// mimalloc's purge delay.
    fn mi_collect(force: bool);
}

/// How often the shard looks at its load.
pub(super) const WINDOW: Duration = Duration::from_secs(1);
/// Fewer buffer takes than this in a window is "quiet": a trickle of a few
/// requests a second still lets a shard give back a burst.
const QUIET_TAKES: u64 = 64;

/// When a shard trims its arena and collects its heap.
pub(super) struct GiveBack {
    window_start: Instant,
    takes_at_window_start: u64,
    /// Buffers were taken since the last give-back.
    active_since_last: bool,
}

impl GiveBack {
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            takes_at_window_start: arena_stats().0,
            // Start-up allocated too: the first quiet window gives it back.
            active_since_last: true,
        }
    }

    /// Called from the shard's tick; returns whether it gave memory back.
    pub fn on_tick(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) < WINDOW {
            return false;
        }
        let takes = arena_stats().0;
        let in_window = takes - self.takes_at_window_start;
        self.window_start = now;
        self.takes_at_window_start = takes;
        if in_window >= QUIET_TAKES {
            self.active_since_last = true;
            return false;
        }
        let active = std::mem::take(&mut self.active_since_last) || in_window > 0;
        if !active {
            return false;
        }
        trim_free_buffers();
        // SAFETY: mimalloc's collection of the calling thread's own heap;
        // safe to call at any time from any thread.
        unsafe { mi_collect(true) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::PooledBuf;

    #[test]
    fn gives_back_once_after_activity_then_stays_idle() {
        let start = Instant::now();
        let mut give_back = GiveBack::new(start);
        let at = |s: u64| start + WINDOW * s as u32;
        assert!(!give_back.on_tick(start), "not before a window passed");
        assert!(give_back.on_tick(at(1)), "start-up is given back");
        assert!(!give_back.on_tick(at(2)), "nothing happened since");
        // A burst: busy for a window, then quiet.
        let burst: Vec<PooledBuf> = (0..QUIET_TAKES).map(|_| PooledBuf::take(64)).collect();
        drop(burst);
        assert!(!give_back.on_tick(at(3)), "busy window");
        assert!(give_back.on_tick(at(4)), "quiet after the burst");
        assert!(!give_back.on_tick(at(5)));
        // A trickle is quiet too, and each one is given back.
        drop(PooledBuf::take(64));
        assert!(give_back.on_tick(at(6)));
        assert!(!give_back.on_tick(at(7)));
        assert_eq!(arena_stats().2, 0, "the arena was trimmed");
    }
}
