//! The route phase of a request with a JSON body: validate it, find
//! `model`, pick the provider (or a model's deployment), and decide between
//! pass-through (only `model` patched, maybe `stream_options` added) and
//! dialect translation ([`Plan`]).
//!
//! Invariants: routing reads the body and never changes it; a translated
//! body is built here, a pass-through one is described by spans of it. A
//! deployment at its provider quota (its own or its provider's) is never
//! picked: when all are, the request is refused 429 with the time until
//! the first frees (or goes to the model's fallbacks: `attempt.rs`).

use super::endpoint::Endpoint;
use super::translated::{NativeApi, TranslatedCall, Translation};
use crate::api::multipart::{self, Scan};
use crate::api::translate::{
    openai_embedding_format, openai_embeddings_to_cohere, openai_request_to_cohere_chat,
    openai_request_to_converse, openai_request_to_gemini, openai_stream_wants_usage,
    translate_request, EmbeddingFormat, RequestInto, TranslateError, TranslateLimits,
};
use crate::error::{Error, Kind};
use crate::json::{scan_top_level, JsonError, StringField, TopLevel};
use crate::providers::aws::invoke::anthropic_body_for_invoke;
use crate::providers::google::{self, anthropic_body_for_vertex, vertex};
use crate::providers::{bedrock, Dialect, Family, Provider};
use crate::shard::{Gateway, Generation};
use crate::telemetry::metrics::ShardMetrics;
use crate::upstream::quota;
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

/// What the first routing of a request notes of its body for later
/// phases: the client's model name, the most output it allows, and how it
/// streams (`stream`, and where `stream_options` is: the lookup phase's).
pub(super) struct FirstRoute<'a> {
    pub model: &'a mut String,
    pub max_output: &'a mut Option<u64>,
    pub stream: &'a mut (bool, Option<Range<usize>>),
}

/// Where `plan_request` finds what it needs of the body.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// The body itself: scanned, and translated if need be, here.
    Body(&'a [u8]),
    /// A large body's scan, done off the loop (`offload`) over the same
    /// bytes; a translation is left to `offload::translate` (the plan's
    /// `body` is `None`).
    Scanned(&'a TopLevel<'static>),
    /// A `multipart/form-data` body (an upload) with this boundary: its
    /// `model` field is read, and renamed in place, and nothing else.
    Form { body: &'a [u8], boundary: &'a [u8] },
}

/// Admits and routes a request with a JSON body: validates it, finds
/// `model`, picks the provider, and decides between pass-through and
/// translation.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_request<'a>(
    gw: &'a Gateway,
    generation: &Generation,
    metrics: &ShardMetrics,
    endpoint: Endpoint,
    source: Source<'a>,
    first: Option<FirstRoute<'_>>,
    upstream_model_out: &mut String,
    choice: &mut Choice,
) -> Result<(usize, Plan<'a>), Error> {
    let (top, body) = match source {
        Source::Body(body) => (scan_top_level(body).map_err(admission_error)?, Some(body)),
        Source::Scanned(top) => (top.reborrow(), None),
        Source::Form { body, boundary } => (form_fields(body, boundary)?, None),
    };
    let Some(model) = top.model else {
        if endpoint.model_optional() {
            return model_less(gw, endpoint);
        }
        return Err(
            Error::client(Kind::BadRequest, "you must provide a model parameter")
                .with_param("model"),
        );
    };
    if let Some(first) = first {
        first.model.push_str(&model.value);
        *first.max_output = top.max_output_tokens;
        *first.stream = (
            top.stream == Some(true),
            top.stream_options.as_ref().map(|o| o.value.clone()),
        );
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
        *choice = match pick_deployment(generation, metrics, m, &[]) {
            Pick::Deployment(index) => Choice::Deployment { model: m, index },
            Pick::AtQuota { retry_after } => {
                return Err(at_quota(&gw.router.model_routes[m].name, retry_after))
            }
            Pick::None => Choice::Direct,
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
    let translate = |translation, api_path: &'static str, upstream_model: Cow<'a, str>| {
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
            api_path,
            upstream_model,
            call,
        })
    };
    let plan = match (endpoint.client_dialect(), provider.dialect()) {
        (c, Some(p)) if c == p => {
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
        (Dialect::Anthropic, Some(Dialect::OpenAi)) if endpoint == Endpoint::Messages => translate(
            Translation::OpenAiToAnthropic,
            Endpoint::ChatCompletions.upstream_path(),
            upstream_model,
        )?,
        (Dialect::OpenAi, Some(Dialect::Anthropic)) if endpoint == Endpoint::ChatCompletions => {
            translate(
                Translation::AnthropicToOpenAi {
                    include_usage: false,
                },
                Endpoint::Messages.upstream_path(),
                upstream_model,
            )?
        }
        // Cohere's rerank is the shape `/v1/rerank` takes.
        (Dialect::OpenAi, None)
            if endpoint == Endpoint::Rerank && provider.family == Family::Cohere =>
        {
            let patch = (upstream_model != model.value).then_some(model.span.clone());
            Plan::PassThrough {
                upstream_model,
                patch,
                inject_usage: None,
            }
        }
        (Dialect::OpenAi, None)
            if endpoint == Endpoint::Embeddings && provider.family == Family::Cohere =>
        {
            translate(
                Translation::CohereEmbed(EmbeddingFormat::Float),
                "/embed",
                upstream_model,
            )?
        }
        // Anthropic's models on Vertex AI take Anthropic's body.
        (Dialect::OpenAi, None)
            if endpoint == Endpoint::ChatCompletions
                && provider.family == Family::Vertex
                && vertex::is_anthropic_model(&upstream_model) =>
        {
            let translation = Translation::ClaudeOnVertexToOpenAi {
                include_usage: false,
            };
            translate(translation, raw_predict(stream), upstream_model)?
        }
        (Dialect::Anthropic, None)
            if endpoint == Endpoint::Messages
                && provider.family == Family::Vertex
                && vertex::is_anthropic_model(&upstream_model) =>
        {
            translate(
                Translation::ClaudeOnVertex,
                raw_predict(stream),
                upstream_model,
            )?
        }
        (Dialect::OpenAi, None) if endpoint == Endpoint::ChatCompletions => {
            match native_chat(provider, stream) {
                Some((api, api_path)) => translate(
                    Translation::NativeToOpenAi {
                        api,
                        include_usage: false,
                    },
                    api_path,
                    upstream_model,
                )?,
                None => return Err(no_equivalent(provider, endpoint)),
            }
        }
        // Anthropic's own models on Bedrock take the client's body through
        // InvokeModel; the others are reached through the provider's chat.
        (Dialect::Anthropic, None)
            if endpoint == Endpoint::Messages
                && provider.family == Family::Bedrock
                && bedrock::is_anthropic_model(&upstream_model) =>
        {
            let invoke = if stream {
                bedrock::INVOKE_STREAM
            } else {
                bedrock::INVOKE
            };
            translate(Translation::InvokeToAnthropic, invoke, upstream_model)?
        }
        (Dialect::Anthropic, None) if endpoint == Endpoint::Messages => {
            match native_chat(provider, stream) {
                Some((api, api_path)) => translate(
                    Translation::NativeToAnthropic(api),
                    api_path,
                    upstream_model,
                )?,
                None => return Err(no_equivalent(provider, endpoint)),
            }
        }
        _ => return Err(no_equivalent(provider, endpoint)),
    };
    let (api_path, upstream_model) = plan.target(endpoint);
    provider.check_request_target(api_path, upstream_model)?;
    Ok((provider_idx, plan))
}

/// What routing reads of an upload: its `model` field, as a span of the
/// body's bytes that a rename replaces as they are.
fn form_fields<'a>(body: &'a [u8], boundary: &[u8]) -> Result<TopLevel<'a>, Error> {
    let bad = |why: String| Error::client(Kind::BadRequest, why);
    let model = match multipart::find_field(body, boundary, b"model", true) {
        Ok(Scan::Found(span)) => {
            let value = std::str::from_utf8(&body[span.clone()])
                .ok()
                .filter(|v| !v.is_empty() && !v.contains(|c: char| c.is_control()))
                .ok_or_else(|| bad("the `model` field must be a model name".into()))?;
            Some(StringField {
                span,
                value: Cow::Borrowed(value),
            })
        }
        Ok(_) => None,
        Err(e) => {
            return Err(bad(format!(
                "the multipart/form-data body is malformed: {e}"
            )))
        }
    };
    Ok(TopLevel {
        model,
        stream: None,
        stream_options: None,
        object_end: 0,
        member_count: 0,
        max_output_tokens: None,
    })
}

/// The chat API of a provider reached only by translation, and the
/// operation a request (streamed or not) is sent to.
fn native_chat(provider: &Provider, stream: bool) -> Option<(NativeApi, &'static str)> {
    Some(match (provider.family, stream) {
        (Family::Bedrock, false) => (NativeApi::Converse, bedrock::CONVERSE),
        (Family::Bedrock, true) => (NativeApi::Converse, bedrock::CONVERSE_STREAM),
        (Family::Gemini | Family::Vertex, s) => (NativeApi::Gemini, google::gemini_method(s)),
        (Family::Cohere, _) => (NativeApi::Cohere, "/chat"),
        _ => return None,
    })
}

/// Vertex AI's operation for Anthropic's models.
fn raw_predict(stream: bool) -> &'static str {
    if stream {
        vertex::STREAM_RAW_PREDICT
    } else {
        vertex::RAW_PREDICT
    }
}

/// The 400 for an endpoint the provider's API has nothing like.
fn no_equivalent(provider: &Provider, endpoint: Endpoint) -> Error {
    Error::client(
        Kind::BadRequest,
        format!(
            "provider `{}` speaks the {} API, which has no equivalent of {}",
            provider.name,
            provider.native_api_name(),
            endpoint.upstream_path()
        ),
    )
    .with_param("model")
}

/// A body without `model` where the API defaults it: to the default
/// provider, unchanged, when it speaks that API.
fn model_less<'a>(gw: &Gateway, endpoint: Endpoint) -> Result<(usize, Plan<'a>), Error> {
    let provider = gw
        .router
        .default_provider()
        .filter(|&p| gw.router.providers[p].dialect() == Some(endpoint.client_dialect()))
        .ok_or_else(|| {
            Error::client(
                Kind::BadRequest,
                "you must provide a model parameter (no default provider serves this API)",
            )
            .with_param("model")
        })?;
    let plan = Plan::PassThrough {
        upstream_model: Cow::Borrowed(""),
        patch: None,
        inject_usage: None,
    };
    let (api_path, model) = plan.target(endpoint);
    gw.router.providers[provider].check_request_target(api_path, model)?;
    Ok((provider, plan))
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
            translate_request(RequestInto::OpenAi, body, upstream_model, limits, true)
        }
        Translation::AnthropicToOpenAi { include_usage } => {
            *include_usage = openai_stream_wants_usage(body);
            translate_request(RequestInto::Anthropic, body, upstream_model, limits, true)
        }
        Translation::NativeToOpenAi { api, include_usage } => {
            *include_usage = openai_stream_wants_usage(body);
            native_request(*api, body, upstream_model, limits, true)
        }
        Translation::NativeToAnthropic(api) => {
            // Converse caches what Anthropic's marks say: they are kept.
            let openai = match api {
                NativeApi::Converse => RequestInto::OpenAiKeepingCache,
                _ => RequestInto::OpenAi,
            };
            let openai = translate_request(openai, body, upstream_model, limits, true)?;
            native_request(*api, &openai, upstream_model, limits, false)
        }
        Translation::CohereEmbed(format) => {
            *format = openai_embedding_format(body);
            openai_embeddings_to_cohere(body, upstream_model)
        }
        Translation::InvokeToAnthropic => {
            anthropic_body_for_invoke(utf8(body)?).map_err(|e| TranslateError::Json(e.message()))
        }
        Translation::ClaudeOnVertex => {
            anthropic_body_for_vertex(utf8(body)?).map_err(|e| TranslateError::Json(e.message()))
        }
        Translation::ClaudeOnVertexToOpenAi { include_usage } => {
            *include_usage = openai_stream_wants_usage(body);
            let anthropic =
                translate_request(RequestInto::Anthropic, body, upstream_model, limits, true)?;
            anthropic_body_for_vertex(utf8(&anthropic)?)
                .map_err(|e| TranslateError::Json(e.message()))
        }
        Translation::HideUsageChunk => unreachable!("a pass-through is not translated"),
    }
}

/// Validated JSON (and what the translators write) is UTF-8.
fn utf8(body: &[u8]) -> Result<&str, TranslateError> {
    std::str::from_utf8(body).map_err(|_| TranslateError::Json("body is not UTF-8".into()))
}

/// An OpenAI chat request body in `api`'s shape (`validated`: see
/// [`translate_request`]).
fn native_request(
    api: NativeApi,
    body: &[u8],
    upstream_model: &str,
    limits: TranslateLimits,
    validated: bool,
) -> Result<Vec<u8>, TranslateError> {
    match api {
        NativeApi::Converse => openai_request_to_converse(body, limits, validated),
        NativeApi::Gemini => openai_request_to_gemini(body, limits, validated),
        NativeApi::Cohere => openai_request_to_cohere_chat(body, upstream_model, limits, validated),
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

/// Where the next attempt of a request goes.
#[derive(Clone, Copy)]
pub(super) enum Choice {
    /// Not routed yet: route the client's model name.
    Route,
    /// Where the client's model name routes, with no deployments to spread
    /// over (the default provider, a `provider/` prefix).
    Direct,
    /// Deployment `index` of configured model `model`.
    Deployment { model: usize, index: usize },
}

/// What [`pick_deployment`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pick {
    Deployment(usize),
    /// Every deployment not excluded is at its provider quota; the first
    /// has room again in `retry_after` whole seconds.
    AtQuota {
        retry_after: u64,
    },
    /// Every deployment is excluded.
    None,
}

/// A deployment of `model` not in `exclude` and not at its quota,
/// preferring those whose breaker admits requests now. Each deployment
/// passed over for its quota is counted in the shard's metrics.
pub(super) fn pick_deployment(
    generation: &Generation,
    metrics: &ShardMetrics,
    model: usize,
    exclude: &[usize],
) -> Pick {
    let state = &generation.models[model];
    let router = &generation.gateway.router;
    let route = &router.model_routes[model];
    let now = Instant::now();
    let second = quota::now_secs(now);
    let mut soonest: Option<u64> = None;
    for (i, b) in state.breakers.iter().enumerate() {
        state.balancer.set_available(i, b.is_available(now));
        let provider = route.deployments[i].provider;
        let full = quota_full(router, provider, Some((model, i)), second);
        state.balancer.set_at_quota(i, full.is_some());
        if let (Some(wait), false) = (full, exclude.contains(&i)) {
            soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
            let labels = metrics.labels();
            metrics.quota_passed_over(labels.model(&route.name), labels.provider(provider), i);
        }
    }
    match (state.balancer.pick(exclude, now, &generation.rng), soonest) {
        (Some(index), _) => Pick::Deployment(index),
        (None, Some(retry_after)) => Pick::AtQuota { retry_after },
        (None, None) => Pick::None,
    }
}

/// `None` while every quota an attempt to `provider` (as deployment
/// `deployment`, if one) counts against has room at `second`; else the
/// whole seconds until all of them do.
pub(super) fn quota_full(
    router: &crate::providers::router::Router,
    provider: usize,
    deployment: Option<(usize, usize)>,
    second: u64,
) -> Option<u64> {
    router
        .quotas(provider, deployment)
        .filter_map(|q| q.full(second))
        .max()
}

/// The 429 for a request whose every way out is at its provider quota.
pub(super) fn at_quota(target: &str, retry_after: u64) -> Error {
    Error::gateway(
        Kind::RateLimited,
        format!(
            "`{target}` is at its provider quota (requests or tokens per minute through \
             this gateway); retry in {retry_after} s"
        ),
    )
    .with_retry_after(retry_after)
}
