//! Each deployment's health as the shards see it: its breaker's state, the
//! requests in flight to it and its latency average, one row per shard in a
//! [`super::MetricsSnapshot`], folded across shards at scrape time.
//!
//! Invariants: a breaker and a balancer are per shard, so a deployment may
//! be ejected on one shard and healthy on another; the merge says how many
//! shards see it each way rather than picking one. Rows are built only when
//! a scrape asks (the housekeeping tick), never on the request path.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A deployment's breaker on one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// The cool-down ended; one probe decides.
    HalfOpen,
    Ejected,
}

/// One deployment on one shard.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentHealth {
    pub model: Arc<str>,
    /// Its index in the model's deployments.
    pub index: u16,
    pub provider: Arc<str>,
    pub upstream_model: Arc<str>,
    pub breaker: BreakerState,
    pub in_flight: u32,
    /// The balancer's latency average (time to the response head), µs;
    /// `None` before the first sample.
    pub latency_us: Option<u64>,
}

/// One deployment over every shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergedHealth {
    pub provider: Arc<str>,
    pub upstream_model: Arc<str>,
    /// Shards that reported it.
    pub shards: u32,
    pub half_open: u32,
    pub ejected: u32,
    pub in_flight: u64,
    /// The slowest shard's average, µs.
    pub latency_us: Option<u64>,
}

impl MergedHealth {
    /// `closed` on every shard, `ejected` on every shard, else `degraded`
    /// (ejected or probing on some).
    pub fn state(&self) -> &'static str {
        match (self.ejected + self.half_open, self.shards) {
            (0, _) => "closed",
            (n, all) if n >= all && self.half_open == 0 => "ejected",
            (n, all) if n >= all => "half_open",
            _ => "degraded",
        }
    }
}

/// (model, deployment index) → its merged health.
pub type HealthMap = BTreeMap<(Arc<str>, u16), MergedHealth>;

/// Adds one shard's rows to `into`.
pub fn merge_into(into: &mut HealthMap, rows: &[DeploymentHealth]) {
    for r in rows {
        let m = into.entry((r.model.clone(), r.index)).or_default();
        m.provider = r.provider.clone();
        m.upstream_model = r.upstream_model.clone();
        m.shards += 1;
        match r.breaker {
            BreakerState::Closed => {}
            BreakerState::HalfOpen => m.half_open += 1,
            BreakerState::Ejected => m.ejected += 1,
        }
        m.in_flight += u64::from(r.in_flight);
        m.latency_us = m.latency_us.max(r.latency_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(breaker: BreakerState, in_flight: u32, latency_us: Option<u64>) -> DeploymentHealth {
        DeploymentHealth {
            model: "m".into(),
            index: 0,
            provider: "p".into(),
            upstream_model: "up".into(),
            breaker,
            in_flight,
            latency_us,
        }
    }

    #[test]
    fn shards_fold_into_one_row_with_counts_per_state() {
        let mut map = HealthMap::new();
        merge_into(&mut map, &[row(BreakerState::Closed, 2, Some(900))]);
        let only = &map[&(Arc::from("m"), 0)];
        assert_eq!(only.state(), "closed");
        merge_into(&mut map, &[row(BreakerState::Ejected, 1, None)]);
        merge_into(&mut map, &[row(BreakerState::Closed, 0, Some(1500))]);
        let m = &map[&(Arc::from("m"), 0)];
        assert_eq!((m.shards, m.ejected, m.in_flight), (3, 1, 3));
        assert_eq!(m.latency_us, Some(1500));
        assert_eq!(m.state(), "degraded");

        let mut all = HealthMap::new();
        merge_into(&mut all, &[row(BreakerState::Ejected, 0, None)]);
        merge_into(&mut all, &[row(BreakerState::Ejected, 0, None)]);
        assert_eq!(all[&(Arc::from("m"), 0)].state(), "ejected");
        merge_into(&mut all, &[row(BreakerState::HalfOpen, 0, None)]);
        assert_eq!(all[&(Arc::from("m"), 0)].state(), "half_open");
    }
}
