//! The respond phase when the client and the provider speak different
//! dialects (OpenAI chat ⇄ Anthropic messages). Non-streaming responses and
//! errors are collected (bounded) and translated whole; streams are
//! translated event by event as they arrive and re-framed as our own chunks,
//! never buffered whole.

use std::time::Duration;

use monoio::io::AsyncWriteRentExt;

use super::downstream::read_more;
use super::forward::{BodyProgress, ClientFacts, Relayed, UpstreamSide};
use crate::api::sse::SseScanner;
use crate::api::translate::{
    anthropic_error_to_openai, anthropic_response_to_openai, openai_error_to_anthropic,
    openai_response_to_anthropic, AnthropicToOpenAiStream, OpenAiToAnthropicStream,
};
use crate::api::usage::{anthropic_response_usage, openai_response_usage, Usage};
use crate::buf::PooledBuf;
use crate::error::{Error, Kind};
use crate::http1::framing::{response_framing, BodyKind};
use crate::http1::write::{
    end_head, push_chunk_size, push_content_length, push_header, push_status_line, LAST_CHUNK,
};
use crate::upstream::UpstreamConn;

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
}

impl StreamTranslator {
    fn on_event(&mut self, event: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            StreamTranslator::ToAnthropic(t) => t.on_data(data, out).map_err(|e| e.to_string()),
            StreamTranslator::ToOpenAi(t) => {
                t.on_event(event, data, out).map_err(|e| e.to_string())
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::ToAnthropic(t) => t.finish(out),
            StreamTranslator::ToOpenAi(t) => t.finish(out),
        }
    }

    fn usage(&self) -> Usage {
        let u = match self {
            StreamTranslator::ToAnthropic(t) => t.usage(),
            StreamTranslator::ToOpenAi(t) => t.usage(),
        };
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: 0,
        }
    }
}

/// Relays a response whose head is parsed in `side.head` (bytes in `urbuf`),
/// translating it for the client. An `Err` means nothing reached the client.
pub async fn relay_translated(
    up: &mut UpstreamConn,
    mut urbuf: PooledBuf,
    side: &mut UpstreamSide,
    client: &mut monoio::net::TcpStream,
    facts: &ClientFacts,
    call: &TranslatedCall,
    idle: Duration,
) -> Result<Relayed, Error> {
    side.set_reusable(false);
    let head_len = side.head().head_len;
    let status = side.head().status;
    let framing = response_framing(&urbuf, side.head(), false).map_err(|e| {
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
    let mut extra = head_len + first < urbuf.len();

    if !call.stream || !(200..300).contains(&status) {
        // Collect, translate, answer with a length.
        while !progress.is_done() {
            urbuf.clear();
            let n = read_body(up, &mut urbuf, idle).await?;
            if n == 0 {
                if framing.body == BodyKind::CloseDelimited {
                    break;
                }
                return Err(Error::upstream(
                    Kind::UpstreamClosed,
                    false,
                    "upstream closed inside the response body",
                ));
            }
            let take = progress.advance(&urbuf, side.decoder(), Some(&mut payload), None)?;
            if framing.body != BodyKind::Chunked {
                payload.extend_from_slice(&urbuf[..take]);
            }
            extra |= take < n;
            if payload.len() > MAX_COLLECTED_BODY {
                return Err(Error::upstream(
                    Kind::UpstreamProtocol,
                    false,
                    "upstream response too large to translate",
                ));
            }
        }
        side.set_usage(match call.translation {
            Translation::OpenAiToAnthropic => openai_response_usage(&payload),
            Translation::AnthropicToOpenAi { .. } => anthropic_response_usage(&payload),
        });
        let (status, body) = translate_whole(status, &payload, call)?;
        side.set_status(status);
        let close = !facts.keep_alive || facts.http10;
        let mut out = PooledBuf::take(256 + body.len());
        push_status_line(&mut out, status);
        push_header(&mut out, b"content-type", b"application/json");
        push_content_length(&mut out, body.len() as u64);
        if close {
            push_header(&mut out, b"connection", b"close");
        }
        end_head(&mut out);
        out.extend_from_slice(&body);
        let (res, _) = client.write_all(out).await;
        if res.is_err() {
            return Ok(Relayed::Broken);
        }
        side.mark_first_body();
        side.set_reusable(framing.keep_alive && !extra && framing.body != BodyKind::CloseDelimited);
        return Ok(Relayed::Complete { close });
    }

    // A stream: translate each event as it comes, one client chunk per
    // upstream read. HTTP/1.0 clients get the events close-delimited.
    let mut translator = match &call.translation {
        Translation::OpenAiToAnthropic => {
            StreamTranslator::ToAnthropic(OpenAiToAnthropicStream::new(&call.client_model))
        }
        Translation::AnthropicToOpenAi { include_usage } => StreamTranslator::ToOpenAi(
            AnthropicToOpenAiStream::new(&call.client_model, *include_usage),
        ),
    };
    let chunked = !facts.http10;
    side.set_status(200);
    side.set_streamed(true);
    let mut head = PooledBuf::take(256);
    push_status_line(&mut head, 200);
    push_header(&mut head, b"content-type", b"text/event-stream");
    push_header(&mut head, b"cache-control", b"no-cache");
    if chunked {
        push_header(&mut head, b"transfer-encoding", b"chunked");
    } else {
        push_header(&mut head, b"connection", b"close");
    }
    end_head(&mut head);
    let (res, _) = client.write_all(head).await;
    if res.is_err() {
        return Ok(Relayed::Broken);
    }
    let mut scanner = SseScanner::new(MAX_SSE_EVENT);
    let mut events = PooledBuf::take(16 * 1024);
    let mut failure = None;
    loop {
        events.clear();
        scanner
            .feed(&payload, |ev| {
                if failure.is_none() {
                    if let Err(e) = translator.on_event(ev.event, ev.data, &mut events) {
                        failure = Some(e);
                    }
                }
            })
            .map_err(|e| failure = Some(format!("{e:?}")))
            .ok();
        payload.clear();
        if progress.is_done() || failure.is_some() {
            break;
        }
        if !events.is_empty() {
            side.mark_first_body();
        }
        if !write_chunk(client, &events, chunked).await {
            return Ok(Relayed::Broken);
        }
        urbuf.clear();
        let n = match read_body(up, &mut urbuf, idle).await {
            Ok(n) => n,
            Err(_) => break, // cut stream: finish() tells the client it ended early
        };
        if n == 0 {
            break;
        }
        let take = progress.advance(&urbuf, side.decoder(), Some(&mut payload), None)?;
        if framing.body != BodyKind::Chunked {
            payload.extend_from_slice(&urbuf[..take]);
        }
        extra |= take < n;
    }
    translator.finish(&mut events);
    side.set_usage(Some(translator.usage()));
    if !write_chunk(client, &events, chunked).await {
        return Ok(Relayed::Broken);
    }
    if chunked {
        let mut last = PooledBuf::take(8);
        last.extend_from_slice(LAST_CHUNK);
        if client.write_all(last).await.0.is_err() {
            return Ok(Relayed::Broken);
        }
    }
    if !progress.is_done() || failure.is_some() {
        // The upstream stream was cut or unreadable: the translator has
        // told the client; the upstream connection is not reused.
        return Ok(Relayed::Complete { close: !chunked });
    }
    side.set_reusable(framing.keep_alive && !extra);
    Ok(Relayed::Complete {
        close: !chunked || !facts.keep_alive,
    })
}

fn translate_whole(
    status: u16,
    body: &[u8],
    call: &TranslatedCall,
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
        (Translation::OpenAiToAnthropic, true) => (
            status,
            openai_response_to_anthropic(body, &call.client_model).map_err(bad)?,
        ),
        (Translation::AnthropicToOpenAi { .. }, true) => (
            status,
            anthropic_response_to_openai(body, &call.client_model).map_err(bad)?,
        ),
        (Translation::OpenAiToAnthropic, false) => {
            let t = openai_error_to_anthropic(status, body);
            (t.status, t.body)
        }
        (Translation::AnthropicToOpenAi { .. }, false) => {
            let t = anthropic_error_to_openai(status, body);
            (t.status, t.body)
        }
    })
}

async fn read_body(
    up: &mut UpstreamConn,
    buf: &mut PooledBuf,
    idle: Duration,
) -> Result<usize, Error> {
    match monoio::time::timeout(idle, read_more(up, buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(Error::upstream(
            Kind::UpstreamClosed,
            false,
            format!("upstream read failed: {e}"),
        )),
        Err(_) => Err(Error::upstream(
            Kind::UpstreamTimeout,
            false,
            format!("upstream silent for {idle:?}"),
        )),
    }
}

/// Writes `data` as one chunk (or raw, for close-delimited); false if the
/// client is gone. Nothing is written for empty data.
async fn write_chunk(client: &mut monoio::net::TcpStream, data: &[u8], chunked: bool) -> bool {
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
    client.write_all(out).await.0.is_ok()
}
