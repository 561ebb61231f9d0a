//! The log phase: what one request came to (route, provider, status,
//! timings, tokens), recorded into the shard's metrics and access log once
//! the response is done. One `Outcome` per connection, reused, so recording
//! allocates nothing in steady state.

use std::time::{Duration, Instant, SystemTime};

use super::endpoint::{ROUTE_NAMES, UNKNOWN_ROUTE};
use crate::api::usage::Usage;
use crate::shard::{Generation, Shard};
use crate::telemetry::{metrics, AccessRecord, RequestMetrics};

pub struct Outcome {
    pub started: Instant,
    pub route: usize,
    pub provider: Option<usize>,
    pub status: u16,
    /// Request sent upstream → response relayed.
    pub upstream: Option<Duration>,
    /// Request start → first response body bytes written (streams).
    pub ttft: Option<Duration>,
    pub usage: Option<Usage>,
    /// The model the client asked for.
    pub model: String,
    /// The model name sent upstream (prices are by it).
    pub upstream_model: String,
    /// The client's `x-request-id`, or one generated for it.
    pub request_id: String,
    pub bytes_in: u64,
    /// The upstream cut the response before its end.
    pub truncated: bool,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            started: Instant::now(),
            route: UNKNOWN_ROUTE,
            provider: None,
            status: 0,
            upstream: None,
            ttft: None,
            usage: None,
            model: String::with_capacity(64),
            upstream_model: String::with_capacity(64),
            request_id: String::with_capacity(64),
            bytes_in: 0,
            truncated: false,
        }
    }
}

impl Outcome {
    /// Starts a new request.
    pub fn reset(&mut self, started: Instant) {
        self.started = started;
        self.route = UNKNOWN_ROUTE;
        self.provider = None;
        self.status = 0;
        self.upstream = None;
        self.ttft = None;
        self.usage = None;
        self.model.clear();
        self.upstream_model.clear();
        self.request_id.clear();
        self.bytes_in = 0;
        self.truncated = false;
    }

    /// Records the finished request in the shard's metrics and access log.
    pub fn record(&self, shard: &Shard, generation: &Generation) {
        let total = self.started.elapsed();
        let labels = shard.metrics.labels();
        let usage = self.usage.unwrap_or_default();
        let cost_micros = generation
            .gateway
            .router
            .prices
            .cost_micros(&self.upstream_model, &usage);
        if self.truncated {
            let provider = self
                .provider
                .map_or(labels.no_provider(), |p| labels.provider(p));
            shard.metrics.error(provider, "truncated");
        }
        shard.metrics.record_request(&RequestMetrics {
            route: labels.route(self.route),
            provider: self
                .provider
                .map_or(labels.no_provider(), |p| labels.provider(p)),
            model: labels.model(&self.model),
            status: self.status,
            total,
            upstream: self.upstream,
            ttft: self.ttft,
            usage: metrics::Usage {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cost_micros,
            },
        });
        if let Some(log) = shard.access_log.borrow_mut().as_mut() {
            let provider = self
                .provider
                .and_then(|p| generation.gateway.router.providers.get(p))
                .map(|p| p.name.as_str());
            log.log(
                &AccessRecord {
                    time: SystemTime::now(),
                    request_id: &self.request_id,
                    key_id: None,
                    route: ROUTE_NAMES[self.route],
                    model: &self.model,
                    provider,
                    status: self.status,
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    cost_micros,
                    overhead: total.saturating_sub(self.upstream.unwrap_or_default()),
                    upstream: self.upstream,
                    ttft: self.ttft,
                    bytes_in: self.bytes_in,
                    bytes_out: 0,
                    truncated: self.truncated,
                },
                Instant::now(),
            );
        }
    }
}
