//! The respond phase when the client and the provider speak different
//! dialects (OpenAI chat ⇄ Anthropic messages, and either of them from a
//! provider's own API: Bedrock, Gemini, Cohere). Non-streaming responses and
//! errors are collected (bounded) and translated whole; streams are
//! translated event by event as they arrive and re-framed as our own chunks,
//! never buffered whole.
//!
//! Invariant: a failure is an `Err` (answered by the caller) only before the
//! head is written; the functions that write ([`answer_whole`],
//! [`relay_stream`]) return a bare [`Relayed`], and a stream that breaks
//! after its head ends in the client's dialect (an error event, then the
//! last chunk), marked truncated, its upstream connection never reused.

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::body::BodyProgress;
use super::downstream::read_more;
use super::exchange::{to_client, write_stream_cut, ClientFacts, Relayed, UpstreamSide};
use super::govern::Cut;
use crate::api::eventstream::{Decoder, Message};
use crate::api::output_meter::event_output_tokens;
use crate::api::sse::SseScanner;
use crate::api::translate::{
    anthropic_error_to_openai, anthropic_response_to_openai, cohere_chat_response_to_openai,
    cohere_embed_to_openai, converse_response_to_openai, gemini_response_to_openai,
    google_error_to_openai, message_error_to_anthropic, message_error_to_openai,
    openai_error_to_anthropic, openai_response_to_anthropic,
    openai_response_to_anthropic_with_usage, AnthropicToOpenAiStream, BedrockToOpenAiStream,
    CohereToOpenAiStream, EmbeddingFormat, GeminiToOpenAiStream, OpenAiToAnthropicStream,
    StreamEnd, TranslateError, TranslatedError, STREAM_ENDED_EARLY,
};
use crate::api::usage::{
    anthropic_response_usage, bedrock_usage, cohere_usage, gemini_usage, openai_response_usage,
    openai_stream_usage, openai_usage_value, Usage,
};
use crate::buf::PooledBuf;
use crate::cache::record::Recorder;
use crate::cache::replay::Form;
use crate::error::{Error, Kind};
use crate::http1::framing::{response_framing, BodyKind, ResponseFraming};
use crate::http1::parse::media_type_is;
use crate::http1::write::{
    end_head, push_chunk_size, push_content_length, push_header, push_status_line, LAST_CHUNK,
};
use crate::providers::aws::invoke::InvokeStream;
use crate::upstream::timeouts::AttemptClock;
use crate::upstream::AckPromptly;

/// Largest upstream body collected for a non-streaming translation.
const MAX_COLLECTED_BODY: usize = 32 * 1024 * 1024;
/// Largest single SSE event accepted from an upstream stream.
const MAX_SSE_EVENT: usize = 1024 * 1024;

/// Which way a response is translated.
#[derive(Clone, Debug)]
pub enum Translation {
    /// The client speaks Anthropic, the provider OpenAI.
    OpenAiToAnthropic,
    /// The client speaks OpenAI, the provider Anthropic.
    AnthropicToOpenAi { include_usage: bool },
    /// Same dialect (OpenAI); the gateway asked for the usage chunk the
    /// client did not, so it is read and dropped, every other event passes.
    HideUsageChunk,
    /// The client speaks OpenAI chat, the provider its own API.
    NativeToOpenAi { api: NativeApi, include_usage: bool },
    /// The client speaks Anthropic, the provider its own API, reached
    /// through OpenAI's shape both ways.
    NativeToAnthropic(NativeApi),
    /// The client speaks Anthropic and the model on Bedrock is Anthropic's
    /// (InvokeModel): the bodies are Anthropic's own, the stream's events
    /// come wrapped in event-stream chunks.
    InvokeToAnthropic,
    /// OpenAI embeddings answered by Cohere's embed, in the encoding the
    /// client asked for.
    CohereEmbed(EmbeddingFormat),
    /// The client speaks OpenAI, the model is Anthropic's on Vertex AI:
    /// read as [`Translation::AnthropicToOpenAi`].
    ClaudeOnVertexToOpenAi { include_usage: bool },
    /// The client speaks Anthropic, the model is Anthropic's on Vertex AI:
    /// the answer is Anthropic's own, its usage read on the way.
    ClaudeOnVertex,
}

/// A provider's own chat API, which OpenAI chat is translated to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeApi {
    /// Bedrock's Converse and ConverseStream (event-stream framing).
    Converse,
    /// Gemini's `generateContent` and `streamGenerateContent` (SSE).
    Gemini,
    /// Cohere's v2 chat (SSE).
    Cohere,
}

impl NativeApi {
    /// An OK response body as an OpenAI chat completion.
    fn response_to_openai(
        self,
        body: &[u8],
        client_model: &str,
        request_id: &str,
    ) -> Result<Vec<u8>, TranslateError> {
        match self {
            NativeApi::Converse => converse_response_to_openai(body, client_model, request_id),
            NativeApi::Gemini => gemini_response_to_openai(body, client_model, request_id),
            NativeApi::Cohere => cohere_chat_response_to_openai(body, client_model),
        }
    }

    /// An error body as OpenAI's.
    fn error_to_openai(self, status: u16, body: &[u8]) -> TranslatedError {
        match self {
            NativeApi::Converse | NativeApi::Cohere => message_error_to_openai(status, body),
            NativeApi::Gemini => google_error_to_openai(status, body),
        }
    }

    /// An error body as Anthropic's.
    fn error_to_anthropic(self, status: u16, body: &[u8]) -> TranslatedError {
        match self {
            NativeApi::Converse | NativeApi::Cohere => message_error_to_anthropic(status, body),
            NativeApi::Gemini => {
                let openai = google_error_to_openai(status, body);
                openai_error_to_anthropic(openai.status, &openai.body)
            }
        }
    }

    fn usage(self, body: &[u8]) -> Option<Usage> {
        match self {
            NativeApi::Converse => bedrock_usage(body),
            NativeApi::Gemini => gemini_usage(body),
            NativeApi::Cohere => cohere_usage(body),
        }
    }

    /// The stream translator to OpenAI chunks.
    fn stream_to_openai(
        self,
        client_model: &str,
        request_id: &str,
        include_usage: bool,
    ) -> StreamTranslator {
        match self {
            NativeApi::Converse => StreamTranslator::ConverseToOpenAi(BedrockToOpenAiStream::new(
                client_model,
                request_id,
                include_usage,
            )),
            NativeApi::Gemini => StreamTranslator::GeminiToOpenAi(GeminiToOpenAiStream::new(
                client_model,
                request_id,
                include_usage,
            )),
            NativeApi::Cohere => StreamTranslator::CohereToOpenAi(CohereToOpenAiStream::new(
                client_model,
                include_usage,
            )),
        }
    }
}

impl Translation {
    /// Whether the response comes from Bedrock: errors are AWS's, streams
    /// are in the event-stream framing.
    fn is_bedrock(&self) -> bool {
        matches!(
            self,
            Translation::NativeToOpenAi {
                api: NativeApi::Converse,
                ..
            } | Translation::NativeToAnthropic(NativeApi::Converse)
                | Translation::InvokeToAnthropic
        )
    }

    /// Whether the response is in a provider's own API's shape.
    fn is_native(&self) -> bool {
        matches!(
            self,
            Translation::NativeToOpenAi { .. }
                | Translation::NativeToAnthropic(_)
                | Translation::InvokeToAnthropic
                | Translation::CohereEmbed(_)
        )
    }
}

/// A translated call: direction, whether it streams, the model name the
/// client asked for (responses carry it back).
#[derive(Clone, Debug)]
pub struct TranslatedCall {
    pub translation: Translation,
    pub stream: bool,
    pub client_model: String,
}

enum StreamTranslator {
    ToAnthropic(OpenAiToAnthropicStream),
    ToOpenAi(AnthropicToOpenAiStream),
    HideUsage(Option<Usage>),
    ConverseToOpenAi(BedrockToOpenAiStream),
    GeminiToOpenAi(GeminiToOpenAiStream),
    CohereToOpenAi(CohereToOpenAiStream),
    ThroughOpenAi(Box<ThroughOpenAi>),
    Invoke(InvokeStream),
    /// Anthropic's own SSE events, passed on as they are.
    Anthropic(InvokeStream),
}

impl StreamTranslator {
    fn new(call: &TranslatedCall, request_id: &str) -> StreamTranslator {
        let model = &call.client_model;
        match call.translation {
            Translation::OpenAiToAnthropic => {
                StreamTranslator::ToAnthropic(OpenAiToAnthropicStream::new(model))
            }
            Translation::AnthropicToOpenAi { include_usage }
            | Translation::ClaudeOnVertexToOpenAi { include_usage } => {
                StreamTranslator::ToOpenAi(AnthropicToOpenAiStream::new(model, include_usage))
            }
            Translation::HideUsageChunk => StreamTranslator::HideUsage(None),
            Translation::ClaudeOnVertex => StreamTranslator::Anthropic(InvokeStream::default()),
            Translation::NativeToOpenAi { api, include_usage } => {
                api.stream_to_openai(model, request_id, include_usage)
            }
            Translation::NativeToAnthropic(api) => {
                StreamTranslator::ThroughOpenAi(Box::new(ThroughOpenAi {
                    to_openai: api.stream_to_openai(model, request_id, true),
                    chunks: Vec::new(),
                    scanner: SseScanner::new(MAX_SSE_EVENT),
                    to_anthropic: OpenAiToAnthropicStream::new(model),
                }))
            }
            Translation::InvokeToAnthropic => StreamTranslator::Invoke(InvokeStream::default()),
            // Embeddings do not stream: `relay_translated` collects them.
            Translation::CohereEmbed(_) => StreamTranslator::HideUsage(None),
        }
    }

    /// Whether the stream comes in AWS's event-stream framing, not SSE.
    fn reads_event_stream(&self) -> bool {
        match self {
            StreamTranslator::ConverseToOpenAi(_) | StreamTranslator::Invoke(_) => true,
            StreamTranslator::ThroughOpenAi(t) => t.to_openai.reads_event_stream(),
            _ => false,
        }
    }

    /// One SSE event of an SSE upstream.
    fn on_event(&mut self, event: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            StreamTranslator::ToAnthropic(t) => t.on_data(data, out).map_err(|e| e.to_string()),
            StreamTranslator::ToOpenAi(t) => {
                t.on_event(event, data, out).map_err(|e| e.to_string())
            }
            StreamTranslator::HideUsage(usage) => {
                // With include_usage, every chunk carries `"usage":null`
                // except the last, which carries only the usage.
                if let Some(u) = openai_stream_usage(data) {
                    *usage = Some(u);
                    return Ok(());
                }
                write_event(event, data, out);
                Ok(())
            }
            StreamTranslator::GeminiToOpenAi(t) => t.on_data(data, out).map_err(|e| e.to_string()),
            StreamTranslator::CohereToOpenAi(t) => {
                t.on_event(event, data, out).map_err(|e| e.to_string())
            }
            StreamTranslator::ThroughOpenAi(t) => t.on_event(event, data, out),
            StreamTranslator::Anthropic(t) => {
                t.on_event(event, data, out);
                Ok(())
            }
            _ => Err("an SSE event from an event-stream upstream".into()),
        }
    }

    /// One message of an event-stream upstream.
    fn on_message(&mut self, message: &Message, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            StreamTranslator::ConverseToOpenAi(t) => {
                t.on_message(message, out).map_err(|e| e.to_string())
            }
            StreamTranslator::ThroughOpenAi(t) => t.on_message(message, out),
            StreamTranslator::Invoke(t) => t.on_message(message, out).map_err(|e| e.to_string()),
            _ => Err("an event-stream message from an SSE upstream".into()),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::ToAnthropic(t) => t.finish(out),
            StreamTranslator::ToOpenAi(t) => t.finish(out),
            StreamTranslator::HideUsage(_) => {}
            StreamTranslator::ConverseToOpenAi(t) => t.finish(out),
            StreamTranslator::GeminiToOpenAi(t) => t.finish(out),
            StreamTranslator::CohereToOpenAi(t) => t.finish(out),
            StreamTranslator::ThroughOpenAi(t) => t.finish(None, out),
            StreamTranslator::Invoke(t) | StreamTranslator::Anthropic(t) => t.finish(out),
        }
    }

    /// Ends a stream the upstream broke off or broke, saying `why` unless
    /// the answer was already whole.
    fn finish_cut(&mut self, why: &str, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::ToAnthropic(t) => t.finish_cut(why, out),
            StreamTranslator::ToOpenAi(t) => t.finish_cut(why, out),
            StreamTranslator::HideUsage(_) => {}
            StreamTranslator::ConverseToOpenAi(t) => t.finish_cut(why, out),
            StreamTranslator::GeminiToOpenAi(t) => t.finish_cut(why, out),
            StreamTranslator::CohereToOpenAi(t) => t.finish_cut(why, out),
            StreamTranslator::ThroughOpenAi(t) => t.finish(Some(why), out),
            StreamTranslator::Invoke(t) | StreamTranslator::Anthropic(t) => t.finish_cut(why, out),
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            StreamTranslator::ToAnthropic(t) => Some(t.usage()),
            StreamTranslator::ToOpenAi(t) => Some(t.usage()),
            StreamTranslator::HideUsage(usage) => *usage,
            StreamTranslator::ConverseToOpenAi(t) => Some(t.usage()),
            StreamTranslator::GeminiToOpenAi(t) => Some(t.usage()),
            StreamTranslator::CohereToOpenAi(t) => Some(t.usage()),
            StreamTranslator::ThroughOpenAi(t) => t.to_openai.usage(),
            StreamTranslator::Invoke(t) | StreamTranslator::Anthropic(t) => Some(t.usage()),
        }
    }
}

/// A provider's own stream to an Anthropic client: each upstream event or
/// message becomes OpenAI chunks, which become Anthropic events; the chunks
/// are whole events, so nothing is held between upstream events but the two
/// translators' state.
struct ThroughOpenAi {
    to_openai: StreamTranslator,
    chunks: Vec<u8>,
    scanner: SseScanner,
    to_anthropic: OpenAiToAnthropicStream,
}

impl ThroughOpenAi {
    fn on_event(&mut self, event: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.chunks.clear();
        self.to_openai.on_event(event, data, &mut self.chunks)?;
        self.relay_chunks(out)
    }

    fn on_message(&mut self, message: &Message, out: &mut Vec<u8>) -> Result<(), String> {
        self.chunks.clear();
        self.to_openai.on_message(message, &mut self.chunks)?;
        self.relay_chunks(out)
    }

    /// Passes the chunks made so far on; their translator's own end (a
    /// cut's error chunk included) comes through as Anthropic's.
    fn relay_chunks(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let (scanner, to_anthropic) = (&mut self.scanner, &mut self.to_anthropic);
        let mut failed = None;
        scanner
            .feed(&self.chunks, |ev| {
                if failed.is_none() {
                    failed = to_anthropic.on_data(ev.data, out).err();
                }
            })
            .map_err(|_| STREAM_EVENT_TOO_LARGE.to_string())?;
        failed.map_or(Ok(()), |e| Err(e.to_string()))
    }

    fn finish(&mut self, cut: Option<&str>, out: &mut Vec<u8>) {
        self.chunks.clear();
        match cut {
            Some(why) => self.to_openai.finish_cut(why, &mut self.chunks),
            None => self.to_openai.finish(&mut self.chunks),
        }
        let relayed = self.relay_chunks(out);
        match (relayed, cut) {
            (Err(e), _) => self.to_anthropic.finish_cut(&e, out),
            (Ok(()), Some(why)) => self.to_anthropic.finish_cut(why, out),
            (Ok(()), None) => self.to_anthropic.finish(out),
        }
    }
}

/// Relays a response whose head is parsed in `side.head` (bytes in `urbuf`),
/// translating it for the client. An `Err` means nothing reached the client:
/// every failure after the head went out ends the response in place (see
/// [`relay_stream`]), so the type of [`answer_whole`] and [`relay_stream`]
/// (a bare [`Relayed`]) keeps a second answer out of a committed one.
pub async fn relay_translated(
    up: &mut (impl AsyncReadRent + AckPromptly),
    urbuf: PooledBuf,
    side: &mut UpstreamSide,
    client: &mut impl AsyncWriteRent,
    facts: &ClientFacts,
    call: &TranslatedCall,
    clock: AttemptClock,
) -> Result<Relayed, Error> {
    side.report.reusable = false;
    let head_len = side.head.head_len;
    let status = side.head.status;
    let framing = response_framing(&urbuf, &side.head, false).map_err(|e| {
        Error::upstream(
            Kind::UpstreamProtocol,
            false,
            format!("bad response framing: {e:?}"),
        )
    })?;
    let mut progress = BodyProgress::new(framing.body);
    side.decoder().reset();
    let mut payload = PooledBuf::take(16 * 1024);
    let first = progress.advance(&urbuf[head_len..], side.decoder(), Some(&mut payload), None)?;
    if framing.body != BodyKind::Chunked {
        payload.extend_from_slice(&urbuf[head_len..head_len + first]);
    }
    // Read now: the head's bytes are overwritten by the body's reads.
    let request_id = if call.translation.is_bedrock() {
        aws_request_id(side, &urbuf)
    } else {
        String::new()
    };
    let body = UpstreamBody {
        request_id,
        extra: head_len + first < urbuf.len(),
        urbuf,
        framing,
        progress,
        payload,
    };

    // Hiding the usage chunk only applies to an event stream; an upstream
    // that answered a stream request with a plain body is passed on as is.
    let streams = if call.translation.is_bedrock() {
        side.head
            .header(&body.urbuf, b"content-type")
            .is_some_and(|v| media_type_is(v, AWS_EVENT_STREAM))
    } else {
        side.head.is_event_stream(&body.urbuf)
    };
    if streams {
        up.ack_promptly();
    }
    let hiding_without_stream = matches!(call.translation, Translation::HideUsageChunk) && !streams;
    if !call.stream || !(200..300).contains(&status) || hiding_without_stream {
        let whole = collect_whole(up, body, side, call, clock).await?;
        return Ok(answer_whole(client, side, facts, whole).await);
    }
    if call.translation.is_native() && !streams {
        return Err(Error::upstream(
            Kind::UpstreamProtocol,
            false,
            "the provider answered a stream request without a stream",
        ));
    }
    Ok(relay_stream(up, body, side, client, facts, call, clock).await)
}

/// The media type of Bedrock's streams.
const AWS_EVENT_STREAM: &[u8] = b"application/vnd.amazon.eventstream";

/// The id Bedrock gave the response, which its translations (having no
/// response id of their own) are known by; empty if none.
fn aws_request_id(side: &UpstreamSide, urbuf: &[u8]) -> String {
    let id = side
        .head
        .header(urbuf, b"x-amzn-requestid")
        .unwrap_or_default();
    // Kept to the characters an id is made of: it goes into JSON as it is.
    id.iter()
        .take(128)
        .filter(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .map(|&b| b as char)
        .collect()
}

/// The upstream body as far as it was read: its framing and progress, the
/// payload not yet used, and whether bytes followed its end.
struct UpstreamBody {
    /// Bedrock's id for the response (empty for other upstreams).
    request_id: String,
    urbuf: PooledBuf,
    framing: ResponseFraming,
    progress: BodyProgress,
    payload: PooledBuf,
    extra: bool,
}

/// A translated response ready to go out whole.
struct WholeAnswer {
    status: u16,
    body: Vec<u8>,
    /// The upstream connection may be reused once it is sent.
    reusable: bool,
}

/// Collects the rest of the body (bounded) and translates it; nothing has
/// reached the client yet, so any failure is an `Err` to answer.
async fn collect_whole(
    up: &mut impl AsyncReadRent,
    mut read: UpstreamBody,
    side: &mut UpstreamSide,
    call: &TranslatedCall,
    clock: AttemptClock,
) -> Result<WholeAnswer, Error> {
    while !read.progress.is_done() {
        read.urbuf.clear();
        let n = read_body(up, &mut read.urbuf, clock).await?;
        if n == 0 {
            if read.framing.body == BodyKind::CloseDelimited {
                break;
            }
            return Err(Error::upstream(
                Kind::UpstreamClosed,
                false,
                "upstream closed inside the response body",
            ));
        }
        let take =
            read.progress
                .advance(&read.urbuf, side.decoder(), Some(&mut read.payload), None)?;
        if read.framing.body != BodyKind::Chunked {
            read.payload.extend_from_slice(&read.urbuf[..take]);
        }
        read.extra |= take < n;
        if read.payload.len() > MAX_COLLECTED_BODY {
            return Err(Error::upstream(
                Kind::UpstreamProtocol,
                false,
                "upstream response too large to translate",
            ));
        }
    }
    let mut usage_read = None;
    let translated = translate_whole(
        side.head.status,
        &read.payload,
        call,
        &read.request_id,
        &mut usage_read,
    );
    side.report.usage = match usage_read {
        Some(usage) => usage,
        None => match call.translation {
            Translation::OpenAiToAnthropic | Translation::HideUsageChunk => {
                openai_response_usage(&read.payload)
            }
            Translation::AnthropicToOpenAi { .. }
            | Translation::ClaudeOnVertexToOpenAi { .. }
            | Translation::InvokeToAnthropic
            | Translation::ClaudeOnVertex => anthropic_response_usage(&read.payload),
            Translation::NativeToOpenAi { api, .. } | Translation::NativeToAnthropic(api) => {
                api.usage(&read.payload)
            }
            Translation::CohereEmbed(_) => cohere_usage(&read.payload),
        },
    };
    let (status, body) = translated?;
    Ok(WholeAnswer {
        status,
        body,
        reusable: read.framing.keep_alive
            && !read.extra
            && read.framing.body != BodyKind::CloseDelimited,
    })
}

/// Sends a collected answer, with a length: the one write commits it.
async fn answer_whole(
    client: &mut impl AsyncWriteRent,
    side: &mut UpstreamSide,
    facts: &ClientFacts,
    whole: WholeAnswer,
) -> Relayed {
    side.report.status = whole.status;
    let close = !facts.keep_alive || facts.http10;
    let mut out = PooledBuf::take(256 + whole.body.len());
    push_status_line(&mut out, whole.status);
    push_header(&mut out, b"content-type", b"application/json");
    push_content_length(&mut out, whole.body.len() as u64);
    if close {
        push_header(&mut out, b"connection", b"close");
    }
    facts.push_gateway_headers(&mut out);
    end_head(&mut out);
    out.extend_from_slice(&whole.body);
    if side
        .capture_body
        .is_some_and(|limit| whole.body.len() <= limit)
        && (200..300).contains(&whole.status)
    {
        side.cache_body = Some((Form::Whole, whole.body.clone()));
    }
    if !matches!(
        to_client(facts, client.write_all(out)).await,
        Some((Ok(_), _))
    ) {
        return Relayed::Broken;
    }
    side.report.mark_first_body();
    side.report.reusable = whole.reusable;
    Relayed::Complete { close }
}

/// What the error event says when the upstream stream broke (one that
/// broke off says `translate::STREAM_ENDED_EARLY`).
const STREAM_EVENT_TOO_LARGE: &str = "upstream stream event larger than the gateway reads";
const STREAM_MALFORMED: &str = "upstream stream framing was malformed";
const STREAM_EVENT_UNREADABLE: &str = "upstream stream event could not be translated";

/// A stream: the head goes out at once, then each event is translated as
/// it comes, one client chunk per upstream read. HTTP/1.0 clients get the
/// events close-delimited. Whatever breaks after the head (a read failure,
/// a malformed chunk, an event too large or not translatable) ends the
/// stream in the client's dialect and marks the response truncated.
async fn relay_stream(
    up: &mut impl AsyncReadRent,
    mut read: UpstreamBody,
    side: &mut UpstreamSide,
    client: &mut impl AsyncWriteRent,
    facts: &ClientFacts,
    call: &TranslatedCall,
    clock: AttemptClock,
) -> Relayed {
    let mut translator = StreamTranslator::new(call, &read.request_id);
    let chunked = !facts.http10;
    let close = !chunked || !facts.keep_alive;
    side.report.status = 200;
    side.report.streamed = true;
    let mut head = PooledBuf::take(256);
    push_status_line(&mut head, 200);
    push_header(&mut head, b"content-type", b"text/event-stream");
    push_header(&mut head, b"cache-control", b"no-cache");
    if chunked {
        push_header(&mut head, b"transfer-encoding", b"chunked");
    } else {
        push_header(&mut head, b"connection", b"close");
    }
    facts.push_gateway_headers(&mut head);
    end_head(&mut head);
    if !matches!(
        to_client(facts, client.write_all(head)).await,
        Some((Ok(_), _))
    ) {
        return Relayed::Broken;
    }
    let mut framing = if translator.reads_event_stream() {
        Framing::EventStream(Decoder::new(MAX_STREAM_MESSAGE))
    } else {
        Framing::Sse(SseScanner::new(MAX_SSE_EVENT))
    };
    let mut events = PooledBuf::take(16 * 1024);
    // A stream the cache may keep: recorded as the client gets it.
    let mut record = side.capture_body.map(|limit| Recorder::new(limit, false));
    // Why the stream stopped before its read.framing's end, if it did. Only
    // whole events are ever written, so the client is never inside one.
    let mut broken: Option<&'static str> = None;
    let metering = side.gate.as_ref().is_some_and(|g| g.watches());
    let mut seen = 0;
    loop {
        events.clear();
        let mut untranslatable = false;
        let scanned = match &mut framing {
            Framing::Sse(scanner) => scanner
                .feed(&read.payload, |ev| {
                    if metering {
                        seen += event_output_tokens(ev.data);
                    }
                    if !untranslatable
                        && translator.on_event(ev.event, ev.data, &mut events).is_err()
                    {
                        untranslatable = true;
                    }
                })
                .map_err(|_| STREAM_EVENT_TOO_LARGE),
            Framing::EventStream(decoder) => decoder
                .feed(&read.payload, |message| {
                    if metering {
                        seen += event_output_tokens(&message.payload);
                    }
                    if !untranslatable && translator.on_message(&message, &mut events).is_err() {
                        untranslatable = true;
                    }
                })
                .map_err(|_| STREAM_MALFORMED),
        };
        read.payload.clear();
        if !events.is_empty() {
            side.report.mark_first_body();
        }
        if let Some(r) = record.as_mut() {
            r.push(&events);
        }
        if !write_chunk(client, &events, chunked, facts).await {
            return Relayed::Broken;
        }
        if let Err(why) = scanned {
            broken = Some(why);
        } else if untranslatable {
            broken = Some(STREAM_EVENT_UNREADABLE);
        }
        // A governed stream past its reservation grows it or is cut; only
        // whole events were written, so the cut goes in between two.
        side.report.output_seen = seen;
        if let Some(gate) = side.gate.as_mut() {
            if let Err(cut) = gate.check(seen) {
                side.report.cut = Some(cut);
                broken = Some(match cut {
                    Cut::Budget => "budget_exceeded: the API key's budget ran out during this stream",
                    Cut::Tokens => {
                        "rate_limit_exceeded: the API key's tokens-per-minute limit was reached during this stream"
                    }
                });
            }
        }
        if read.progress.is_done() || broken.is_some() {
            break;
        }
        read.urbuf.clear();
        let n = match read_body(up, &mut read.urbuf, clock).await {
            Ok(0) if read.framing.body == BodyKind::CloseDelimited => break,
            Ok(n) if n > 0 => n,
            _ => {
                broken = Some(STREAM_ENDED_EARLY);
                break;
            }
        };
        let Ok(take) =
            read.progress
                .advance(&read.urbuf, side.decoder(), Some(&mut read.payload), None)
        else {
            broken = Some(STREAM_MALFORMED);
            break;
        };
        if read.framing.body != BodyKind::Chunked {
            read.payload.extend_from_slice(&read.urbuf[..take]);
        }
        read.extra |= take < n;
    }
    if broken.is_some() {
        side.report.truncated = true;
    }
    // A broken pass-through stream must not look complete: it ends with the
    // dialect's error event. (A translator says it in its own words.)
    if broken.is_some() && matches!(translator, StreamTranslator::HideUsage(_)) {
        side.report.usage = translator.usage();
        return if write_stream_cut(client, facts, chunked, false, side.report.cut).await {
            Relayed::Complete { close }
        } else {
            Relayed::Broken
        };
    }
    // Everything fed so far has been written; the translator may close the
    // stream (or say it was cut).
    events.clear();
    match broken {
        Some(why) => translator.finish_cut(why, &mut events),
        None => translator.finish(&mut events),
    }
    side.report.usage = translator.usage();
    if !write_chunk(client, &events, chunked, facts).await {
        return Relayed::Broken;
    }
    if let (None, Some(mut r)) = (broken, record) {
        r.push(&events);
        side.cache_body = r.finish().map(|recorded| (Form::Stream, recorded));
    }
    if chunked {
        let mut last = PooledBuf::take(8);
        last.extend_from_slice(LAST_CHUNK);
        if !matches!(
            to_client(facts, client.write_all(last)).await,
            Some((Ok(_), _))
        ) {
            return Relayed::Broken;
        }
    }
    // The client's stream ended whole as HTTP even after a cut (the
    // translator said so in-band): its connection stays as announced. The
    // upstream connection is reused only after a complete response.
    if broken.is_none() && read.progress.is_done() {
        side.report.reusable = read.framing.keep_alive && !read.extra;
    }
    Relayed::Complete { close }
}

/// How an upstream stream is cut into events.
enum Framing {
    Sse(SseScanner),
    EventStream(Decoder),
}

/// Largest single event-stream message accepted (Bedrock's are a few KiB).
const MAX_STREAM_MESSAGE: u32 = 1024 * 1024;

/// `usage_read` is set when the translation read the usage on its way (a
/// chat completion translated whole): the same as locating it again.
fn translate_whole(
    status: u16,
    body: &[u8],
    call: &TranslatedCall,
    request_id: &str,
    usage_read: &mut Option<Option<Usage>>,
) -> Result<(u16, Vec<u8>), Error> {
    let ok = (200..300).contains(&status);
    let bad = |e: crate::api::translate::TranslateError| {
        Error::upstream(
            Kind::UpstreamProtocol,
            false,
            format!("cannot translate the upstream response: {e}"),
        )
    };
    Ok(match (&call.translation, ok) {
        // Nothing to translate: the response goes out as it came.
        (Translation::HideUsageChunk, _) => (status, body.to_vec()),
        (Translation::OpenAiToAnthropic, true) => {
            let (translated, usage) =
                openai_response_to_anthropic_with_usage(body, &call.client_model).map_err(bad)?;
            *usage_read = Some(usage.and_then(openai_usage_value));
            (status, translated)
        }
        (
            Translation::AnthropicToOpenAi { .. } | Translation::ClaudeOnVertexToOpenAi { .. },
            true,
        ) => (
            status,
            anthropic_response_to_openai(body, &call.client_model).map_err(bad)?,
        ),
        (Translation::OpenAiToAnthropic, false) => {
            let t = openai_error_to_anthropic(status, body);
            (t.status, t.body)
        }
        (
            Translation::AnthropicToOpenAi { .. } | Translation::ClaudeOnVertexToOpenAi { .. },
            false,
        ) => {
            let t = anthropic_error_to_openai(status, body);
            (t.status, t.body)
        }
        (&Translation::NativeToOpenAi { api, .. }, true) => (
            status,
            api.response_to_openai(body, &call.client_model, request_id)
                .map_err(bad)?,
        ),
        (&Translation::NativeToAnthropic(api), true) => {
            let openai = api
                .response_to_openai(body, &call.client_model, request_id)
                .map_err(bad)?;
            (
                status,
                openai_response_to_anthropic(&openai, &call.client_model).map_err(bad)?,
            )
        }
        (&Translation::CohereEmbed(format), true) => (
            status,
            cohere_embed_to_openai(body, &call.client_model, format).map_err(bad)?,
        ),
        // Anthropic's own body, as the client would have had it from Anthropic.
        (Translation::InvokeToAnthropic | Translation::ClaudeOnVertex, true) => {
            (status, body.to_vec())
        }
        // Vertex AI's own errors are Google's; Anthropic's pass as they are.
        (Translation::ClaudeOnVertex, false) if is_google_error(body) => {
            let openai = google_error_to_openai(status, body);
            let t = openai_error_to_anthropic(openai.status, &openai.body);
            (t.status, t.body)
        }
        (Translation::ClaudeOnVertex, false) => (status, body.to_vec()),
        (&Translation::NativeToOpenAi { api, .. }, false) => {
            let t = api.error_to_openai(status, body);
            (t.status, t.body)
        }
        (Translation::CohereEmbed(_), false) => {
            let t = message_error_to_openai(status, body);
            (t.status, t.body)
        }
        (&Translation::NativeToAnthropic(api), false) => {
            let t = api.error_to_anthropic(status, body);
            (t.status, t.body)
        }
        (Translation::InvokeToAnthropic, false) => {
            let t = message_error_to_anthropic(status, body);
            (t.status, t.body)
        }
    })
}

/// Whether an error body is Google's (`{"error": {"code": …, "status":
/// …}}`) rather than Anthropic's (`{"type": "error", …}`).
fn is_google_error(body: &[u8]) -> bool {
    let probe = &body[..body.len().min(4096)];
    memchr::memmem::find(probe, b"\"status\"").is_some()
        && memchr::memmem::find(probe, b"\"type\"").is_none()
}

/// Appends one SSE event as it arrived (multi-line data split back into
/// `data:` lines).
fn write_event(event: &[u8], data: &[u8], out: &mut Vec<u8>) {
    if !event.is_empty() {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event);
        out.push(b'\n');
    }
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

async fn read_body(
    up: &mut impl AsyncReadRent,
    buf: &mut PooledBuf,
    clock: AttemptClock,
) -> Result<usize, Error> {
    match clock.body(read_more(up, buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(Error::upstream(
            Kind::UpstreamClosed,
            false,
            format!("upstream read failed: {e}"),
        )),
        Err(expired) => Err(Error::upstream(
            Kind::UpstreamTimeout,
            false,
            format!("upstream {expired}"),
        )),
    }
}

/// Writes `data` as one chunk (or raw, for close-delimited); false if the
/// client is gone. Nothing is written for empty data.
async fn write_chunk(
    client: &mut impl AsyncWriteRent,
    data: &[u8],
    chunked: bool,
    facts: &ClientFacts,
) -> bool {
    if data.is_empty() {
        return true;
    }
    let mut out = PooledBuf::take(data.len() + 16);
    if chunked {
        push_chunk_size(&mut out, data.len());
    }
    out.extend_from_slice(data);
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
    matches!(
        to_client(facts, client.write_all(out)).await,
        Some((Ok(_), _))
    )
}
