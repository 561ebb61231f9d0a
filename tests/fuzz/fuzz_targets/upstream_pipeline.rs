//! The gateway's upstream response path without sockets, as a client of the
//! upstream: the response head parser (interim 1xx skipped, as forward.rs
//! does), the response framing, the body followed read by read with
//! `BodyProgress` (chunked decoder, usage scanner on the side, the cut at a
//! chunk boundary when the stream can no longer be metered), and for
//! translated streams the SSE scanner and the stream translators. Shared by
//! the `upstream_response` fuzz target and tests/upstream_response_props.rs.
//!
//! [`run`] asserts, for any bytes in any split, what must hold whatever the
//! upstream sends: no panic; no read yields more body than it held; the
//! client's copy, wherever the relay cuts a stream, is well framed (the cut
//! event and the last chunk parse, and the cut event is the last event);
//! translated output is SSE whose every payload is JSON, and its size is
//! linear in the input.

use shardgate::api::sse::SseScanner;
use shardgate::api::translate::{
    AnthropicToOpenAiStream, OpenAiToAnthropicStream, StreamEnd, ANTHROPIC_STREAM_CUT,
    OPENAI_STREAM_CUT,
};
use shardgate::api::usage::{StreamUsageScanner, Usage};
use shardgate::http1::chunked::{ChunkLimits, ChunkedDecoder};
use shardgate::http1::framing::{response_framing, BodyKind};
use shardgate::http1::parse::{HeadLimits, HeadScanner, Parsed, ResponseHead};
use shardgate::http1::write::{push_chunk_size, LAST_CHUNK};
use shardgate::proxy::body::{BodyFailure, BodyProgress, ClientPosition};

/// How a translated stream is re-dressed for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translate {
    /// Passed through, usage scanned on the side.
    None,
    ToAnthropic,
    ToOpenAi {
        include_usage: bool,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Mode {
    pub translate: Translate,
    /// The client speaks Anthropic (pass-through: which usage to read and
    /// which cut event to write).
    pub anthropic: bool,
    pub request_was_head: bool,
    /// Small limits, so small inputs reach them.
    pub usage_event_limit: usize,
    pub sse_event_limit: usize,
}

impl Mode {
    pub fn from_byte(b: u8) -> Mode {
        Mode {
            translate: match b & 3 {
                0 | 1 => Translate::None,
                2 => Translate::ToAnthropic,
                _ => Translate::ToOpenAi {
                    include_usage: b & 4 != 0,
                },
            },
            anthropic: b & 8 != 0,
            request_was_head: b & 0x70 == 0x70,
            usage_event_limit: if b & 0x80 != 0 { 64 } else { 1 << 20 },
            sse_event_limit: if b & 0x80 != 0 { 64 } else { 1 << 20 },
        }
    }
}

/// How the exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// No usable head (malformed, a 101, bad framing): a 502 before commit.
    Refused,
    /// The input ran out first.
    Incomplete,
    /// The body ended as its framing says.
    Complete,
    /// The relay cut the response where the client stood.
    Cut(ClientPosition),
}

#[derive(Debug)]
pub struct Outcome {
    pub end: End,
    pub status: u16,
    /// The body bytes a pass-through relays as they are.
    pub relayed: Vec<u8>,
    /// What a translated stream wrote.
    pub translated: Vec<u8>,
    pub usage: Option<Usage>,
}

impl Outcome {
    fn new(end: End) -> Outcome {
        Outcome {
            end,
            status: 0,
            relayed: Vec::new(),
            translated: Vec::new(),
            usage: None,
        }
    }
}

enum Translator {
    ToAnthropic(OpenAiToAnthropicStream),
    ToOpenAi(AnthropicToOpenAiStream),
}

/// Runs `pieces` (one upstream read each) through the response path.
pub fn run(mode: &Mode, pieces: &[&[u8]]) -> Outcome {
    let input_len: usize = pieces.iter().map(|p| p.len()).sum();
    let limits = HeadLimits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
    };
    let mut buf = Vec::new();
    let mut scanner = HeadScanner::default();
    let mut head = ResponseHead::default();
    let mut reads = pieces.iter();
    loop {
        match scanner.response(&buf, &limits, &mut head) {
            Ok(Parsed::Complete) => {
                assert!(head.head_len <= buf.len());
                if (100..200).contains(&head.status) && head.status != 101 {
                    buf.drain(..head.head_len);
                    scanner.reset();
                    continue;
                }
                break;
            }
            Ok(Parsed::Partial) => {}
            Err(_) => return Outcome::new(End::Refused),
        }
        match reads.next() {
            Some(read) => buf.extend_from_slice(read),
            None => return Outcome::new(End::Incomplete),
        }
    }
    let Ok(framing) = response_framing(&buf, &head, mode.request_was_head) else {
        return Outcome::new(End::Refused);
    };
    if head.status == 101 {
        return Outcome::new(End::Refused);
    }
    let mut out = Outcome::new(End::Incomplete);
    out.status = head.status;

    let mut progress = BodyProgress::new(framing.body);
    let mut decoder = ChunkedDecoder::new(ChunkLimits {
        max_line_bytes: 4096,
        max_trailer_bytes: 64 * 1024,
        max_body_bytes: u64::MAX,
    });
    let mut usage = StreamUsageScanner::with_max_event(mode.usage_event_limit);
    usage.reset(mode.anthropic);
    let mut translator = match mode.translate {
        Translate::None => None,
        Translate::ToAnthropic => Some(Translator::ToAnthropic(OpenAiToAnthropicStream::new(
            "client-model",
        ))),
        Translate::ToOpenAi { include_usage } => Some(Translator::ToOpenAi(
            AnthropicToOpenAiStream::new("client-model", include_usage),
        )),
    };
    let mut sse = SseScanner::new(mode.sse_event_limit);
    let mut payload = Vec::new();
    let relays_chunks = translator.is_none() && framing.body == BodyKind::Chunked;
    let mut at = ClientPosition::START;
    let mut unmetered = false;
    let mut translate_failed = false;

    let first = buf[head.head_len..].to_vec();
    for read in std::iter::once(&first[..]).chain(reads.copied()) {
        if progress.is_done() {
            break;
        }
        let advanced = if unmetered {
            progress.advance_to_chunk_end(read, &mut decoder)
        } else if translator.is_some() {
            progress.advance(read, &mut decoder, Some(&mut payload), None)
        } else {
            progress.advance(read, &mut decoder, None, Some(&mut usage))
        };
        let take = match advanced {
            Ok(take) => take,
            Err(BodyFailure::Unmetered { consumed, .. }) if relays_chunks && !at.between_chunks => {
                unmetered = true;
                consumed
            }
            Err(_) => {
                out.end = End::Cut(at);
                break;
            }
        };
        assert!(take <= read.len(), "more body than the read held");
        if translator.is_some() && framing.body != BodyKind::Chunked {
            payload.extend_from_slice(&read[..take]);
        }
        if translator.is_none() {
            out.relayed.extend_from_slice(&read[..take]);
        }
        at = progress.position(&decoder, translator.is_none().then_some(&usage), false);
        if unmetered && at.between_chunks && !progress.is_done() {
            out.end = End::Cut(at);
            break;
        }
        if let Some(t) = translator.as_mut() {
            let fed = sse.feed(&payload, |ev| {
                if translate_failed {
                    return;
                }
                let ok = match t {
                    Translator::ToAnthropic(t) => t.on_data(ev.data, &mut out.translated).is_ok(),
                    Translator::ToOpenAi(t) => {
                        t.on_event(ev.event, ev.data, &mut out.translated).is_ok()
                    }
                };
                translate_failed |= !ok;
            });
            payload.clear();
            if fed.is_err() || translate_failed {
                out.end = End::Cut(at);
                break;
            }
        }
    }
    if out.end == End::Incomplete && progress.is_done() {
        out.end = End::Complete;
    }
    if framing.body == BodyKind::CloseDelimited && out.end == End::Incomplete {
        // The input's end is the upstream's close.
        out.end = End::Complete;
    }
    assert!(out.relayed.len() <= input_len);

    match translator.as_mut() {
        Some(t) => {
            match (out.end, &mut *t) {
                (End::Complete, Translator::ToAnthropic(t)) => t.finish(&mut out.translated),
                (End::Complete, Translator::ToOpenAi(t)) => t.finish(&mut out.translated),
                (_, Translator::ToAnthropic(t)) => t.finish_cut("cut", &mut out.translated),
                (_, Translator::ToOpenAi(t)) => t.finish_cut("cut", &mut out.translated),
            }
            check_sse(&out.translated);
            // Each event the upstream sends is re-dressed, never multiplied
            // beyond a bounded number of events of bounded overhead.
            assert!(
                out.translated.len() <= 64 * input_len + 4096,
                "{} bytes out of {input_len}",
                out.translated.len()
            );
            out.usage = Some(match &*t {
                Translator::ToAnthropic(t) => t.usage(),
                Translator::ToOpenAi(t) => t.usage(),
            });
        }
        None => {
            out.usage = usage.usage();
            if let End::Cut(at) = out.end {
                if relays_chunks && at.between_chunks {
                    check_cut_stream(&out.relayed, at, mode.anthropic);
                }
            }
        }
    }
    out
}

/// The client's chunked body, relayed as is up to a cut `at` a point
/// between chunks, then the cut as relay.rs writes it: well framed, and the
/// cut event is the last event the client reads.
fn check_cut_stream(relayed: &[u8], at: ClientPosition, anthropic: bool) {
    let event = if anthropic {
        ANTHROPIC_STREAM_CUT
    } else {
        OPENAI_STREAM_CUT
    };
    let end_event: &[u8] = if at.mid_event { b"\n\n" } else { b"" };
    let mut client = relayed.to_vec();
    push_chunk_size(&mut client, end_event.len() + event.len());
    client.extend_from_slice(end_event);
    client.extend_from_slice(event);
    client.extend_from_slice(b"\r\n");
    client.extend_from_slice(LAST_CHUNK);
    let mut decoder = ChunkedDecoder::new(ChunkLimits {
        max_line_bytes: 4096,
        max_trailer_bytes: 64 * 1024,
        max_body_bytes: u64::MAX,
    });
    let mut payload = Vec::new();
    let progress = decoder
        .feed(&client, |d| payload.extend_from_slice(d))
        .expect("the cut stream is well framed");
    assert!(progress.done && progress.consumed == client.len());
    let mut last = None;
    SseScanner::new(usize::MAX)
        .feed(&payload, |ev| last = Some(ev.data.to_vec()))
        .unwrap();
    let cut_data = event
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"data: "))
        .unwrap();
    assert_eq!(last.as_deref(), Some(cut_data), "the cut event comes last");
}

/// SSE whose every `data:` payload is JSON (or `[DONE]`).
pub fn check_sse(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("translated stream is UTF-8");
    assert!(
        out.is_empty() || text.ends_with("\n\n"),
        "whole events only"
    );
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        for line in event.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                if data != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(data)
                        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"));
                }
            } else {
                assert!(line.starts_with("event: "), "stray line {line:?}");
            }
        }
    }
}

/// Runs `input` whole and split at `cuts`: each run holds the invariants,
/// and two that complete without a cut relay and translate the same.
pub fn run_split(mode: &Mode, input: &[u8], cuts: &[usize]) {
    let whole = run(mode, &[input]);
    let mut offsets: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    offsets.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for offset in offsets {
        pieces.push(&input[start..offset]);
        start = offset;
    }
    pieces.push(&input[start..]);
    let split = run(mode, &pieces);
    if whole.end == End::Complete && split.end == End::Complete {
        assert_eq!(whole.relayed, split.relayed);
        assert_eq!(whole.usage, split.usage);
        // OpenAI chunks carry the second the stream began.
        if !matches!(mode.translate, Translate::ToOpenAi { .. }) {
            assert_eq!(whole.translated, split.translated);
        }
    }
}
