//! One client connection: requests read in order (pipelining answered in
//! order), each admitted, routed and forwarded, until either side closes.
//!
//! Invariant: every request's body is consumed whole before the next head is
//! parsed, and any response the gateway makes itself is complete and
//! correctly framed, so a keep-alive connection never loses sync; on any
//! doubt the connection is closed instead.

use std::borrow::Cow;
use std::mem;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use monoio::net::TcpStream;

use super::downstream::{Body, Downstream};
use super::endpoint::{classify, split_target, Endpoint};
use super::forward::{forward, relay_held, ClientFacts, OutgoingRequest, Relayed, UpstreamSide};
use super::outcome::Outcome;
use super::plan::{
    build_head, pick_deployment, plan_request, BodyEdits, Choice, Plan, INCLUDE_USAGE,
};
use super::translated::{TranslatedCall, Translation};
use crate::buf::PooledBuf;
use crate::error::{Error, Kind};
use crate::http1::framing::request_framing;
use crate::providers::Dialect;
use crate::shard::{Routes, Shard};
use crate::upstream::breaker::{BreakerEvent, Outcome as BreakerOutcome};
use crate::upstream::retry::{Attempt, Decision, RetryState};

enum Next {
    KeepAlive,
    Close,
}

/// Serves one accepted client connection to the end.
pub async fn serve_connection(stream: TcpStream, shard: Rc<Shard>) {
    // Responses (and stream chunks) must leave as soon as they are written.
    let _ = stream.set_nodelay(true);
    let mut down = Downstream::new(stream);
    let mut side = UpstreamSide::default();
    let mut outcome = Outcome::default();
    let mut first = true;
    loop {
        let limits = shard.routes().gateway.config.limits.clone();
        match down.read_head(&limits, first).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = down.write_error(&e, true, Dialect::OpenAi).await;
                return;
            }
        }
        first = false;
        let _in_flight = shard.request_guard();
        outcome.reset(Instant::now());
        let routes = shard.routes();
        let next = handle_request(&shard, &routes, &mut down, &mut side, &mut outcome).await;
        outcome.record(&shard, &routes);
        match next {
            Next::KeepAlive => {}
            Next::Close => return,
        }
    }
}

async fn handle_request(
    shard: &Shard,
    routes: &Routes,
    down: &mut Downstream,
    side: &mut UpstreamSide,
    outcome: &mut Outcome,
) -> Next {
    let gw = &routes.gateway;
    let framing = match request_framing(&down.rbuf, &down.head) {
        Ok(f) => f,
        Err(e) => {
            let err = Error::client(
                Kind::BadRequest,
                format!("malformed request framing: {e:?}"),
            );
            let _ = down.write_error(&err, true, Dialect::OpenAi).await;
            return Next::Close;
        }
    };
    let mut facts = ClientFacts {
        http10: down.head.minor_version == 0,
        // While draining, every response closes its connection.
        keep_alive: framing.keep_alive && !shard.is_draining(),
        is_head: down.head.method.get(&down.rbuf) == b"HEAD",
        dialect: Dialect::OpenAi,
        write_timeout: Duration::from_millis(gw.config.limits.client_write_timeout_ms),
    };
    // The body is always consumed whole so the connection stays in sync.
    let (body, next) = match down.read_body(&framing, &gw.config.limits).await {
        Ok(x) => x,
        Err(e) => {
            outcome.status = e.status();
            let _ = down.write_error(&e, true, Dialect::OpenAi).await;
            return Next::Close;
        }
    };
    outcome.bytes_in = match &body {
        Body::Empty => 0,
        Body::InPlace(r) => r.len() as u64,
        Body::Decoded(b) => b.len() as u64,
    };
    // x-request-id: the client's, else ours; either way it goes upstream.
    let generated_id = match down.head.header(&down.rbuf, b"x-request-id") {
        Some(id) => {
            outcome.request_id.push_str(&String::from_utf8_lossy(id));
            false
        }
        None => {
            outcome
                .request_id
                .push_str(shard.request_ids.next_id().as_str());
            true
        }
    };
    let target = down.head.target.get(&down.rbuf);
    let (path, query) = split_target(target);
    let query_range = down.head.target.end as usize - query.len()..down.head.target.end as usize;
    let endpoint = match classify(down.head.method.get(&down.rbuf), path) {
        Ok(e) => e,
        Err(e) => return respond_error(down, &e, &facts, next, outcome).await,
    };
    facts.dialect = endpoint.client_dialect();
    outcome.route = endpoint.route_index();

    // `/v1/models` passed to the default provider, when no models are configured.
    let models_provider = match endpoint {
        Endpoint::Health => {
            return respond_local(outcome, down, 200, b"{\"status\":\"ok\"}", &facts, next).await
        }
        Endpoint::Models => match gw
            .router
            .default_provider()
            .filter(|_| !gw.router.has_models)
        {
            Some(provider) => Some(provider),
            None => {
                return respond_local(outcome, down, 200, &gw.router.models_body, &facts, next)
                    .await
            }
        },
        _ => None,
    };

    let request_id = generated_id.then_some(outcome.request_id.as_str());
    let mut body = body;
    let mut retry_state = routes.retry.start(Instant::now());
    let mut choice = Choice::Route;
    // The client's configured model, whose fallbacks apply.
    let mut origin_model: Option<usize> = None;
    // Deployments of the current model already given up on (allocates
    // only on a fail-over).
    let mut tried: Vec<usize> = Vec::new();
    let mut first = true;
    let result = loop {
        let (provider, plan) = match models_provider {
            Some(provider) => (
                provider,
                Plan::PassThrough {
                    upstream_model: Cow::Borrowed(""),
                    patch: None,
                    inject_usage: None,
                },
            ),
            None => {
                let body_bytes: &[u8] = match &body {
                    Body::Empty => b"",
                    Body::InPlace(r) => &down.rbuf[r.clone()],
                    Body::Decoded(b) => b,
                };
                let model_out = first.then_some(&mut outcome.model);
                match plan_request(
                    gw,
                    routes,
                    endpoint,
                    body_bytes,
                    model_out,
                    &mut outcome.upstream_model,
                    &mut choice,
                ) {
                    Ok(x) => x,
                    Err(e) => break Err(e),
                }
            }
        };
        if first {
            if let Choice::Deployment { model, .. } = choice {
                origin_model = Some(model);
            }
            first = false;
        }

        // Bounded under load: past the per-shard cap for this provider, fail
        // fast before anything is sent upstream.
        let Some(_upstream_slot) = routes.upstream_slot(provider) else {
            // Nothing was sent: another deployment (or fallback) may have room.
            let elsewhere = match choice {
                Choice::Deployment { .. } => fail_over(
                    shard,
                    routes,
                    choice,
                    provider,
                    origin_model,
                    &mut retry_state,
                    &mut tried,
                ),
                _ => None,
            };
            match elsewhere {
                Some(c) => {
                    choice = c;
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

        // The head is built while the client's head (in `rbuf`) is at hand;
        // then the body's buffer is handed to the request and comes back after.
        let p = &gw.router.providers[provider];
        outcome.provider = Some(provider);
        let (body_len, body_offset) = match &body {
            Body::Empty => (None, 0),
            Body::InPlace(r) => (Some(r.len()), r.start),
            Body::Decoded(b) => (Some(b.len()), 0),
        };
        // Everything borrowed from the body (the model name) is used up here,
        // before its buffer moves.
        let (head, head_range, value_range, patch, insert, translated, call) = match plan {
            Plan::PassThrough {
                upstream_model,
                patch,
                inject_usage,
            } => {
                let model = (!upstream_model.is_empty()).then_some(upstream_model.as_ref());
                let patch = patch.map(|span| span.start + body_offset..span.end + body_offset);
                let insert = inject_usage.map(|(at, comma)| {
                    let member: &[u8] = if comma {
                        INCLUDE_USAGE
                    } else {
                        &INCLUDE_USAGE[1..]
                    };
                    (at + body_offset, member)
                });
                let edits = BodyEdits {
                    len: body_len,
                    patch: patch.clone().map(|span| (span, upstream_model.as_ref())),
                    insert: insert.map(|(_, member)| member),
                };
                let (head, ranges) = build_head(
                    down,
                    p,
                    endpoint.upstream_path(),
                    model,
                    query_range.clone(),
                    edits,
                    request_id,
                    false,
                );
                let insert = insert.map(|(at, _)| (at, ranges.insert.clone()));
                let call = inject_usage.map(|_| TranslatedCall {
                    translation: Translation::HideUsageChunk,
                    stream: true,
                    client_model: String::new(),
                });
                (head, ranges.head, ranges.value, patch, insert, None, call)
            }
            Plan::Translate {
                body: new_body,
                api_path,
                upstream_model,
                call,
            } => {
                let edits = BodyEdits {
                    len: Some(new_body.len()),
                    patch: None,
                    insert: None,
                };
                let (head, ranges) = build_head(
                    down,
                    p,
                    api_path,
                    Some(&upstream_model),
                    query_range.clone(),
                    edits,
                    request_id,
                    true,
                );
                (
                    head,
                    ranges.head,
                    ranges.value,
                    None,
                    None,
                    Some(new_body),
                    Some(call),
                )
            }
        };
        let (body_buf, body_range, lent) = match (translated, &mut body) {
            (Some(new_body), _) => {
                let len = new_body.len();
                (Some(PooledBuf::from_vec(new_body)), 0..len, Lent::Nothing)
            }
            (None, Body::Empty) => (None, 0..0, Lent::Nothing),
            (None, Body::InPlace(r)) => (
                Some(mem::replace(&mut down.rbuf, PooledBuf::empty())),
                r.clone(),
                Lent::ReadBuffer,
            ),
            (None, Body::Decoded(b)) => {
                let b = mem::replace(b, PooledBuf::empty());
                let len = b.len();
                (Some(b), 0..len, Lent::Decoded)
            }
        };
        let req = OutgoingRequest {
            head,
            head_range,
            value_range,
            body: body_buf,
            body_range,
            patch,
            insert,
        };

        // Health and load bookkeeping for a configured model's deployment.
        let deployment = match choice {
            Choice::Deployment { model, index } => Some((model, index)),
            _ => None,
        };
        let ticket = deployment.and_then(|(m, i)| {
            let admission = routes.models[m].breakers[i].admit(Instant::now());
            if let Some(event) = admission.event() {
                report_breaker(shard, routes, m, i, event);
            }
            admission.ticket()
        });
        let mut flight =
            deployment.map(|(m, i)| routes.models[m].balancer.begin(i, Instant::now()));
        let head_seen = std::cell::Cell::new(false);
        let mut on_head = |status: u16| {
            head_seen.set(true);
            let now = Instant::now();
            // A failure is the breaker's to judge, not a latency sample.
            if status < 500 && status != 429 {
                if let Some(f) = flight.as_mut() {
                    f.record_latency(now);
                }
            }
            if let (Some(t), Some((m, i))) = (ticket, deployment) {
                if let Some(event) =
                    routes.models[m].breakers[i].record(t, BreakerOutcome::Status(status), now)
                {
                    report_breaker(shard, routes, m, i, event);
                }
            }
        };
        let (result, body_back) = forward(
            shard,
            routes,
            provider,
            side,
            req,
            &mut down.stream,
            &facts,
            call.as_ref(),
            deployment.is_some(),
            &mut on_head,
        )
        .await;
        drop(flight);
        // The body went with an upstream write that timed out: the error is
        // answered (nothing can be re-sent), then the connection closes, as
        // its read buffer may have gone too.
        let body_lost = !matches!(lent, Lent::Nothing) && body_back.is_none();
        match (lent, body_back) {
            (Lent::ReadBuffer, Some(b)) => down.rbuf = b,
            (Lent::Decoded, Some(b)) => {
                if let Body::Decoded(slot) = &mut body {
                    *slot = b;
                }
            }
            _ => {}
        }
        if body_lost {
            facts.keep_alive = false;
            break result;
        }
        let attempt_outcome = match &result {
            Ok(Relayed::Held) => BreakerOutcome::Status(side.head().status),
            Err(e) => {
                // A retry-safe failure (the connection failed before any
                // response byte) is as good as a connect error.
                let o = match e.kind {
                    Kind::UpstreamConnect => BreakerOutcome::Connect,
                    Kind::UpstreamTimeout => BreakerOutcome::Timeout,
                    _ if e.retryable => BreakerOutcome::Connect,
                    _ => BreakerOutcome::Protocol,
                };
                if let (Some(t), Some((m, i)), false) = (ticket, deployment, head_seen.get()) {
                    if let Some(event) = routes.models[m].breakers[i].record(t, o, Instant::now()) {
                        report_breaker(shard, routes, m, i, event);
                    }
                }
                o
            }
            Ok(_) => break result,
        };
        // Only a configured model's requests are retried.
        if deployment.is_none() {
            break result;
        }
        let attempt = Attempt {
            outcome: attempt_outcome,
            client_bytes_sent: false,
            retry_after: side.held_header(b"retry-after"),
            retry_after_ms: side.held_header(b"retry-after-ms"),
            error_body: side.held_body(),
        };
        let decision = routes.retry.decide(
            &mut retry_state,
            &attempt,
            Instant::now(),
            SystemTime::now(),
            &routes.rng,
        );
        let labels = shard.metrics.labels();
        let next_choice = match decision {
            Decision::Retry { after } => {
                shard.metrics.retry(labels.provider(provider));
                side.discard_held();
                monoio::time::sleep(after).await;
                Some(choice)
            }
            Decision::FailOver => fail_over(
                shard,
                routes,
                choice,
                provider,
                origin_model,
                &mut retry_state,
                &mut tried,
            ),
            Decision::ContextWindowFallback => origin_model.and_then(|o| {
                let name = gw.router.model_routes[o]
                    .fallbacks
                    .next_context_window_model(&mut retry_state)?;
                fallback_choice(shard, routes, provider, name, &mut tried)
            }),
            Decision::Respond => None,
        };
        match next_choice {
            Some(c) => {
                side.discard_held();
                // A client that left meanwhile (during a backoff, say) is
                // not worth another upstream request: 499, as nginx logs it.
                if crate::net::peer_closed(&down.stream) {
                    outcome.status = 499;
                    outcome.upstream = side.sent_at().map(|t| t.elapsed());
                    return Next::Close;
                }
                choice = c;
            }
            None => match result {
                Ok(Relayed::Held) => {
                    break relay_held(routes, side, &mut down.stream, &facts, call.as_ref()).await
                }
                other => break other,
            },
        }
    };
    outcome.upstream = side.sent_at().map(|t| t.elapsed());
    outcome.ttft = side
        .first_event()
        .map(|t| t.duration_since(outcome.started));
    outcome.usage = side.usage();
    outcome.status = side.status();
    outcome.truncated = side.truncated();
    match result {
        Ok(Relayed::Complete { close: false }) => {
            down.finish_request(next);
            Next::KeepAlive
        }
        Ok(Relayed::Complete { close: true }) | Ok(Relayed::Broken) | Ok(Relayed::Held) => {
            Next::Close
        }
        Err(e) => respond_error(down, &e, &facts, next, outcome).await,
    }
}

/// Which body buffer an attempt lent to the upstream request.
enum Lent {
    Nothing,
    ReadBuffer,
    Decoded,
}

/// Gives up on `choice`'s deployment: another deployment of its model not
/// yet tried, else the origin model's next fallback (counted as a retry or
/// a fallback from provider `from`).
fn fail_over(
    shard: &Shard,
    routes: &Routes,
    choice: Choice,
    from: usize,
    origin_model: Option<usize>,
    retry_state: &mut RetryState,
    tried: &mut Vec<usize>,
) -> Option<Choice> {
    if let Choice::Deployment { model, index } = choice {
        tried.push(index);
        if let Some(index) = pick_deployment(routes, model, tried) {
            shard.metrics.retry(shard.metrics.labels().provider(from));
            return Some(Choice::Deployment { model, index });
        }
    }
    let name = routes.gateway.router.model_routes[origin_model?]
        .fallbacks
        .next_model(retry_state)?;
    fallback_choice(shard, routes, from, name, tried)
}

/// The first deployment of fallback model `name`, counted as a fallback
/// from `from` (a provider index).
fn fallback_choice(
    shard: &Shard,
    routes: &Routes,
    from: usize,
    name: &str,
    tried: &mut Vec<usize>,
) -> Option<Choice> {
    let model = routes.gateway.router.model_index(name)?;
    tried.clear();
    let index = pick_deployment(routes, model, tried)?;
    shard
        .metrics
        .fallback(shard.metrics.labels().provider(from));
    crate::telemetry::log_info(format_args!(
        "shard {}: falling back to model {name}",
        shard.id
    ));
    Some(Choice::Deployment { model, index })
}

/// Logs and counts a breaker's state change.
fn report_breaker(shard: &Shard, routes: &Routes, model: usize, index: usize, event: BreakerEvent) {
    let m = &routes.gateway.router.model_routes[model];
    let d = &m.deployments[index];
    let provider = &routes.gateway.router.providers[d.provider].name;
    if let BreakerEvent::Ejected { .. } | BreakerEvent::ReEjected { .. } = event {
        shard
            .metrics
            .ejection(shard.metrics.labels().provider(d.provider));
    }
    crate::telemetry::log_warn(format_args!(
        "shard {}: model {} deployment {index} ({provider}, {}): breaker {event:?}",
        shard.id, m.name, d.upstream_model
    ));
}

async fn respond_local(
    outcome: &mut Outcome,
    down: &mut Downstream,
    status: u16,
    body: &[u8],
    facts: &ClientFacts,
    next: usize,
) -> Next {
    outcome.status = status;
    let close = !facts.keep_alive;
    if down
        .write_response(status, body, close, facts.is_head)
        .await
        .is_err()
        || close
    {
        return Next::Close;
    }
    down.finish_request(next);
    Next::KeepAlive
}

async fn respond_error(
    down: &mut Downstream,
    err: &Error,
    facts: &ClientFacts,
    next: usize,
    outcome: &mut Outcome,
) -> Next {
    outcome.status = err.status();
    let close = !facts.keep_alive;
    if down.write_error(err, close, facts.dialect).await.is_err() || close {
        return Next::Close;
    }
    down.finish_request(next);
    Next::KeepAlive
}
