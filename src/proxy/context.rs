//! One request's context, owned by the connection loop and handed to each
//! phase in turn (admit → route → attempts → respond → settle): the
//! configuration generation it runs on, what the client connection needs
//! to know of it, the upstream side's machinery and report, and what the
//! request came to for the log phase.
//!
//! Invariant: [`RequestCtx::begin`] starts every request from nothing —
//! no field of the previous request on the connection survives into the
//! next one's answer, log line or metrics; only allocations are reused
//! (so the log phase allocates nothing in steady state).

use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::downstream::Body;
use super::endpoint::{Endpoint, UNKNOWN_ROUTE};
use super::exchange::{ClientFacts, UpstreamSide};
use crate::api::usage::Usage;
use crate::governance::{KeyMemo, ShardKey};
use crate::providers::Dialect;
use crate::shard::Generation;
use crate::telemetry::trace::RequestTrace;

pub(super) struct RequestCtx {
    /// The generation the request started on (and finishes on); none
    /// between requests, so an idle keep-alive connection does not keep a
    /// reloaded-away generation (its pools, its threads' work) alive.
    generation: Option<Rc<Generation>>,
    pub facts: ClientFacts,
    pub side: UpstreamSide,
    pub outcome: Outcome,
    /// Where the next request starts in the client's read buffer.
    pub next_request: usize,
    /// The virtual key the request presented (when keys are on); its
    /// reservation is `side.gate`.
    pub key: Option<ShardKey>,
    /// The connection's last key (kept across its requests).
    pub key_memo: Option<KeyMemo>,
    /// With tracing on, the request's trace (restarted by `trace::begin`
    /// for every request, its allocations kept); always `None` with it off.
    /// Boxed: every idle connection holds this context, and a pointer
    /// costs it 8 bytes where the trace inline would cost ~170.
    pub trace: Option<Box<RequestTrace>>,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            generation: None,
            facts: ClientFacts::default(),
            side: UpstreamSide::default(),
            outcome: Outcome::default(),
            next_request: 0,
            key: None,
            key_memo: None,
            trace: None,
        }
    }

    /// Starts a request on `generation`, at `started`.
    pub fn begin(&mut self, generation: Rc<Generation>, started: Instant) {
        self.side.begin_request(&generation.gateway.config.limits);
        self.generation = Some(generation);
        self.facts = ClientFacts::default();
        self.outcome.reset(started);
        self.next_request = 0;
        self.key = None;
    }

    /// The generation of the request being served.
    pub fn generation(&self) -> &Rc<Generation> {
        self.generation
            .as_ref()
            .expect("a request runs between begin and end")
    }

    /// Ends the request: its generation is let go.
    pub fn end(&mut self) {
        self.generation = None;
    }
}

/// A request admitted whole and classified, to be sent upstream.
pub(super) struct Request {
    pub endpoint: Endpoint,
    pub body: Body,
    /// The query string's span of the client's head (in `rbuf`).
    pub query: Range<usize>,
    /// Sent to this provider as it is, not routed by a model: `/v1/models`
    /// when no models are configured (the default provider), a stored
    /// response's routes (the one the client names, else the default).
    pub direct_provider: Option<usize>,
    /// The request id in [`Outcome::request_id`] is the gateway's, so the
    /// upstream head carries it (a client's own goes with its headers).
    pub generated_id: bool,
}

/// What one request came to (route, provider, status, timings, tokens),
/// for the log phase.
pub struct Outcome {
    pub started: Instant,
    pub route: usize,
    pub provider: Option<usize>,
    /// The configured model's deployment (model, index) the last attempt
    /// went to (with `provider`), whose token quota the usage counts against.
    pub deployment: Option<(usize, usize)>,
    pub status: u16,
    /// The kind of error the gateway answered with (its metrics name), if
    /// it answered with one.
    pub error: Option<&'static str>,
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
    /// Bytes written to the client for this request (heads included).
    pub bytes_out: u64,
    /// The upstream cut the response before its end.
    pub truncated: bool,
    /// With the response cache on, what it did: `hit`, `miss`, `bypass`.
    pub cache: Option<&'static str>,
    /// Output tokens a stream relayed, as its running count estimated them
    /// (what a stream without a usage event is charged).
    pub output_seen: u64,
}

impl Default for Outcome {
    fn default() -> Self {
        let name = || String::with_capacity(64);
        Outcome::starting(Instant::now(), [name(), name(), name()])
    }
}

impl Outcome {
    /// A request starting at `started`, with these (empty) strings for
    /// the model, the upstream model and the request id. Every field is
    /// named here, so a field added later is reset with the rest.
    fn starting(started: Instant, [model, upstream_model, request_id]: [String; 3]) -> Outcome {
        Outcome {
            started,
            route: UNKNOWN_ROUTE,
            provider: None,
            deployment: None,
            status: 0,
            error: None,
            upstream: None,
            ttft: None,
            usage: None,
            model,
            upstream_model,
            request_id,
            bytes_in: 0,
            bytes_out: 0,
            truncated: false,
            cache: None,
            output_seen: 0,
        }
    }

    /// Starts a new request, keeping the strings' allocations.
    fn reset(&mut self, started: Instant) {
        let mut names = [
            std::mem::take(&mut self.model),
            std::mem::take(&mut self.upstream_model),
            std::mem::take(&mut self.request_id),
        ];
        names.iter_mut().for_each(String::clear);
        *self = Outcome::starting(started, names);
    }
}

impl Default for ClientFacts {
    fn default() -> Self {
        ClientFacts {
            http10: false,
            keep_alive: false,
            is_head: false,
            dialect: Dialect::OpenAi,
            write_timeout: Duration::ZERO,
            rate: None,
            cache: None,
        }
    }
}
