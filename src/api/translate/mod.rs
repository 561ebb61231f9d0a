//! Translation between the OpenAI chat-completions dialect and the Anthropic
//! messages dialect, in both directions: request bodies, non-streaming
//! response bodies, error bodies and SSE streams. Also OpenAI chat to
//! Bedrock's Converse and back (`request_to_converse`, `response_bedrock`,
//! `stream_bedrock_to_openai`), to Gemini's `generateContent` and back
//! (`request_to_gemini`, `response_gemini`, `stream_gemini_to_openai`,
//! Google's errors in `error`), and OpenAI chat and embeddings to Cohere's
//! v2 API and back (`request_to_cohere`, `response_cohere`,
//! `stream_cohere_to_openai`, `embed_cohere`). The translators that write
//! OpenAI chunk streams share their writer (`openai_chunks`). The proxy
//! reaches them all from `proxy::translated` (and `proxy::route` for the
//! requests).
//!
//! Everything here is sans-IO: bytes in, bytes out. This is the one place in
//! the gateway that builds a new body instead of patching the client's one
//! (see docs/decisions/0004-zero-copy-patch.md). Whole bodies (requests,
//! responses, errors) are read in place as slices of their text (`raw`)
//! and the new document is written straight into one output buffer
//! (`write`): no tree is built, strings and
//! sub-documents are copied as they are, so a translation holds the input,
//! the output and nothing per value. Stream events, small and bounded, are
//! parsed into `sonic_rs::Value`s.
//!
//! Invariants:
//! - Requests take the upstream model name, responses and streams the model
//!   name the client asked for: the client never sees the upstream's name.
//! - Streams are translated event by event; a translator holds only the state
//!   the target protocol needs (open block, tool-call indices, usage), never
//!   the stream itself.
//! - Fields with no counterpart in the target dialect are dropped rather than
//!   guessed (Anthropic's `cache_control` going to OpenAI, which caches by
//!   itself; it is kept going the other way, see `request_to_anthropic`,
//!   and becomes Converse's cache points, see `request_to_converse`);
//!   inputs the target cannot express faithfully (server tools, `n > 1`,
//!   audio) are refused with [`TranslateError::Unsupported`].
//! - Usage keeps its totals both ways: cache reads and writes are parts of
//!   the gateway's input ([`crate::api::usage`]), apart from `input_tokens`
//!   in Anthropic's dialect and Bedrock's, inside `prompt_tokens` in
//!   OpenAI's and `promptTokenCount` in Gemini's.
//! - A request translation does work in proportion to its bytes and to its
//!   messages and blocks, both bounded ([`TranslateLimits`], refused with
//!   [`TranslateError::TooLarge`] as soon as a count passes its limit); a
//!   response's blocks are bounded by [`MAX_RESPONSE_BLOCKS`].

mod chat_completion;
mod embed_cohere;
mod error;
mod openai_chunks;
mod raw;
mod request_to_anthropic;
mod request_to_cohere;
mod request_to_converse;
mod request_to_gemini;
mod request_to_openai;
mod response;
mod response_bedrock;
mod response_cohere;
mod response_gemini;
mod stream_bedrock_to_openai;
mod stream_cohere_to_openai;
mod stream_gemini_to_openai;
mod stream_to_anthropic;
mod stream_to_openai;
mod wire;
mod write;

use std::fmt;

pub use embed_cohere::{
    cohere_embed_to_openai, openai_embedding_format, openai_embeddings_to_cohere, EmbeddingFormat,
};
pub use error::{
    anthropic_error, anthropic_error_to_openai, google_error_to_openai, message_error_to_anthropic,
    message_error_to_openai, openai_error, openai_error_to_anthropic, TranslatedError,
    ANTHROPIC_BUDGET_CUT, ANTHROPIC_STREAM_CUT, ANTHROPIC_TOKENS_CUT, OPENAI_BUDGET_CUT,
    OPENAI_STREAM_CUT, OPENAI_TOKENS_CUT,
};
pub use request_to_anthropic::openai_stream_wants_usage;
pub use request_to_cohere::openai_request_to_cohere_chat;
pub use request_to_converse::openai_request_to_converse;
pub use request_to_gemini::openai_request_to_gemini;
pub use response::{
    anthropic_response_to_openai, openai_response_to_anthropic,
    openai_response_to_anthropic_with_usage, MAX_RESPONSE_BLOCKS,
};
pub use response_bedrock::converse_response_to_openai;
pub use response_cohere::cohere_chat_response_to_openai;
pub use response_gemini::gemini_response_to_openai;
pub use stream_bedrock_to_openai::BedrockToOpenAiStream;
pub use stream_cohere_to_openai::CohereToOpenAiStream;
pub use stream_gemini_to_openai::GeminiToOpenAiStream;
pub use stream_to_anthropic::OpenAiToAnthropicStream;
pub use stream_to_openai::AnthropicToOpenAiStream;

/// What a translated stream's error event says when the upstream stream
/// ended before its answer was complete (both dialects, and the proxy's
/// relay when it cuts one).
pub const STREAM_ENDED_EARLY: &str = "upstream stream ended before the response was complete";

/// How a translated stream ends, the rule both directions share: nothing
/// after its end; a stream whose stop reason arrived is closed as a whole
/// answer even if its last event was lost; one cut before it ends with the
/// dialect's error, so the client does not take a truncated answer for a
/// whole one.
pub trait StreamEnd {
    /// The stream's end was written; nothing more may be.
    fn ended(&self) -> bool;
    /// The upstream delivered its stop reason.
    fn stopped(&self) -> bool;
    /// Writes the dialect's normal end.
    fn end_whole(&mut self, out: &mut Vec<u8>);
    /// Writes the dialect's error end, saying `why`.
    fn end_cut(&mut self, why: &str, out: &mut Vec<u8>);

    /// Called when the upstream stream ends.
    fn finish(&mut self, out: &mut Vec<u8>) {
        self.finish_cut(STREAM_ENDED_EARLY, out);
    }

    /// Ends a stream the upstream broke off or broke (an unreadable chunk,
    /// an event too large to read) as [`Self::finish`] does, the error
    /// saying `why`.
    fn finish_cut(&mut self, why: &str, out: &mut Vec<u8>) {
        if self.ended() {
            return;
        }
        if self.stopped() {
            self.end_whole(out);
        } else {
            self.end_cut(why, out);
        }
    }
}

/// The dialect a request is translated into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestInto {
    /// An OpenAI chat-completions request becomes an Anthropic messages one.
    Anthropic,
    /// An Anthropic messages request becomes an OpenAI chat-completions one.
    OpenAi,
    /// The same on its way to Bedrock's Converse: its `cache_control`
    /// marks kept on the parts and tools they were on, for
    /// [`openai_request_to_converse`] to make cache points of.
    OpenAiKeepingCache,
}

/// Translates a request body `into` the other dialect for `upstream_model`,
/// within `limits`. `validated` says the JSON was checked already
/// (`crate::json::scan_top_level`, at admission), so the check is not
/// repeated.
pub fn translate_request(
    into: RequestInto,
    body: &[u8],
    upstream_model: &str,
    limits: TranslateLimits,
    validated: bool,
) -> Result<Vec<u8>, TranslateError> {
    let request = if validated {
        raw::scanned_document(body)?
    } else {
        raw::document(body)?
    };
    match into {
        RequestInto::Anthropic => request_to_anthropic::translate(request, upstream_model, limits),
        RequestInto::OpenAi => request_to_openai::translate(request, upstream_model, limits, false),
        RequestInto::OpenAiKeepingCache => {
            request_to_openai::translate(request, upstream_model, limits, true)
        }
    }
}

/// An OpenAI chat-completions request as an Anthropic messages request for
/// `upstream_model`, within the default [`TranslateLimits`].
pub fn openai_request_to_anthropic(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let limits = TranslateLimits::DEFAULT;
    translate_request(RequestInto::Anthropic, body, upstream_model, limits, false)
}

/// An Anthropic messages request as an OpenAI chat-completions request for
/// `upstream_model`, within the default [`TranslateLimits`].
pub fn anthropic_request_to_openai(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let limits = TranslateLimits::DEFAULT;
    translate_request(RequestInto::OpenAi, body, upstream_model, limits, false)
}

/// Why a body could not be translated. All of these are the client's (or the
/// upstream's) fault, never the gateway's: the gateway answers 400 (413 for
/// `TooLarge`) for a request and 502 for a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The body is not JSON.
    Json(String),
    /// The body is JSON but a field is missing or has the wrong shape.
    Invalid(String),
    /// Valid in the source dialect, but the target dialect cannot express it.
    Unsupported(String),
    /// More messages or content blocks than the gateway translates in one
    /// body ([`TranslateLimits`]).
    TooLarge {
        /// What was counted: `messages` or `content blocks`.
        what: &'static str,
        limit: usize,
    },
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::Json(why) => write!(f, "body is not valid JSON: {why}"),
            TranslateError::Invalid(why) => write!(f, "invalid body: {why}"),
            TranslateError::Unsupported(why) => write!(f, "cannot be translated: {why}"),
            TranslateError::TooLarge { what, limit } => {
                write!(f, "more than {limit} {what} in one body")
            }
        }
    }
}

impl std::error::Error for TranslateError {}

/// How much one request translation may hold: the work (and the output) of a
/// translation grows with the number of messages and content blocks, not
/// only with the body's bytes, so both are bounded besides the body size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslateLimits {
    /// Conversation turns (`messages` elements).
    pub max_messages: usize,
    /// Content blocks and parts (nested ones, as in a tool result,
    /// included), tool calls, tool definitions and system prompt parts,
    /// counted over the whole body.
    pub max_blocks: usize,
}

impl TranslateLimits {
    /// `limits.max_translated_messages` and `limits.max_translated_blocks`'
    /// defaults (see `crate::config::LimitsConfig`).
    pub const DEFAULT: TranslateLimits = TranslateLimits {
        max_messages: 10_000,
        max_blocks: 20_000,
    };
}

impl Default for TranslateLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Counts a translation's messages and blocks against its limits as it goes,
/// so an oversized body is refused after at most `limit` items of work.
struct Budget {
    limits: TranslateLimits,
    messages: usize,
    blocks: usize,
}

impl Budget {
    fn new(limits: TranslateLimits) -> Self {
        Self {
            limits,
            messages: 0,
            blocks: 0,
        }
    }

    fn message(&mut self) -> Result<(), TranslateError> {
        self.messages += 1;
        if self.messages > self.limits.max_messages {
            return Err(TranslateError::TooLarge {
                what: "messages",
                limit: self.limits.max_messages,
            });
        }
        Ok(())
    }

    fn blocks(&mut self, n: usize) -> Result<(), TranslateError> {
        self.blocks += n;
        if self.blocks > self.limits.max_blocks {
            return Err(TranslateError::TooLarge {
                what: "content blocks",
                limit: self.limits.max_blocks,
            });
        }
        Ok(())
    }
}

/// Tokens an upstream reported, in the gateway's terms
/// ([`crate::api::usage`]): every prompt token (cached or not) counts as
/// input, and the cache reads and writes are parts of it.
pub type TokenUsage = crate::api::usage::Usage;

/// The id with its dialect prefix swapped, so an upstream id stays traceable in
/// the client's logs: `chatcmpl-abc` ⇄ `msg_abc`.
fn swap_id_prefix(id: &str, from: &str, to: &str) -> String {
    // `concat`, not `format!`: once per translated response, where the
    // formatting machinery cost ~700 instructions (bench/README.md).
    [to, id.strip_prefix(from).unwrap_or(id)].concat()
}

fn unix_seconds_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
