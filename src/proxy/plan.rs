//! The route phase of a request with a JSON body: validate it, find
//! `model`, pick the provider (or a model's deployment), decide between
//! pass-through (only `model` patched, maybe `stream_options` added) and
//! dialect translation, and assemble the upstream request (its head, and
//! the edits `forward` makes to the body on the way).
//!
//! Invariant: a pass-through body is never re-serialised; what changes is
//! carried as byte ranges of the head buffer that `forward` writes between
//! slices of the client's body.

use super::downstream::{Body, Downstream};
use super::endpoint::Endpoint;
use super::exchange::OutgoingRequest;
use super::headers::{
    is_forwarded_request_header, push_accept_identity, push_forwarded_for, ConnectionOptions,
};
use super::translated::{TranslatedCall, Translation};
use crate::api::translate::{
    anthropic_request_to_openai_scanned, openai_request_to_anthropic_scanned,
    openai_stream_wants_usage, TranslateError, TranslateLimits,
};
use crate::buf::PooledBuf;
use crate::config::ServerConfig;
use crate::error::{Error, Kind};
use crate::http1::write::{end_head, push_content_length, push_header};
use crate::json::{push_json_string, scan_top_level, JsonError, TopLevel};
use crate::providers::{Dialect, Provider};
use crate::shard::{Gateway, Generation};
use std::borrow::Cow;
use std::ops::Range;
use std::time::Instant;

/// How a routed request goes upstream.
pub(super) enum Plan<'a> {
    /// Same dialect: the client's body, with the old `model` value span
    /// replaced when the upstream name differs.
    PassThrough {
        upstream_model: Cow<'a, str>,
        patch: Option<Range<usize>>,
        /// Add `stream_options.include_usage` before the body's closing
        /// brace (offset, whether a comma is needed), and hide the usage
        /// chunk it brings from the client, who did not ask for it.
        inject_usage: Option<(usize, bool)>,
    },
    /// Different dialects: a translated body, sent to `api_path`; `None`
    /// until `offload::translate` has made it, for a large body.
    Translate {
        body: Option<Vec<u8>>,
        api_path: &'static str,
        upstream_model: Cow<'a, str>,
        call: TranslatedCall,
    },
}

/// Where `plan_request` finds what it needs of the body.
pub(super) enum Source<'a> {
    /// The body itself: scanned, and translated if need be, here.
    Body(&'a [u8]),
    /// A large body's scan, done off the loop (`offload`) over the same
    /// bytes; a translation is left to `offload::translate` (the plan's
    /// `body` is `None`).
    Scanned(&'a TopLevel<'static>),
}

/// Admits and generation a request with a JSON body: validates it, finds
/// `model`, picks the provider, and decides between pass-through and
/// translation.
pub(super) fn plan_request<'a>(
    gw: &'a Gateway,
    generation: &Generation,
    endpoint: Endpoint,
    source: Source<'a>,
    model_out: Option<&mut String>,
    upstream_model_out: &mut String,
    choice: &mut Choice,
) -> Result<(usize, Plan<'a>), Error> {
    let (top, body) = match source {
        Source::Body(body) => (scan_top_level(body).map_err(admission_error)?, Some(body)),
        Source::Scanned(top) => (top.reborrow(), None),
    };
    let Some(model) = top.model else {
        return Err(
            Error::client(Kind::BadRequest, "you must provide a model parameter")
                .with_param("model"),
        );
    };
    if let Some(out) = model_out {
        out.push_str(&model.value);
    }
    // Route on the unescaped name; a name that needed unescaping (rare)
    // is the only case that owns its copy.
    let (mut provider_idx, mut upstream_model, configured): (usize, Cow<'a, str>, _) =
        match &model.value {
            Cow::Borrowed(name) => {
                let t = gw.router.route(name)?;
                (t.provider, Cow::Borrowed(t.upstream_model), t.model)
            }
            Cow::Owned(name) => {
                let t = gw.router.route(name)?;
                (
                    t.provider,
                    Cow::Owned(t.upstream_model.to_string()),
                    t.model,
                )
            }
        };
    // A configured model's deployment is chosen per attempt.
    if let (Choice::Route, Some(m)) = (*choice, configured) {
        *choice = match pick_deployment(generation, m, &[]) {
            Some(index) => Choice::Deployment { model: m, index },
            None => Choice::Direct,
        };
    } else if let Choice::Route = *choice {
        *choice = Choice::Direct;
    }
    if let Choice::Deployment { model: m, index } = *choice {
        let d = &gw.router.model_routes[m].deployments[index];
        provider_idx = d.provider;
        upstream_model = Cow::Borrowed(d.upstream_model.as_str());
    }
    let provider = &gw.router.providers[provider_idx];
    let stream = top.stream.unwrap_or(false);
    // The last attempt's upstream model is the one the log phase prices.
    upstream_model_out.clear();
    upstream_model_out.push_str(&upstream_model);
    let translate = |translation, to: Endpoint, upstream_model: Cow<'a, str>| {
        let mut call = TranslatedCall {
            translation,
            stream,
            client_model: model.value.to_string(),
        };
        let body = body
            .map(|b| {
                translate_body(
                    b,
                    &mut call.translation,
                    &upstream_model,
                    translate_limits(gw),
                )
            })
            .transpose()
            .map_err(translate_error)?;
        Ok::<_, Error>(Plan::Translate {
            body,
            api_path: to.upstream_path(),
            upstream_model,
            call,
        })
    };
    let plan = match (endpoint.client_dialect(), provider.dialect()) {
        (c, p) if c == p => {
            let patch = (upstream_model != model.value).then_some(model.span.clone());
            // An OpenAI stream reports usage only when asked; ask for the
            // client that did not (and hide the extra chunk from it).
            let asks_usage = c == Dialect::OpenAi
                && stream
                && matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
                && top.stream_options.is_none();
            let inject_usage = asks_usage.then_some((top.object_end, top.member_count > 0));
            Plan::PassThrough {
                upstream_model,
                patch,
                inject_usage,
            }
        }
        (Dialect::Anthropic, Dialect::OpenAi) if endpoint == Endpoint::Messages => translate(
            Translation::OpenAiToAnthropic,
            Endpoint::ChatCompletions,
            upstream_model,
        )?,
        (Dialect::OpenAi, Dialect::Anthropic) if endpoint == Endpoint::ChatCompletions => {
            translate(
                Translation::AnthropicToOpenAi {
                    include_usage: false,
                },
                Endpoint::Messages,
                upstream_model,
            )?
        }
        (_, upstream) => {
            let api = match upstream {
                Dialect::OpenAi => "OpenAI",
                Dialect::Anthropic => "Anthropic Messages",
            };
            return Err(Error::client(
                Kind::BadRequest,
                format!(
                    "provider `{}` speaks the {api} API, which has no equivalent of {}",
                    provider.name,
                    endpoint.upstream_path()
                ),
            )
            .with_param("model"));
        }
    };
    let (api_path, upstream_model) = plan.target(endpoint);
    provider.check_request_target(api_path, upstream_model)?;
    Ok((provider_idx, plan))
}

/// The 400 for a body the admission scan refused.
pub(super) fn admission_error(e: JsonError) -> Error {
    let err = Error::client(Kind::InvalidJson, e.message());
    match e.param() {
        Some(p) => err.with_param(p.to_string()),
        None => err,
    }
}

/// A request body in the upstream's dialect, for a response to be read as
/// `translation` says (whose `include_usage` is filled in from the body).
pub(super) fn translate_body(
    body: &[u8],
    translation: &mut Translation,
    upstream_model: &str,
    limits: TranslateLimits,
) -> Result<Vec<u8>, TranslateError> {
    match translation {
        Translation::OpenAiToAnthropic => {
            anthropic_request_to_openai_scanned(body, upstream_model, limits)
        }
        Translation::AnthropicToOpenAi { include_usage } => {
            *include_usage = openai_stream_wants_usage(body);
            openai_request_to_anthropic_scanned(body, upstream_model, limits)
        }
        Translation::HideUsageChunk => unreachable!("a pass-through is not translated"),
    }
}

impl Plan<'_> {
    /// The upstream endpoint path and model name the plan sends to.
    fn target(&self, endpoint: Endpoint) -> (&str, &str) {
        match self {
            Plan::PassThrough { upstream_model, .. } => (endpoint.upstream_path(), upstream_model),
            Plan::Translate {
                api_path,
                upstream_model,
                ..
            } => (api_path, upstream_model),
        }
    }
}

pub(super) fn translate_limits(gw: &Gateway) -> TranslateLimits {
    let l = &gw.config.limits;
    TranslateLimits {
        max_messages: l.max_translated_messages,
        max_blocks: l.max_translated_blocks,
    }
}

pub(super) fn translate_error(e: TranslateError) -> Error {
    match e {
        TranslateError::TooLarge { what, limit } => {
            let key = match what {
                "messages" => "limits.max_translated_messages",
                _ => "limits.max_translated_blocks",
            };
            Error::client(
                Kind::PayloadTooLarge,
                format!(
                    "this request has more than {limit} {what}, the most this gateway \
                     translates between API dialects in one request ({key})"
                ),
            )
            .with_param("messages")
        }
        e => Error::client(
            Kind::BadRequest,
            format!("cannot translate the request: {e}"),
        ),
    }
}

/// Builds an attempt's upstream request, all but the body buffer (lent to it
/// afterwards), while the client's head (in `rbuf`) is at hand. Also
/// returns a translated body, which replaces the client's, and how the
/// gateway reads the response when it does. Everything `plan` borrowed
/// from the body (the model name) is used up here, before its buffer moves.
#[allow(clippy::too_many_arguments)]
pub(super) fn upstream_request(
    server: &ServerConfig,
    down: &Downstream,
    body: &Body,
    plan: Plan<'_>,
    p: &Provider,
    endpoint: Endpoint,
    query: Range<usize>,
    request_id: Option<&str>,
) -> (OutgoingRequest, Option<Vec<u8>>, Option<TranslatedCall>) {
    let (body_len, body_offset) = match body {
        Body::Empty => (None, 0),
        Body::InPlace(r) => (Some(r.len()), r.start),
        Body::Decoded(b) => (Some(b.len()), 0),
    };
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
                server,
                down,
                p,
                endpoint.upstream_path(),
                model,
                query,
                edits,
                request_id,
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
            let new_body =
                new_body.expect("a large body is translated before its request is built");
            let edits = BodyEdits {
                len: Some(new_body.len()),
                patch: None,
                insert: None,
            };
            let (head, ranges) = build_head(
                server,
                down,
                p,
                api_path,
                Some(&upstream_model),
                query,
                edits,
                request_id,
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
    let req = OutgoingRequest {
        head,
        head_range,
        value_range,
        body: None,
        body_range: 0..0,
        patch,
        insert,
    };
    (req, translated, call)
}

/// What is done to the body on its way upstream, for the head's
/// Content-Length and the bytes the head buffer carries.
struct BodyEdits<'a> {
    /// The client's body length (`None`: no body).
    len: Option<usize>,
    /// The old `model` value span and the new model name.
    patch: Option<(Range<usize>, &'a str)>,
    /// Bytes inserted into the body.
    insert: Option<&'a [u8]>,
}

/// Where `build_head` put things in its buffer.
struct HeadRanges {
    head: Range<usize>,
    value: Range<usize>,
    insert: Range<usize>,
}

/// `,"stream_options":{"include_usage":true}` (without the comma when the
/// body's object is empty).
const INCLUDE_USAGE: &[u8] = b",\"stream_options\":{\"include_usage\":true}";

/// Assembles the upstream request head in a fresh buffer: the replacement
/// model value and any inserted bytes first (so the body's new length is
/// known for Content-Length), then the head. Of the client's headers only
/// those `headers` lets cross go (its allow-list, less what the client's
/// `Connection` names and what the provider sets itself); the response is
/// asked for uncompressed, as the gateway reads its usage.
#[allow(clippy::too_many_arguments)]
fn build_head(
    server: &ServerConfig,
    down: &Downstream,
    p: &Provider,
    api_path: &str,
    model: Option<&str>,
    query: Range<usize>,
    edits: BodyEdits<'_>,
    request_id: Option<&str>,
) -> (PooledBuf, HeadRanges) {
    let rbuf = &down.rbuf;
    let mut out = PooledBuf::take(1024 + down.head.head_len);
    let mut content_length = edits.len;
    if let (Some((span, new_model)), Some(len)) = (edits.patch, edits.len) {
        push_json_string(&mut out, new_model);
        content_length = Some(len - span.len() + out.len());
    }
    let value = 0..out.len();
    if let (Some(bytes), Some(len)) = (edits.insert, content_length) {
        out.extend_from_slice(bytes);
        content_length = Some(len + bytes.len());
    }
    let insert = value.end..out.len();
    let head_start = out.len();
    out.extend_from_slice(down.head.method.get(rbuf));
    out.push(b' ');
    p.write_request_target(&mut out, api_path, model, &rbuf[query]);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(&mut out, b"host", p.url.host_header.as_bytes());
    p.write_auth_headers(&mut out);
    if let Some(len) = content_length {
        push_content_length(&mut out, len as u64);
    }
    if let Some(id) = request_id {
        push_header(&mut out, b"x-request-id", id.as_bytes());
    }
    push_accept_identity(&mut out);
    let headers = &down.head.headers;
    let connection = ConnectionOptions::of(headers, rbuf);
    for h in headers {
        let name = h.name.get(rbuf);
        if is_forwarded_request_header(name)
            && !connection.names(name)
            && !p.overrides_request_header(name)
        {
            push_header(&mut out, name, h.value.get(rbuf));
        }
    }
    push_forwarded_for(&mut out, server, &down.peer, headers, rbuf, &connection);
    end_head(&mut out);
    let head = head_start..out.len();
    (
        out,
        HeadRanges {
            head,
            value,
            insert,
        },
    )
}

/// Where the next attempt of a request goes.
#[derive(Clone, Copy)]
pub(super) enum Choice {
    /// Not routed yet: route the client's model name.
    Route,
    /// Where the client's model name generation, with no deployments to spread
    /// over (the default provider, a `provider/` prefix).
    Direct,
    /// Deployment `index` of configured model `model`.
    Deployment { model: usize, index: usize },
}

/// A deployment of `model` not in `exclude`, preferring those whose
/// breaker admits requests now.
pub(super) fn pick_deployment(
    generation: &Generation,
    model: usize,
    exclude: &[usize],
) -> Option<usize> {
    let state = &generation.models[model];
    let now = Instant::now();
    for (i, b) in state.breakers.iter().enumerate() {
        state.balancer.set_available(i, b.is_available(now));
    }
    state.balancer.pick(exclude, now, &generation.rng)
}
