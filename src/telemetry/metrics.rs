//! Per-shard metrics, merged at scrape time.
//!
//! Each shard owns one [`ShardMetrics`]: plain `Cell`/`RefCell` state, never
//! shared, so recording is a few non-atomic adds (and, for labelled request
//! counters, one small-integer hash lookup). A scrape asks every shard for a
//! [`MetricsSnapshot`] (a `Send` copy) and folds them into one
//! [`MergedMetrics`], which `prometheus::render` turns into text.
//!
//! Invariants:
//! - Label cardinality is bounded by config: routes, providers and models are
//!   interned once in a [`LabelTable`] built at config load; a model that is
//!   not configured is recorded as `other`, a request that never got a
//!   provider as `none`, and statuses fall into a fixed set of values.
//! - Snapshots speak in indices into their shard's `LabelTable`; the merge
//!   resolves them to names, so shards still running on an older table (a
//!   reload in progress) merge correctly.
//! - Recording never allocates once a label combination has been seen; the
//!   histograms are allocated when the shard's metrics are built.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::health::{DeploymentHealth, HealthMap};
use crate::config::Config;
use crate::runtime::Driver;

/// Status label values: the codes an LLM gateway's operators act on, then
/// classes for the rest. Indexed by [`status_slot`].
pub const STATUS_LABELS: [&str; 24] = [
    "200", "201", "204", "400", "401", "403", "404", "408", "409", "413", "422", "429", "431",
    "499", "500", "502", "503", "504", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
];

/// The `status` label slot for an HTTP status code.
pub fn status_slot(status: u16) -> u8 {
    const EXACT: [u16; 18] = [
        200, 201, 204, 400, 401, 403, 404, 408, 409, 413, 422, 429, 431, 499, 500, 502, 503, 504,
    ];
    if let Some(i) = EXACT.iter().position(|&c| c == status) {
        return i as u8;
    }
    match status {
        100..=199 => 18,
        200..=299 => 19,
        300..=399 => 20,
        400..=499 => 21,
        500..=599 => 22,
        _ => 23,
    }
}

/// Index of a route label in a [`LabelTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteId(u8);
/// Index of a provider label; the last one is `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProviderId(u16);
/// Index of a model label; the last one is `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelId(u16);

/// Every label value a shard may record, interned at config load. Shared
/// read-only (`Arc`) by the shards and the snapshots taken from them.
#[derive(Debug)]
pub struct LabelTable {
    routes: Vec<Arc<str>>,
    /// Configured providers in router order, then `none`.
    providers: Vec<Arc<str>>,
    /// Configured model names, then `other`.
    models: Vec<Arc<str>>,
    /// Model names and aliases → index into `models`.
    model_ids: HashMap<Box<str>, ModelId>,
}

impl LabelTable {
    /// `routes` are the gateway's route names (e.g. `chat_completions`), at
    /// most 255; `providers` in the router's provider order; `models` are
    /// (name, aliases) pairs, each alias counted under its model's name.
    pub fn new(routes: &[&str], providers: &[&str], models: &[(&str, &[String])]) -> LabelTable {
        assert!(
            !routes.is_empty() && routes.len() <= u8::MAX as usize,
            "1..=255 routes"
        );
        assert!(providers.len() < u16::MAX as usize && models.len() < u16::MAX as usize);
        let mut model_ids = HashMap::new();
        for (i, (name, aliases)) in models.iter().enumerate() {
            let id = ModelId(i as u16);
            model_ids.insert(Box::from(*name), id);
            for a in aliases.iter() {
                model_ids.entry(Box::from(a.as_str())).or_insert(id);
            }
        }
        LabelTable {
            routes: routes.iter().map(|r| Arc::from(*r)).collect(),
            providers: providers
                .iter()
                .map(|p| Arc::from(*p))
                .chain([Arc::from("none")])
                .collect(),
            models: models
                .iter()
                .map(|(m, _)| Arc::from(*m))
                .chain([Arc::from("other")])
                .collect(),
            model_ids,
        }
    }

    /// Providers and models as the config names them (the router indexes
    /// providers in the same order: the config's sorted map).
    pub fn from_config(config: &Config, routes: &[&str]) -> LabelTable {
        let providers: Vec<&str> = config.providers.keys().map(String::as_str).collect();
        let models: Vec<(&str, &[String])> = config
            .models
            .iter()
            .map(|m| (m.name.as_str(), m.aliases.as_slice()))
            .collect();
        LabelTable::new(routes, &providers, &models)
    }

    /// The route at `index` in the list given to [`LabelTable::new`].
    pub fn route(&self, index: usize) -> RouteId {
        assert!(index < self.routes.len(), "route index out of range");
        RouteId(index as u8)
    }

    /// The provider at router index `index`. A provider added by a reload
    /// after this table was built is counted under the no-provider label
    /// rather than misattributed.
    pub fn provider(&self, index: usize) -> ProviderId {
        if index < self.providers.len() - 1 {
            ProviderId(index as u16)
        } else {
            self.no_provider()
        }
    }

    /// For requests answered before a provider was chosen.
    pub fn no_provider(&self) -> ProviderId {
        ProviderId((self.providers.len() - 1) as u16)
    }

    /// The model label for a name a client sent: a configured name or alias,
    /// also behind a `provider/` prefix; anything else is `other`.
    pub fn model(&self, name: &str) -> ModelId {
        let lookup = |n: &str| self.model_ids.get(n).copied();
        lookup(name)
            .or_else(|| name.split_once('/').and_then(|(_, rest)| lookup(rest)))
            .unwrap_or(ModelId((self.models.len() - 1) as u16))
    }

    fn route_name(&self, id: u8) -> &Arc<str> {
        &self.routes[id as usize]
    }
    fn provider_name(&self, id: u16) -> &Arc<str> {
        &self.providers[id as usize]
    }
    fn model_name(&self, id: u16) -> &Arc<str> {
        &self.models[id as usize]
    }
}

/// Latencies in microseconds, 1 µs to 1 hour (longer values are clamped),
/// two significant digits: ~25 KiB per histogram.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
    /// Exact sum; the histogram only knows values to its precision.
    sum_us: u64,
}

const LATENCY_MAX_US: u64 = 3_600_000_000;

impl Default for Latency {
    fn default() -> Latency {
        Latency {
            hist: Histogram::new_with_bounds(1, LATENCY_MAX_US, 2).expect("valid bounds"),
            sum_us: 0,
        }
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Observations ≤ `us`, to the histogram's precision (1%).
    pub fn count_le(&self, us: u64) -> u64 {
        self.hist.count_between(0, us)
    }

    /// Value at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q)
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds and precision by construction, so this cannot fail.
        self.hist.add(&other.hist).expect("histograms share bounds");
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

/// Per-provider upstream counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderCounters {
    /// New upstream connections opened.
    pub connects: u64,
    /// Requests sent on a pooled keep-alive connection.
    pub reuses: u64,
    pub retries: u64,
    /// Requests that moved from this provider to a fallback.
    pub fallbacks: u64,
    /// Times an upstream peer of this provider was ejected as unhealthy.
    pub ejections: u64,
}

impl ProviderCounters {
    fn add(&mut self, o: &ProviderCounters) {
        self.connects += o.connects;
        self.reuses += o.reuses;
        self.retries += o.retries;
        self.fallbacks += o.fallbacks;
        self.ejections += o.ejections;
    }
    fn is_zero(&self) -> bool {
        *self == ProviderCounters::default()
    }
}

/// Tokens and cost for one (provider, model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every prompt token, the cache reads and writes included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` read from a prompt cache.
    pub cache_read_tokens: u64,
    /// The part of `input_tokens` written to a prompt cache.
    pub cache_write_tokens: u64,
    /// Cost in billionths of a US dollar: summed exactly, rounded only
    /// when rendered.
    pub cost_nanos: u64,
}

impl Usage {
    fn add(&mut self, o: &Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.cost_nanos += o.cost_nanos;
    }
}

/// The upper bounds of `gen_ai.client.token.usage`'s buckets, as the
/// OpenTelemetry GenAI conventions advise: powers of 4 from 1 to 4^13.
pub const TOKEN_BOUNDS: [u64; 14] = [
    1, 4, 16, 64, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216,
    67_108_864,
];

/// Tokens per request in [`TOKEN_BOUNDS`]' buckets (not cumulative; the
/// last one is above every bound), and their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub buckets: [u64; TOKEN_BOUNDS.len() + 1],
    pub sum: u64,
}

impl TokenCounts {
    /// Counts a request that used `tokens`: the bucket is the first power
    /// of 4 at or above it, found from its bit length.
    pub fn record(&mut self, tokens: u64) {
        let bucket = match tokens {
            0 | 1 => 0,
            t => (64 - (t - 1).leading_zeros() as usize).div_ceil(2),
        };
        self.buckets[bucket.min(TOKEN_BOUNDS.len())] += 1;
        self.sum = self.sum.saturating_add(tokens);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    fn add(&mut self, o: &TokenCounts) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sum = self.sum.saturating_add(o.sum);
    }
}

/// A request's input and output tokens, counted apart.
pub type InputOutput = [TokenCounts; 2];

/// (route, provider, model) label values.
pub type RouteProviderModel = (Arc<str>, Arc<str>, Arc<str>);

/// What the proxy knows about one finished request.
#[derive(Clone, Copy, Debug)]
pub struct RequestMetrics {
    pub route: RouteId,
    pub provider: ProviderId,
    pub model: ModelId,
    pub status: u16,
    /// First request byte read → last response byte written.
    pub total: Duration,
    /// Request sent upstream → last upstream byte read; `None` when the
    /// gateway answered alone.
    pub upstream: Option<Duration>,
    /// Time to the first streamed event, for streams.
    pub ttft: Option<Duration>,
    pub usage: Usage,
}

/// Small-integer keys hashed with FxHash (a multiply and a rotate): SipHash's
/// DoS resistance buys nothing for keys the gateway builds itself.
type FxMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// (route, provider, model, status slot) packed into one integer.
fn request_key(r: RouteId, p: ProviderId, m: ModelId, status: u8) -> u64 {
    (r.0 as u64) << 48 | (p.0 as u64) << 32 | (m.0 as u64) << 16 | status as u64
}

fn unpack_request_key(k: u64) -> (u8, u16, u16, u8) {
    ((k >> 48) as u8, (k >> 32) as u16, (k >> 16) as u16, k as u8)
}

fn usage_key(p: ProviderId, m: ModelId) -> u32 {
    (p.0 as u32) << 16 | m.0 as u32
}

/// Histograms labelled by provider (index = `ProviderId`).
struct Histograms {
    request: Vec<Latency>,
    upstream: Vec<Latency>,
    ttft: Vec<Latency>,
    overhead: Latency,
}

/// One shard's metrics. Not `Sync`: it lives in the shard and is read
/// through [`ShardMetrics::snapshot`].
pub struct ShardMetrics {
    shard: usize,
    driver: Driver,
    labels: Arc<LabelTable>,
    requests: RefCell<FxMap<u64, u64>>,
    errors: RefCell<FxMap<(u16, &'static str), u64>>,
    providers: RefCell<Vec<ProviderCounters>>,
    usage: RefCell<FxMap<u32, Usage>>,
    /// (route, provider, model) → input and output tokens per request.
    token_usage: RefCell<FxMap<u64, [TokenCounts; 2]>>,
    hist: RefCell<Histograms>,
    open_connections: Cell<i64>,
    /// (model, provider, deployment index) → times passed over at quota.
    quota_passed: RefCell<FxMap<(u16, u16, u16), u64>>,
}

impl ShardMetrics {
    pub fn new(shard: usize, driver: Driver, labels: Arc<LabelTable>) -> ShardMetrics {
        let n = labels.providers.len();
        ShardMetrics {
            shard,
            driver,
            requests: RefCell::default(),
            errors: RefCell::default(),
            providers: RefCell::new(vec![ProviderCounters::default(); n]),
            usage: RefCell::default(),
            token_usage: RefCell::default(),
            hist: RefCell::new(Histograms {
                request: vec![Latency::default(); n],
                upstream: vec![Latency::default(); n],
                ttft: vec![Latency::default(); n],
                overhead: Latency::default(),
            }),
            open_connections: Cell::new(0),
            quota_passed: RefCell::default(),
            labels,
        }
    }

    pub fn labels(&self) -> &LabelTable {
        &self.labels
    }

    /// Records a finished request: its count, latencies, tokens and cost.
    /// Gateway overhead is `total − upstream` and is recorded only for
    /// requests that went upstream.
    pub fn record_request(&self, r: &RequestMetrics) {
        let key = request_key(r.route, r.provider, r.model, status_slot(r.status));
        *self.requests.borrow_mut().entry(key).or_insert(0) += 1;
        let p = r.provider.0 as usize;
        let mut h = self.hist.borrow_mut();
        h.request[p].record(r.total);
        if let Some(up) = r.upstream {
            h.upstream[p].record(up);
            h.overhead.record(r.total.saturating_sub(up));
        }
        if let Some(t) = r.ttft {
            h.ttft[p].record(t);
        }
        if r.usage != Usage::default() {
            self.usage
                .borrow_mut()
                .entry(usage_key(r.provider, r.model))
                .or_default()
                .add(&r.usage);
            let mut tokens = self.token_usage.borrow_mut();
            let [input, output] = tokens
                .entry(request_key(r.route, r.provider, r.model, 0))
                .or_default();
            input.record(r.usage.input_tokens);
            output.record(r.usage.output_tokens);
        }
    }

    /// An error, by provider and the error's kind (a static name, e.g.
    /// `upstream_timeout`: the set of kinds is fixed in code).
    pub fn error(&self, provider: ProviderId, kind: &'static str) {
        *self
            .errors
            .borrow_mut()
            .entry((provider.0, kind))
            .or_insert(0) += 1;
    }

    /// An upstream request went on a new (`reused == false`) or pooled connection.
    pub fn upstream_connection(&self, provider: ProviderId, reused: bool) {
        self.bump(provider, |c| {
            if reused {
                &mut c.reuses
            } else {
                &mut c.connects
            }
        });
    }

    pub fn retry(&self, provider: ProviderId) {
        self.bump(provider, |c| &mut c.retries);
    }

    pub fn fallback(&self, from: ProviderId) {
        self.bump(from, |c| &mut c.fallbacks);
    }

    pub fn ejection(&self, provider: ProviderId) {
        self.bump(provider, |c| &mut c.ejections);
    }

    /// A request passed over deployment `deployment` (its index in the
    /// model's deployments) of `model` on `provider`, at its quota.
    pub fn quota_passed_over(&self, model: ModelId, provider: ProviderId, deployment: usize) {
        let index = deployment.min(u16::MAX as usize) as u16;
        *self
            .quota_passed
            .borrow_mut()
            .entry((model.0, provider.0, index))
            .or_insert(0) += 1;
    }

    /// A downstream (client) connection was accepted.
    pub fn connection_opened(&self) {
        self.open_connections.set(self.open_connections.get() + 1);
    }

    /// A downstream connection ended.
    pub fn connection_closed(&self) {
        self.open_connections.set(self.open_connections.get() - 1);
    }

    fn bump(&self, p: ProviderId, field: impl FnOnce(&mut ProviderCounters) -> &mut u64) {
        *field(&mut self.providers.borrow_mut()[p.0 as usize]) += 1;
    }

    /// A copy of this shard's state that can cross to the scrape thread.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let h = self.hist.borrow();
        MetricsSnapshot {
            shard: self.shard,
            driver: self.driver,
            labels: self.labels.clone(),
            requests: self
                .requests
                .borrow()
                .iter()
                .map(|(&k, &v)| (k, v))
                .collect(),
            errors: self.errors.borrow().iter().map(|(&k, &v)| (k, v)).collect(),
            providers: self.providers.borrow().clone(),
            usage: self.usage.borrow().iter().map(|(&k, &v)| (k, v)).collect(),
            token_usage: self
                .token_usage
                .borrow()
                .iter()
                .map(|(&k, &v)| (k, v))
                .collect(),
            request_duration: h.request.clone(),
            upstream_duration: h.upstream.clone(),
            stream_ttft: h.ttft.clone(),
            gateway_overhead: h.overhead.clone(),
            open_connections: self.open_connections.get(),
            quota_passed: self
                .quota_passed
                .borrow()
                .iter()
                .map(|(&k, &v)| (k, v))
                .collect(),
            deployments: Vec::new(),
        }
    }
}

/// One shard's metrics at one instant, in its label table's indices.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    shard: usize,
    driver: Driver,
    labels: Arc<LabelTable>,
    requests: Vec<(u64, u64)>,
    errors: Vec<((u16, &'static str), u64)>,
    providers: Vec<ProviderCounters>,
    usage: Vec<(u32, Usage)>,
    token_usage: Vec<(u64, [TokenCounts; 2])>,
    request_duration: Vec<Latency>,
    upstream_duration: Vec<Latency>,
    stream_ttft: Vec<Latency>,
    gateway_overhead: Latency,
    open_connections: i64,
    quota_passed: Vec<((u16, u16, u16), u64)>,
    /// Each deployment's breaker, in-flight count and latency on this
    /// shard; filled in by the shard (it owns the breakers), not here.
    pub deployments: Vec<DeploymentHealth>,
}

/// A shard and the I/O driver it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard: usize,
    pub driver: Driver,
}

/// (route, provider, model, status) label values.
pub type RequestLabels = (Arc<str>, Arc<str>, Arc<str>, &'static str);

/// All shards' metrics, by label names, ready to render. Entries that are
/// zero in every shard are left out.
#[derive(Clone, Debug, Default)]
pub struct MergedMetrics {
    pub shards: Vec<ShardInfo>,
    pub requests: BTreeMap<RequestLabels, u64>,
    /// (provider, kind) → count.
    pub errors: BTreeMap<(Arc<str>, &'static str), u64>,
    pub providers: BTreeMap<Arc<str>, ProviderCounters>,
    /// (provider, model) → usage.
    pub usage: BTreeMap<(Arc<str>, Arc<str>), Usage>,
    /// (route, provider, model) → input and output tokens per request.
    pub token_usage: BTreeMap<RouteProviderModel, InputOutput>,
    /// By provider.
    pub request_duration: BTreeMap<Arc<str>, Latency>,
    pub upstream_duration: BTreeMap<Arc<str>, Latency>,
    pub stream_ttft: BTreeMap<Arc<str>, Latency>,
    pub gateway_overhead: Latency,
    pub open_connections: i64,
    /// Access-log lines dropped because the writer fell behind; filled in by
    /// the scraper from `AccessLog::dropped_lines`.
    pub access_log_dropped: u64,
    /// (model, provider, deployment index) → requests that passed the
    /// deployment over at its quota.
    pub quota_passed: BTreeMap<(Arc<str>, Arc<str>, u16), u64>,
    /// (model, deployment index) → its health over every shard.
    pub deployments: HealthMap,
}

impl MergedMetrics {
    /// Merges every shard's snapshot.
    pub fn merge<'a>(snapshots: impl IntoIterator<Item = &'a MetricsSnapshot>) -> MergedMetrics {
        let mut m = MergedMetrics::default();
        for s in snapshots {
            m.add(s);
        }
        m.shards.sort_by_key(|s| s.shard);
        m
    }

    /// Adds one shard's snapshot.
    pub fn add(&mut self, s: &MetricsSnapshot) {
        let l = &s.labels;
        self.shards.push(ShardInfo {
            shard: s.shard,
            driver: s.driver,
        });
        for &(k, v) in &s.requests {
            let (r, p, m, st) = unpack_request_key(k);
            let key = (
                l.route_name(r).clone(),
                l.provider_name(p).clone(),
                l.model_name(m).clone(),
                STATUS_LABELS[st as usize],
            );
            *self.requests.entry(key).or_insert(0) += v;
        }
        for &((p, kind), v) in &s.errors {
            *self
                .errors
                .entry((l.provider_name(p).clone(), kind))
                .or_insert(0) += v;
        }
        for (p, c) in s.providers.iter().enumerate() {
            if !c.is_zero() {
                let name = l.provider_name(p as u16).clone();
                self.providers.entry(name).or_default().add(c);
            }
        }
        for &(k, u) in &s.usage {
            let key = (
                l.provider_name((k >> 16) as u16).clone(),
                l.model_name(k as u16).clone(),
            );
            self.usage.entry(key).or_default().add(&u);
        }
        for (k, [input, output]) in &s.token_usage {
            let (r, p, m, _) = unpack_request_key(*k);
            let key = (
                l.route_name(r).clone(),
                l.provider_name(p).clone(),
                l.model_name(m).clone(),
            );
            let [i, o] = self.token_usage.entry(key).or_default();
            i.add(input);
            o.add(output);
        }
        for (dst, src) in [
            (&mut self.request_duration, &s.request_duration),
            (&mut self.upstream_duration, &s.upstream_duration),
            (&mut self.stream_ttft, &s.stream_ttft),
        ] {
            for (p, h) in src.iter().enumerate() {
                if h.count() > 0 {
                    let name = l.provider_name(p as u16).clone();
                    dst.entry(name).or_default().add(h);
                }
            }
        }
        self.gateway_overhead.add(&s.gateway_overhead);
        self.open_connections += s.open_connections;
        for &((m, p, d), v) in &s.quota_passed {
            let key = (l.model_name(m).clone(), l.provider_name(p).clone(), d);
            *self.quota_passed.entry(key).or_insert(0) += v;
        }
        super::health::merge_into(&mut self.deployments, &s.deployments);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_fall_in_the_first_bound_at_or_above() {
        let mut t = TokenCounts::default();
        for (tokens, bucket) in [
            (0, 0),
            (1, 0),
            (2, 1),
            (4, 1),
            (5, 2),
            (16, 2),
            (17, 3),
            (1_024, 5),
            (1_025, 6),
            (67_108_864, 13),
            (67_108_865, 14),
            (u64::MAX, 14),
        ] {
            let before = t.buckets[bucket];
            t.record(tokens);
            assert_eq!(t.buckets[bucket], before + 1, "{tokens} tokens");
            if bucket < TOKEN_BOUNDS.len() {
                assert!(tokens <= TOKEN_BOUNDS[bucket]);
            }
            if bucket > 0 {
                assert!(tokens > TOKEN_BOUNDS[bucket - 1]);
            }
        }
        assert_eq!(t.count(), 12);
        assert_eq!(t.sum, u64::MAX);
    }

    fn labels() -> Arc<LabelTable> {
        Arc::new(LabelTable::new(
            &["chat_completions", "embeddings"],
            &["anthropic", "openai"],
            &[
                ("fast", &["gpt-4o-mini".to_string()][..]),
                ("smart", &[][..]),
            ],
        ))
    }

    fn req(l: &LabelTable, provider: usize, model: &str, status: u16, ms: u64) -> RequestMetrics {
        RequestMetrics {
            route: l.route(0),
            provider: l.provider(provider),
            model: l.model(model),
            status,
            total: Duration::from_millis(ms),
            upstream: Some(Duration::from_millis(ms - 1)),
            ttft: None,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_tokens: 4,
                cache_write_tokens: 1,
                cost_nanos: 7,
            },
        }
    }

    #[test]
    fn status_slots_are_bounded_and_named() {
        for code in 0..1000u16 {
            let slot = status_slot(code) as usize;
            let label = STATUS_LABELS[slot];
            if label.ends_with("xx") {
                assert_eq!(label.as_bytes()[0], b'0' + (code / 100) as u8);
            } else if label != "other" {
                assert_eq!(label, code.to_string());
            } else {
                assert!(!(100..600).contains(&code));
            }
        }
    }

    #[test]
    fn models_resolve_by_name_alias_and_prefix_else_other() {
        let l = labels();
        assert_eq!(l.model_name(l.model("fast").0).as_ref(), "fast");
        assert_eq!(l.model_name(l.model("gpt-4o-mini").0).as_ref(), "fast");
        assert_eq!(l.model_name(l.model("openai/smart").0).as_ref(), "smart");
        assert_eq!(l.model_name(l.model("gpt-5").0).as_ref(), "other");
        assert_eq!(l.provider_name(l.no_provider().0).as_ref(), "none");
    }

    #[test]
    fn shards_merge_by_name() {
        let l = labels();
        let a = ShardMetrics::new(0, Driver::IoUring, l.clone());
        let b = ShardMetrics::new(1, Driver::Epoll, l.clone());
        for _ in 0..3 {
            a.record_request(&req(&l, 1, "fast", 200, 20));
        }
        b.record_request(&req(&l, 1, "gpt-4o-mini", 200, 40));
        b.record_request(&req(&l, 0, "mystery", 529, 40));
        a.upstream_connection(l.provider(1), false);
        b.upstream_connection(l.provider(1), true);
        b.retry(l.provider(0));
        a.error(l.no_provider(), "model_not_found");
        a.error(l.no_provider(), "model_not_found");
        a.connection_opened();
        b.connection_opened();
        b.connection_closed();

        let m = MergedMetrics::merge([&b.snapshot(), &a.snapshot()]);
        assert_eq!(
            m.shards,
            vec![
                ShardInfo {
                    shard: 0,
                    driver: Driver::IoUring
                },
                ShardInfo {
                    shard: 1,
                    driver: Driver::Epoll
                }
            ]
        );
        let key = |p: &str, model: &str, st: &'static str| {
            (
                Arc::from("chat_completions"),
                Arc::from(p),
                Arc::from(model),
                st,
            )
        };
        assert_eq!(m.requests[&key("openai", "fast", "200")], 4);
        assert_eq!(m.requests[&key("anthropic", "other", "5xx")], 1);
        assert_eq!(m.requests.len(), 2);
        assert_eq!(m.errors[&(Arc::from("none"), "model_not_found")], 2);
        let openai = m.providers[&Arc::<str>::from("openai")];
        assert_eq!((openai.connects, openai.reuses), (1, 1));
        assert_eq!(m.providers[&Arc::<str>::from("anthropic")].retries, 1);
        let u = m.usage[&(Arc::from("openai"), Arc::from("fast"))];
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cost_nanos),
            (40, 20, 28)
        );
        assert_eq!(
            (u.cache_read_tokens, u.cache_write_tokens),
            (16, 4),
            "cache counts add up as the others do"
        );
        let h = &m.request_duration[&Arc::<str>::from("openai")];
        assert_eq!(h.count(), 4);
        assert!((h.sum_seconds() - 0.1).abs() < 1e-9);
        assert_eq!(h.count_le(20_000), 3);
        assert_eq!(m.gateway_overhead.count(), 5);
        assert_eq!(m.gateway_overhead.count_le(1_000), 5);
        assert!(!m.stream_ttft.contains_key(&Arc::<str>::from("openai")));
        assert_eq!(m.open_connections, 1);
    }

    #[test]
    fn snapshots_cross_threads_and_tables_may_differ() {
        let old = labels();
        let new = Arc::new(LabelTable::new(&["chat_completions"], &["openai"], &[]));
        let a = ShardMetrics::new(0, Driver::IoUring, old.clone());
        let b = ShardMetrics::new(1, Driver::IoUring, new.clone());
        a.record_request(&req(&old, 1, "x", 200, 5));
        b.record_request(&req(&new, 0, "x", 200, 5));
        let snaps = vec![a.snapshot(), b.snapshot()];
        let m = std::thread::spawn(move || MergedMetrics::merge(&snaps))
            .join()
            .unwrap();
        let key = (
            Arc::from("chat_completions"),
            Arc::from("openai"),
            Arc::from("other"),
            "200",
        );
        assert_eq!(m.requests[&key], 2);
    }

    #[test]
    fn recording_reuses_seen_keys() {
        let l = labels();
        let s = ShardMetrics::new(0, Driver::IoUring, l.clone());
        for i in 0..1000 {
            s.record_request(&req(&l, i % 2, "fast", 200 + (i % 3) as u16, 3));
        }
        // two providers × three statuses; nothing grows with request count
        assert_eq!(s.requests.borrow().len(), 6);
        assert_eq!(s.usage.borrow().len(), 2);
    }

    #[test]
    fn long_latencies_are_clamped_not_lost() {
        let mut h = Latency::default();
        h.record(Duration::from_secs(10 * 3600));
        h.record(Duration::ZERO);
        assert_eq!(h.count(), 2);
        assert_eq!(h.count_le(1), 1);
        assert!(h.quantile_us(1.0) >= LATENCY_MAX_US / 2);
    }
}
