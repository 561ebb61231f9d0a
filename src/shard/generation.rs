//! A configuration generation's per-shard state: the published `Gateway`
//! (config and routing tables) and what this shard keeps for it: upstream
//! pools, in-flight slots per provider, each configured model's balancer
//! and breakers, the retry budget and the shard's PRNG.
//!
//! Invariant: a request holds an `Rc` to the generation it started on and
//! finishes on it; a reload builds a new generation (carrying breaker
//! state over for deployments that stayed) and never mutates an old one.

use std::cell::Cell;
use std::sync::Arc;

use super::Gateway;
use crate::providers::router::{Deployment, Router};
use crate::telemetry::health::{BreakerState, DeploymentHealth};
use crate::upstream::balance::{Balancer, ShardRng};
use crate::upstream::breaker::Breaker;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::UpstreamPool;

/// One configuration generation as a shard uses it: the gateway and the
/// shard's upstream pools for its providers (indexed like
/// `gateway.router.providers`). Requests hold an `Rc` to the generation
/// they started on.
pub struct Generation {
    pub gateway: Arc<Gateway>,
    pub pools: Vec<UpstreamPool>,
    /// Requests in flight to each provider from this shard.
    in_flight: Vec<Cell<usize>>,
    /// Per configured model (indexed like `gateway.router.model_routes`):
    /// its balancer and one breaker per deployment.
    pub models: Vec<ModelState>,
    /// Retry rules and this shard's retry budget.
    pub retry: RetryPolicy,
    pub rng: ShardRng,
}

/// Copies each breaker's state from the same deployment in `old`.
fn carry_breakers(gateway: &Gateway, models: &[ModelState], old: &Generation) {
    let (new_router, old_router) = (&gateway.router, &old.gateway.router);
    let key = |router: &Router, d: &Deployment| {
        (
            router.providers[d.provider].name.clone(),
            d.upstream_model.clone(),
        )
    };
    for (route, state) in new_router.model_routes.iter().zip(models) {
        let Some(o) = old_router.model_index(&route.name) else {
            continue;
        };
        let old_route = &old_router.model_routes[o];
        for (d, breaker) in route.deployments.iter().zip(&state.breakers) {
            let found = old_route
                .deployments
                .iter()
                .position(|od| key(old_router, od) == key(new_router, d));
            if let Some(i) = found {
                breaker.carry_over(&old.models[o].breakers[i]);
            }
        }
    }
}

/// One configured model's shard-local health and load state.
pub struct ModelState {
    pub balancer: Balancer,
    pub breakers: Vec<Breaker>,
}

impl Generation {
    /// The routes of `gateway`; breakers of deployments that `previous` had
    /// too (same model, provider name and upstream model) keep their state,
    /// so a reload neither forgets an ejection nor ejects anew.
    pub(super) fn new(gateway: Arc<Gateway>, previous: Option<&Generation>) -> Generation {
        let up = &gateway.config.upstream;
        let pools = gateway
            .router
            .providers
            .iter()
            .map(|_| UpstreamPool::new(up.pool_max_idle, up.pool_idle_timeout_ms))
            .collect();
        let in_flight = gateway
            .router
            .providers
            .iter()
            .map(|_| Cell::new(0))
            .collect();
        let res = &gateway.config.resilience;
        let breaker = crate::upstream::breaker::BreakerConfig::from(res);
        let models: Vec<ModelState> = gateway
            .router
            .model_routes
            .iter()
            .map(|m| ModelState {
                balancer: Balancer::new(m.strategy, &m.weights),
                breakers: m
                    .deployments
                    .iter()
                    .map(|_| Breaker::new(breaker.clone()))
                    .collect(),
            })
            .collect();
        if let Some(old) = previous {
            carry_breakers(&gateway, &models, old);
        }
        let now = std::time::Instant::now();
        let retry = RetryPolicy::new(crate::upstream::retry::RetryConfig::from(res), now);
        // Seeded per shard and generation: jitter must differ between shards.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (&now as *const std::time::Instant as u64);
        Generation {
            gateway,
            pools,
            in_flight,
            models,
            retry,
            rng: ShardRng::new(seed),
        }
    }

    /// Each deployment's breaker state, in-flight count and latency on this
    /// shard, for a metrics snapshot (built when a scrape asks, off the
    /// request path).
    pub fn deployment_health(&self) -> Vec<DeploymentHealth> {
        let router = &self.gateway.router;
        let mut rows = Vec::new();
        for (route, state) in router.model_routes.iter().zip(&self.models) {
            let model: Arc<str> = Arc::from(route.name.as_str());
            for (i, (d, breaker)) in route.deployments.iter().zip(&state.breakers).enumerate() {
                let breaker = if breaker.is_half_open() {
                    BreakerState::HalfOpen
                } else if breaker.is_ejected() {
                    BreakerState::Ejected
                } else {
                    BreakerState::Closed
                };
                rows.push(DeploymentHealth {
                    model: model.clone(),
                    index: i.min(u16::MAX as usize) as u16,
                    provider: Arc::from(router.providers[d.provider].name.as_str()),
                    upstream_model: Arc::from(d.upstream_model.as_str()),
                    breaker,
                    in_flight: state.balancer.in_flight(i),
                    latency_us: state
                        .balancer
                        .last_latency(i)
                        .map(|l| u64::try_from(l.as_micros()).unwrap_or(u64::MAX)),
                });
            }
        }
        rows
    }

    /// Takes one of the `limits.max_in_flight_per_upstream` slots for
    /// provider `provider` until the guard drops; `None` when all are taken.
    pub fn upstream_slot(&self, provider: usize) -> Option<UpstreamSlot<'_>> {
        let cell = &self.in_flight[provider];
        if cell.get() >= self.gateway.config.limits.max_in_flight_per_upstream {
            return None;
        }
        cell.set(cell.get() + 1);
        Some(UpstreamSlot(cell))
    }
}

/// A request in flight to one provider (see [`Generation::upstream_slot`]).
pub struct UpstreamSlot<'a>(&'a Cell<usize>);

impl Drop for UpstreamSlot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
