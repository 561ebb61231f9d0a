//! What a cache entry answers a request with, sans-IO: the entry as it was
//! kept (a whole body, or a stream's events) given back in the form the
//! request wants, and whether a recorded stream is whole enough to keep.
//!
//! - A whole answer to a whole request, and an Anthropic stream to a
//!   stream, are given back as kept (borrowed, not copied).
//! - An OpenAI stream to a stream: the same events, except that the usage
//!   chunk goes only to a request that asked for it (`include_usage`); one
//!   that asked, of a recording without one, is not answered. A recording
//!   is kept normalized ([`normalize_openai`]) so that this reads only its
//!   last event.
//! - A stream to a whole request is put back together (`assemble`); a
//!   whole answer to a stream is told as one (`synthesize`). Embeddings
//!   never stream; a completions stream is not put back together.
//!
//! Invariants: `None` means "not from this entry" (the request goes
//! upstream and its answer replaces the entry), never an error; only a
//! stream that ended as its dialect ends one, with no error event, is
//! kept ([`stream_is_whole`]).

use std::borrow::Cow;

use super::assemble::{ChatAssembler, MessageAssembler};
use super::synthesize::{chat_stream, completion_stream, message_stream};
use crate::api::sse::SseScanner;

/// How an entry's answer was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// A whole JSON body.
    Whole,
    /// A stream's event bytes (SSE, as the client got them, unframed).
    Stream,
}

/// The routes the cache serves, by the shape of their answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Chat,
    Completions,
    Embeddings,
    Messages,
}

impl Shape {
    /// The route's name in the cache key.
    pub fn route(self) -> &'static str {
        match self {
            Shape::Chat => "chat_completions",
            Shape::Completions => "completions",
            Shape::Embeddings => "embeddings",
            Shape::Messages => "messages",
        }
    }

    fn openai_stream(self) -> bool {
        matches!(self, Shape::Chat | Shape::Completions)
    }
}

/// What a request wants of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub shape: Shape,
    pub streams: bool,
    /// `stream_options.include_usage` (OpenAI streams).
    pub include_usage: bool,
}

/// Largest event a recorded stream may hold (bounded by the entry anyway).
const MAX_EVENT: usize = 1 << 20;

/// The answer `body`, kept as `form`, gives `want`, if it can give one.
pub fn replay<'a>(form: Form, body: &'a [u8], want: Want) -> Option<Cow<'a, [u8]>> {
    match (form, want.streams) {
        (Form::Whole, false) => Some(Cow::Borrowed(body)),
        (Form::Stream, true) if !want.shape.openai_stream() => Some(Cow::Borrowed(body)),
        (Form::Stream, true) => openai_events(body, want.include_usage),
        (Form::Stream, false) => assemble(want.shape, body).map(Cow::Owned),
        (Form::Whole, true) => match want.shape {
            Shape::Chat => chat_stream(body, want.include_usage),
            Shape::Completions => completion_stream(body, want.include_usage),
            Shape::Messages => message_stream(body),
            Shape::Embeddings => None,
        }
        .map(Cow::Owned),
    }
}

/// Whether `stream`, recorded as the client got it, is a whole answer.
pub fn stream_is_whole(shape: Shape, stream: &[u8]) -> bool {
    match shape {
        Shape::Chat | Shape::Messages => assemble(shape, stream).is_some(),
        Shape::Completions => {
            let mut done = false;
            let mut failed = false;
            let scanned = SseScanner::new(MAX_EVENT).feed(stream, |ev| {
                if ev.data == b"[DONE]" {
                    done = true;
                } else if crate::json::top_level_value(ev.data, b"error").is_some() {
                    failed = true;
                }
            });
            scanned.is_ok() && done && !failed
        }
        Shape::Embeddings => false,
    }
}

fn assemble(shape: Shape, stream: &[u8]) -> Option<Vec<u8>> {
    let mut scanner = SseScanner::new(MAX_EVENT);
    match shape {
        Shape::Chat => {
            let mut a = ChatAssembler::default();
            let mut done = false;
            scanner
                .feed(stream, |ev| {
                    done |= ev.data == b"[DONE]";
                    a.on_data(ev.data)
                })
                .ok()?;
            a.finish().filter(|_| done)
        }
        Shape::Messages => {
            let mut a = MessageAssembler::default();
            scanner
                .feed(stream, |ev| a.on_event(ev.event, ev.data))
                .ok()?;
            a.finish()
        }
        Shape::Completions | Shape::Embeddings => None,
    }
}

/// A recorded OpenAI stream as it is kept: each event framed `data: X` and
/// a blank line, the usage chunk (if any) last before `[DONE]`, where the
/// providers put it, so a replay finds it without reading the rest.
pub fn normalize_openai(stream: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stream.len());
    let mut usage: Option<Vec<u8>> = None;
    SseScanner::new(MAX_EVENT)
        .feed(stream, |ev| {
            if ev.data == b"[DONE]" {
                return;
            }
            if usage.is_none() && is_usage_chunk(ev.data) {
                usage = Some(ev.data.to_vec());
                return;
            }
            push_data(&mut out, ev.data);
        })
        .ok()?;
    if let Some(u) = usage {
        push_data(&mut out, &u);
    }
    out.extend_from_slice(DONE);
    Some(out)
}

const DONE: &[u8] = b"data: [DONE]\n\n";

fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// A kept (normalized) OpenAI stream's events with the usage chunk given
/// only when asked; read from its last event alone.
fn openai_events(stream: &[u8], include_usage: bool) -> Option<Cow<'_, [u8]>> {
    let head = stream.strip_suffix(DONE)?;
    let last_start = match head.len().checked_sub(2) {
        Some(end) => memchr::memmem::rfind(&head[..end], b"\n\n").map_or(0, |at| at + 2),
        None => 0,
    };
    let last = &head[last_start..];
    let has_usage = last
        .strip_prefix(b"data: ")
        .and_then(|d| d.strip_suffix(b"\n\n"))
        .is_some_and(is_usage_chunk);
    match (include_usage, has_usage) {
        (true, true) | (false, false) => Some(Cow::Borrowed(stream)),
        (true, false) => None,
        (false, true) => Some(Cow::Owned([&stream[..last_start], DONE].concat())),
    }
}

/// The chunk `include_usage` adds: no choices, a usage object.
fn is_usage_chunk(data: &[u8]) -> bool {
    let usage = crate::json::top_level_value(data, b"usage").is_some_and(|u| u.starts_with(b"{"));
    usage && crate::json::top_level_value(data, b"choices").is_some_and(|c| c == b"[]")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &[u8] = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n\
data: [DONE]\n\n";

    fn want(shape: Shape, streams: bool, include_usage: bool) -> Want {
        Want {
            shape,
            streams,
            include_usage,
        }
    }

    #[test]
    fn a_kept_stream_is_framed_alike_with_its_usage_chunk_last() {
        let odd = b"data:{\"choices\":[],\"usage\":{\"total_tokens\":5}}\r\n\r\n: comment\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let kept = normalize_openai(odd).unwrap();
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n\
             data: {\"choices\":[],\"usage\":{\"total_tokens\":5}}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(normalize_openai(CHAT).unwrap(), CHAT, "already as kept");
    }

    #[test]
    fn a_stream_is_replayed_with_its_usage_chunk_only_when_asked() {
        let same = replay(Form::Stream, CHAT, want(Shape::Chat, true, true)).unwrap();
        assert!(matches!(same, Cow::Borrowed(_)));
        let bare = replay(Form::Stream, CHAT, want(Shape::Chat, true, false)).unwrap();
        let text = String::from_utf8(bare.into_owned()).unwrap();
        assert_eq!(text.matches("data: ").count(), 3);
        assert!(!text.contains("usage"));
        assert!(text.ends_with("data: [DONE]\n\n"));
        // Asked of a recording that had none: not from this entry.
        let recorded = replay(Form::Stream, CHAT, want(Shape::Chat, true, false)).unwrap();
        assert_eq!(
            replay(Form::Stream, &recorded, want(Shape::Chat, true, true)),
            None
        );
        assert!(matches!(
            replay(Form::Stream, &recorded, want(Shape::Chat, true, false)),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn a_stream_answers_a_whole_request_and_a_whole_answer_a_stream() {
        let whole = replay(Form::Stream, CHAT, want(Shape::Chat, false, false)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hello");
        assert_eq!(v["usage"]["total_tokens"], 5);
        let again = replay(Form::Whole, &whole, want(Shape::Chat, true, true)).unwrap();
        assert!(stream_is_whole(Shape::Chat, &again));
        let back = replay(Form::Stream, &again, want(Shape::Chat, false, false)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&back).unwrap(),
            v
        );
        assert_eq!(
            replay(
                Form::Whole,
                b"{\"data\":[]}",
                want(Shape::Embeddings, true, false)
            ),
            None
        );
        assert_eq!(
            replay(
                Form::Stream,
                b"data: [DONE]\n\n",
                want(Shape::Completions, false, false)
            ),
            None
        );
    }

    #[test]
    fn only_streams_that_ended_whole_are_kept() {
        assert!(stream_is_whole(Shape::Chat, CHAT));
        let cut = &CHAT[..CHAT.len() - b"data: [DONE]\n\n".len()];
        assert!(!stream_is_whole(Shape::Chat, cut));
        let errored = [CHAT, b"data: {\"error\":{\"message\":\"x\"}}\n\n"].concat();
        assert!(!stream_is_whole(Shape::Chat, &errored));
        assert!(stream_is_whole(
            Shape::Completions,
            b"data: {\"choices\":[{\"text\":\"a\",\"index\":0}]}\n\ndata: [DONE]\n\n"
        ));
        assert!(!stream_is_whole(
            Shape::Completions,
            b"data: {\"error\":{}}\n\ndata: [DONE]\n\n"
        ));
        assert!(!stream_is_whole(
            Shape::Messages,
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        ));
        assert!(!stream_is_whole(Shape::Embeddings, b"data: [DONE]\n\n"));
    }
}
