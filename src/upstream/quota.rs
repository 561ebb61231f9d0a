//! Provider quotas: requests and tokens per minute a deployment (or a
//! whole provider) may take, counted for the whole instance, every shard
//! together. This file owns the counting window ([`Window`]), the pair of
//! windows a quota keeps ([`QuotaCounters`]), and the limits read against
//! them ([`Quota`]); it is sans-IO: time comes in as whole seconds
//! (`now`), so every decision is reproducible in tests.
//!
//! A [`Window`] is a ring of 60 one-second slots. A count lands in the slot
//! of the second it happened; the window's total is what the last 60 whole
//! seconds hold (the current second included), so a quota holds over any
//! 60 s window aligned to whole seconds.
//!
//! Invariants:
//! - Lock-free and shared (`Sync`): a slot is one `AtomicU64` packing
//!   (second, count); `total` is the sum of the counts not yet expired,
//!   kept beside them so a check is one load, not 60.
//! - Every count is added to `total` before it is put in a slot, and
//!   subtracted exactly once: by whoever's compare-and-swap takes it out of
//!   its slot (expiry by the sweep, or a writer reusing the slot for a new
//!   second). So `total` never underflows; it may run ahead of the slots by
//!   the counts being added at that instant (a check errs on the full side).
//! - The sweep that expires slots which fell out of the window runs at most
//!   once per second per window (whoever advances `swept` does it), so the
//!   steady-state cost of a check is two loads, of a count one CAS and one
//!   add.
//! - A window sits on cache lines of its own (`align(64)`), so two
//!   deployments' windows never share one.
//!
//! How close a quota holds (the callers' side, `proxy/route.rs` and
//! `proxy/attempt.rs`): a request is checked when its deployment is picked
//! and counted when it is sent, with no await between the two for a body
//! scanned on the loop, so past a full window at most one request per
//! shard (plus any whose large body was being processed off the loop) can
//! still go. Tokens are counted when the response settles, so requests in
//! flight while a tpm window fills are not held back: a tpm quota can be
//! overrun by what those requests use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Seconds a window spans.
pub const WINDOW_SECS: u64 = 60;
const SLOTS: usize = WINDOW_SECS as usize;

/// Whole seconds since the first call in this process: the clock quota
/// windows are read on. Monotonic, and one for all generations, so windows
/// carried over a reload keep their meaning.
pub fn now_secs(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    at.saturating_duration_since(epoch).as_secs()
}

fn pack(second: u64, count: u64) -> u64 {
    (second << 32) | count
}

fn second_of(slot: u64) -> u64 {
    slot >> 32
}

fn count_of(slot: u64) -> u64 {
    slot & u64::from(u32::MAX)
}

/// A count over the last [`WINDOW_SECS`] whole seconds (see the module
/// header). Seconds are stored in 32 bits (136 years from the clock's
/// start), a second's count in 32 bits (saturating).
#[derive(Debug)]
#[repr(align(64))]
pub struct Window {
    total: AtomicU64,
    /// Every slot whose second fell out of the window at or before this
    /// second has been expired.
    swept: AtomicU64,
    slots: [AtomicU64; SLOTS],
}

impl Default for Window {
    fn default() -> Window {
        Window {
            total: AtomicU64::new(0),
            swept: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(pack(0, 0))),
        }
    }
}

impl Window {
    /// What the window holds at second `now`.
    pub fn used(&self, now: u64) -> u64 {
        self.sweep(now);
        self.total.load(Ordering::Acquire)
    }

    /// Counts `n` at second `now`. A count for a second already out of the
    /// window (a caller that slept past it) is dropped.
    pub fn add(&self, now: u64, n: u64) {
        let n = n.min(u64::from(u32::MAX));
        if n == 0 {
            return;
        }
        self.sweep(now);
        // Into the total first: whoever later takes the count out of its
        // slot subtracts it, and must find it there.
        self.total.fetch_add(n, Ordering::AcqRel);
        let slot = &self.slots[(now % WINDOW_SECS) as usize];
        let mut current = slot.load(Ordering::Acquire);
        let kept = loop {
            let (second, count) = (second_of(current), count_of(current));
            let (next, kept, displaced) = if second == now {
                let sum = (count + n).min(u64::from(u32::MAX));
                (pack(now, sum), sum - count, 0)
            } else if second < now {
                // The slot's last second is over a window ago: reuse it.
                (pack(now, n), n, count)
            } else {
                // The slot already counts a later second: `now` is stale.
                break 0;
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if displaced > 0 {
                        self.total.fetch_sub(displaced, Ordering::AcqRel);
                    }
                    break kept;
                }
                Err(seen) => current = seen,
            }
        };
        if kept < n {
            self.total.fetch_sub(n - kept, Ordering::AcqRel);
        }
    }

    /// Whole seconds from `now` until the oldest second the window holds
    /// falls out of it (at least 1; 1 for an empty window).
    pub fn frees_in(&self, now: u64) -> u64 {
        self.sweep(now);
        let oldest = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&s| count_of(s) > 0 && live(second_of(s), now))
            .map(second_of)
            .min();
        oldest.map_or(1, |s| (s + WINDOW_SECS).saturating_sub(now).max(1))
    }

    /// Expires the slots that fell out of the window since the last sweep;
    /// one caller per second does it, the others return at once.
    fn sweep(&self, now: u64) {
        let mut swept = self.swept.load(Ordering::Acquire);
        loop {
            if swept >= now {
                return;
            }
            match self
                .swept
                .compare_exchange_weak(swept, now, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(seen) => swept = seen,
            }
        }
        // The slots of the seconds in (swept, now] are those whose previous
        // seconds expired in that span (all of them after a quiet minute).
        let first = (swept + 1).max(now.saturating_sub(WINDOW_SECS - 1));
        for t in first..=now {
            let slot = &self.slots[(t % WINDOW_SECS) as usize];
            let mut current = slot.load(Ordering::Acquire);
            loop {
                let (second, count) = (second_of(current), count_of(current));
                if count == 0 || live(second, now) {
                    break;
                }
                let emptied = pack(second, 0);
                match slot.compare_exchange_weak(
                    current,
                    emptied,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.total.fetch_sub(count, Ordering::AcqRel);
                        break;
                    }
                    Err(seen) => current = seen,
                }
            }
        }
    }
}

/// Whether second `second` is inside the window ending at `now`.
fn live(second: u64, now: u64) -> bool {
    second + WINDOW_SECS > now
}

/// A quota's two counts: requests sent and tokens used. Shared by every
/// shard (`Arc`), and carried over a reload for a deployment that stayed.
#[derive(Debug, Default)]
pub struct QuotaCounters {
    pub requests: Window,
    pub tokens: Window,
}

/// A provider's quota as configured: `rpm` requests and `tpm` tokens per
/// minute (either may be absent), read against counters shared by the
/// whole instance.
#[derive(Clone, Debug)]
pub struct Quota {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    counters: Arc<QuotaCounters>,
}

impl Quota {
    /// A quota with fresh counters; `None` when neither limit is set.
    pub fn new(rpm: Option<u64>, tpm: Option<u64>) -> Option<Quota> {
        (rpm.is_some() || tpm.is_some()).then(|| Quota {
            rpm,
            tpm,
            counters: Arc::default(),
        })
    }

    /// Takes over `old`'s counters (the same deployment in the previous
    /// configuration), so a reload does not reset what the last minute
    /// used; the limits stay this quota's own.
    pub fn carry_over(&mut self, old: &Quota) {
        self.counters = old.counters.clone();
    }

    pub fn counters(&self) -> &QuotaCounters {
        &self.counters
    }

    /// `None` while there is room at second `now`; once a limit is
    /// reached, the whole seconds until the window that holds it frees its
    /// oldest second (with both full, the later of the two).
    pub fn full(&self, now: u64) -> Option<u64> {
        let c = &self.counters;
        let check = |limit: Option<u64>, w: &Window| {
            limit.filter(|&l| w.used(now) >= l).map(|_| w.frees_in(now))
        };
        match (check(self.rpm, &c.requests), check(self.tpm, &c.tokens)) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
        }
    }

    /// One request sent at second `now`.
    pub fn count_request(&self, now: u64) {
        if self.rpm.is_some() {
            self.counters.requests.add(now, 1);
        }
    }

    /// `tokens` used by a request that settled at second `now`.
    pub fn count_tokens(&self, now: u64, tokens: u64) {
        if self.tpm.is_some() {
            self.counters.tokens.add(now, tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: the plain sum of what was added within the window.
    fn model_sum(adds: &[(u64, u64)], now: u64) -> u64 {
        adds.iter()
            .filter(|&&(t, _)| t <= now && live(t, now))
            .map(|&(_, n)| n)
            .sum()
    }

    #[test]
    fn counts_over_the_last_sixty_whole_seconds() {
        let w = Window::default();
        assert_eq!(w.used(0), 0);
        w.add(0, 3);
        w.add(0, 2);
        w.add(10, 4);
        assert_eq!(w.used(10), 9);
        assert_eq!(w.used(59), 9);
        // Second 0 leaves the window as second 60 starts.
        assert_eq!(w.used(60), 4);
        assert_eq!(w.used(69), 4);
        assert_eq!(w.used(70), 0);
        // The slot second 0 used is reused for second 120.
        w.add(120, 1);
        assert_eq!(w.used(120), 1);
        // After a quiet hour, everything has gone.
        w.add(121, 7);
        assert_eq!(w.used(3600), 0);
    }

    #[test]
    fn frees_in_is_until_the_oldest_held_second_leaves() {
        let w = Window::default();
        assert_eq!(w.frees_in(5), 1, "empty");
        w.add(5, 1);
        w.add(30, 1);
        assert_eq!(w.frees_in(5), 60);
        assert_eq!(w.frees_in(40), 25);
        assert_eq!(w.frees_in(64), 1);
        assert_eq!(w.frees_in(65), 25, "second 5 has left; 30 is the oldest");
    }

    #[test]
    fn a_stale_writer_is_dropped_and_counts_saturate() {
        let w = Window::default();
        w.add(100, 1);
        // A writer still at second 40 finds slot 40 % 60 = 100 % 60 taken
        // by a later second: its count is outside the window, dropped.
        w.add(40, 5);
        assert_eq!(w.used(100), 1);
        w.add(101, u64::MAX);
        w.add(101, 10);
        assert_eq!(w.used(101), 1 + u64::from(u32::MAX));
    }

    #[test]
    fn quota_is_full_at_either_limit_with_the_time_until_room() {
        let q = Quota::new(Some(2), Some(100)).unwrap();
        assert!(Quota::new(None, None).is_none());
        q.count_request(0);
        assert_eq!(q.full(0), None);
        q.count_request(1);
        assert_eq!(q.full(1), Some(59), "rpm full until second 0 leaves");
        assert_eq!(q.full(60), None);
        q.count_tokens(60, 150);
        assert_eq!(q.full(61), Some(59), "tpm");
        q.count_request(61);
        // Both full: the later of the two frees.
        assert_eq!(q.full(61), Some(59));
        let q = Quota::new(Some(1), None).unwrap();
        q.count_tokens(0, 1_000_000);
        assert_eq!(q.full(0), None, "tokens are not counted without a tpm");
    }

    #[test]
    fn carried_counters_are_shared_and_limits_are_the_new_ones() {
        let old = Quota::new(Some(1), None).unwrap();
        old.count_request(3);
        let mut new = Quota::new(Some(2), None).unwrap();
        new.carry_over(&old);
        assert_eq!(new.full(3), None);
        new.count_request(3);
        assert!(new.full(3).is_some());
        assert_eq!(old.counters().requests.used(3), 2);
    }

    #[test]
    fn concurrent_adds_and_reads_from_several_threads_agree_with_the_sum() {
        // 8 threads add over 150 simulated seconds, each second's adds by
        // all threads at once, reading as they go; afterwards every
        // second's window equals the plain sum.
        let w = Arc::new(Window::default());
        let threads = 8;
        let per_second = 500;
        let seconds = 150;
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (w, barrier) = (w.clone(), barrier.clone());
                std::thread::spawn(move || {
                    for t in 0..seconds {
                        barrier.wait();
                        for i in 0..per_second {
                            w.add(t, 1 + (i + k as u64) % 3);
                            let seen = w.used(t);
                            // Never more than a full window can hold.
                            assert!(seen <= 60 * 8 * 500 * 3, "{seen}");
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let per_thread_second: u64 = (0..threads as u64)
            .map(|k| (0..per_second).map(|i| 1 + (i + k) % 3).sum::<u64>())
            .sum();
        let adds: Vec<(u64, u64)> = (0..seconds).map(|t| (t, per_thread_second)).collect();
        for now in [seconds - 1, seconds + 10, seconds + 58, seconds + 59, 400] {
            assert_eq!(w.used(now), model_sum(&adds, now), "at {now}");
        }
    }

    #[test]
    fn concurrent_seconds_racing_over_a_boundary_stay_consistent() {
        // Threads disagree about the second (some a second behind) while
        // the clock runs: the total must never underflow, and once they
        // stop it must match the slots exactly.
        let w = Arc::new(Window::default());
        let handles: Vec<_> = (0..6)
            .map(|k| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for step in 0..20_000u64 {
                        let now = step / 100 + if k % 2 == 0 { 0 } else { 1 };
                        w.add(now, 1);
                        assert!(w.used(now) < 1 << 40, "underflow");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let now = 201;
        let slots_sum: u64 = w
            .slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&s| live(second_of(s), now))
            .map(count_of)
            .sum();
        assert_eq!(w.used(now), slots_sum);
        assert_eq!(w.used(now + 60), 0);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any sequence of adds and reads with a clock that never goes
            /// back gives exactly the plain sum, and `frees_in` the time
            /// until the oldest held second leaves.
            #[test]
            fn window_matches_the_plain_sum(
                steps in prop::collection::vec((0u64..90, 0u64..1000, any::<bool>()), 1..200)
            ) {
                let w = Window::default();
                let mut now = 0;
                let mut adds = Vec::new();
                for (dt, n, read) in steps {
                    now += dt / 30; // mostly the same second, sometimes a jump
                    if read {
                        prop_assert_eq!(w.used(now), model_sum(&adds, now));
                        let oldest = adds
                            .iter()
                            .filter(|&&(t, n)| n > 0 && live(t, now))
                            .map(|&(t, _)| t)
                            .min();
                        let expect = oldest.map_or(1, |t| (t + WINDOW_SECS - now).max(1));
                        prop_assert_eq!(w.frees_in(now), expect);
                    } else {
                        w.add(now, n);
                        adds.push((now, n));
                    }
                }
                prop_assert_eq!(w.used(now), model_sum(&adds, now));
            }
        }
    }
}
