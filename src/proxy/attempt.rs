//! One request's upstream attempts, from the first to the answer. Each
//! attempt is routed (the client's model, or a configured model's
//! deployment, or a fallback model's), takes one of its provider's in-flight
//! slots and goes out through `forward`, its deployment's breaker and
//! balancer told how it went. After a failure the retry policy decides: the
//! same deployment again after a backoff, another deployment or fallback
//! model (fail-over), or the answer as it is.
//!
//! Invariants:
//! - Only a configured model's attempts are retried or failed over, and
//!   their error responses are held back, not a byte sent to the client,
//!   until it is decided that no other attempt replaces them: a request
//!   gets exactly one answer.
//! - No attempt starts, nor goes on waiting for a response head, for a
//!   client that has left (499): its in-flight slot is freed at once.
//! - A failure is retried as one that never reached the upstream only when
//!   its error says so (`Retry::Safe`); one the upstream may have acted on
//!   is a broken response to the retry policy (its `on_broken_response`).
//! - The client's body buffer is lent to each attempt and comes back; only
//!   an upstream write that timed out keeps it, which ends the attempts (and,
//!   after the error answer, the connection).

use crate::net::ClientIo;
use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use monoio::net::TcpStream;

use super::context::Outcome;
use super::context::{Request, RequestCtx};
use super::downstream::{Body, Downstream};
use super::endpoint::{split_target, Endpoint};
use super::exchange::{ClientFacts, OutgoingRequest, Relayed, UpstreamSide, PIPELINED_RECHECK};
use super::forward::{forward, relay_held, Leg};
use super::govern;
use super::lend::Lent;
use super::lookup;
use super::offload::{self, OffLoop};
use super::route::{
    at_quota, pick_deployment, plan_request, quota_full, Choice, FirstRoute, Pick, Plan, Source,
};
use super::translated::TranslatedCall;
use super::upstream_request::{upstream_request, HeadSource};
use crate::api::multipart;
use crate::error::{Error, Kind, Retry};
use crate::governance::RateHeaders;
use crate::http1::parse::RequestHead;
use crate::runtime::loop_now;
use crate::shard::{Generation, Shard};
use crate::telemetry::trace::{EventValue, RequestTrace};
use crate::upstream::breaker::{BreakerEvent, Outcome as BreakerOutcome, Ticket};
use crate::upstream::quota;
use crate::upstream::retry::{Attempt, Decision, RetryState};

/// Sends `request` upstream, attempt after attempt, until one gives the
/// answer, and notes in `outcome` what it came to. An `Err` is still to be
/// answered: nothing has reached the client. A client that left between
/// attempts is [`Relayed::Broken`], logged as 499. `facts.keep_alive` is
/// cleared when the connection must close after the answer.
pub(super) async fn run_attempts<S: ClientIo>(
    shard: &Shard,
    ctx: &mut RequestCtx,
    down: &mut Downstream<S>,
    request: Request,
) -> Result<Relayed, Error> {
    let generation: Rc<Generation> = ctx.generation().clone();
    let generation: &Generation = &generation;
    let RequestCtx {
        facts,
        side,
        outcome,
        key,
        trace,
        ..
    } = ctx;
    let Request {
        endpoint,
        mut body,
        query,
        direct_provider,
        generated_id,
    } = request;
    let gw = &generation.gateway;
    let request_id = generated_id.then_some(outcome.request_id.as_str());
    let mut attempts = Attempts {
        shard,
        generation,
        side,
        facts,
        choice: Choice::Route,
        origin_model: None,
        tried: Vec::new(),
        retry: generation.retry.start(loop_now()),
        max_output: None,
        stream: (false, None),
        pinned: None,
        trace: trace.as_deref_mut(),
    };
    let mut scanned = None;
    // The lookup phase's plan, once made (`Some(None)`: no cache for it).
    let mut cache: Option<Option<lookup::CachePlan>> = None;
    let result = loop {
        let (provider, plan) = match direct_provider {
            Some(provider) => (
                provider,
                Plan::PassThrough {
                    upstream_model: Cow::Borrowed(""),
                    patch: None,
                    inject_usage: None,
                },
            ),
            None if offload::applies(&gw.config.limits, &body) && !endpoint.is_multipart() => {
                // A large body: its scan (once, kept for later attempts) and
                // translation run off the loop.
                let top = match scanned.take() {
                    Some(top) => top,
                    None => match offload::scan(down, &mut body).await {
                        Ok(OffLoop::Done(top)) => top,
                        Ok(OffLoop::ClientLeft) => return Ok(client_left(outcome, attempts.facts)),
                        Err(e) => break Err(off_loop_failed(e, attempts.facts)),
                    },
                };
                let top = &*scanned.insert(top);
                let routed = attempts.route(
                    endpoint,
                    Source::Scanned(top),
                    &mut outcome.model,
                    &mut outcome.upstream_model,
                );
                let (provider, mut plan) = match routed {
                    Ok(x) => x,
                    Err(e) => break Err(e),
                };
                match offload::translate(gw, down, &mut body, &mut plan).await {
                    Ok(OffLoop::Done(())) => (provider, plan),
                    Ok(OffLoop::ClientLeft) => return Ok(client_left(outcome, attempts.facts)),
                    Err(e) => break Err(off_loop_failed(e, attempts.facts)),
                }
            }
            None => {
                let body_bytes: &[u8] = match &body {
                    Body::Empty => b"",
                    Body::InPlace(r) => &down.rbuf[r.clone()],
                    Body::Decoded(b) => b,
                    // Read through its `model` field.
                    Body::Streamed(u) => &down.rbuf[u.prefix.clone()],
                };
                let source = if endpoint.is_multipart() {
                    match form_boundary(&down.head, &down.rbuf) {
                        Ok(boundary) => Source::Form {
                            body: body_bytes,
                            boundary,
                        },
                        Err(e) => break Err(e),
                    }
                } else {
                    Source::Body(body_bytes)
                };
                let routed = attempts.route(
                    endpoint,
                    source,
                    &mut outcome.model,
                    &mut outcome.upstream_model,
                );
                match routed {
                    Ok(x) => x,
                    Err(e) => break Err(e),
                }
            }
        };

        // A key's allow-list and reservation, once, before the first attempt.
        if let (Some(key), true, None) = (
            key.as_deref(),
            attempts.side.gate.is_none(),
            direct_provider,
        ) {
            match govern::reserve(
                gw,
                shard.governance(),
                key,
                &outcome.model,
                provider,
                &outcome.upstream_model,
                // An upload's bytes are a file's, not text: no measure of its
                // tokens, which the response's usage settles.
                if endpoint.is_multipart() {
                    0
                } else {
                    outcome.bytes_in
                },
                attempts.max_output,
            )
            .await
            {
                Ok((gate, rate)) => {
                    attempts.side.gate = Some(gate);
                    attempts.facts.rate = limited(rate);
                }
                Err((e, rate)) => {
                    attempts.facts.rate = rate.and_then(limited);
                    break Err(e);
                }
            }
        }

        // The lookup phase, once, after the key's checks.
        if direct_provider.is_none() && cache.is_none() && gw.cache.is_some() {
            let body_bytes: &[u8] = match &body {
                Body::InPlace(r) => &down.rbuf[r.clone()],
                Body::Decoded(b) => b,
                Body::Empty | Body::Streamed(_) => b"",
            };
            let key = key.as_deref();
            let (streams, options) = &attempts.stream;
            let include_usage = options.as_ref().is_some_and(|o| {
                crate::json::top_level_value(&body_bytes[o.clone()], b"include_usage")
                    == Some(b"true")
            });
            let mut planned = lookup::plan(
                gw,
                endpoint,
                body_bytes,
                (*streams, include_usage),
                &outcome.model,
                key,
                &down.head,
                &down.rbuf,
            );
            if let Some(p) = &mut planned {
                let now = crate::governance::unix_now();
                if let Some((hit, age)) =
                    lookup::find(gw, p, (&outcome.model, body_bytes), now).await
                {
                    attempts.side.report.status = 200;
                    attempts.side.report.streamed = hit.streams;
                    attempts.side.report.usage = Some(hit.usage(gw));
                    attempts.side.report.mark_first_body();
                    outcome.cache = Some("hit");
                    break Ok(
                        lookup::answer_hit(&mut down.stream, attempts.facts, &hit, age).await,
                    );
                }
                attempts.facts.cache = Some(p.status());
                outcome.cache = Some(p.status());
                attempts.side.capture_body = (p.key.is_some() && p.directive.write)
                    .then_some(gw.config.cache.max_entry_bytes);
            }
            cache = Some(planned);
        }

        // A provider quota filled since the pick (by another shard, or
        // while a retry backed off), or one on a direct route: nothing was
        // sent, so another deployment or fallback may take it, else 429.
        let second = quota::now_secs(loop_now());
        if let Some(wait) = quota_full(&gw.router, provider, attempts.quota_deployment(), second) {
            match attempts.fail_over(provider) {
                Some(c) => {
                    attempts.choice = c;
                    continue;
                }
                None => break Err(at_quota(&gw.router.providers[provider].name, wait)),
            }
        }

        // Bounded under load: past the per-shard cap for this provider, fail
        // fast before anything is sent upstream.
        let Some(_upstream_slot) = generation.upstream_slot(provider) else {
            // Nothing was sent: another deployment (or fallback) may have room.
            match attempts.fail_over(provider) {
                Some(c) => {
                    attempts.choice = c;
                    continue;
                }
                None => {
                    break Err(Error::gateway(
                        Kind::Overloaded,
                        "too many requests in flight to this provider; retry shortly",
                    ))
                }
            }
        };

        outcome.provider = Some(provider);
        outcome.deployment = attempts.quota_deployment();
        let p = &gw.router.providers[provider];
        // In a block of its own: what builds the head is not kept across
        // the sending's awaits, so every connection's task stays smaller.
        let (mut req, translated, call) = {
            // With tracing on, the attempt's span starts here: its id goes
            // upstream in the `traceparent` the head carries.
            let traceparent = attempts.trace.as_deref_mut().map(|t| {
                let span = t.start_attempt(Instant::now(), provider, &outcome.upstream_model);
                t.traceparent(&span)
            });
            let source = HeadSource {
                server: &gw.config.server,
                rbuf: &down.rbuf,
                head: &down.head,
                peer: &down.peer,
                provider: p,
                query: query.clone(),
                request_id,
                traceparent: traceparent.as_ref().map(|t| &t[..]),
            };
            upstream_request(&source, &body, plan, endpoint)
        };
        let lent = Lent::lend(&mut req, translated, down, &mut body);
        let tried = attempts
            .send(down, &mut body, provider, req, lent, call.as_ref())
            .await;
        if attempts.trace.is_some() {
            attempts.trace_attempt_end(&tried);
        }
        let (result, failure) = match tried {
            Tried::Answer(result) => break result,
            Tried::Failed(result, failure) => (result, failure),
        };
        let Some(next) = attempts.after_failure(provider, failure) else {
            break match result {
                Ok(Relayed::Held) => {
                    relay_held(
                        generation,
                        attempts.side,
                        &mut down.stream,
                        attempts.facts,
                        call.as_ref(),
                    )
                    .await
                }
                other => other,
            };
        };
        attempts.side.discard_held();
        if !back_off(down.stream.tcp(), next.backoff).await {
            // The client left (during the backoff, say): no other upstream
            // request for it; 499, as nginx logs it.
            outcome.status = 499;
            outcome.upstream = attempts.side.report.sent_at.map(|t| t.elapsed());
            return Ok(Relayed::Broken);
        }
        attempts.choice = next.choice;
    };
    let side = attempts.side;
    outcome.upstream = side.report.sent_at.map(|t| t.elapsed());
    outcome.ttft = side
        .report
        .first_event()
        .map(|t| t.duration_since(outcome.started));
    outcome.usage = side.report.usage;
    // A 2xx answer (whole, or a stream recorded) the cache may keep.
    if let (Some(Some(plan)), Some(body)) = (&cache, side.cache_body.take()) {
        if (200..300).contains(&side.report.status) && !side.report.truncated {
            let usage = outcome.usage.unwrap_or_default();
            let price = gw.router.prices.price(&outcome.upstream_model);
            let saved = crate::cache::store::Saved {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                nanos: price.map_or(0, |p| p.cost_nanos(&usage)),
            };
            lookup::keep(
                gw,
                plan,
                body,
                (usage, saved),
                crate::governance::unix_now(),
            );
        }
    }
    // A completed batch fetched: its usage, once, as its model's.
    if let Some((usage, model)) = side.batch_usage.take() {
        let (path, _) = split_target(down.head.target.get(&down.rbuf));
        let id = endpoint.resource_id(path).map(String::from_utf8_lossy);
        if id.is_some_and(|id| shard.governance().resources.meter_once(&id)) {
            outcome.usage = Some(usage);
            outcome.model.clone_from(&model);
            outcome.upstream_model = model;
        }
    }
    outcome.status = if side.report.client_left {
        499
    } else {
        side.report.status
    };
    outcome.truncated = side.report.truncated;
    outcome.output_seen = side.report.output_seen;
    if let Some(cut) = side.report.cut {
        outcome.error = Some(match cut {
            govern::Cut::Budget => "budget_exceeded",
            govern::Cut::Tokens => "rate_limit_exceeded",
        });
    }
    result
}

/// The rate headers, for a key that has a rate limit.
fn limited(rate: RateHeaders) -> Option<RateHeaders> {
    (rate.requests.is_some() || rate.tokens.is_some()).then_some(rate)
}

/// The answer for a client that left while its body was processed off the
/// loop: nothing went upstream; 499, and the connection closes (its body's
/// buffer stayed with the job).
fn client_left(outcome: &mut Outcome, facts: &mut ClientFacts) -> Relayed {
    outcome.status = 499;
    facts.keep_alive = false;
    Relayed::Broken
}

/// An error from off the loop; the connection closes after its answer
/// when the job failed (`Kind::Internal`: its body may not have come back).
fn off_loop_failed(e: Error, facts: &mut ClientFacts) -> Error {
    if e.kind == Kind::Internal {
        facts.keep_alive = false;
    }
    e
}

/// A request's attempts: where the next one goes, and what those before it
/// used up.
struct Attempts<'a> {
    shard: &'a Shard,
    generation: &'a Generation,
    side: &'a mut UpstreamSide,
    facts: &'a mut ClientFacts,
    choice: Choice,
    /// The client's configured model, whose fallbacks apply.
    origin_model: Option<usize>,
    /// Deployments of the current model already given up on (allocates
    /// only on a fail-over).
    tried: Vec<usize>,
    retry: RetryState,
    /// The most output the request allows (its `max_tokens`), if it says.
    max_output: Option<u64>,
    /// Whether it streams, and where its `stream_options` value is.
    stream: (bool, Option<Range<usize>>),
    /// The configured model's deployment a `provider/model` name pins
    /// sent direct, but counted against that deployment's quota).
    pinned: Option<(usize, usize)>,
    /// The request's trace, with tracing on: each attempt's span, and the
    /// decisions between them as its events.
    trace: Option<&'a mut RequestTrace>,
}

/// What one attempt came to.
enum Tried {
    /// The request's answer: a response relayed (whole or cut), or an
    /// error no other attempt may replace.
    Answer(Result<Relayed, Error>),
    /// A configured model's attempt failed: an error, or an error response
    /// held back. The outcome is what the retry policy judges.
    Failed(Result<Relayed, Error>, BreakerOutcome),
}

/// Where the attempt after a failed one goes.
struct NextAttempt {
    choice: Choice,
    /// A retry's wait first (a fail-over goes at once).
    backoff: Option<Duration>,
}

/// The boundary of an upload's `multipart/form-data` body, or the 400
/// for a body of another type.
fn form_boundary<'b>(head: &RequestHead, rbuf: &'b [u8]) -> Result<&'b [u8], Error> {
    head.header(rbuf, b"content-type")
        .and_then(multipart::form_data_boundary)
        .ok_or_else(|| {
            Error::client(
                Kind::BadRequest,
                "this route takes a multipart/form-data body (with its boundary)",
            )
        })
}

impl<'a> Attempts<'a> {
    /// Generation the next attempt of a request with a JSON body: its provider
    /// and how the body goes there. The first routing also notes the
    /// client's model (in `model`), and whose fallbacks apply.
    fn route<'b>(
        &mut self,
        endpoint: Endpoint,
        body: Source<'b>,
        model: &mut String,
        upstream_model: &mut String,
    ) -> Result<(usize, Plan<'b>), Error>
    where
        'a: 'b,
    {
        // Only the first routing starts from `Choice::Route`.
        let first = matches!(self.choice, Choice::Route);
        let routed = plan_request(
            &self.generation.gateway,
            self.generation,
            &self.shard.metrics,
            endpoint,
            body,
            first.then_some(FirstRoute {
                model: &mut *model,
                max_output: &mut self.max_output,
                stream: &mut self.stream,
            }),
            upstream_model,
            &mut self.choice,
        );
        let routed = match routed {
            // Every deployment of the client's model is at its quota: its
            // fallbacks get the request before the client gets a 429.
            Err(e) if first && e.kind == Kind::RateLimited => {
                let router = &self.generation.gateway.router;
                let Some(origin) = router.model_index(model) else {
                    return Err(e);
                };
                self.origin_model = Some(origin);
                let from = router.model_routes[origin].deployments[0].provider;
                let Some(choice) = self.next_fallback(from) else {
                    return Err(e);
                };
                self.choice = choice;
                return self.route(endpoint, body, model, upstream_model);
            }
            other => other?,
        };
        match (first, self.choice) {
            (true, Choice::Deployment { model, .. }) => self.origin_model = Some(model),
            (true, Choice::Direct) => {
                self.pinned = self.generation.gateway.router.pinned_deployment(model);
            }
            _ => {}
        }
        Ok(routed)
    }

    /// The deployment whose quota the current attempt counts against: the
    /// one it goes to, or the one its `provider/model` name pins.
    fn quota_deployment(&self) -> Option<(usize, usize)> {
        self.deployment().or(self.pinned)
    }

    /// The configured model's deployment the current attempt goes to.
    fn deployment(&self) -> Option<(usize, usize)> {
        match self.choice {
            Choice::Deployment { model, index } => Some((model, index)),
            _ => None,
        }
    }

    /// One attempt: sends `req` to `provider` and relays the response, or,
    /// for a configured model's deployment, holds back an error response
    /// that another attempt might replace. The deployment's breaker and
    /// balancer hear of the response head as soon as it arrives, and of a
    /// failure before one. The body buffer `lent` to `req` is put back.
    async fn send<S: ClientIo>(
        &mut self,
        down: &mut Downstream<S>,
        body: &mut Body,
        provider: usize,
        req: OutgoingRequest,
        lent: Lent,
        call: Option<&TranslatedCall>,
    ) -> Tried {
        let (shard, generation) = (self.shard, self.generation);
        // Health and load bookkeeping for a configured model's deployment.
        let deployment = match self.choice {
            Choice::Deployment { model, index } => Some((model, index)),
            _ => None,
        };
        // A breaker's change of state during the attempt, for its span.
        let breaker_event = Cell::new(None);
        let admitted = deployment.and_then(|(model, index)| {
            let admission = generation.models[model].breakers[index].admit(loop_now());
            if let Some(event) = admission.event() {
                report_breaker(shard, generation, model, index, event);
                breaker_event.set(Some(event));
            }
            admission.ticket().map(|ticket| Admitted {
                model,
                index,
                ticket,
            })
        });
        // Counted as sent: the quota holds requests the provider received.
        let second = quota::now_secs(loop_now());
        for q in generation
            .gateway
            .router
            .quotas(provider, self.quota_deployment())
        {
            q.count_request(second);
        }
        // Clock reads, not the loop clock: the balancer's latency samples.
        let mut flight =
            deployment.map(|(m, i)| generation.models[m].balancer.begin(i, Instant::now()));
        let head_seen = Cell::new(false);
        let mut on_head = |status: u16| {
            head_seen.set(true);
            let now = Instant::now();
            // A failure is the breaker's to judge, not a latency sample.
            if status < 500 && status != 429 {
                if let Some(f) = flight.as_mut() {
                    f.record_latency(now);
                }
            }
            if let Some(a) = admitted {
                if let Some(e) = a.record(shard, generation, BreakerOutcome::Status(status), now) {
                    breaker_event.set(Some(e));
                }
            }
        };
        let leg = Leg {
            shard,
            generation,
            provider,
            translation: call,
            hold: deployment.is_some(),
        };
        let (result, body_back) = forward(
            &leg,
            self.side,
            req,
            &mut down.stream,
            self.facts,
            &mut on_head,
        )
        .await;
        drop(flight);
        if let Some(event) = breaker_event.take() {
            self.trace_breaker(event);
        }
        // An upload whose rest went (or began to go) upstream cannot be
        // sent again: its buffer is not taken back, so no attempt follows
        // and the connection closes after the answer.
        let body_back = body_back.filter(|_| !self.side.report.upload_taken);
        if let Ok(Relayed::Complete { .. }) = &result {
            self.note_resource(provider);
        }
        let failure = match &result {
            Ok(Relayed::Held) => Some(BreakerOutcome::Status(self.side.head.status)),
            Err(e) => {
                // A failure the upstream provably never saw the request
                // through is as good as a connect error; one it may have
                // acted on (a close after the request was written) is a
                // broken response.
                let o = match e.kind {
                    Kind::UpstreamConnect => BreakerOutcome::Connect,
                    Kind::UpstreamTimeout => BreakerOutcome::Timeout,
                    _ if e.retry == Retry::Safe => BreakerOutcome::Connect,
                    _ => BreakerOutcome::Protocol,
                };
                if let (Some(a), false) = (admitted, head_seen.get()) {
                    if let Some(e) = a.record(shard, generation, o, Instant::now()) {
                        breaker_event.set(Some(e));
                    }
                }
                Some(o)
            }
            Ok(_) => {
                // Abandoned for a client that left: says nothing of the
                // deployment, but frees a half-open probe's slot.
                if let (Some(a), false, true) =
                    (admitted, head_seen.get(), self.side.report.client_left)
                {
                    a.record(shard, generation, BreakerOutcome::Cancelled, Instant::now());
                }
                None
            }
        };
        if !lent.put_back(body_back, down, body) {
            // The body went with an upstream write that timed out: the error
            // is answered (nothing can be re-sent), then the connection
            // closes, as its read buffer may have gone too.
            self.facts.keep_alive = false;
            return Tried::Answer(result);
        }
        let Some(failure) = failure else {
            return Tried::Answer(result);
        };
        // Only a configured model's requests are retried.
        if deployment.is_none() {
            return Tried::Answer(result);
        }
        Tried::Failed(result, failure)
    }

    /// After a relayed answer: a file or batch the provider made is recorded
    /// as its, one it deleted forgotten.
    fn note_resource(&mut self, provider: usize) {
        if !(200..300).contains(&self.side.report.status) {
            return;
        }
        let resources = &self.shard.governance().resources;
        if let Some(id) = self.side.created_id.take() {
            resources.insert(
                &id,
                &self.generation.gateway.router.providers[provider].name,
            );
        }
        if let Some(id) = self.side.forget_id.take() {
            resources.remove(&id);
        }
    }

    /// After a failed attempt on provider `from`: where the next one goes,
    /// as the retry policy decides; `None` to answer with this one.
    fn after_failure(&mut self, from: usize, failure: BreakerOutcome) -> Option<NextAttempt> {
        let attempt = Attempt {
            outcome: failure,
            client_bytes_sent: false,
            retry_after: self.side.held_header(b"retry-after"),
            retry_after_ms: self.side.held_header(b"retry-after-ms"),
            error_body: self.side.held_body(),
        };
        let decision = self.generation.retry.decide(
            &mut self.retry,
            &attempt,
            Instant::now(),
            SystemTime::now(),
            &self.generation.rng,
        );
        let elsewhere = |choice| NextAttempt {
            choice,
            backoff: None,
        };
        match decision {
            Decision::Retry { after } => {
                let backoff = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
                self.trace_event(
                    "retry",
                    Some(("shardgate.backoff_ms", EventValue::Int(backoff))),
                );
                let metrics = &self.shard.metrics;
                metrics.retry(metrics.labels().provider(from));
                Some(NextAttempt {
                    choice: self.choice,
                    backoff: Some(after),
                })
            }
            Decision::FailOver => self.fail_over(from).map(elsewhere),
            Decision::ContextWindowFallback => self.context_window_fallback(from).map(elsewhere),
            Decision::Respond => None,
        }
    }

    /// Gives up on the current deployment: another deployment of its model
    /// not yet tried, else the origin model's next fallback (counted as a
    /// retry or a fallback from provider `from`). `None` when the attempt
    /// was not to a deployment, or nothing is left.
    fn fail_over(&mut self, from: usize) -> Option<Choice> {
        let Choice::Deployment { model, index } = self.choice else {
            return None;
        };
        self.tried.push(index);
        let metrics = &self.shard.metrics;
        if let Pick::Deployment(index) =
            pick_deployment(self.generation, metrics, model, &self.tried)
        {
            metrics.retry(metrics.labels().provider(from));
            let deployment = i64::try_from(index).unwrap_or(i64::MAX);
            self.trace_event(
                "failover",
                Some(("shardgate.deployment", EventValue::Int(deployment))),
            );
            return Some(Choice::Deployment { model, index });
        }
        self.next_fallback(from)
    }

    /// A decision, as an event on the current attempt's span.
    fn trace_event(&mut self, name: &'static str, attr: Option<(&'static str, EventValue)>) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.event(Instant::now(), name, attr);
        }
    }

    /// A breaker's change of state, as an event on the attempt's span.
    fn trace_breaker(&mut self, event: BreakerEvent) {
        let state = match event {
            BreakerEvent::Ejected { .. } => "ejected",
            BreakerEvent::HalfOpen => "half_open",
            BreakerEvent::Closed => "closed",
            BreakerEvent::ReEjected { .. } => "re_ejected",
        };
        self.trace_event(
            "breaker",
            Some(("shardgate.breaker.state", EventValue::Static(state))),
        );
    }

    /// The attempt just sent ended: its status, or the error it failed with.
    fn trace_attempt_end(&mut self, tried: &Tried) {
        let (Tried::Answer(result) | Tried::Failed(result, _)) = tried;
        let (status, error) = match result {
            Ok(Relayed::Held) => (self.side.head.status, None),
            Err(e) => (0, Some(e.metric_kind())),
            Ok(_) if self.side.report.client_left => (self.side.report.status, Some("client_left")),
            Ok(_) => (self.side.report.status, None),
        };
        if let Some(t) = self.trace.as_deref_mut() {
            t.end_attempt(Instant::now(), status, error);
        }
    }

    /// The origin model's next fallback that has a deployment to take the
    /// request (one whose every deployment is at its quota is skipped).
    fn next_fallback(&mut self, from: usize) -> Option<Choice> {
        let router = &self.generation.gateway.router;
        let fallbacks = &router.model_routes[self.origin_model?].fallbacks;
        while let Some(name) = fallbacks.next_model(&mut self.retry) {
            if let Some(choice) = self.fall_back(from, name) {
                return Some(choice);
            }
        }
        None
    }

    /// The origin model's next fallback for a prompt too long for the
    /// model tried.
    fn context_window_fallback(&mut self, from: usize) -> Option<Choice> {
        let name = self.generation.gateway.router.model_routes[self.origin_model?]
            .fallbacks
            .next_context_window_model(&mut self.retry)?;
        self.fall_back(from, name)
    }

    /// The first deployment of fallback model `name`, counted as a fallback
    /// from `from` (a provider index).
    fn fall_back(&mut self, from: usize, name: &str) -> Option<Choice> {
        let model = self.generation.gateway.router.model_index(name)?;
        self.tried.clear();
        let metrics = &self.shard.metrics;
        let Pick::Deployment(index) = pick_deployment(self.generation, metrics, model, &self.tried)
        else {
            return None;
        };
        metrics.fallback(metrics.labels().provider(from));
        if self.trace.is_some() {
            let model = EventValue::Text(name.to_string());
            self.trace_event("fallback", Some(("shardgate.fallback_model", model)));
        }
        crate::telemetry::log_info(format_args!(
            "shard {}: falling back to model {name}",
            self.shard.id
        ));
        Some(Choice::Deployment { model, index })
    }
}

/// Waits out a retry's backoff, if any, watching the client; then whether
/// it is still there (one that left is not worth another upstream request,
/// and is let go the moment it leaves, not after a long `Retry-After`).
async fn back_off(client: &TcpStream, backoff: Option<Duration>) -> bool {
    if let Some(after) = backoff {
        monoio::select! {
            () = monoio::time::sleep(after) => {}
            () = crate::net::peer_gone(client, PIPELINED_RECHECK) => {
                return false;
            }
        }
    }
    !crate::net::peer_closed(client)
}

/// A configured model's deployment whose breaker admitted an attempt.
#[derive(Clone, Copy)]
struct Admitted {
    model: usize,
    index: usize,
    ticket: Ticket,
}

impl Admitted {
    /// Tells the breaker how the attempt went; its change of state, if
    /// any (logged and counted here).
    fn record(
        self,
        shard: &Shard,
        generation: &Generation,
        outcome: BreakerOutcome,
        now: Instant,
    ) -> Option<BreakerEvent> {
        let breaker = &generation.models[self.model].breakers[self.index];
        let event = breaker.record(self.ticket, outcome, now)?;
        report_breaker(shard, generation, self.model, self.index, event);
        Some(event)
    }
}

/// Logs and counts a breaker's state change.
fn report_breaker(
    shard: &Shard,
    generation: &Generation,
    model: usize,
    index: usize,
    event: BreakerEvent,
) {
    let m = &generation.gateway.router.model_routes[model];
    let d = &m.deployments[index];
    let provider = &generation.gateway.router.providers[d.provider].name;
    if let BreakerEvent::Ejected { .. } | BreakerEvent::ReEjected { .. } = event {
        shard
            .metrics
            .ejection(shard.metrics.labels().provider(d.provider));
    }
    use crate::telemetry::{log_event, Field, Level};
    let (name, level, cool_down, ejections) = match event {
        BreakerEvent::Ejected {
            cool_down,
            ejections,
            ..
        }
        | BreakerEvent::ReEjected {
            cool_down,
            ejections,
        } => ("ejection", Level::Warn, Some(cool_down), Some(ejections)),
        BreakerEvent::HalfOpen => ("probe", Level::Info, None, None),
        BreakerEvent::Closed => ("recovery", Level::Info, None, None),
    };
    let mut fields = vec![
        ("shard", Field::U64(shard.id as u64)),
        ("model", Field::Str(&m.name)),
        ("deployment", Field::U64(index as u64)),
        ("provider", Field::Str(provider)),
        ("upstream_model", Field::Str(&d.upstream_model)),
    ];
    if let BreakerEvent::Ejected { failures, .. } = event {
        fields.push(("failures", Field::U64(failures.into())));
    }
    if let (Some(cool_down), Some(ejections)) = (cool_down, ejections) {
        fields.push(("cool_down_ms", Field::U64(cool_down.as_millis() as u64)));
        fields.push(("ejections", Field::U64(ejections.into())));
    }
    log_event(
        level,
        name,
        &fields,
        Some(format_args!(
            "shard {}: model {} deployment {index} ({provider}, {}): breaker {event:?}",
            shard.id, m.name, d.upstream_model
        )),
    );
}
