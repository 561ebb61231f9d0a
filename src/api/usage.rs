//! Token usage read from upstream responses and stream events, for metering
//! and logs. Only the `usage` object is parsed: `json::top_level_value`
//! skips to it without validating or building the rest of the body, and a
//! stream event is looked into only when its `usage` is an object.
//!
//! The gateway's terms ([`Usage`]): `input_tokens` counts every prompt
//! token, cached or not; `cache_read_tokens` (served from a prompt cache)
//! and `cache_write_tokens` (written to one) are parts of it, never added to
//! it again. Each provider says it differently, and each is read into these
//! terms exactly once, here:
//!
//! - OpenAI: `prompt_tokens` INCLUDES `prompt_tokens_details.cached_tokens`
//!   (the responses API: `input_tokens` and `input_tokens_details`), so the
//!   uncached input is prompt − cached. OpenAI caches automatically and
//!   charges nothing to write, so there are no cache writes; OpenRouter,
//!   passing on providers that do charge, adds
//!   `prompt_tokens_details.cache_write_tokens`, inside `prompt_tokens` too.
//!   <https://platform.openai.com/docs/guides/prompt-caching>
//!   <https://openrouter.ai/docs/use-cases/usage-accounting>
//!   DeepSeek's OpenAI-compatible usage says the same with its own field,
//!   `prompt_cache_hit_tokens` (`prompt_tokens` = hits + misses), read when
//!   `prompt_tokens_details` is absent.
//!   <https://api-docs.deepseek.com/guides/kv_cache>
//! - Anthropic: `input_tokens` EXCLUDES `cache_read_input_tokens` and
//!   `cache_creation_input_tokens`; the three are additive (total input =
//!   input + cache read + cache creation). A stream's `message_start`
//!   carries them (`message_delta` may restate them) and `message_delta`
//!   the final output count.
//!   <https://platform.claude.com/docs/en/build-with-claude/prompt-caching>
//! - Bedrock Converse (`usage`, or a ConverseStream `metadata` event's
//!   `usage`): `inputTokens` EXCLUDES `cacheReadInputTokens` and
//!   `cacheWriteInputTokens`, which are additive as Anthropic's are;
//!   `cacheDetails` splits the writes by lifetime (`ttl` `5m` or `1h`).
//!   <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html>
//! - Gemini `usageMetadata`: `promptTokenCount` INCLUDES
//!   `cachedContentTokenCount` ("when cached_content is set, this is still
//!   the total effective prompt size"); output is `candidatesTokenCount`
//!   plus `thoughtsTokenCount` (thinking is billed as output). Context
//!   caching's storage is billed per hour, not per token written, so there
//!   are no cache writes.
//!   <https://ai.google.dev/api/generate-content#UsageMetadata>
//! - Cohere v2 (`usage` of a chat response, `delta.usage` of a stream's
//!   `message-end`) reports two counts: `tokens`, what the model read and
//!   wrote, prompt template included, and `billed_units`, what Cohere
//!   charges for (the template left out). The gateway meters
//!   `billed_units`, so its cost is the customer's bill, and falls back to
//!   `tokens`, count by count, where billing units are not reported. No
//!   prompt cache is reported.
//!   <https://docs.cohere.com/reference/chat>
//!
//! A missing, null or malformed `usage` yields `None`: usage is observed on
//! the side and never fails a request. The one exception is a stream event
//! too large to read ([`StreamUsageScanner::feed`] fails): the gateway can
//! no longer meter the stream, and the caller must end it.

use serde::Deserialize;
use std::sync::LazyLock;

use super::sse::{SseError, SseEvent, SseScanner};
use crate::json::{skip_space, top_level_value};

/// Tokens consumed by one request, in the gateway's terms (see the module
/// docs): `input_tokens` includes both cache counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every prompt token: uncached, cache reads and cache writes.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` read from a prompt cache.
    pub cache_read_tokens: u64,
    /// The part of `input_tokens` written to a prompt cache.
    pub cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written for an hour (Anthropic's
    /// `ttl: "1h"`, priced apart: twice the input rate, against 1.25× for
    /// the default five minutes).
    pub cache_write_1h_tokens: u64,
}

impl Usage {
    /// Input from counts reported apart (Anthropic, Bedrock): `uncached`
    /// excludes the cache reads and writes, which are added to it.
    pub fn from_additive(uncached: u64, read: u64, write: u64, output: u64) -> Usage {
        Usage {
            input_tokens: uncached.saturating_add(read).saturating_add(write),
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
            cache_write_1h_tokens: 0,
        }
    }

    /// The same usage with `tokens` of its cache writes made for an hour.
    pub fn with_writes_for_an_hour(self, tokens: u64) -> Usage {
        Usage {
            cache_write_1h_tokens: tokens.min(self.cache_write_tokens),
            ..self
        }
    }

    /// Input from a total that includes the cache reads (OpenAI, Gemini).
    /// A count larger than the total it is part of is cut down to it.
    pub fn from_inclusive(prompt: u64, read: u64, output: u64) -> Usage {
        Usage {
            input_tokens: prompt,
            output_tokens: output,
            cache_read_tokens: read.min(prompt),
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        }
    }

    /// The same usage with `tokens` of its (inclusive) input written to a
    /// prompt cache, cut down to what the reads leave.
    pub fn with_inclusive_writes(self, tokens: u64) -> Usage {
        Usage {
            cache_write_tokens: tokens.min(self.input_tokens - self.cache_read_tokens),
            ..self
        }
    }

    /// (uncached, cache read, cache write) input tokens: disjoint, summing
    /// to `input_tokens` even if the parts were set larger than the whole.
    pub fn input_split(&self) -> (u64, u64, u64) {
        let read = self.cache_read_tokens.min(self.input_tokens);
        let write = self.cache_write_tokens.min(self.input_tokens - read);
        (self.input_tokens - read - write, read, write)
    }
}

/// The union of the OpenAI and Anthropic usage fields.
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default)]
struct RawUsage {
    // OpenAI chat/completions/embeddings.
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<CachedDetails>,
    // OpenAI responses and Anthropic.
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<CachedDetails>,
    // DeepSeek's name for OpenAI's cached_tokens.
    prompt_cache_hit_tokens: Option<u64>,
    // Anthropic prompt caching.
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    // Its writes by lifetime (`cache_creation_input_tokens` is their sum).
    cache_creation: Option<CacheCreation>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default)]
struct CacheCreation {
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default)]
struct CachedDetails {
    cached_tokens: Option<u64>,
    /// OpenRouter's cache writes (for providers that charge for them),
    /// inside `prompt_tokens` as the reads are.
    cache_write_tokens: Option<u64>,
}

/// The usage object at `path` (a chain of object keys). Locates it with
/// [`top_level_value`] instead of a validating walk or `sonic_rs::get`
/// (which allocates its path): this runs once per proxied response, and
/// the usage object itself is parsed strictly.
fn raw_usage_at<'de, T: Deserialize<'de>>(body: &'de [u8], path: &[&str]) -> Option<T> {
    sonic_rs::from_slice(usage_json(body, path)?).ok()
}

/// The non-generic half of [`raw_usage_at`]: one copy of the locating
/// code for every usage shape, into which `json::locate`'s helpers are
/// inlined (into a copy per shape they were not, which cost every proxied
/// response about 800 instructions: bench/README.md).
fn usage_json<'a>(body: &'a [u8], path: &[&str]) -> Option<&'a [u8]> {
    let mut raw = body;
    for key in path {
        raw = top_level_value(raw, key.as_bytes())?;
    }
    (raw != b"null").then_some(raw)
}

/// [`RawUsage`] at `path`: the common shapes read by [`flat_raw_usage`],
/// anything else by serde (the result is the same either way).
fn raw_usage(body: &[u8], path: &[&str]) -> Option<RawUsage> {
    let raw = usage_json(body, path)?;
    flat_raw_usage(raw).or_else(|| sonic_rs::from_slice(raw).ok())
}

/// A usage object read without serde (whose setup and visitor cost a
/// proxied response about 2,000 instructions: bench/README.md), for the
/// shapes providers send: members whose keys are printable ASCII without
/// escapes and whose values are unsigned integers or objects of such
/// members. `None` for anything else (another value, an escape, a known
/// key twice, ...), which is then left to serde: accepted here is a strict
/// subset of what serde accepts, read to the same result.
fn flat_raw_usage(raw: &[u8]) -> Option<RawUsage> {
    let mut c = Flat { json: raw, at: 0 };
    let mut u = RawUsage::default();
    c.members(|c, key| {
        let slot = match key {
            b"prompt_tokens" => &mut u.prompt_tokens,
            b"completion_tokens" => &mut u.completion_tokens,
            b"input_tokens" => &mut u.input_tokens,
            b"output_tokens" => &mut u.output_tokens,
            b"prompt_cache_hit_tokens" => &mut u.prompt_cache_hit_tokens,
            b"cache_creation_input_tokens" => &mut u.cache_creation_input_tokens,
            b"cache_read_input_tokens" => &mut u.cache_read_input_tokens,
            b"prompt_tokens_details" => return c.details(&mut u.prompt_tokens_details),
            b"input_tokens_details" => return c.details(&mut u.input_tokens_details),
            b"cache_creation" => {
                if u.cache_creation.is_some() {
                    return None;
                }
                let mut cc = CacheCreation::default();
                c.members(|c, key| match key {
                    b"ephemeral_1h_input_tokens" => c.count(&mut cc.ephemeral_1h_input_tokens),
                    _ => c.ignored_count(),
                })?;
                u.cache_creation = Some(cc);
                return Some(());
            }
            // Ignored by serde too: an unknown count, or an object of them.
            _ if c.peek() == Some(b'{') => return c.members(|c, _| c.ignored_count()),
            _ => return c.ignored_count(),
        };
        c.count(slot)
    })?;
    (skip_space(raw, c.at) == raw.len()).then_some(u)
}

/// The cursor of [`flat_raw_usage`].
struct Flat<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Flat<'a> {
    fn peek(&mut self) -> Option<u8> {
        self.at = skip_space(self.json, self.at);
        self.json.get(self.at).copied()
    }

    /// `{}` or `{"key": value, ...}`, `value` read by `member`.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        self.at += 1;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let start = self.at + 1;
            let len = self.json[start..]
                .iter()
                .position(|&b| !matches!(b, b' ' | b'!' | b'#'..=b'[' | b']'..=b'~'))?;
            if self.json[start + len] != b'"' {
                return None; // an escape, a control or non-ASCII byte
            }
            self.at = start + len + 1;
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            let json = self.json;
            member(self, &json[start..start + len])?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An unsigned integer as JSON writes it (no leading zero, no fraction
    /// or exponent: the byte after it must end the member), within `u64`.
    fn uint(&mut self) -> Option<u64> {
        let first = self.peek()?;
        if !first.is_ascii_digit() {
            return None;
        }
        self.at += 1;
        let mut n = u64::from(first - b'0');
        if n == 0 {
            return Some(0);
        }
        while let Some(&d @ b'0'..=b'9') = self.json.get(self.at) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.at += 1;
        }
        Some(n)
    }

    /// A known count, which must not have been seen already (serde refuses
    /// a duplicate field).
    fn count(&mut self, slot: &mut Option<u64>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(self.uint()?);
        Some(())
    }

    fn ignored_count(&mut self) -> Option<()> {
        self.uint().map(drop)
    }

    fn details(&mut self, slot: &mut Option<CachedDetails>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        let mut d = CachedDetails::default();
        self.members(|c, key| match key {
            b"cached_tokens" => c.count(&mut d.cached_tokens),
            b"cache_write_tokens" => c.count(&mut d.cache_write_tokens),
            _ => c.ignored_count(),
        })?;
        *slot = Some(d);
        Some(())
    }
}

impl RawUsage {
    fn openai(self) -> Usage {
        let details = self.prompt_tokens_details.or(self.input_tokens_details);
        let (cached, writes) =
            details.map_or((None, None), |d| (d.cached_tokens, d.cache_write_tokens));
        Usage::from_inclusive(
            self.prompt_tokens.or(self.input_tokens).unwrap_or(0),
            cached.or(self.prompt_cache_hit_tokens).unwrap_or(0),
            self.completion_tokens.or(self.output_tokens).unwrap_or(0),
        )
        .with_inclusive_writes(writes.unwrap_or(0))
    }

    /// The input counts, if this object states them (a `message_delta`
    /// of older API versions carries only the output).
    fn anthropic_input(&self) -> Option<Usage> {
        let one_hour = self
            .cache_creation
            .as_ref()
            .and_then(|c| c.ephemeral_1h_input_tokens);
        Some(
            Usage::from_additive(
                self.input_tokens?,
                self.cache_read_input_tokens.unwrap_or(0),
                self.cache_creation_input_tokens.unwrap_or(0),
                0,
            )
            .with_writes_for_an_hour(one_hour.unwrap_or(0)),
        )
    }

    fn anthropic(self) -> Usage {
        Usage {
            output_tokens: self.output_tokens.unwrap_or(0),
            ..self.anthropic_input().unwrap_or_default()
        }
    }
}

/// Bedrock Converse's `TokenUsage`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct BedrockUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_write_input_tokens: Option<u64>,
    /// The writes by lifetime (`5m` or `1h`).
    cache_details: Vec<BedrockCacheDetail>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct BedrockCacheDetail {
    ttl: String,
    input_tokens: u64,
}

impl BedrockUsage {
    fn usage(self) -> Usage {
        let one_hour = self
            .cache_details
            .iter()
            .filter(|d| d.ttl == "1h")
            .fold(0u64, |sum, d| sum.saturating_add(d.input_tokens));
        Usage::from_additive(
            self.input_tokens.unwrap_or(0),
            self.cache_read_input_tokens.unwrap_or(0),
            self.cache_write_input_tokens.unwrap_or(0),
            self.output_tokens.unwrap_or(0),
        )
        .with_writes_for_an_hour(one_hour)
    }
}

/// Cohere's `usage`: the same two counts in each of its sections.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CohereUsage {
    billed_units: CohereCounts,
    tokens: CohereCounts,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CohereCounts {
    input_tokens: Option<f64>,
    output_tokens: Option<f64>,
}

impl CohereUsage {
    fn usage(self) -> Usage {
        // Cohere's schema types the counts as numbers, not integers.
        let count = |billed: Option<f64>, tokens: Option<f64>| {
            billed.or(tokens).map_or(0, |n| n.max(0.0) as u64)
        };
        Usage::from_inclusive(
            count(self.billed_units.input_tokens, self.tokens.input_tokens),
            0,
            count(self.billed_units.output_tokens, self.tokens.output_tokens),
        )
    }
}

/// Gemini's `usageMetadata`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct GeminiUsage {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

impl GeminiUsage {
    fn usage(self) -> Usage {
        let output = self.candidates_token_count.unwrap_or(0);
        Usage::from_inclusive(
            self.prompt_token_count.unwrap_or(0),
            self.cached_content_token_count.unwrap_or(0),
            output.saturating_add(self.thoughts_token_count.unwrap_or(0)),
        )
    }
}

/// Usage in a non-streaming OpenAI response: chat completions, completions,
/// embeddings (no output tokens) or responses.
pub fn openai_response_usage(body: &[u8]) -> Option<Usage> {
    raw_usage(body, &["usage"]).map(RawUsage::openai)
}

/// [`openai_response_usage`] for a body already walked by a reader that
/// kept its top-level `usage` value's text (`raw`, as the locator would
/// find it: the translation of a chat completion): the same result
/// without looking for it again.
pub fn openai_usage_value(raw: &[u8]) -> Option<Usage> {
    if raw == b"null" {
        return None;
    }
    flat_raw_usage(raw)
        .or_else(|| sonic_rs::from_slice(raw).ok())
        .map(RawUsage::openai)
}

/// Usage in the `data` of an OpenAI stream event: the final chat chunk sent
/// with `stream_options.include_usage` (top-level `usage`), or the responses
/// API's `response.completed` event (`response.usage`). Other chunks: `None`.
pub fn openai_stream_usage(data: &[u8]) -> Option<Usage> {
    raw_usage(data, &["usage"])
        .or_else(|| raw_usage(data, &["response", "usage"]))
        .map(RawUsage::openai)
}

/// Usage in a non-streaming Anthropic Messages response.
pub fn anthropic_response_usage(body: &[u8]) -> Option<Usage> {
    raw_usage(body, &["usage"]).map(RawUsage::anthropic)
}

/// Usage in a Bedrock Converse response (`usage`) or in the `metadata`
/// event of a ConverseStream (`metadata.usage`), whichever `body` is.
pub fn bedrock_usage(body: &[u8]) -> Option<Usage> {
    raw_usage_at(body, &["usage"])
        .or_else(|| raw_usage_at(body, &["metadata", "usage"]))
        .map(BedrockUsage::usage)
}

/// Usage in a Gemini `generateContent` response, or in a chunk of
/// `streamGenerateContent` (each chunk restates the counts so far; the
/// last one's are the request's).
pub fn gemini_usage(body: &[u8]) -> Option<Usage> {
    raw_usage_at(body, &["usageMetadata"]).map(GeminiUsage::usage)
}

/// Usage in a Cohere v2 chat response (`usage`), in the `message-end`
/// event of its stream (`delta.usage`) or in an embed response (`meta`,
/// which has the same `billed_units`), whichever `body` is.
pub fn cohere_usage(body: &[u8]) -> Option<Usage> {
    raw_usage_at(body, &["usage"])
        .or_else(|| raw_usage_at(body, &["delta", "usage"]))
        .or_else(|| raw_usage_at(body, &["meta"]))
        .map(CohereUsage::usage)
}

/// Whether `data` has a `"usage"` key whose value is an object: a cheap
/// test that spares the walk of every chunk of a stream whose chunks carry
/// `"usage":null` (OpenAI's with `include_usage`). A key inside a string
/// value cannot match: its quotes would be escaped. The searcher is built
/// once: `memmem::find_iter` builds one per call, which cost every stream
/// event about 350 instructions (bench/README.md).
fn has_usage_object(data: &[u8]) -> bool {
    static USAGE_KEY: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    USAGE_KEY.find_iter(data).any(|at| {
        let mut rest = data[at + 7..]
            .iter()
            .skip_while(|b| b.is_ascii_whitespace());
        rest.next() == Some(&b':') && rest.find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
    })
}

/// Usage accumulated over an Anthropic Messages stream: input from
/// `message_start`, output from `message_delta` (whose counts are
/// cumulative, and in newer API versions may restate the input).
#[derive(Debug, Default, Clone, Copy)]
pub struct AnthropicStreamUsage {
    usage: Usage,
    seen: bool,
}

impl AnthropicStreamUsage {
    pub fn observe(&mut self, event: SseEvent<'_>) {
        let path: &[&str] = match event.event {
            b"message_start" => &["message", "usage"],
            b"message_delta" => &["usage"],
            _ => return,
        };
        let Some(raw) = raw_usage(event.data, path) else {
            return;
        };
        self.seen = true;
        // A restated input replaces the earlier one with its cache counts,
        // never adds to them.
        if let Some(input) = raw.anthropic_input() {
            self.usage = Usage {
                output_tokens: self.usage.output_tokens,
                ..input
            };
        }
        if let Some(output) = raw.output_tokens {
            self.usage.output_tokens = output;
        }
    }

    /// The usage so far, or `None` if no event carried any.
    pub fn usage(&self) -> Option<Usage> {
        self.seen.then_some(self.usage)
    }
}

/// Reads usage on the side of a stream as its payload passes through:
/// OpenAI's usage chunk (or the responses API's `response.completed`), or
/// Anthropic's `message_start`/`message_delta`. Fed decoded payload bytes in
/// any split; never buffers the stream (only an incomplete event, bounded by
/// [`StreamUsageScanner::MAX_EVENT`]).
pub struct StreamUsageScanner {
    sse: SseScanner,
    anthropic: bool,
    openai_usage: Option<Usage>,
    anthropic_usage: AnthropicStreamUsage,
    /// Estimate output tokens as events pass (`api::output_meter`): only
    /// for streams whose key is governed.
    metering: bool,
    output_seen: u64,
}

impl StreamUsageScanner {
    /// The largest event read for usage. Past it the scanner fails for the
    /// rest of the stream: the event could be the one that carries the
    /// usage, so skipping it would let a stream go unmetered. The largest
    /// event a sound upstream sends is the responses API's
    /// `response.completed`, which restates the whole output and the
    /// request's instructions and tools: far below this in practice. Chat
    /// and messages events are a few hundred bytes.
    pub const MAX_EVENT: usize = 8 * 1024 * 1024;

    pub fn new() -> StreamUsageScanner {
        StreamUsageScanner::with_max_event(Self::MAX_EVENT)
    }

    /// With a smaller event limit than [`Self::MAX_EVENT`] (tests and
    /// fuzzing reach the limit with small inputs).
    pub fn with_max_event(max_event: usize) -> StreamUsageScanner {
        StreamUsageScanner {
            sse: SseScanner::new(max_event),
            anthropic: false,
            openai_usage: None,
            anthropic_usage: AnthropicStreamUsage::default(),
            metering: false,
            output_seen: 0,
        }
    }

    /// Starts a new stream in the given dialect.
    pub fn reset(&mut self, anthropic: bool) {
        self.sse.reset();
        self.anthropic = anthropic;
        self.openai_usage = None;
        self.anthropic_usage = AnthropicStreamUsage::default();
        self.metering = false;
        self.output_seen = 0;
    }

    /// Estimates output tokens from here on (see [`Self::output_seen`]).
    pub fn meter_output(&mut self) {
        self.metering = true;
    }

    /// Output tokens seen so far, estimated event by event
    /// (`api::output_meter`); 0 unless [`Self::meter_output`] was called.
    pub fn output_seen(&self) -> u64 {
        self.output_seen
    }

    /// Scans the next payload bytes. An `Err` (an event past
    /// [`Self::MAX_EVENT`]) means no usage after it can be read: the usage
    /// so far stays available, and every later feed fails the same way
    /// until [`Self::reset`].
    pub fn feed(&mut self, payload: &[u8]) -> Result<(), SseError> {
        let (anthropic, openai_usage, anthropic_usage) = (
            self.anthropic,
            &mut self.openai_usage,
            &mut self.anthropic_usage,
        );
        let (metering, output_seen) = (self.metering, &mut self.output_seen);
        self.sse.feed(payload, |event| {
            if metering {
                *output_seen += super::output_meter::event_output_tokens(event.data);
            }
            if anthropic {
                anthropic_usage.observe(event);
            } else if has_usage_object(event.data) {
                if let Some(u) = openai_stream_usage(event.data) {
                    *openai_usage = Some(u);
                }
            }
        })
    }

    /// Whether the payload so far ends inside an event (see
    /// [`SseScanner::mid_event`]).
    pub fn mid_event(&self) -> bool {
        self.sse.mid_event()
    }

    pub fn usage(&self) -> Option<Usage> {
        if self.anthropic {
            self.anthropic_usage.usage()
        } else {
            self.openai_usage
        }
    }
}

impl Default for StreamUsageScanner {
    fn default() -> Self {
        StreamUsageScanner::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sse::SseScanner;

    #[test]
    fn only_a_usage_object_is_worth_a_walk() {
        assert!(has_usage_object(
            br#"{"choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(has_usage_object(b"{\"usage\" :\n {}}"));
        assert!(!has_usage_object(
            br#"{"choices":[{"delta":{}}],"usage":null}"#
        ));
        assert!(!has_usage_object(br#"{"text":"say \"usage\":{ here"}"#));
        assert!(
            has_usage_object(br#"{"usage":null,"x":{"usage":{}}}"#),
            "a nested one is left to the walk"
        );
    }

    #[test]
    fn openai_chat_completion() {
        let body = br#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default"}"#;
        let expected = Usage {
            input_tokens: 19,
            output_tokens: 10,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(openai_response_usage(body), Some(expected));
    }

    #[test]
    fn openai_cached_prompt_and_usage_after_choices_with_nested_usage_keys() {
        let body = br#"{"choices":[{"message":{"content":"{\"usage\":{\"prompt_tokens\":1}}"}}],"metadata":{"usage":{"prompt_tokens":5}},"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920}}}"#;
        let expected = Usage {
            input_tokens: 2006,
            output_tokens: 300,
            cache_read_tokens: 1920,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(openai_response_usage(body), Some(expected));
    }

    #[test]
    fn openai_embeddings() {
        let body = br#"{"object":"list","data":[{"object":"embedding","embedding":[0.0023064255,-0.009327292,-0.0028842222],"index":0}],"model":"text-embedding-ada-002","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        let expected = Usage {
            input_tokens: 8,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(openai_response_usage(body), Some(expected));
    }

    #[test]
    fn openai_responses_api() {
        let body = br#"{"id":"resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41","object":"response","status":"completed","model":"gpt-4.1-2025-04-14","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"In a peaceful grove...","annotations":[]}]}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#;
        let expected = Usage {
            input_tokens: 36,
            output_tokens: 87,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(openai_response_usage(body), Some(expected));
    }

    #[test]
    fn openai_missing_or_null_usage() {
        assert_eq!(openai_response_usage(br#"{"id":"x","choices":[]}"#), None);
        assert_eq!(openai_response_usage(br#"{"usage":null}"#), None);
        assert_eq!(openai_response_usage(br#"{"usage":"lots"}"#), None);
        assert_eq!(openai_response_usage(b"not json"), None);
    }

    #[test]
    fn openai_stream_only_the_usage_chunk_counts() {
        let stream = concat!(
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut found = Vec::new();
        SseScanner::new(1 << 16)
            .feed(stream.as_bytes(), |e| {
                found.extend(openai_stream_usage(e.data))
            })
            .unwrap();
        let expected = Usage {
            input_tokens: 9,
            output_tokens: 12,
            cache_read_tokens: 4,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(found, [expected]);
    }

    #[test]
    fn openai_responses_stream_completed_event() {
        let data = br#"{"type":"response.completed","sequence_number":21,"response":{"id":"resp_1","object":"response","status":"completed","usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}}}"#;
        let expected = Usage {
            input_tokens: 37,
            output_tokens: 11,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(openai_stream_usage(data), Some(expected));
        assert_eq!(
            openai_stream_usage(br#"{"type":"response.output_text.delta","delta":"Hi"}"#),
            None
        );
    }

    #[test]
    fn anthropic_message_with_prompt_caching() {
        let body = br#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"Hi! My name is Claude."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":188086,"cache_read_input_tokens":5,"output_tokens":393}}"#;
        let expected = Usage {
            input_tokens: 188112,
            output_tokens: 393,
            cache_read_tokens: 5,
            cache_write_tokens: 188086,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(anthropic_response_usage(body), Some(expected));
    }

    #[test]
    fn anthropic_stream_combines_start_and_delta() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\n",
            "data: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let mut usage = AnthropicStreamUsage::default();
        assert_eq!(usage.usage(), None);
        SseScanner::new(1 << 16)
            .feed(stream.as_bytes(), |e| usage.observe(e))
            .unwrap();
        let expected = Usage {
            input_tokens: 35,
            output_tokens: 15,
            cache_read_tokens: 10,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(usage.usage(), Some(expected));
    }

    #[test]
    fn an_event_too_large_to_meter_fails_the_scanner_and_keeps_the_usage_so_far() {
        let mut scan = StreamUsageScanner::new();
        scan.reset(true);
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n";
        scan.feed(start.as_bytes()).unwrap();
        assert!(!scan.mid_event());
        scan.feed(b"event: content_block_delta\ndata: ").unwrap();
        assert!(scan.mid_event());
        let block = vec![b'x'; 1 << 20];
        let failed = (0..9).find_map(|_| scan.feed(&block).err());
        assert!(failed.is_some(), "an event past MAX_EVENT fails the scan");
        assert_eq!(scan.feed(b"\n\n").err(), failed, "and it stays failed");
        assert_eq!(scan.usage().map(|u| u.input_tokens), Some(4));
        scan.reset(false);
        scan.feed(b"data: {\"usage\":{\"prompt_tokens\":2}}\n\n")
            .unwrap();
        assert_eq!(scan.usage().map(|u| u.input_tokens), Some(2));
    }

    #[test]
    fn anthropic_delta_may_restate_input() {
        let mut usage = AnthropicStreamUsage::default();
        usage.observe(SseEvent {
            event: b"message_delta",
            data: br#"{"type":"message_delta","usage":{"input_tokens":7,"cache_creation_input_tokens":3,"output_tokens":2}}"#,
        });
        let expected = Usage {
            input_tokens: 10,
            output_tokens: 2,
            cache_read_tokens: 0,
            cache_write_tokens: 3,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(usage.usage(), Some(expected));
    }

    #[test]
    fn deepseek_cache_hits_are_its_cached_tokens() {
        let body = br#"{"id":"930c60df-bf64-41c9-a88e-3ec75f81e00e","object":"chat.completion","model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1600,"completion_tokens":20,"total_tokens":1620,"prompt_cache_hit_tokens":1536,"prompt_cache_miss_tokens":64}}"#;
        let expected = Usage {
            input_tokens: 1600,
            output_tokens: 20,
            cache_read_tokens: 1536,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(openai_response_usage(body), Some(expected));
    }

    #[test]
    fn parts_larger_than_the_whole_are_cut_down_to_it() {
        let body = br#"{"usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":50}}}"#;
        let u = openai_response_usage(body).unwrap();
        assert_eq!(u.cache_read_tokens, 10);
        assert_eq!(u.input_split(), (0, 10, 0));
        let odd = Usage {
            input_tokens: 5,
            output_tokens: 0,
            cache_read_tokens: 3,
            cache_write_tokens: 9,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(
            odd.input_split(),
            (0, 3, 2),
            "disjoint and summing to input"
        );
    }

    #[test]
    fn anthropic_writes_for_an_hour_are_told_apart() {
        // `cache_creation` splits `cache_creation_input_tokens` by lifetime.
        let body = br#"{"usage":{"input_tokens":6,"cache_read_input_tokens":0,"cache_creation_input_tokens":3000,"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"output_tokens":9}}"#;
        let u = anthropic_response_usage(body).unwrap();
        assert_eq!((u.input_tokens, u.cache_write_tokens), (3006, 3000));
        assert_eq!(u.cache_write_1h_tokens, 2000);
        // In a stream, from message_start; a count past the writes is cut.
        let mut s = AnthropicStreamUsage::default();
        s.observe(SseEvent {
            event: b"message_start",
            data: br#"{"message":{"usage":{"input_tokens":1,"cache_creation_input_tokens":10,"cache_creation":{"ephemeral_1h_input_tokens":99}}}}"#,
        });
        assert_eq!(s.usage().unwrap().cache_write_1h_tokens, 10);
    }

    #[test]
    fn openrouter_cache_writes_are_inside_the_prompt() {
        // The usage of OpenRouter's usage-accounting page.
        let body = br#"{"object":"chat.completion.chunk","usage":{"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":0},"cost":0.95,"prompt_tokens":194,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":100,"audio_tokens":0},"total_tokens":196}}"#;
        let u = openai_response_usage(body).unwrap();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens),
            (194, 0, 100)
        );
        assert_eq!(u.input_split(), (94, 0, 100));
        let past = br#"{"usage":{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":4,"cache_write_tokens":50}}}"#;
        assert_eq!(
            openai_response_usage(past).unwrap().input_split(),
            (0, 4, 6)
        );
    }

    #[test]
    fn bedrock_writes_for_an_hour_come_from_cache_details() {
        let body = br#"{"usage":{"inputTokens":5,"outputTokens":7,"totalTokens":3012,"cacheReadInputTokens":0,"cacheWriteInputTokens":3000,"cacheDetails":[{"ttl":"1h","inputTokens":2000},{"ttl":"5m","inputTokens":1000}]}}"#;
        let u = bedrock_usage(body).unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_write_tokens,
                u.cache_write_1h_tokens
            ),
            (3005, 3000, 2000)
        );
        // A ConverseStream metadata event says the same.
        let event = br#"{"usage":{"inputTokens":1,"outputTokens":1,"cacheWriteInputTokens":4,"cacheDetails":[{"ttl":"1h","inputTokens":4}]},"metrics":{"latencyMs":3}}"#;
        assert_eq!(bedrock_usage(event).unwrap().cache_write_1h_tokens, 4);
    }

    #[test]
    fn cohere_meters_billed_units_and_falls_back_to_tokens() {
        // The response example of Cohere's chat reference.
        let body = br#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"text","text":"LLMs stand for Large Language Models."}]},"usage":{"billed_units":{"input_tokens":17,"output_tokens":12},"tokens":{"input_tokens":215,"output_tokens":12}}}"#;
        assert_eq!(cohere_usage(body), Some(Usage::from_inclusive(17, 0, 12)));
        let end = br#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":3.0},"tokens":{"input_tokens":69,"output_tokens":10}}}}"#;
        assert_eq!(cohere_usage(end), Some(Usage::from_inclusive(3, 0, 10)));
        assert_eq!(cohere_usage(br#"{"usage":null}"#), None);
        assert_eq!(cohere_usage(br#"{"type":"content-delta"}"#), None);
        // An embed response (v2 reference's example) bills its input in `meta`.
        let embed = br#"{"id":"da6e531f","embeddings":{"float":[[0.016296387]]},"texts":["hello"],"meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":2}}}"#;
        assert_eq!(cohere_usage(embed), Some(Usage::from_inclusive(2, 0, 0)));
    }

    fn serde_usage(raw: &[u8]) -> Option<RawUsage> {
        sonic_rs::from_slice(raw).ok()
    }

    #[test]
    fn the_flat_reader_reads_what_serde_reads() {
        for raw in [
            r#"{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29}"#,
            r#"{}"#,
            " { \"input_tokens\" :\n0 , \"output_tokens\":\t18446744073709551615 } ",
            r#"{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}"#,
            r#"{"input_tokens":1,"input_tokens_details":{},"cache_creation":{"ephemeral_5m_input_tokens":2,"ephemeral_1h_input_tokens":4},"cache_read_input_tokens":7,"cache_creation_input_tokens":6}"#,
            r#"{"prompt_tokens":2,"prompt_cache_hit_tokens":1,"prompt_tokens_details":{"cache_write_tokens":1},"x y!#~":3,"x":4,"x":5}"#,
        ] {
            let flat = flat_raw_usage(raw.as_bytes());
            assert!(flat.is_some(), "{raw}");
            assert_eq!(flat, serde_usage(raw.as_bytes()), "{raw}");
        }
    }

    #[test]
    fn the_flat_reader_leaves_the_rest_to_serde() {
        for raw in [
            // Values serde reads differently or refuses.
            r#"{"prompt_tokens":null}"#,
            r#"{"prompt_tokens":1.0}"#,
            r#"{"prompt_tokens":1e3}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":01}"#,
            r#"{"prompt_tokens":18446744073709551616}"#,
            r#"{"prompt_tokens":"1"}"#,
            r#"{"prompt_tokens_details":null}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":{}}}"#,
            r#"{"service_tier":"default","prompt_tokens":1}"#,
            r#"{"x":[1]}"#,
            r#"{"x":{"y":{"z":1}}}"#,
            // A known key twice (serde refuses), in the object or its details.
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"prompt_tokens_details":{},"prompt_tokens_details":{}}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":1}}"#,
            r#"{"cache_creation":{},"cache_creation":{}}"#,
            // Keys with escapes (which decode to a known key) or odd bytes.
            r#"{"prompt\u005ftokens":1}"#,
            r#"{"prompt_tokens\"":1}"#,
            "{\"pr\u{e9}\":1}",
            "{\"a\tb\":1}",
            // Not one object.
            r#"{"prompt_tokens":1"#,
            r#"{"prompt_tokens":1,}"#,
            r#"{"prompt_tokens":1} {}"#,
            r#"{,"prompt_tokens":1}"#,
            r#"[]"#,
            "",
        ] {
            assert_eq!(flat_raw_usage(raw.as_bytes()), None, "{raw}");
        }
        // Serde still reads the ones it can.
        let u = openai_response_usage(br#"{"usage":{"prompt_tokens":7,"service_tier":"x"}}"#);
        assert_eq!(u.map(|u| u.input_tokens), Some(7));
        assert_eq!(
            openai_response_usage(br#"{"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#),
            None
        );
    }

    #[test]
    fn a_decoy_usage_inside_a_string_or_a_nested_object_is_not_read() {
        let body = br#"{"choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":666}"}}],"x":{"usage":{"prompt_tokens":555}},"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        assert_eq!(
            openai_response_usage(body),
            Some(Usage::from_inclusive(3, 0, 4))
        );
        let body = br#"{"content":"\"usage\":{\"prompt_tokens\":666}","x":{"usage":{"prompt_tokens":555}}}"#;
        assert_eq!(openai_response_usage(body), None);
    }

    proptest::proptest! {
        #[test]
        fn whatever_the_flat_reader_reads_serde_reads_the_same(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "{", "}", ":", ",", " ", "\n", "0", "7", "01", "1.5", "-1", "null", "\"s\"", "[]",
                "18446744073709551615", "18446744073709551616",
                "\"prompt_tokens\"", "\"completion_tokens\"", "\"input_tokens\"",
                "\"prompt_tokens_details\"", "\"cached_tokens\"", "\"cache_creation\"",
                "\"ephemeral_1h_input_tokens\"", "\"x\"", "\"prompt\\u005ftokens\"",
            ]), 0..24)
        ) {
            let raw = parts.concat();
            if let Some(flat) = flat_raw_usage(raw.as_bytes()) {
                proptest::prop_assert_eq!(Some(flat), serde_usage(raw.as_bytes()), "{}", raw);
            }
        }

        #[test]
        fn well_formed_usage_objects_take_the_flat_path(
            counts in proptest::collection::vec(
                (proptest::sample::select(vec![
                    "prompt_tokens", "completion_tokens", "total_tokens", "input_tokens",
                    "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                ]), proptest::num::u64::ANY),
                0..6,
            ),
            cached in proptest::option::of(proptest::num::u64::ANY),
        ) {
            let mut seen = std::collections::HashSet::new();
            let mut members: Vec<String> = counts
                .iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, n)| format!("\"{k}\": {n}"))
                .collect();
            if let Some(n) = cached {
                members.push(format!("\"prompt_tokens_details\":{{\"cached_tokens\":{n}}}"));
            }
            let raw = format!("{{{}}}", members.join(","));
            let flat = flat_raw_usage(raw.as_bytes());
            proptest::prop_assert!(flat.is_some(), "{}", raw);
            proptest::prop_assert_eq!(flat, serde_usage(raw.as_bytes()), "{}", raw);
        }
    }
}
