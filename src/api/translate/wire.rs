//! The events (and the gateway's own error bodies) the translators write,
//! as typed shapes.
//!
//! A `sonic_rs::Value` object built by hand keeps its keys in a hash map, so
//! it would serialize in a different order on every run; these structs
//! serialize in the order the providers themselves use (`type` first, `id`
//! before `model`, ...), stay byte-for-byte reproducible, and write straight
//! into the output buffer without building a tree per stream event. Whole
//! request and response bodies are not built from these: they are written
//! member by member from the input's text (`write`), which holds nothing per
//! content block.

use serde::Serialize;

use super::TokenUsage;

/// `{}`: the initial `input` of a streamed tool_use block.
#[derive(Serialize)]
pub(super) struct EmptyObject {}

/// A content block of a streamed message's start, which has none: the
/// blocks follow as their own events.
#[derive(Serialize)]
pub(super) enum NoBlock {}

/// The empty Anthropic `Message` of `message_start` (whole responses are
/// written by `response`, straight from the upstream's text).
#[derive(Serialize)]
pub(super) struct AnthropicMessage<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: &'a [NoBlock],
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<&'a str>,
    pub usage: AnthropicUsage,
}

#[derive(Serialize, Clone, Copy, Default)]
pub(super) struct AnthropicUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl AnthropicUsage {
    /// Anthropic reports cache reads and writes beside `input_tokens`, which
    /// excludes them; the gateway counts them inside its input.
    pub fn new(usage: TokenUsage) -> Self {
        let (uncached, read, write) = usage.input_split();
        Self {
            input_tokens: uncached,
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
        }
    }
}

#[derive(Serialize)]
pub(super) struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum AnthropicDelta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
pub(super) struct StopDelta {
    pub stop_reason: &'static str,
    pub stop_sequence: Option<&'static str>,
}

/// One Anthropic stream event; its SSE `event:` name is its `type`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum AnthropicEvent<'a> {
    MessageStart {
        message: AnthropicMessage<'a>,
    },
    ContentBlockStart {
        index: u64,
        content_block: StreamBlockStart<'a>,
    },
    ContentBlockDelta {
        index: u64,
        delta: AnthropicDelta<'a>,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: StopDelta,
        usage: AnthropicUsage,
    },
    MessageStop,
    Error {
        error: ErrorDetail<'a>,
    },
}

impl AnthropicEvent<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            AnthropicEvent::MessageStart { .. } => "message_start",
            AnthropicEvent::ContentBlockStart { .. } => "content_block_start",
            AnthropicEvent::ContentBlockDelta { .. } => "content_block_delta",
            AnthropicEvent::ContentBlockStop { .. } => "content_block_stop",
            AnthropicEvent::MessageDelta { .. } => "message_delta",
            AnthropicEvent::MessageStop => "message_stop",
            AnthropicEvent::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum StreamBlockStart<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
pub(super) struct OpenAiError<'a> {
    pub error: OpenAiErrorDetail<'a>,
}

#[derive(Serialize)]
pub(super) struct OpenAiErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl<'a> OpenAiError<'a> {
    pub fn new(kind: &'a str, message: &'a str) -> Self {
        Self {
            error: OpenAiErrorDetail {
                message,
                kind,
                param: None,
                code: None,
            },
        }
    }
}

#[derive(Serialize, Clone, Copy)]
pub(super) struct OpenAiUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Serialize, Clone, Copy)]
pub(super) struct PromptTokensDetails {
    pub cached_tokens: u64,
}

impl OpenAiUsage {
    /// OpenAI's `prompt_tokens` includes the cached ones, as the gateway's
    /// input does. Cache writes have no field of their own: they stay in
    /// `prompt_tokens` as uncached input.
    pub fn new(usage: TokenUsage) -> Self {
        let (_, read, _) = usage.input_split();
        Self {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.input_tokens.saturating_add(usage.output_tokens),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: read,
            },
        }
    }
}

#[derive(Serialize)]
pub(super) struct ToolCallFunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// A tool call in a chunk: the first one names it (id, type, name), the
/// following ones only carry argument fragments under the same index.
#[derive(Serialize)]
pub(super) struct ToolCallDelta<'a> {
    pub index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: ToolCallFunctionDelta<'a>,
}

#[derive(Serialize, Default)]
pub(super) struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
pub(super) struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: ChunkDelta<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

/// A `chat.completion.chunk`. `usage` is absent unless the client asked for
/// it; then it is `null` on every chunk but the last, which has no choices.
#[derive(Serialize)]
pub(super) struct OpenAiChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<OpenAiUsage>>,
}
