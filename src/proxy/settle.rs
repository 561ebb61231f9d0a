//! The log phase: what a request came to (its `Outcome`), recorded into
//! the shard's metrics, access log and (with tracing on) trace once its
//! response is done, whatever
//! answered it (an upstream, the gateway itself, or a cut), and the tokens
//! it used into the provider quotas it counts against. Allocates nothing in
//! steady state.

use std::time::SystemTime;

use super::context::RequestCtx;
use super::endpoint::ROUTE_NAMES;
use super::govern;
use crate::runtime::loop_now;
use crate::shard::Shard;
use crate::telemetry::{metrics, AccessRecord, RequestMetrics};

/// Records the finished request in the shard's metrics and access log.
pub(super) fn settle(shard: &Shard, ctx: &mut RequestCtx) {
    let generation = ctx.generation().clone();
    let (outcome, router) = (&ctx.outcome, &generation.gateway.router);
    // One lookup prices the request for the metrics and for its key.
    let price = router.prices.price(&outcome.upstream_model);
    if let Some(gate) = ctx.side.gate.take() {
        // Answered: some of the upstream's response reached the client (a
        // 2xx, or a stream cut or left mid-way), so its work is paid for.
        let answered = (200..300).contains(&outcome.status) || outcome.ttft.is_some();
        govern::settle(
            gate,
            price,
            outcome.usage,
            answered,
            outcome.bytes_in,
            outcome.output_seen,
        );
    }
    // A clock read, not the loop clock: the request's duration.
    let total = outcome.started.elapsed();
    let labels = shard.metrics.labels();
    let usage = outcome.usage.unwrap_or_default();
    if let (Some(p), Some(u)) = (outcome.provider, outcome.usage) {
        let tokens = u.input_tokens + u.output_tokens;
        let second = crate::upstream::quota::now_secs(loop_now());
        for q in router.quotas(p, outcome.deployment) {
            q.count_tokens(second, tokens);
        }
    }
    let cost_nanos = price.map_or(0, |p| p.cost_nanos(&usage));
    let provider = outcome
        .provider
        .map_or(labels.no_provider(), |p| labels.provider(p));
    if let Some(kind) = outcome.error {
        shard.metrics.error(provider, kind);
    }
    if outcome.truncated {
        shard.metrics.error(provider, "truncated");
    }
    shard.metrics.record_request(&RequestMetrics {
        route: labels.route(outcome.route),
        provider,
        model: labels.model(&outcome.model),
        status: outcome.status,
        total,
        upstream: outcome.upstream,
        ttft: outcome.ttft,
        usage: metrics::Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            cost_nanos,
        },
    });
    if let Some(log) = shard.access_log.borrow_mut().as_mut() {
        let provider = outcome
            .provider
            .and_then(|p| router.providers.get(p))
            .map(|p| p.name.as_str());
        log.log(
            &AccessRecord {
                time: SystemTime::now(),
                request_id: &outcome.request_id,
                key_id: ctx.key.as_ref().map(|k| k.spec.id.as_str()),
                team: ctx.key.as_ref().and_then(|k| k.spec.team.as_deref()),
                route: ROUTE_NAMES[outcome.route],
                model: &outcome.model,
                provider,
                status: outcome.status,
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cache_read_tokens: usage.cache_read_tokens,
                cache_write_tokens: usage.cache_write_tokens,
                cost_nanos,
                overhead: total.saturating_sub(outcome.upstream.unwrap_or_default()),
                upstream: outcome.upstream,
                ttft: outcome.ttft,
                bytes_in: outcome.bytes_in,
                bytes_out: outcome.bytes_out,
                truncated: outcome.truncated,
                cache: outcome.cache,
            },
            loop_now(),
        );
    }
    super::trace::finish(shard, ctx);
}
