//! One client connection: requests read in order (pipelining answered in
//! order), until either side closes. Each is admitted here (framing, body,
//! endpoint, request id) and answered by the gateway itself (health, the
//! model list, errors) or by its upstream attempts (`attempt`).
//!
//! Invariant: every request's body is consumed whole before the next head is
//! parsed, and any response the gateway makes itself is complete and
//! correctly framed, so a keep-alive connection never loses sync; on any
//! doubt the connection is closed instead.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::attempt::{run_attempts, Request};
use super::downstream::{Body, Downstream};
use super::endpoint::{classify, method_forbids_content, split_target, Endpoint};
use super::exchange::{ClientFacts, Relayed, UpstreamSide};
use super::headers::PeerAddr;
use super::outcome::Outcome;
use crate::error::{Error, Kind};
use crate::http1::framing::{request_framing, FramingError};
use crate::providers::Dialect;
use crate::shard::{Generation, Shard};

enum Next {
    KeepAlive,
    Close,
}

/// Serves one accepted client connection, from `peer`, to the end.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, shard: Rc<Shard>) {
    // Responses (and stream chunks) must leave as soon as they are written.
    let _ = stream.set_nodelay(true);
    let mut down = Downstream::new(stream, PeerAddr::new(peer.ip()));
    let mut side = UpstreamSide::default();
    let mut outcome = Outcome::default();
    let mut first = true;
    loop {
        let limits = shard.generation().gateway.config.limits.clone();
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
        side.begin_request();
        let generation = shard.generation();
        let next = handle_request(&shard, &generation, &mut down, &mut side, &mut outcome).await;
        outcome.record(&shard, &generation);
        match next {
            Next::KeepAlive => {}
            Next::Close => return,
        }
    }
}

/// Admits and answers the request whose head was just read; whether the
/// connection goes on.
async fn handle_request(
    shard: &Shard,
    generation: &Generation,
    down: &mut Downstream,
    side: &mut UpstreamSide,
    outcome: &mut Outcome,
) -> Next {
    let gw = &generation.gateway;
    let framing = match request_framing(&down.rbuf, &down.head) {
        Ok(f) => f,
        Err(e) => {
            let err = match e {
                FramingError::Invalid(why) => {
                    Error::client(Kind::BadRequest, format!("malformed request: {why}"))
                }
                FramingError::UnsupportedCoding => Error::client(
                    Kind::NotImplemented,
                    "transfer codings other than chunked are not implemented",
                ),
            };
            outcome.status = err.status();
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
    let method = down.head.method.get(&down.rbuf);
    let endpoint = match classify(method, path) {
        Ok(e) => e,
        Err(e) => return respond_error(down, &e, &facts, next, outcome).await,
    };
    facts.dialect = endpoint.client_dialect();
    outcome.route = endpoint.route_index();
    // Content on a GET or HEAD has no defined meaning (RFC 9110 §9.3.1), and
    // an upstream that ignores it reads it as its next request, whose answer
    // then waits on a pooled connection for another client. Refused rather
    // than dropped: dropping would hide a client bug and still act on a
    // request the client framed oddly. The body was read whole, so the
    // connection is in sync and may stay open. An empty body (Content-Length:
    // 0, or a chunked body of no data) is no body, and is never forwarded.
    let body = if method_forbids_content(method) {
        if outcome.bytes_in > 0 {
            let err = Error::client(
                Kind::BadRequest,
                format!(
                    "a {} request must not carry a body",
                    String::from_utf8_lossy(method)
                ),
            );
            return respond_error(down, &err, &facts, next, outcome).await;
        }
        Body::Empty
    } else {
        body
    };

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

    let request = Request {
        endpoint,
        body,
        query: query_range,
        models_provider,
        generated_id,
    };
    match run_attempts(shard, generation, down, side, &mut facts, outcome, request).await {
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
    let written = if facts.is_head {
        // A response to HEAD carries no body (RFC 9110 §9.3.2): a client
        // would read the error's JSON as the start of its next response.
        let mut body = Vec::new();
        err.write_openai_body(&mut body);
        down.write_response(err.status(), &body, close, true).await
    } else {
        down.write_error(err, close, facts.dialect).await
    };
    if written.is_err() || close {
        return Next::Close;
    }
    down.finish_request(next);
    Next::KeepAlive
}
