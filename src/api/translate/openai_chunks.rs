//! Writing an OpenAI `chat.completion.chunk` SSE stream, for the
//! translators that make one from another dialect's stream (Anthropic,
//! Bedrock ConverseStream, Gemini).
//!
//! Invariants: the `role: assistant` chunk comes first, written once,
//! before any other chunk ([`ChunkWriter::start`] is called by every
//! writer of a choice chunk); every chunk of one stream has the same id,
//! model and `created`; when the client asked for usage, every chunk but
//! the last says `usage: null` and the last, with no choices, carries it,
//! as OpenAI's own do.

use super::wire::{ChunkChoice, ChunkDelta, OpenAiChunk, OpenAiError, OpenAiUsage, ToolCallDelta};
use super::{unix_seconds_now, TokenUsage};

/// One stream's chunk identity and whether its first chunk was written.
#[derive(Debug)]
pub(super) struct ChunkWriter {
    client_model: String,
    include_usage: bool,
    /// Set by a translator that learns it from the upstream's first event.
    pub id: String,
    /// One timestamp for the whole stream, as OpenAI sends it.
    created: u64,
    started: bool,
}

impl ChunkWriter {
    pub fn new(client_model: &str, id: String, include_usage: bool) -> Self {
        Self {
            client_model: client_model.to_owned(),
            include_usage,
            id,
            created: unix_seconds_now(),
            started: false,
        }
    }

    /// Whether the first chunk was written.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Writes the `role: assistant` chunk unless it was written.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let delta = ChunkDelta {
                role: Some("assistant"),
                content: Some(""),
                tool_calls: None,
            };
            self.choice(out, delta, None);
        }
    }

    /// A `content` delta; nothing for empty text.
    pub fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if !text.is_empty() {
            let delta = ChunkDelta {
                content: Some(text),
                ..ChunkDelta::default()
            };
            self.choice(out, delta, None);
        }
    }

    pub fn tool_call(&mut self, call: ToolCallDelta<'_>, out: &mut Vec<u8>) {
        let delta = ChunkDelta {
            tool_calls: Some([call]),
            ..ChunkDelta::default()
        };
        self.choice(out, delta, None);
    }

    pub fn finish_reason(&mut self, reason: &'static str, out: &mut Vec<u8>) {
        self.choice(out, ChunkDelta::default(), Some(reason));
    }

    /// The normal end: the usage chunk if the client asked for it, then
    /// `[DONE]`.
    pub fn done(&mut self, usage: TokenUsage, out: &mut Vec<u8>) {
        self.start(out);
        if self.include_usage {
            let usage = Some(Some(OpenAiUsage::new(usage)));
            write_data(out, &self.chunk(&[], usage));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// OpenAI reports a failure mid-stream as a data line holding an
    /// `error` object, which the official SDKs raise.
    pub fn error(&self, kind: &str, message: &str, out: &mut Vec<u8>) {
        write_data(out, &OpenAiError::new(kind, message));
    }

    fn choice(&mut self, out: &mut Vec<u8>, delta: ChunkDelta<'_>, reason: Option<&'static str>) {
        self.start(out);
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: reason,
        };
        let usage = self.include_usage.then_some(None);
        write_data(out, &self.chunk(std::slice::from_ref(&choice), usage));
    }

    fn chunk<'a>(
        &'a self,
        choices: &'a [ChunkChoice<'a>],
        usage: Option<Option<OpenAiUsage>>,
    ) -> OpenAiChunk<'a> {
        OpenAiChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.client_model,
            choices,
            usage,
        }
    }
}

fn write_data<T: serde::Serialize>(out: &mut Vec<u8>, data: &T) {
    out.extend_from_slice(b"data: ");
    // Chunks have string keys and integer numbers: serializing into a Vec cannot fail.
    sonic_rs::to_writer(&mut *out, data).expect("stream chunks always serialize");
    out.extend_from_slice(b"\n\n");
}
