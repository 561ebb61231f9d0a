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
//! kept ([`kept_stream`]).
//!
//! Whether a stream ended whole is read from each event's structure
//! ([`crate::json::Items`]; for OpenAI, in the pass that normalizes it:
//! the members `error`, `usage` and `choices`, and each choice's `index`
//! and `finish_reason`; for Anthropic, each event's `type`, `index` and
//! `message`), not by parsing its events into values: putting
//! a recording back together to see whether it could be (as a whole
//! request's replay does) cost a streamed miss nine times the rest of
//! its request (bench/README.md). Values are delimited, not validated, so
//! a recording whose events are not all JSON can be kept; it is replayed
//! as the upstream sent it, and a whole request it cannot answer
//! (`assemble` says no) goes upstream.

use std::borrow::Cow;

use super::assemble::{ChatAssembler, MessageAssembler};
use super::synthesize::{chat_stream, completion_stream, message_stream};
use crate::api::sse::SseScanner;
use crate::json::{string_contents, Items};

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

/// Most choices (OpenAI) or content blocks (Anthropic) a kept stream may
/// have: each event's is looked up among those seen, so an upstream that
/// numbers every event anew cannot make the check quadratic in the
/// recording (real streams have a few; OpenAI's `n` stops at 128).
const MAX_PARTS: usize = 1024;

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

/// What of `stream`, recorded as the client got it, the cache keeps, if it
/// is a whole answer: an OpenAI stream normalized ([`normalize_openai`]),
/// an Anthropic one as recorded. Embeddings never stream.
pub fn kept_stream(shape: Shape, stream: Vec<u8>) -> Option<Vec<u8>> {
    match shape {
        Shape::Chat | Shape::Completions => normalize_openai(shape, &stream),
        Shape::Messages => messages_whole(&stream).then_some(stream),
        Shape::Embeddings => None,
    }
}

/// Whether a recorded Anthropic stream ended whole, read from its events'
/// structure as [`MessageAssembler`] decides it: a `message_start` with a
/// message, deltas only to blocks opened before them and a `message_delta`
/// only after the start, a `message_stop`, no `error`; stricter in that
/// every payload must be an object, and that a stream of more than
/// [`MAX_PARTS`] blocks is not kept. Values are delimited, not validated
/// (as for OpenAI streams); a tool call's input is not parsed, so a whole
/// request its joined fragments cannot answer goes upstream at the hit.
fn messages_whole(stream: &[u8]) -> bool {
    let (mut started, mut stopped, mut failed) = (false, false, false);
    let mut blocks: Vec<u64> = Vec::new();
    let scanned = SseScanner::new(MAX_EVENT).feed(stream, |ev| {
        if failed {
            return;
        }
        let mut members = Items::new(ev.data);
        let (mut kind, mut index, mut message) = (None, 0, false);
        for (key, value) in &mut members {
            match key {
                b"type" => kind = std::str::from_utf8(value).ok().and_then(string_contents),
                b"index" => index = count(value),
                b"message" => message = value.starts_with(b"{"),
                _ => {}
            }
        }
        if !(members.is_object() && members.complete()) {
            failed = true;
            return;
        }
        let kind = kind.as_ref().map_or(ev.event, |k| k.as_bytes());
        match kind {
            b"message_start" => {
                started |= message;
                failed |= !message;
            }
            b"content_block_start" if !blocks.contains(&index) => match blocks.len() < MAX_PARTS {
                true => blocks.push(index),
                false => failed = true,
            },
            b"content_block_delta" => failed |= !blocks.contains(&index),
            b"message_delta" => failed |= !started,
            b"message_stop" => stopped = true,
            b"error" => failed = true,
            _ => {}
        }
    });
    scanned.is_ok() && started && stopped && !failed
}

/// A count as the assemblers read one: not a whole number is 0.
fn count(value: &[u8]) -> u64 {
    let digits = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
    digits
        .then(|| {
            value.iter().try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
        })
        .flatten()
        .unwrap_or(0)
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

/// A recorded OpenAI stream as it is kept, if it ended whole: each event
/// framed `data: X` and a blank line, the usage chunk (if any) last before
/// `[DONE]`, where the providers put it, so a replay finds it without
/// reading the rest.
fn normalize_openai(shape: Shape, stream: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stream.len());
    let mut usage: Option<Vec<u8>> = None;
    let mut end = OpenAiEnd::default();
    SseScanner::new(MAX_EVENT)
        .feed(stream, |ev| {
            if ev.data == b"[DONE]" {
                end.done = true;
                return;
            }
            if end.on_chunk(ev.data) && usage.is_none() {
                usage = Some(ev.data.to_vec());
                return;
            }
            push_data(&mut out, ev.data);
        })
        .ok()?;
    if !end.whole(shape) {
        return None;
    }
    if let Some(u) = usage {
        push_data(&mut out, &u);
    }
    out.extend_from_slice(DONE);
    Some(out)
}

/// How an OpenAI stream ended, from its chunks' structure.
#[derive(Default)]
struct OpenAiEnd {
    done: bool,
    failed: bool,
    /// Each choice seen, by `index`, and whether a `finish_reason` closed it.
    choices: Vec<(u64, bool)>,
    /// The first chunk's members before its `choices`, as read: a chunk
    /// that starts with the same bytes is taken up at its `choices`.
    prefix: Option<Prefix>,
}

/// A chunk's bytes up to its `choices` key's opening quote (included), and
/// what reading them found. A provider repeats the members before
/// `choices` (`id`, `object`, `created`, `model`, …) in every chunk of a
/// stream, byte for byte, so each chunk's check after the first compares
/// them rather than walking them; reading the same bytes decides the same,
/// so the result is the walk's (an `error` among them failed the stream
/// at the first chunk already, so only `usage` is remembered).
struct Prefix {
    bytes: Vec<u8>,
    usage: bool,
}

impl OpenAiEnd {
    /// Takes one chunk; whether it is the usage chunk (a `usage` object,
    /// no choices). A chunk that is not an object, or says an error, fails
    /// the stream, as it fails putting the stream back together.
    fn on_chunk(&mut self, data: &[u8]) -> bool {
        if self.failed {
            return false;
        }
        let (mut members, mut usage) = match &self.prefix {
            Some(p) if data.starts_with(&p.bytes) => {
                (Items::from_member(data, p.bytes.len() - 1), p.usage)
            }
            _ => (Items::new(data), false),
        };
        let mut no_choices = false;
        while let Some((key, at)) = members.next_key() {
            if key == b"choices" {
                if self.prefix.is_none() {
                    self.prefix = Some(Prefix {
                        bytes: data[..=members.key_at()].to_vec(),
                        usage,
                    });
                }
                let mut choices = Items::inner(data, at);
                no_choices = self.on_choices(data, &mut choices);
                members.resume(&choices);
                continue;
            }
            let Some(value) = members.skip_value() else {
                break;
            };
            match key {
                b"error" => self.failed |= value != b"null",
                b"usage" => usage = value.starts_with(b"{"),
                _ => {}
            }
        }
        self.failed |= !(members.is_object() && members.complete());
        usage && no_choices
    }

    /// Takes a chunk's `choices` (walked into, in `data`); whether there
    /// were none.
    fn on_choices<'a>(&mut self, data: &'a [u8], choices: &mut Items<'a>) -> bool {
        self.failed |= !choices.is_array();
        let mut none = true;
        while let Some((_, at)) = choices.next_key() {
            none = false;
            let (mut index, mut finished) = (0, false);
            let mut fields = Items::inner(data, at);
            self.failed |= !fields.is_object();
            for (key, value) in &mut fields {
                match key {
                    // As the assembler reads it: not a count is choice 0.
                    b"index" => index = count(value),
                    b"finish_reason" => finished = value != b"null",
                    _ => {}
                }
            }
            choices.resume(&fields);
            let full = self.choices.len() == MAX_PARTS;
            match self.choices.iter_mut().find(|(i, _)| *i == index) {
                Some((_, closed)) => *closed |= finished,
                None if full => self.failed = true,
                None => self.choices.push((index, finished)),
            }
        }
        none
    }

    /// A chat stream ended whole when every choice it had finished; a
    /// completions stream (never put back together) when it ended.
    fn whole(&self, shape: Shape) -> bool {
        let choices_closed = !self.choices.is_empty() && self.choices.iter().all(|(_, f)| *f);
        self.done && !self.failed && (shape != Shape::Chat || choices_closed)
    }
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
    use proptest::prelude::*;

    const CHAT: &[u8] = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n\
data: [DONE]\n\n";

    fn kept(shape: Shape, stream: &[u8]) -> bool {
        kept_stream(shape, stream.to_vec()).is_some()
    }

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
        let kept = normalize_openai(Shape::Chat, odd).unwrap();
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n\
             data: {\"choices\":[],\"usage\":{\"total_tokens\":5}}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(
            normalize_openai(Shape::Chat, CHAT).unwrap(),
            CHAT,
            "already as kept"
        );
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
        assert!(kept(Shape::Chat, &again));
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
        assert!(kept(Shape::Chat, CHAT));
        let cut = &CHAT[..CHAT.len() - b"data: [DONE]\n\n".len()];
        assert!(!kept(Shape::Chat, cut));
        let errored = [CHAT, b"data: {\"error\":{\"message\":\"x\"}}\n\n"].concat();
        assert!(!kept(Shape::Chat, &errored));
        assert!(kept(
            Shape::Completions,
            b"data: {\"choices\":[{\"text\":\"a\",\"index\":0}]}\n\ndata: [DONE]\n\n"
        ));
        assert!(!kept(
            Shape::Completions,
            b"data: {\"error\":{}}\n\ndata: [DONE]\n\n"
        ));
        assert!(!kept(
            Shape::Messages,
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        ));
        assert!(!kept(Shape::Embeddings, b"data: [DONE]\n\n"));
    }

    #[test]
    fn a_chat_stream_is_whole_when_every_choice_finished_and_nothing_failed() {
        let ev = |data: &str| format!("data: {data}\n\n");
        let open = ev(
            r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null},{"index":1,"delta":{"content":"b"}}]}"#,
        );
        let close0 = ev(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
        let close1 = ev(r#"{"choices":[{"delta":{},"index":1,"finish_reason":"length"}]}"#);
        let done = ev("[DONE]");
        let stream = |parts: &[&str]| parts.concat().into_bytes();
        assert!(kept(
            Shape::Chat,
            &stream(&[&open, &close0, &close1, &done])
        ));
        assert!(
            !kept(Shape::Chat, &stream(&[&open, &close0, &done])),
            "choice 1 open"
        );
        assert!(!kept(Shape::Chat, &stream(&[&done])), "no choice at all");
        assert!(
            !kept(Shape::Chat, &stream(&[&open, &close0, &close1])),
            "no [DONE]"
        );
        for bad in [
            r#"{"choices":[{"index":0,"finish_reason":"stop"}]"#,
            "not json",
            r#"{"choices":{}}"#,
            r#"{"choices":[1]}"#,
            r#"{"error":{"message":"overloaded"}}"#,
        ] {
            let s = stream(&[&open, &close0, &close1, &ev(bad), &done]);
            assert!(!kept(Shape::Chat, &s), "{bad}");
        }
        let null_error = ev(r#"{"error":null,"choices":[]}"#);
        assert!(kept(
            Shape::Chat,
            &stream(&[&open, &null_error, &close0, &close1, &done])
        ));
        // A completions stream only has to end, without an error.
        assert!(kept(Shape::Completions, &stream(&[&open, &done])));
    }

    #[test]
    fn a_count_is_a_whole_number_or_zero() {
        for (text, n) in [
            ("0", 0),
            ("7", 7),
            ("18446744073709551615", u64::MAX),
            ("18446744073709551616", 0),
            ("", 0),
            ("-1", 0),
            ("+1", 0),
            ("1.0", 0),
            ("\"1\"", 0),
        ] {
            assert_eq!(count(text.as_bytes()), n, "{text}");
        }
    }

    #[test]
    fn a_stream_of_more_parts_than_the_bound_is_not_kept() {
        let chat = |n: u64| {
            let mut s = String::new();
            for i in 0..n {
                s += &format!(
                    "data: {{\"choices\":[{{\"index\":{i},\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"
                );
            }
            s + "data: [DONE]\n\n"
        };
        let bound = MAX_PARTS as u64;
        assert!(kept(Shape::Chat, chat(bound).as_bytes()));
        assert!(!kept(Shape::Chat, chat(bound + 1).as_bytes()));
        let messages = |n: u64| {
            let mut s = String::from(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n",
            );
            for i in 0..n {
                s += &format!("data: {{\"type\":\"content_block_start\",\"index\":{i}}}\n\n");
            }
            s + "data: {\"type\":\"message_stop\"}\n\n"
        };
        assert!(messages_whole(messages(bound).as_bytes()));
        assert!(!messages_whole(messages(bound + 1).as_bytes()));
    }

    fn chunk_strategy() -> impl Strategy<Value = String> {
        let choice = (
            0u64..3,
            prop_oneof![Just(None), Just(Some("null")), Just(Some("\"stop\""))],
            any::<bool>(),
        )
            .prop_map(|(index, finish, with_index)| {
                let mut fields = vec![r#""delta":{"content":"x"}"#.to_string()];
                if with_index {
                    fields.push(format!(r#""index":{index}"#));
                }
                if let Some(f) = finish {
                    fields.push(format!(r#""finish_reason":{f}"#));
                }
                format!("{{{}}}", fields.join(","))
            });
        // The members around `choices`: mostly the same in every chunk (the
        // prefix a later chunk is taken up after), sometimes not.
        let before = prop::sample::select(vec![
            r#""id":"c","#,
            r#""id":"c","#,
            r#""id":"d","#,
            r#" "id":"c", "#,
            r#""id":"c","error":{"m":1},"#,
            r#""id":"c","usage":{"t":1},"#,
            r#""error":null,"#,
            "",
        ]);
        let after = prop::sample::select(vec![
            "",
            "",
            r#","usage":null"#,
            r#","usage":{"t":2}"#,
            ",",
            r#","error":1"#,
        ]);
        prop_oneof![
            8 => (before, prop::collection::vec(choice, 0..3), after).prop_map(|(b, c, a)| format!(r#"{{{b}"choices":[{}]{a}}}"#, c.join(","))),
            1 => Just(r#"{"id":"c","choices":[{"index":0,"#.to_string()),
            1 => Just(r#"{"choices":[],"usage":{"total_tokens":3}}"#.to_string()),
            1 => Just(r#"{"error":{"message":"x"}}"#.to_string()),
            1 => Just(r#"{"error":null,"choices":[]}"#.to_string()),
        ]
    }

    fn message_event() -> impl Strategy<Value = String> {
        let index = 0u64..3;
        prop_oneof![
            Just(r#"event: message_start
data: {"type":"message_start","message":{"id":"m","role":"assistant","content":[],"usage":{"input_tokens":1}}}"#.to_string()),
            Just(r#"event: message_start
data: {"type":"message_start","message":null}"#.to_string()),
            index.clone().prop_map(|i| format!(
                "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{i},\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}"
            )),
            index.prop_map(|i| format!(
                "event: content_block_delta\ndata: {{\"index\":{i},\"type\":\"content_block_delta\",\"delta\":{{\"type\":\"text_delta\",\"text\":\"x\"}}}}"
            )),
            Just(r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#.to_string()),
            // The kind from the event's name when the payload has none,
            // and from an escaped `type`.
            Just("event: message_stop\ndata: {}".to_string()),
            Just(r#"event: x
data: {"type":"message_st\u006fp"}"#.to_string()),
            Just(r#"event: error
data: {"type":"error","error":{"type":"overloaded_error"}}"#.to_string()),
            Just(r#"event: ping
data: {"type":"ping"}"#.to_string()),
            Just(r#"event: content_block_stop
data: {"type":"content_block_stop","index":0"#.to_string()),
        ]
    }

    proptest::proptest! {
        /// Reading the structure decides as putting the stream together does.
        #[test]
        fn the_structural_check_agrees_with_the_assembler(
            chunks in prop::collection::vec(chunk_strategy(), 0..8),
            done in any::<bool>(),
        ) {
            let mut s = String::new();
            for c in &chunks {
                s += &format!("data: {c}\n\n");
            }
            if done {
                s += "data: [DONE]\n\n";
            }
            let assembled = assemble(Shape::Chat, s.as_bytes()).is_some();
            proptest::prop_assert_eq!(kept(Shape::Chat, s.as_bytes()), assembled, "{}", s);
        }

        /// An Anthropic stream's structure decides as putting it together.
        #[test]
        fn the_messages_check_agrees_with_the_assembler(events in prop::collection::vec(message_event(), 0..9)) {
            let s: String = events.iter().map(|e| format!("{e}\n\n")).collect();
            let assembled = assemble(Shape::Messages, s.as_bytes()).is_some();
            proptest::prop_assert_eq!(messages_whole(s.as_bytes()), assembled, "{}", s);
        }

        /// Taking a chunk up after the prefix it shares with the first
        /// decides as walking it whole: the same usage chunk, the same state.
        #[test]
        fn a_shared_prefix_is_taken_up_as_walked(chunks in prop::collection::vec(chunk_strategy(), 0..8)) {
            let (mut memo, mut walked) = (OpenAiEnd::default(), OpenAiEnd::default());
            for c in &chunks {
                walked.prefix = None;
                let usage = walked.on_chunk(c.as_bytes());
                proptest::prop_assert_eq!(memo.on_chunk(c.as_bytes()), usage, "{}", c);
                proptest::prop_assert_eq!(memo.failed, walked.failed);
                proptest::prop_assert_eq!(&memo.choices, &walked.choices);
            }
        }
    }
}
