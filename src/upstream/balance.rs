//! Choosing among a model's deployments, per shard and lock-free: every
//! counter is a shard-local `Cell`, so a `Balancer` lives in the shard (`Rc`)
//! and is never shared across threads.
//!
//! Strategies:
//! - smooth weighted round-robin (nginx's algorithm, the default): over any
//!   `sum(weights)` consecutive picks each deployment is chosen exactly
//!   `weight` times, spread out rather than in runs;
//! - least in-flight: the fewest requests outstanding, ties broken by smooth
//!   weighted round-robin among the tied;
//! - power of two choices over a peak-sensitive EWMA of latency: two
//!   candidates drawn by weight, the lower `latency × (in_flight + 1)` wins.
//!   A slower sample replaces the average at once; a faster one blends in.
//!   While a deployment gets no samples its average decays towards zero, so
//!   one that got slow and was therefore avoided is tried again later; an
//!   unknown latency counts as zero (optimistic), so new deployments are tried.
//!
//! Invariants: unavailable (ejected) deployments are skipped unless every
//! deployment not excluded is unavailable, in which case those are used (a
//! request has a better chance on an ejected deployment than on none);
//! excluded deployments (already tried for this request) and deployments
//! at their provider quota (a sure 429) are never returned.
//! Time comes in as `Instant` and randomness from [`ShardRng`], so every
//! decision is reproducible in tests.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// The per-shard PRNG for P2C sampling and retry jitter: fastrand's wyrand
/// (one 128-bit multiply per draw), seeded, so tests are reproducible. Not
/// for anything security-sensitive. A `RefCell` because the shard shares it
/// by `&` across the code that draws from it; no draw ever re-enters.
#[derive(Debug)]
pub struct ShardRng {
    rng: RefCell<fastrand::Rng>,
}

impl ShardRng {
    /// Seed per shard (e.g. from the shard index and the start time) so
    /// shards do not make the same choices in lock-step.
    pub fn new(seed: u64) -> ShardRng {
        ShardRng {
            rng: RefCell::new(fastrand::Rng::with_seed(seed)),
        }
    }

    pub fn next_u64(&self) -> u64 {
        self.rng.borrow_mut().u64(..)
    }

    /// Uniform in `0..n` (`n > 0`), without bias.
    pub fn below(&self, n: u64) -> u64 {
        self.rng.borrow_mut().u64(..n)
    }

    /// Uniform duration in `lo..=hi` (nanosecond resolution).
    pub fn duration_between(&self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_nanos().min(u128::from(u64::MAX)) as u64;
        lo + Duration::from_nanos(self.rng.borrow_mut().u64(..=span))
    }
}

/// How a `Balancer` chooses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    #[default]
    WeightedRoundRobin,
    LeastInFlight,
    /// Power of two choices over the latency EWMA; `decay` is the time
    /// constant both of the average and of its fading while unsampled.
    LatencyP2c {
        decay: Duration,
    },
}

/// One deployment's shard-local counters.
#[derive(Debug)]
struct Deployment {
    weight: i64,
    /// Smooth WRR's running score.
    current: Cell<i64>,
    in_flight: Cell<u32>,
    available: Cell<bool>,
    at_quota: Cell<bool>,
    /// Latency EWMA in nanoseconds, with the time of its last sample;
    /// `None` until the first sample.
    ewma: Cell<Option<(f64, Instant)>>,
}

/// Picks deployments of one model for one shard.
#[derive(Debug)]
pub struct Balancer {
    strategy: Strategy,
    deployments: Vec<Deployment>,
}

impl Balancer {
    /// One deployment per weight, in the configured order (indices are
    /// positions in `weights`). Weights should be validated as ≥ 1 by the
    /// config; a 0 here counts as 1 so nothing divides by zero or starves.
    pub fn new(strategy: Strategy, weights: &[u32]) -> Balancer {
        let deployments = weights
            .iter()
            .map(|&w| Deployment {
                weight: i64::from(w.max(1)),
                current: Cell::new(0),
                in_flight: Cell::new(0),
                available: Cell::new(true),
                at_quota: Cell::new(false),
                ewma: Cell::new(None),
            })
            .collect();
        Balancer {
            strategy,
            deployments,
        }
    }

    pub fn len(&self) -> usize {
        self.deployments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deployments.is_empty()
    }

    /// Mirrors the breaker: call with `Breaker::is_available(now)` for each
    /// deployment before picking.
    pub fn set_available(&self, index: usize, available: bool) {
        self.deployments[index].available.set(available);
    }

    /// Mirrors the provider quota: call with whether the deployment's
    /// quota is full now for each deployment before picking. A deployment
    /// at its quota is passed over as if excluded.
    pub fn set_at_quota(&self, index: usize, at_quota: bool) {
        self.deployments[index].at_quota.set(at_quota);
    }

    pub fn in_flight(&self, index: usize) -> u32 {
        self.deployments[index].in_flight.get()
    }

    /// The latency average as P2C sees it at `now` (decayed while
    /// unsampled); `None` before the first sample.
    pub fn latency(&self, index: usize, now: Instant) -> Option<Duration> {
        self.decayed_ewma(&self.deployments[index], now)
            .map(|ns| Duration::from_nanos(ns as u64))
    }

    /// The latency average as last sampled (not faded while unsampled);
    /// `None` before the first sample. For the dashboard.
    pub fn last_latency(&self, index: usize) -> Option<Duration> {
        self.deployments[index]
            .ewma
            .get()
            .map(|(ns, _)| Duration::from_nanos(ns as u64))
    }

    /// The deployment for the next attempt, never one in `exclude` nor one
    /// at its quota; `None` when every deployment is one or the other.
    pub fn pick(&self, exclude: &[usize], now: Instant, rng: &ShardRng) -> Option<usize> {
        let not_excluded = |i: usize| !exclude.contains(&i) && !self.deployments[i].at_quota.get();
        let any_available = (0..self.len()).any(|i| not_excluded(i) && self.is_up(i));
        let eligible = |i: usize| not_excluded(i) && (!any_available || self.is_up(i));
        if !(0..self.len()).any(eligible) {
            return None;
        }
        Some(match self.strategy {
            Strategy::WeightedRoundRobin => self.smooth_wrr(eligible),
            Strategy::LeastInFlight => {
                let least = (0..self.len())
                    .filter(|&i| eligible(i))
                    .map(|i| self.in_flight(i))
                    .min()
                    .expect("one is eligible");
                self.smooth_wrr(|i| eligible(i) && self.in_flight(i) == least)
            }
            Strategy::LatencyP2c { .. } => self.p2c(eligible, now, rng),
        })
    }

    /// Counts a request as in flight on `index` until the guard drops.
    pub fn begin(&self, index: usize, now: Instant) -> InFlight<'_> {
        let d = &self.deployments[index];
        d.in_flight.set(d.in_flight.get() + 1);
        InFlight {
            balancer: self,
            index,
            started: now,
            recorded: false,
        }
    }

    fn is_up(&self, index: usize) -> bool {
        self.deployments[index].available.get()
    }

    /// nginx's smooth weighted round-robin over the deployments `take`s.
    fn smooth_wrr(&self, take: impl Fn(usize) -> bool) -> usize {
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (i, d) in self.deployments.iter().enumerate() {
            if !take(i) {
                continue;
            }
            d.current.set(d.current.get() + d.weight);
            total += d.weight;
            if best.is_none_or(|b| d.current.get() > self.deployments[b].current.get()) {
                best = Some(i);
            }
        }
        let b = best.expect("caller checked one is eligible");
        let d = &self.deployments[b];
        d.current.set(d.current.get() - total);
        b
    }

    fn p2c(&self, eligible: impl Fn(usize) -> bool, now: Instant, rng: &ShardRng) -> usize {
        let first = self.weighted_random(&eligible, rng);
        let Some(second) = self.weighted_random_opt(|i| eligible(i) && i != first, rng) else {
            return first;
        };
        let cost = |i: usize| {
            let d = &self.deployments[i];
            let ewma = self.decayed_ewma(d, now).unwrap_or(0.0);
            (ewma * f64::from(d.in_flight.get() + 1), d.in_flight.get())
        };
        // Lower cost wins; equal costs go to the fewer in flight, then the first draw.
        let (a, b) = (cost(first), cost(second));
        if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) {
            second
        } else {
            first
        }
    }

    fn weighted_random(&self, take: impl Fn(usize) -> bool, rng: &ShardRng) -> usize {
        self.weighted_random_opt(take, rng)
            .expect("caller checked one is eligible")
    }

    fn weighted_random_opt(&self, take: impl Fn(usize) -> bool, rng: &ShardRng) -> Option<usize> {
        let total: i64 = (0..self.len())
            .filter(|&i| take(i))
            .map(|i| self.deployments[i].weight)
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = rng.below(total as u64) as i64;
        for i in (0..self.len()).filter(|&i| take(i)) {
            r -= self.deployments[i].weight;
            if r < 0 {
                return Some(i);
            }
        }
        unreachable!("r < total")
    }

    fn decay(&self) -> Duration {
        match self.strategy {
            Strategy::LatencyP2c { decay } => decay,
            _ => DEFAULT_DECAY,
        }
    }

    fn decayed_ewma(&self, d: &Deployment, now: Instant) -> Option<f64> {
        let (ewma, at) = d.ewma.get()?;
        Some(ewma * fade(now.saturating_duration_since(at), self.decay()))
    }

    fn record_latency(&self, index: usize, sample: Duration, now: Instant) {
        let d = &self.deployments[index];
        let sample = sample.as_nanos() as f64;
        let next = match d.ewma.get() {
            // Peak-sensitive: a slower sample is believed at once.
            Some((ewma, _)) if sample > ewma => sample,
            Some((ewma, at)) => {
                let keep = fade(now.saturating_duration_since(at), self.decay());
                ewma * keep + sample * (1.0 - keep)
            }
            None => sample,
        };
        d.ewma.set(Some((next, now)));
    }
}

/// Used for the latency average when the strategy is not P2C (the average is
/// still kept, for [`Balancer::latency`]).
const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// `e^(-elapsed/decay)`: how much of an old average survives `elapsed`.
fn fade(elapsed: Duration, decay: Duration) -> f64 {
    if decay.is_zero() {
        return 0.0;
    }
    (-elapsed.as_secs_f64() / decay.as_secs_f64()).exp()
}

/// A request in flight on one deployment; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight<'a> {
    balancer: &'a Balancer,
    index: usize,
    started: Instant,
    recorded: bool,
}

impl InFlight<'_> {
    pub fn index(&self) -> usize {
        self.index
    }

    /// Records `now - start` as a latency sample, once per request: call it
    /// when the response head arrives (time to first byte, the part of an
    /// LLM call a deployment controls; a stream's length is the model's).
    /// Not called for a failed attempt: the breaker judges failures.
    pub fn record_latency(&mut self, now: Instant) {
        if !self.recorded {
            self.recorded = true;
            let sample = now.saturating_duration_since(self.started);
            self.balancer.record_latency(self.index, sample, now);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let d = &self.balancer.deployments[self.index];
        d.in_flight.set(d.in_flight.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(b: &Balancer, picks: usize, exclude: &[usize]) -> Vec<usize> {
        let rng = ShardRng::new(7);
        let now = Instant::now();
        let mut n = vec![0; b.len()];
        for _ in 0..picks {
            n[b.pick(exclude, now, &rng).unwrap()] += 1;
        }
        n
    }

    #[test]
    fn wrr_honours_weights_exactly_over_every_cycle_and_spreads_them() {
        let b = Balancer::new(Strategy::WeightedRoundRobin, &[5, 1, 1]);
        let rng = ShardRng::new(1);
        let now = Instant::now();
        for _cycle in 0..4 {
            let seq: Vec<usize> = (0..7).map(|_| b.pick(&[], now, &rng).unwrap()).collect();
            // nginx's documented sequence for {5,1,1}: a a b a c a a.
            assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
        }
        let b = Balancer::new(Strategy::WeightedRoundRobin, &[3, 2, 0, 4]);
        for _ in 0..5 {
            assert_eq!(
                counts(&b, 10, &[]),
                [3, 2, 1, 4],
                "zero weight counts as one"
            );
        }
    }

    #[test]
    fn exclusion_is_never_returned_and_all_excluded_is_none() {
        let b = Balancer::new(Strategy::WeightedRoundRobin, &[2, 1, 1]);
        assert_eq!(counts(&b, 30, &[0]), [0, 15, 15]);
        let rng = ShardRng::new(3);
        for s in [
            Strategy::WeightedRoundRobin,
            Strategy::LeastInFlight,
            Strategy::LatencyP2c {
                decay: Duration::from_secs(1),
            },
        ] {
            let b = Balancer::new(s, &[1, 1, 1]);
            for _ in 0..50 {
                assert_eq!(b.pick(&[0, 2], Instant::now(), &rng), Some(1), "{s:?}");
            }
            assert_eq!(b.pick(&[0, 1, 2], Instant::now(), &rng), None, "{s:?}");
            assert_eq!(Balancer::new(s, &[]).pick(&[], Instant::now(), &rng), None);
        }
    }

    #[test]
    fn ejected_deployments_are_skipped_unless_all_are() {
        for s in [
            Strategy::WeightedRoundRobin,
            Strategy::LeastInFlight,
            Strategy::LatencyP2c {
                decay: Duration::from_secs(1),
            },
        ] {
            let b = Balancer::new(s, &[5, 1, 1]);
            b.set_available(0, false);
            let n = counts(&b, 40, &[]);
            assert_eq!(n[0], 0, "{s:?}: ejected one picked");
            assert_eq!(n[1] + n[2], 40);
            // The only available one is excluded: fall back to the ejected.
            b.set_available(2, false);
            assert_eq!(counts(&b, 10, &[1])[1], 0, "{s:?}");
            assert_eq!(counts(&b, 10, &[1]).iter().sum::<usize>(), 10);
            // All ejected: still served, by weight for WRR.
            b.set_available(1, false);
            let n = counts(&b, 70, &[]);
            assert_eq!(n.iter().sum::<usize>(), 70, "{s:?}");
            if s == Strategy::WeightedRoundRobin {
                assert_eq!(n, [50, 10, 10]);
            }
            b.set_available(0, true);
            assert_eq!(counts(&b, 10, &[]), [10, 0, 0], "{s:?}: back in");
        }
    }

    #[test]
    fn a_deployment_at_quota_is_never_picked_even_when_the_rest_are_ejected() {
        for s in [
            Strategy::WeightedRoundRobin,
            Strategy::LeastInFlight,
            Strategy::LatencyP2c {
                decay: Duration::from_secs(1),
            },
        ] {
            let b = Balancer::new(s, &[5, 1]);
            b.set_at_quota(0, true);
            assert_eq!(counts(&b, 20, &[]), [0, 20], "{s:?}");
            // The other one ejected: still it, not the one at quota.
            b.set_available(1, false);
            assert_eq!(counts(&b, 20, &[]), [0, 20], "{s:?}");
            assert_eq!(b.pick(&[1], Instant::now(), &ShardRng::new(1)), None);
            b.set_at_quota(0, false);
            assert_eq!(counts(&b, 12, &[])[0], 12, "{s:?}: back, and 1 is ejected");
        }
    }

    #[test]
    fn least_in_flight_prefers_idle_and_breaks_ties_by_weight() {
        let b = Balancer::new(Strategy::LeastInFlight, &[1, 1, 1]);
        let rng = ShardRng::new(5);
        let now = Instant::now();
        let g0 = b.begin(0, now);
        let g1 = b.begin(1, now);
        let _g1b = b.begin(1, now);
        for _ in 0..10 {
            assert_eq!(b.pick(&[], now, &rng), Some(2));
        }
        let g2 = b.begin(2, now);
        let _g2b = b.begin(2, now);
        // 0 has one in flight, 1 and 2 two each.
        assert_eq!(b.pick(&[], now, &rng), Some(0));
        drop(g1);
        assert_eq!(b.in_flight(1), 1);
        // 0 and 1 tie at one: alternate.
        let seq: Vec<_> = (0..4).map(|_| b.pick(&[], now, &rng).unwrap()).collect();
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 2, "{seq:?}");
        assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 2, "{seq:?}");
        drop((g0, g2));
        assert_eq!((b.in_flight(0), b.in_flight(1), b.in_flight(2)), (0, 1, 1));
        assert_eq!(b.pick(&[], now, &rng), Some(0));
        // Tied by in-flight, weights decide.
        let w = Balancer::new(Strategy::LeastInFlight, &[3, 1]);
        assert_eq!(counts(&w, 8, &[]), [6, 2]);
    }

    /// Sequential traffic, one request every 10 ms for 30 s per phase;
    /// deployment 1 is slow in the middle phase. Returns deployment 1's
    /// share of the second half of each phase (the first half adapts).
    fn p2c_phases(decay: Duration) -> [f64; 3] {
        let b = Balancer::new(Strategy::LatencyP2c { decay }, &[1, 1]);
        let rng = ShardRng::new(11);
        let t0 = Instant::now() + Duration::from_secs(1);
        let fast = Duration::from_millis(20);
        let slow = Duration::from_millis(800);
        let per_phase = 3000;
        let mut shares = [0.0; 3];
        for (phase, share) in shares.iter_mut().enumerate() {
            let mut ones = 0;
            for k in 0..per_phase {
                let now = t0 + Duration::from_millis(10 * (phase * per_phase + k) as u64);
                let i = b.pick(&[], now, &rng).unwrap();
                let latency = if i == 1 && phase == 1 { slow } else { fast };
                // Requests overlap: this one's response arrives now, sent `latency` ago.
                let mut g = b.begin(i, now - latency);
                g.record_latency(now);
                ones += usize::from(i == 1 && k >= per_phase / 2);
            }
            *share = ones as f64 / (per_phase / 2) as f64;
        }
        shares
    }

    #[test]
    fn p2c_moves_traffic_off_a_slow_deployment_and_back_after_recovery() {
        let [before, slow, after] = p2c_phases(Duration::from_secs(1));
        assert!((0.4..=0.6).contains(&before), "before: {before}");
        assert!(slow < 0.02, "while slow: {slow}");
        assert!(slow > 0.0, "the slow one must still be re-tried: {slow}");
        assert!((0.4..=0.6).contains(&after), "after recovery: {after}");
    }

    #[test]
    fn p2c_tries_unknown_latency_first_and_weighs_in_flight() {
        let b = Balancer::new(
            Strategy::LatencyP2c {
                decay: Duration::from_secs(10),
            },
            &[1, 1],
        );
        let rng = ShardRng::new(2);
        let now = Instant::now();
        let mut g = b.begin(0, now);
        g.record_latency(now + Duration::from_millis(5));
        drop(g);
        // 1 has no samples yet: optimistic, always chosen.
        for _ in 0..20 {
            assert_eq!(b.pick(&[], now, &rng), Some(1));
        }
        let mut g = b.begin(1, now);
        g.record_latency(now + Duration::from_millis(5));
        g.record_latency(now + Duration::from_secs(100)); // only the first counts
        drop(g);
        assert_eq!(b.latency(1, now), Some(Duration::from_millis(5)));
        // Equal latency: the one with requests in flight loses.
        let _busy = b.begin(0, now);
        for _ in 0..20 {
            assert_eq!(b.pick(&[], now, &rng), Some(1));
        }
        // Unsampled, the average fades.
        let later = b.latency(1, now + Duration::from_secs(10)).unwrap();
        assert!(later < Duration::from_millis(2), "{later:?}");
    }

    #[test]
    fn shard_rng_is_seeded_and_uniform_enough() {
        let (a, b) = (ShardRng::new(42), ShardRng::new(42));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(ShardRng::new(43).next_u64(), xs[0]);
        let mut hist = [0u32; 4];
        for _ in 0..4000 {
            hist[a.below(4) as usize] += 1;
        }
        assert!(hist.iter().all(|&h| (900..1100).contains(&h)), "{hist:?}");
        let lo = Duration::from_millis(10);
        let hi = Duration::from_millis(20);
        for _ in 0..100 {
            let d = a.duration_between(lo, hi);
            assert!(lo <= d && d <= hi);
        }
        assert_eq!(a.duration_between(hi, lo), hi);
    }
}
