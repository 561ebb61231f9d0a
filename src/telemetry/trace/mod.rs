//! OpenTelemetry traces, off by default (`[tracing]`): one server span per
//! request, one client span per upstream attempt, exported over OTLP/HTTP
//! (protobuf) by a thread of its own.
//!
//! The pieces, each sans-IO but the exporter: `traceparent` (the W3C
//! header, parsed and written), `sampler` (parent-based ratio sampling),
//! `span` (the record a shard fills), `otlp` (the protobuf encoding),
//! `exporter` (the `otel-export` thread and each shard's sender). Here:
//! [`ShardTracer`], a shard's ids, sampler and sender, and [`RequestTrace`],
//! what one request's trace gathers as it runs (its ids, its attempts and
//! the decisions between them), which the proxy turns into spans when the
//! request settles.
//!
//! Invariants: with tracing off no shard holds a tracer and a request
//! holds no trace (the request path pays one branch); an unsampled
//! request still gets ids, so the `traceparent` it sends upstream carries
//! the trace on, but records nothing; a request's trace reuses its slots
//! and strings from request to request (only a fallback event's model
//! name is allocated), and spans are encoded into batch buffers that the
//! exporter hands back, so steady tracing allocates only when a buffer
//! has not come back in time.

pub mod exporter;
pub mod otlp;
pub mod sampler;
pub mod span;
pub mod traceparent;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use exporter::{Exporter, ExporterOptions, Post, TraceCounters, TraceSender};
pub use sampler::Sampler;
pub use span::{SpanId, TraceId};
pub use traceparent::TraceParent;

/// A shard's tracing: its sender to the exporter, its sampler and the
/// random source of its ids.
pub struct ShardTracer {
    pub sender: TraceSender,
    sampler: Sampler,
    rng: fastrand::Rng,
}

impl ShardTracer {
    /// `seed` should differ per shard and per process (ids must not
    /// collide across instances): the caller takes it from the OS.
    pub fn new(sender: TraceSender, sample_ratio: f64, seed: u64) -> ShardTracer {
        ShardTracer {
            sender,
            sampler: Sampler::new(sample_ratio),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Starts `slot`'s trace for a request that began at `started`:
    /// continuing the client's `traceparent` when it is valid (same trace,
    /// the client's span as parent, its sampled flag), else a new trace.
    /// `tracestate` is kept only with a valid `traceparent`, as the spec
    /// says.
    pub fn begin(
        &mut self,
        slot: &mut Option<Box<RequestTrace>>,
        traceparent: Option<&[u8]>,
        tracestate: Option<&[u8]>,
        started: Instant,
    ) {
        let parent = traceparent.and_then(traceparent::parse);
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => loop {
                let id = TraceId(self.rng.u128(..).to_be_bytes());
                if id.is_valid() {
                    break id;
                }
            },
        };
        let sampled = self.sampler.sampled(&trace_id, parent.map(|p| p.sampled()));
        let trace = slot.get_or_insert_with(Box::default);
        trace.rng = fastrand::Rng::with_seed(self.rng.u64(..));
        trace.trace_id = trace_id;
        trace.span_id = trace.new_span_id();
        trace.parent = parent.map(|p| p.parent_id);
        // Only the sampled bit is ours to pass on; others are reserved.
        trace.flags = if sampled { traceparent::SAMPLED } else { 0 };
        trace.trace_state.clear();
        if let (Some(state), Some(_), true) = (tracestate, parent, sampled) {
            // Kept for the export only; the header itself crosses as the
            // client sent it (the proxy's header allow-list).
            trace
                .trace_state
                .push_str(std::str::from_utf8(state).unwrap_or_default());
        }
        trace.started = started;
        trace.start_unix_nanos = unix_nanos(SystemTime::now());
        trace.attempts_len = 0;
        trace.events.clear();
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One request's trace, reused across the requests of a connection.
pub struct RequestTrace {
    pub trace_id: TraceId,
    /// The server span: the request as the gateway served it.
    pub span_id: SpanId,
    /// The client's span, when it sent a valid `traceparent`.
    pub parent: Option<SpanId>,
    /// The W3C flags sent on (the sampled bit).
    pub flags: u8,
    /// The client's `tracestate`, for the export.
    pub trace_state: String,
    started: Instant,
    start_unix_nanos: u64,
    rng: fastrand::Rng,
    /// Slots reused across requests; the first `attempts_len` are this one's.
    attempts: Vec<AttemptTrace>,
    attempts_len: usize,
    /// Decisions made before any attempt (the server span's events).
    events: Vec<TraceEvent>,
}

impl Default for RequestTrace {
    fn default() -> Self {
        RequestTrace {
            trace_id: TraceId::default(),
            span_id: SpanId::default(),
            parent: None,
            flags: 0,
            trace_state: String::new(),
            started: Instant::now(),
            start_unix_nanos: 0,
            rng: fastrand::Rng::with_seed(0),
            attempts: Vec::new(),
            attempts_len: 0,
            events: Vec::new(),
        }
    }
}

/// One upstream attempt, as its client span will say.
#[derive(Debug)]
pub struct AttemptTrace {
    pub span_id: SpanId,
    pub start: Instant,
    pub end: Instant,
    /// The provider's index in the router.
    pub provider: usize,
    /// The model name sent upstream.
    pub model: String,
    /// The upstream's status (0: none came).
    pub status: u16,
    /// The attempt's error kind (its metrics name), if it failed so.
    pub error: Option<&'static str>,
    pub events: Vec<TraceEvent>,
}

/// A decision at a moment: a retry, a fail-over, a fallback, a breaker's
/// change of state.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    pub at: Instant,
    pub name: &'static str,
    pub attr: Option<(&'static str, EventValue)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventValue {
    Int(i64),
    Static(&'static str),
    Text(String),
}

impl RequestTrace {
    pub fn sampled(&self) -> bool {
        self.flags & traceparent::SAMPLED != 0
    }

    fn new_span_id(&mut self) -> SpanId {
        loop {
            let id = SpanId(self.rng.u64(..).to_be_bytes());
            if id.is_valid() {
                return id;
            }
        }
    }

    /// An attempt starts, to `provider` with `model`: its span id, for the
    /// `traceparent` it sends.
    pub fn start_attempt(&mut self, now: Instant, provider: usize, model: &str) -> SpanId {
        let span_id = self.new_span_id();
        if !self.sampled() {
            return span_id;
        }
        if self.attempts_len == self.attempts.len() {
            self.attempts.push(AttemptTrace {
                span_id,
                start: now,
                end: now,
                provider,
                model: String::new(),
                status: 0,
                error: None,
                events: Vec::new(),
            });
        }
        let a = &mut self.attempts[self.attempts_len];
        self.attempts_len += 1;
        a.span_id = span_id;
        (a.start, a.end) = (now, now);
        a.provider = provider;
        a.model.clear();
        a.model.push_str(model);
        a.status = 0;
        a.error = None;
        a.events.clear();
        span_id
    }

    /// The current attempt ended: with the upstream's `status` (0 for none)
    /// and the error it failed with, if any.
    pub fn end_attempt(&mut self, now: Instant, status: u16, error: Option<&'static str>) {
        if let Some(a) = self.attempts_mut().last_mut() {
            a.end = now;
            a.status = status;
            a.error = error;
        }
    }

    /// A decision: on the latest attempt's span, or the server span's
    /// before any attempt.
    pub fn event(
        &mut self,
        at: Instant,
        name: &'static str,
        attr: Option<(&'static str, EventValue)>,
    ) {
        if !self.sampled() {
            return;
        }
        let event = TraceEvent { at, name, attr };
        match self.attempts_mut().last_mut() {
            Some(a) => a.events.push(event),
            None => self.events.push(event),
        }
    }

    /// The `traceparent` an attempt with span `span_id` sends upstream.
    pub fn traceparent(&self, span_id: &SpanId) -> [u8; traceparent::LEN] {
        traceparent::format(&self.trace_id, span_id, self.flags)
    }

    pub fn attempts(&self) -> &[AttemptTrace] {
        &self.attempts[..self.attempts_len]
    }

    fn attempts_mut(&mut self) -> &mut [AttemptTrace] {
        &mut self.attempts[..self.attempts_len]
    }

    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// `at` in Unix nanoseconds, on the request's clock (its start read
    /// once from the wall clock, the rest from the monotonic one, so spans
    /// nest exactly).
    pub fn unix_nanos(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.started).as_nanos();
        self.start_unix_nanos
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    pub fn started(&self) -> Instant {
        self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tracer(ratio: f64) -> (ShardTracer, Exporter) {
        let exporter = Exporter::start(
            "t".into(),
            ExporterOptions::default(),
            Box::new(|_: &[&[u8]]| Ok(200)),
        )
        .unwrap();
        (ShardTracer::new(exporter.sender(), ratio, 42), exporter)
    }

    #[test]
    fn a_valid_traceparent_is_continued_an_invalid_one_replaced() {
        let (mut t, _e) = tracer(1.0);
        let mut slot = None;
        let header = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        t.begin(&mut slot, Some(header), Some(b"k=v"), Instant::now());
        let trace = slot.as_ref().unwrap();
        assert_eq!(trace.trace_id, traceparent::parse(header).unwrap().trace_id);
        assert_eq!(
            trace.parent,
            Some(traceparent::parse(header).unwrap().parent_id)
        );
        // The client said not sampled: we follow.
        assert!(!trace.sampled());
        t.begin(&mut slot, Some(b"00-zz"), None, Instant::now());
        let trace = slot.as_ref().unwrap();
        assert!(trace.parent.is_none() && trace.sampled() && trace.trace_id.is_valid());
    }

    #[test]
    fn attempts_and_events_are_kept_in_order_and_reset_per_request() {
        let (mut t, _e) = tracer(1.0);
        let mut slot = None;
        let t0 = Instant::now();
        t.begin(&mut slot, None, None, t0);
        let trace = slot.as_mut().unwrap();
        trace.event(t0, "early", None);
        let a = trace.start_attempt(t0, 1, "m1");
        trace.end_attempt(t0 + Duration::from_millis(5), 500, None);
        trace.event(
            t0,
            "retry",
            Some(("shardgate.backoff_ms", EventValue::Int(10))),
        );
        let b = trace.start_attempt(t0, 1, "m1");
        trace.end_attempt(t0, 200, None);
        assert_ne!(a, b);
        assert_eq!(trace.attempts().len(), 2);
        assert_eq!(trace.attempts()[0].events.len(), 1);
        assert_eq!(trace.events().len(), 1);
        assert_eq!(
            trace.unix_nanos(t0 + Duration::from_millis(5)) - trace.unix_nanos(t0),
            5_000_000
        );
        let tp = trace.traceparent(&b);
        let parsed = traceparent::parse(&tp).unwrap();
        assert_eq!((parsed.trace_id, parsed.parent_id), (trace.trace_id, b));
        t.begin(&mut slot, None, None, t0);
        let trace = slot.as_ref().unwrap();
        assert!(trace.attempts().is_empty() && trace.events().is_empty());
    }
}
