//! The request's trace, with `[tracing]` on: started when its head is read
//! (continuing the client's `traceparent`), filled by `attempt.rs` (a span
//! per attempt, the decisions between them as events), and turned into
//! spans when the request settles, from the facts the log phase already
//! has (`Outcome`: model, provider, usage, time to first byte, status) —
//! nothing is measured twice.
//!
//! The spans follow OpenTelemetry's GenAI semantic conventions: the server
//! span is named `{gen_ai.operation.name} {gen_ai.request.model}` and
//! carries `gen_ai.*` (operation, provider, request and response model,
//! usage, a stream's `gen_ai.response.time_to_first_chunk`) beside
//! `http.*`; each attempt is a client span under it, named for the model
//! sent upstream.
//!
//! Invariant: with tracing off, each hook is one branch on the shard's
//! `tracer` (or the request's `trace`) and does nothing else.

use std::time::Instant;

use super::context::RequestCtx;
use super::endpoint::ROUTE_NAMES;
use crate::http1::parse::RequestHead;
use crate::providers::catalog::Family;
use crate::shard::Shard;
use crate::telemetry::trace::otlp::SpanWriter;
use crate::telemetry::trace::span::{Attr, Event, Span, SpanKind, StatusCode, Value};
use crate::telemetry::trace::{EventValue, RequestTrace, TraceEvent};

/// Starts the request's trace when the shard traces; `head` is the
/// request's head and the buffer it spans (none for a head that could not
/// be read: a new trace).
#[inline]
pub(super) fn begin(shard: &Shard, ctx: &mut RequestCtx, head: Option<(&RequestHead, &[u8])>) {
    let Some(tracer) = &shard.tracer else {
        return;
    };
    let header = |name: &[u8]| head.and_then(|(h, buf)| h.header(buf, name));
    tracer.borrow_mut().begin(
        &mut ctx.trace,
        header(b"traceparent"),
        header(b"tracestate"),
        ctx.outcome.started,
    );
}

/// Records the finished request's spans (its attempts', then its own),
/// when it is traced and sampled.
#[inline]
pub(super) fn finish(shard: &Shard, ctx: &RequestCtx) {
    let (Some(tracer), Some(trace)) = (&shard.tracer, &ctx.trace) else {
        return;
    };
    if trace.sampled() {
        record(&mut tracer.borrow_mut().sender, ctx, trace);
    }
}

fn record(
    sender: &mut crate::telemetry::trace::TraceSender,
    ctx: &RequestCtx,
    trace: &RequestTrace,
) {
    let now = Instant::now();
    let generation = ctx.generation();
    let router = &generation.gateway.router;
    let outcome = &ctx.outcome;
    let route = ROUTE_NAMES[outcome.route];
    let operation = operation(route);

    for a in trace.attempts() {
        let provider = router.providers.get(a.provider);
        let mut status_text = itoa::Buffer::new();
        // A client span's error: a failure, or any 4xx/5xx the upstream
        // answered (HTTP's conventions for client spans).
        let error = a
            .error
            .or_else(|| (a.status >= 400).then(|| status_text.format(a.status)));
        let span = Span {
            trace_id: trace.trace_id,
            span_id: a.span_id,
            parent: Some(trace.span_id),
            flags: trace.flags,
            parent_remote: false,
            trace_state: &trace.trace_state,
            name: (operation.unwrap_or(route), &a.model),
            kind: SpanKind::Client,
            start_unix_nanos: trace.unix_nanos(a.start),
            end_unix_nanos: trace.unix_nanos(a.end),
            status: status_of(error),
            status_message: a.error.unwrap_or_default(),
        };
        sender.record(&span, now, |w| {
            if let Some(op) = operation {
                w.str("gen_ai.operation.name", op);
            }
            if let Some(p) = provider {
                w.str("gen_ai.provider.name", provider_name(p.family));
                w.str("shardgate.provider", &p.name);
                w.str("server.address", &p.url.host);
            }
            if !a.model.is_empty() {
                w.str("gen_ai.request.model", &a.model);
            }
            if a.status != 0 {
                w.int("http.response.status_code", i64::from(a.status));
            }
            if let Some(e) = error {
                w.str("error.type", e);
            }
            events(w, trace, &a.events);
        });
    }

    let provider = outcome.provider.and_then(|p| router.providers.get(p));
    // A server span's error: the gateway's own failure or a 5xx; a 4xx is
    // the client's (HTTP's conventions for server spans).
    let mut status_text = itoa::Buffer::new();
    let failed = outcome.status >= 500 || outcome.truncated;
    let error = match (outcome.error, outcome.truncated) {
        (Some(e), _) if failed => Some(e),
        (_, true) => Some("truncated"),
        _ if failed => Some(status_text.format(outcome.status)),
        _ => None,
    };
    let span = Span {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent: trace.parent,
        flags: trace.flags,
        parent_remote: true,
        trace_state: &trace.trace_state,
        name: match operation {
            Some(op) => (op, &outcome.model),
            None => (route, ""),
        },
        kind: SpanKind::Server,
        start_unix_nanos: trace.unix_nanos(trace.started()),
        end_unix_nanos: trace.unix_nanos(now),
        status: status_of(error),
        status_message: error.unwrap_or_default(),
    };
    sender.record(&span, now, |w| {
        if let Some(op) = operation {
            w.str("gen_ai.operation.name", op);
        }
        // The configured provider's own name (`shardgate.provider`) and
        // its address are on the attempt's span, not repeated here.
        if let Some(p) = provider {
            w.str("gen_ai.provider.name", provider_name(p.family));
        }
        if !outcome.model.is_empty() {
            w.str("gen_ai.request.model", &outcome.model);
        }
        // The model that answered: the name sent upstream (the gateway
        // does not parse an answer's own `model`).
        if provider.is_some() && !outcome.upstream_model.is_empty() {
            w.str("gen_ai.response.model", &outcome.upstream_model);
        }
        if let Some(u) = &outcome.usage {
            w.int("gen_ai.usage.input_tokens", saturating(u.input_tokens));
            w.int("gen_ai.usage.output_tokens", saturating(u.output_tokens));
            if u.cache_read_tokens > 0 {
                let n = saturating(u.cache_read_tokens);
                w.int("gen_ai.usage.cache_read.input_tokens", n);
            }
            if u.cache_write_tokens > 0 {
                let n = saturating(u.cache_write_tokens);
                w.int("gen_ai.usage.cache_creation.input_tokens", n);
            }
        }
        if let (true, Some(ttft)) = (ctx.side.report.streamed, outcome.ttft) {
            w.attr(
                "gen_ai.response.time_to_first_chunk",
                Value::Double(ttft.as_secs_f64()),
            );
        }
        if outcome.status != 0 {
            w.int("http.response.status_code", i64::from(outcome.status));
        }
        if let Some(e) = error {
            w.str("error.type", e);
        }
        w.str("shardgate.request_id", &outcome.request_id);
        if let Some(cache) = outcome.cache {
            w.str("shardgate.cache", cache);
        }
        events(w, trace, trace.events());
    });
}

fn status_of(error: Option<&str>) -> StatusCode {
    if error.is_some() {
        StatusCode::Error
    } else {
        StatusCode::Unset
    }
}

/// `list` as the span's events.
fn events(w: &mut SpanWriter<'_>, trace: &RequestTrace, list: &[TraceEvent]) {
    for e in list {
        w.event(&Event {
            time_unix_nanos: trace.unix_nanos(e.at),
            name: e.name,
            attr: e.attr.as_ref().map(|(key, v)| Attr {
                key,
                value: match v {
                    EventValue::Int(i) => Value::Int(*i),
                    EventValue::Static(s) => Value::Str(s),
                    EventValue::Text(s) => Value::Str(s),
                },
            }),
        });
    }
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `gen_ai.operation.name` for a route the GenAI conventions name; `None`
/// for the others (their spans are named by the route).
fn operation(route: &str) -> Option<&'static str> {
    Some(match route {
        "chat_completions" | "messages" | "responses" => "chat",
        "completions" => "text_completion",
        "embeddings" => "embeddings",
        "image_generations" => "generate_content",
        _ => return None,
    })
}

/// `gen_ai.provider.name`: the conventions' well-known value for the
/// provider's family (an OpenAI-compatible server is `openai`: it speaks
/// that API; its own name is `shardgate.provider`).
fn provider_name(family: Family) -> &'static str {
    match family {
        Family::OpenAi => "openai",
        Family::Azure => "azure.ai.openai",
        Family::Anthropic => "anthropic",
        Family::Bedrock => "aws.bedrock",
        Family::Gemini => "gcp.gemini",
        Family::Cohere => "cohere",
        Family::Vertex => "gcp.vertex_ai",
    }
}
