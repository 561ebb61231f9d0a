//! One client connection: requests read in order (pipelining answered in
//! order), each admitted, routed and forwarded, until either side closes.
//!
//! Invariant: every request's body is consumed whole before the next head is
//! parsed, and any response the gateway makes itself is complete and
//! correctly framed, so a keep-alive connection never loses sync; on any
//! doubt the connection is closed instead.

use std::mem;
use std::rc::Rc;

use monoio::net::TcpStream;

use super::downstream::{Body, Downstream};
use super::endpoint::{classify, split_target, Endpoint};
use super::forward::{forward, ClientFacts, OutgoingRequest, Relayed, UpstreamSide};
use super::headers::is_dropped_request_header;
use crate::buf::PooledBuf;
use crate::error::{Error, Kind};
use crate::http1::framing::request_framing;
use crate::http1::write::{end_head, push_content_length, push_header};
use crate::json::{push_json_string, scan_top_level};
use crate::shard::{Shard, ShardStats};

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
    loop {
        match down.read_head(&shard.gateway.config.limits).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = down.write_error(&e, true).await;
                return;
            }
        }
        ShardStats::bump(&shard.stats.requests);
        match handle_request(&shard, &mut down, &mut side).await {
            Next::KeepAlive => {}
            Next::Close => return,
        }
    }
}

async fn handle_request(shard: &Shard, down: &mut Downstream, side: &mut UpstreamSide) -> Next {
    let gw = &shard.gateway;
    let framing = match request_framing(&down.rbuf, &down.head) {
        Ok(f) => f,
        Err(e) => {
            let err = Error::client(
                Kind::BadRequest,
                format!("malformed request framing: {e:?}"),
            );
            let _ = down.write_error(&err, true).await;
            return Next::Close;
        }
    };
    let facts = ClientFacts {
        http10: down.head.minor_version == 0,
        keep_alive: framing.keep_alive,
        is_head: down.head.method.get(&down.rbuf) == b"HEAD",
    };
    // The body is always consumed whole so the connection stays in sync.
    let (body, next) = match down.read_body(&framing, &gw.config.limits).await {
        Ok(x) => x,
        Err(e) => {
            let _ = down.write_error(&e, true).await;
            return Next::Close;
        }
    };
    let target = down.head.target.get(&down.rbuf);
    let (path, query) = split_target(target);
    let query_range = {
        let start = down.head.target.end as usize - query.len();
        start..down.head.target.end as usize
    };
    let endpoint = match classify(down.head.method.get(&down.rbuf), path) {
        Ok(e) => e,
        Err(e) => return respond_error(down, &e, &facts, next).await,
    };

    let outgoing = match endpoint {
        Endpoint::Health => {
            return respond_local(down, 200, b"{\"status\":\"ok\"}", &facts, next).await
        }
        Endpoint::Models => match gw
            .router
            .default_provider()
            .filter(|_| !gw.router.has_models)
        {
            // With no models configured, the default provider's list is the truth.
            Some(provider) => (
                provider,
                build_request(
                    shard,
                    down,
                    &body,
                    endpoint,
                    query_range,
                    provider,
                    None,
                    None,
                ),
            ),
            None => return respond_local(down, 200, &gw.router.models_body, &facts, next).await,
        },
        _ => {
            let body_bytes: &[u8] = match &body {
                Body::Empty => b"",
                Body::InPlace(r) => &down.rbuf[r.clone()],
                Body::Decoded(b) => b,
            };
            let top = match scan_top_level(body_bytes) {
                Ok(t) => t,
                Err(e) => {
                    let mut err = Error::client(Kind::InvalidJson, e.message());
                    if let Some(p) = e.param() {
                        err = err.with_param(p.to_string());
                    }
                    return respond_error(down, &err, &facts, next).await;
                }
            };
            let Some(model) = top.model else {
                let err = Error::client(Kind::BadRequest, "you must provide a model parameter")
                    .with_param("model");
                return respond_error(down, &err, &facts, next).await;
            };
            let target = match gw.router.route(&model.value) {
                Ok(t) => t,
                Err(e) => return respond_error(down, &e, &facts, next).await,
            };
            let patch = (target.upstream_model != model.value)
                .then(|| (model.span.clone(), target.upstream_model));
            let provider = target.provider;
            (
                provider,
                build_request(
                    shard,
                    down,
                    &body,
                    endpoint,
                    query_range,
                    provider,
                    Some(target.upstream_model),
                    patch,
                ),
            )
        }
    };
    let (provider, (head, head_range, value_range, patch_span)) = outgoing;

    // Hand the body's buffer to the request; it comes back after.
    let (body_buf, body_range, in_place) = match body {
        Body::Empty => (None, 0..0, false),
        Body::InPlace(r) => (
            Some(mem::replace(&mut down.rbuf, PooledBuf::empty())),
            r,
            true,
        ),
        Body::Decoded(b) => {
            let len = b.len();
            (Some(b), 0..len, false)
        }
    };
    let req = OutgoingRequest {
        head,
        head_range,
        value_range,
        body: body_buf,
        body_range,
        patch: patch_span,
    };
    let (result, body_back) = forward(shard, provider, side, req, &mut down.stream, &facts).await;
    if in_place {
        match body_back {
            Some(b) => down.rbuf = b,
            None => return Next::Close,
        }
    }
    match result {
        Ok(Relayed::Complete { close: false }) => {
            down.finish_request(next);
            Next::KeepAlive
        }
        Ok(Relayed::Complete { close: true }) | Ok(Relayed::Broken) => Next::Close,
        Err(e) => respond_error(down, &e, &facts, next).await,
    }
}

/// Assembles the upstream request head in a fresh buffer: the replacement
/// model value first (so its length is known for Content-Length), then the
/// head. Returns (buffer, head range, value range, old value span).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn build_request(
    shard: &Shard,
    down: &Downstream,
    body: &Body,
    endpoint: Endpoint,
    query: std::ops::Range<usize>,
    provider: usize,
    model: Option<&str>,
    patch: Option<(std::ops::Range<usize>, &str)>,
) -> (
    PooledBuf,
    std::ops::Range<usize>,
    std::ops::Range<usize>,
    Option<std::ops::Range<usize>>,
) {
    let p = &shard.gateway.router.providers[provider];
    let rbuf = &down.rbuf;
    let mut out = PooledBuf::take(1024 + down.head.head_len);
    let (body_len, body_offset) = match body {
        Body::Empty => (0, 0),
        Body::InPlace(r) => (r.len(), r.start),
        Body::Decoded(b) => (b.len(), 0),
    };
    let mut content_length = body_len;
    let mut patch_span = None;
    if let Some((span, new_model)) = patch {
        push_json_string(&mut out, new_model);
        content_length = body_len - span.len() + out.len();
        patch_span = Some(span.start + body_offset..span.end + body_offset);
    }
    let value_range = 0..out.len();
    let head_start = out.len();
    out.extend_from_slice(down.head.method.get(rbuf));
    out.push(b' ');
    p.write_request_target(&mut out, endpoint.upstream_path(), model, &rbuf[query]);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(&mut out, b"host", p.url.host_header.as_bytes());
    p.write_auth_headers(&mut out);
    if !matches!(body, Body::Empty) {
        push_content_length(&mut out, content_length as u64);
    }
    for h in &down.head.headers {
        let name = h.name.get(rbuf);
        if !is_dropped_request_header(name) && !p.overrides_request_header(name) {
            push_header(&mut out, name, h.value.get(rbuf));
        }
    }
    end_head(&mut out);
    let head_range = head_start..out.len();
    (out, head_range, value_range, patch_span)
}

async fn respond_local(
    down: &mut Downstream,
    status: u16,
    body: &[u8],
    facts: &ClientFacts,
    next: usize,
) -> Next {
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
) -> Next {
    let close = !facts.keep_alive;
    if down.write_error(err, close).await.is_err() || close {
        return Next::Close;
    }
    down.finish_request(next);
    Next::KeepAlive
}
