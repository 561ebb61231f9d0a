//! The admit phase: a request whose head was just read is framed, its body
//! read whole (always, so the connection stays in sync), its request id
//! taken or made, its endpoint classified and the content rules applied.
//! What comes out is a [`Request`] for the upstream attempts, a local
//! answer (health, the model list), or a refusal — in the caller's dialect
//! once the endpoint is known.
//!
//! Invariant: nothing here writes to the client; the respond phase does,
//! and a refusal says whether the connection must close after it (framing
//! and body errors: the next request's start is unknown).

use super::context::{Request, RequestCtx};
use super::downstream::{Body, Downstream};
use super::endpoint::{classify, method_forbids_content, split_target, Endpoint, UNKNOWN_ROUTE};

use crate::api::multipart;
use crate::error::{Error, Kind};
use crate::governance::{presented_secret, unix_now, KeyEntry, KeyMemo, ShardKey};
use crate::http1::framing::{request_framing, BodyKind, FramingError};
use crate::json::top_level_value;
use crate::net::ClientIo;
use crate::providers::router::Router;
use crate::providers::{Dialect, Family};
use crate::shard::Shard;

/// What admission came to.
pub(super) enum Admitted {
    /// To be sent upstream.
    Upstream(Request),
    /// Answered by the gateway itself.
    Local(LocalAnswer),
}

/// A response the gateway makes from its own state.
pub(super) enum LocalAnswer {
    Health,
    /// The configured model list.
    Models,
}

/// A request refused before anything went upstream.
pub(super) struct Refused {
    pub error: Error,
    /// The connection cannot go on after the answer.
    pub close: bool,
}

impl Refused {
    fn closing(error: Error) -> Refused {
        Refused { error, close: true }
    }
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused {
            error,
            close: false,
        }
    }
}

/// The key the request presents, when keys are on (`None` when they are
/// off); a 401 in the caller's dialect when it presents none, or one that
/// is unknown (revoked keys are unknown) or expired.
fn authenticate<S: ClientIo>(
    shard: &Shard,
    down: &Downstream<S>,
    memo: &mut Option<KeyMemo>,
) -> Result<Option<ShardKey>, Error> {
    let gov = shard.governance();
    if !gov.enabled() {
        return Ok(None);
    }
    let header = |name: &[u8]| down.head.header(&down.rbuf, name);
    let Some(secret) = presented_secret(header(b"authorization"), header(b"x-api-key")) else {
        return Err(Error::client(
            Kind::Unauthorized,
            "You didn't provide an API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        ));
    };
    let unknown = || Error::client(Kind::Unauthorized, "Incorrect API key provided");
    let key = shard
        .keys
        .resolve_with(&gov.table, secret, memo)
        .ok_or_else(unknown)?;
    if key.expired(unix_now()) {
        return Err(Error::client(
            Kind::Unauthorized,
            format!("This API key expired ({})", key_expiry(&key)),
        ));
    }
    Ok(Some(key))
}

fn key_expiry(key: &KeyEntry) -> String {
    key.spec
        .expires_at
        .map(crate::governance::format_rfc3339)
        .unwrap_or_default()
}

/// The provider the `x-shardgate-provider` header names, if it is there.
fn header_provider<S: ClientIo>(
    router: &Router,
    down: &Downstream<S>,
) -> Result<Option<usize>, Error> {
    let Some(name) = down.head.header(&down.rbuf, PROVIDER_HEADER) else {
        return Ok(None);
    };
    let name = String::from_utf8_lossy(name);
    match router.provider_named(name.trim()) {
        Some(p) => Ok(Some(p)),
        None => Err(Error::client(
            Kind::NotFound,
            format!("x-shardgate-provider names no configured provider: {name:?}"),
        )),
    }
}

/// A stored response's provider: the one named, else the default one;
/// either must speak OpenAI's API.
fn response_provider<S: ClientIo>(router: &Router, down: &Downstream<S>) -> Result<usize, Error> {
    let provider = header_provider(router, down)?
        .or(router.default_provider())
        .ok_or_else(|| {
            Error::client(
                Kind::BadRequest,
                "no default provider: name one with the x-shardgate-provider header",
            )
        })?;
    let p = &router.providers[provider];
    if p.dialect() != Some(Dialect::OpenAi) || p.family == Family::Azure {
        return Err(Error::client(
            Kind::BadRequest,
            format!(
                "provider `{}` does not serve this OpenAI API (responses, files, batches)",
                p.name
            ),
        ));
    }
    Ok(provider)
}

/// The bytes of a body read whole (empty for one streamed).
fn body_bytes<'a, S: ClientIo>(body: &'a Body, down: &'a Downstream<S>) -> &'a [u8] {
    match body {
        Body::InPlace(r) => &down.rbuf[r.clone()],
        Body::Decoded(b) => b,
        Body::Empty | Body::Streamed(_) => b"",
    }
}

/// A pass-through's provider: the one named (unnamed, the path is the 404
/// it always was), not an Azure one, whose paths name a deployment.
fn pass_through_provider<S: ClientIo>(
    router: &Router,
    down: &Downstream<S>,
) -> Result<usize, Error> {
    let Some(provider) = header_provider(router, down)? else {
        let (path, _) = split_target(down.head.target.get(&down.rbuf));
        return Err(Error::client(
            Kind::NotFound,
            format!(
                "Invalid URL ({} {}); to send it to a provider as it is, name one in x-shardgate-provider",
                String::from_utf8_lossy(down.head.method.get(&down.rbuf)),
                String::from_utf8_lossy(path)
            ),
        ));
    };
    let p = &router.providers[provider];
    let why = match p.family {
        Family::Azure => "is Azure OpenAI, whose paths name a deployment",
        Family::Bedrock => "is AWS Bedrock, reached only by translating chat and messages",
        Family::Gemini | Family::Vertex => {
            "speaks Google's API, whose paths name a model and a method"
        }
        Family::OpenAi | Family::Anthropic | Family::Cohere => return Ok(provider),
    };
    Err(Error::client(
        Kind::BadRequest,
        format!(
            "provider `{}` {why}: pass-through cannot send to it",
            p.name
        ),
    ))
}

/// The request header that names the provider of a request without a model.
pub const PROVIDER_HEADER: &[u8] = b"x-shardgate-provider";

/// Admits the request whose head is in `down`, noting in `ctx` what is
/// known of it so far.
pub(super) async fn admit<S: ClientIo>(
    shard: &Shard,
    ctx: &mut RequestCtx,
    down: &mut Downstream<S>,
) -> Result<Admitted, Refused> {
    // Its own handle: the phases below change the rest of `ctx`.
    let generation = ctx.generation().clone();
    let limits = &generation.gateway.config.limits;
    let framing = request_framing(&down.rbuf, &down.head).map_err(|e| {
        Refused::closing(match e {
            FramingError::Invalid(why) => {
                Error::client(Kind::BadRequest, format!("malformed request: {why}"))
            }
            FramingError::UnsupportedCoding => Error::client(
                Kind::NotImplemented,
                "transfer codings other than chunked are not implemented",
            ),
        })
    })?;
    let facts = &mut ctx.facts;
    facts.http10 = down.head.minor_version == 0;
    // While draining, every response closes its connection.
    facts.keep_alive = framing.keep_alive && !shard.is_draining();
    facts.is_head = down.head.method.get(&down.rbuf) == b"HEAD";
    facts.dialect = Dialect::OpenAi;
    facts.write_timeout = limits.client_write_timeout_ms;
    // Classified from the head alone, so the key is checked before the body
    // is read: an unknown caller never gets to upload its 32 MiB. A 401 on
    // a request with a body closes the connection (its body was not read).
    let classified = {
        let (path, _) = split_target(down.head.target.get(&down.rbuf));
        classify(down.head.method.get(&down.rbuf), path)
    };
    if let Ok(endpoint) = classified {
        ctx.facts.dialect = endpoint.client_dialect();
        ctx.outcome.route = endpoint.route_index();
        if endpoint != Endpoint::Health {
            // Refused without a body, the next request starts after the head.
            ctx.next_request = down.head.head_len;
            let has_body = !matches!(framing.body, BodyKind::Empty | BodyKind::Length(0));
            ctx.key = authenticate(shard, down, &mut ctx.key_memo).map_err(|error| Refused {
                error,
                close: has_body,
            })?;
        }
    }
    // The body is always consumed whole so the connection stays in sync,
    // but for an upload too large to hold, streamed through: its
    // connection closes after the answer (the rest of the body may not
    // have been read).
    let streams_upload = |e: &Endpoint| {
        e.is_multipart() || (*e == Endpoint::Files && down.head.method.get(&down.rbuf) == b"POST")
    };
    let upload = match (&classified, framing.body) {
        (Ok(e), BodyKind::Length(n)) if streams_upload(e) && n > limits.max_body_bytes as u64 => {
            // A file for the Files API names no model: nothing to look for.
            let field: Option<&[u8]> = e.is_multipart().then_some(b"model");
            down.head
                .header(&down.rbuf, b"content-type")
                .and_then(multipart::form_data_boundary)
                .map(|b| (n, b.to_vec(), field))
        }
        _ => None,
    };
    let read = match &upload {
        Some((len, boundary, field)) => {
            ctx.facts.keep_alive = false;
            down.read_upload_start(*len, boundary, *field, &framing, limits)
                .await
        }
        None => down.read_body(&framing, limits).await,
    };
    let (body, next) = read.map_err(Refused::closing)?;
    ctx.next_request = next;
    let outcome = &mut ctx.outcome;
    outcome.bytes_in = body.len();
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
    let (_, query) = split_target(down.head.target.get(&down.rbuf));
    let query = down.head.target.end as usize - query.len()..down.head.target.end as usize;
    let method = down.head.method.get(&down.rbuf);
    let endpoint = classified?;
    // Content on a GET or HEAD has no defined meaning (RFC 9110 §9.3.1), and
    // an upstream that ignores it reads it as its next request, whose answer
    // then waits on a pooled connection for another client. Refused rather
    // than dropped: dropping would hide a client bug and still act on a
    // request the client framed oddly. The body was read whole, so the
    // connection is in sync and may stay open. An empty body (Content-Length:
    // 0, or a chunked body of no data) is no body, and is never forwarded.
    let body = if method_forbids_content(method) {
        if outcome.bytes_in > 0 {
            return Err(Error::client(
                Kind::BadRequest,
                format!(
                    "a {} request must not carry a body",
                    String::from_utf8_lossy(method)
                ),
            )
            .into());
        }
        Body::Empty
    } else {
        body
    };

    let router = &generation.gateway.router;
    // Sent as it is to a provider: `/v1/models` to the default one when no
    // models are configured, the routes that name no model to theirs.
    let direct_provider = match endpoint {
        Endpoint::Health => return Ok(Admitted::Local(LocalAnswer::Health)),
        Endpoint::Models => match router.models_pass_through {
            Some(provider) => Some(provider),
            None => return Ok(Admitted::Local(LocalAnswer::Models)),
        },
        Endpoint::ResponseById => Some(response_provider(router, down)?),
        Endpoint::Files | Endpoint::Batches | Endpoint::FileById | Endpoint::BatchById => {
            let resources = &shard.governance().resources;
            let (path, _) = split_target(down.head.target.get(&down.rbuf));
            // Where the resource it names is: the path's id, or for a new
            // batch its input file's.
            let named = match endpoint {
                Endpoint::Batches if method == b"POST" => {
                    let body = body_bytes(&body, down);
                    top_level_value(body, b"input_file_id")
                        .and_then(|v| v.strip_prefix(b"\"")?.strip_suffix(b"\""))
                }
                e => e.resource_id(path),
            };
            let held = named
                .and_then(|id| std::str::from_utf8(id).ok())
                .and_then(|id| resources.provider_of(id))
                .and_then(|name| router.provider_named(&name));
            let provider = match held {
                Some(p) => p,
                None => response_provider(router, down)?,
            };
            // What is made here is recorded; what is deleted, forgotten.
            let made = matches!(endpoint, Endpoint::Files | Endpoint::Batches) && method == b"POST";
            ctx.side.capture_id = made;
            ctx.side.no_usage = true;
            if endpoint == Endpoint::FileById && method == b"DELETE" {
                ctx.side.forget_id = named.map(|id| String::from_utf8_lossy(id).into_owned());
            }
            // A batch spends what no reservation checks.
            if endpoint == Endpoint::Batches
                && method == b"POST"
                && ctx.key.as_ref().is_some_and(|k| !k.unrestricted())
            {
                return Err(Error::client(
                    Kind::Forbidden,
                    "this key has limits, a budget or a model list, which a batch's requests cannot be checked against",
                )
                .into());
            }
            Some(provider)
        }
        Endpoint::PassThrough => {
            // Unnamed, the path is what it was: an unknown one, counted so.
            let provider = pass_through_provider(router, down).inspect_err(|_| {
                if down.head.header(&down.rbuf, PROVIDER_HEADER).is_none() {
                    ctx.outcome.route = UNKNOWN_ROUTE;
                }
            })?;
            // The provider's dialect is the caller's: its errors, stream
            // cuts and usage are read and written in it.
            if let Some(dialect) = router.providers[provider].dialect() {
                ctx.facts.dialect = dialect;
            }
            // Metered by nothing: not for a key something is checked against.
            if ctx.key.as_ref().is_some_and(|k| !k.unrestricted()) {
                return Err(Error::client(
                    Kind::Forbidden,
                    "this key has limits, a budget or a model list, which pass-through routes cannot check",
                )
                .into());
            }
            Some(provider)
        }
        _ => None,
    };
    Ok(Admitted::Upstream(Request {
        endpoint,
        body,
        query,
        direct_provider,
        generated_id,
    }))
}
