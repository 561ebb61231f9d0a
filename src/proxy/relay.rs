//! The respond phase for a same-dialect response: the head rewritten for
//! the client (hop-by-hop headers dropped, framing set), then the body
//! relayed as it arrives, one upstream read → one client write, with token
//! usage read on the side from streams.
//!
//! Invariant: bytes past the end of the upstream's framing are never
//! relayed, and a connection that had any goes back to no pool.

use super::forward::{ClientFacts, Relayed, UpstreamSide, RESPONSE_BUF_BYTES};
use crate::api::translate::{ANTHROPIC_STREAM_CUT, OPENAI_STREAM_CUT};
use crate::api::usage::{anthropic_response_usage, openai_response_usage, StreamUsageScanner};
use crate::buf::{write_all_vectored, PooledBuf};
use crate::error::{Error, Kind};
use crate::http1::chunked::ChunkedDecoder;
use crate::http1::framing::{response_framing, BodyKind};
use crate::http1::write::{
    end_head, push_chunk_size, push_content_length, push_header, push_status_line, LAST_CHUNK,
};
use crate::providers::Dialect;
use crate::proxy::downstream::read_more;
use crate::proxy::headers::{is_forwarded_response_header, ConnectionOptions};
use crate::upstream::timeouts::AttemptClock;
use crate::upstream::UpstreamConn;
use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRentExt;
use std::future::Future;
use std::mem;

/// Tracks how much of the upstream byte stream is response body.
pub(super) struct BodyProgress {
    kind: BodyKind,
    remaining: u64,
    done: bool,
}

impl BodyProgress {
    pub(super) fn new(kind: BodyKind) -> BodyProgress {
        let remaining = if let BodyKind::Length(n) = kind { n } else { 0 };
        BodyProgress {
            kind,
            remaining,
            done: matches!(kind, BodyKind::Empty | BodyKind::Length(0)),
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// Returns how many leading bytes of `data` belong to the body. With
    /// `decoded`, chunked payload is also copied there (HTTP/1.0 clients).
    /// With `usage`, the payload is also scanned for token usage.
    pub(super) fn advance(
        &mut self,
        data: &[u8],
        decoder: &mut ChunkedDecoder,
        mut decoded: Option<&mut Vec<u8>>,
        mut usage: Option<&mut StreamUsageScanner>,
    ) -> Result<usize, Error> {
        match self.kind {
            BodyKind::Empty => {
                self.done = true;
                Ok(0)
            }
            BodyKind::Length(_) | BodyKind::CloseDelimited => {
                let take = match self.kind {
                    BodyKind::Length(_) => (data.len() as u64).min(self.remaining) as usize,
                    _ => data.len(),
                };
                if let BodyKind::Length(_) = self.kind {
                    self.remaining -= take as u64;
                    self.done = self.remaining == 0;
                }
                if let Some(u) = usage {
                    u.feed(&data[..take]);
                }
                Ok(take)
            }
            BodyKind::Chunked => {
                let progress = decoder
                    .feed(data, |d| {
                        if let Some(out) = decoded.as_deref_mut() {
                            out.extend_from_slice(d);
                        }
                        if let Some(u) = usage.as_deref_mut() {
                            u.feed(d);
                        }
                    })
                    .map_err(|e| {
                        Error::upstream(
                            Kind::UpstreamProtocol,
                            false,
                            format!("bad chunked response: {e:?}"),
                        )
                    })?;
                self.done = progress.done;
                Ok(progress.consumed)
            }
        }
    }
}

pub(super) async fn relay_response(
    up: &mut UpstreamConn,
    urbuf: PooledBuf,
    mut hbuf: PooledBuf,
    side: &mut UpstreamSide,
    client: &mut monoio::net::TcpStream,
    facts: &ClientFacts,
    clock: AttemptClock,
) -> Result<Relayed, Error> {
    side.upstream_reusable = false;
    side.status = side.head.status;
    side.streamed = side
        .head
        .header(&urbuf, b"content-type")
        .is_some_and(|v| v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"text/event-stream"));
    let framing = response_framing(&urbuf, &side.head, facts.is_head).map_err(|e| {
        Error::upstream(
            Kind::UpstreamProtocol,
            false,
            format!("bad response framing: {e:?}"),
        )
    })?;
    // HTTP/1.0 clients cannot read chunked: decode for them, then close.
    let decode_for_client = facts.http10 && framing.body == BodyKind::Chunked;
    let close = !facts.keep_alive || facts.http10 || framing.body == BodyKind::CloseDelimited;

    hbuf.clear();
    push_status_line(&mut hbuf, side.head.status);
    let connection = ConnectionOptions::of(&side.head.headers, &urbuf);
    for h in &side.head.headers {
        let name = h.name.get(&urbuf);
        if is_forwarded_response_header(name) && !connection.names(name) {
            push_header(&mut hbuf, name, h.value.get(&urbuf));
        }
    }
    match framing.body {
        BodyKind::Length(n) => push_content_length(&mut hbuf, n),
        BodyKind::Chunked if !decode_for_client => {
            push_header(&mut hbuf, b"transfer-encoding", b"chunked")
        }
        BodyKind::Empty if side.head.status != 204 && side.head.status != 304 && !facts.is_head => {
            push_content_length(&mut hbuf, 0)
        }
        _ => {}
    }
    if close {
        push_header(&mut hbuf, b"connection", b"close");
    }
    end_head(&mut hbuf);

    // Streams: usage is read on the side as the events pass.
    let mut usage_scan = side.streamed.then(|| {
        let mut scan = side.usage_scanner.take().unwrap_or_default();
        scan.reset(facts.dialect == Dialect::Anthropic);
        scan
    });
    let relayed = relay_body(
        up,
        urbuf,
        hbuf,
        side,
        client,
        facts,
        clock,
        framing,
        decode_for_client,
        close,
        usage_scan.as_mut(),
    )
    .await;
    if let Some(scan) = usage_scan {
        if side.usage.is_none() {
            side.usage = scan.usage();
        }
        side.usage_scanner = Some(scan);
    }
    relayed
}

#[allow(clippy::too_many_arguments)]
async fn relay_body(
    up: &mut UpstreamConn,
    mut urbuf: PooledBuf,
    hbuf: PooledBuf,
    side: &mut UpstreamSide,
    client: &mut monoio::net::TcpStream,
    facts: &ClientFacts,
    clock: AttemptClock,
    framing: crate::http1::framing::ResponseFraming,
    decode_for_client: bool,
    close: bool,
    mut usage_scan: Option<&mut StreamUsageScanner>,
) -> Result<Relayed, Error> {
    let head_len = side.head.head_len;
    let mut progress = BodyProgress::new(framing.body);
    let decoder = side.decoder();
    decoder.reset();
    let mut decoded = decode_for_client.then(|| PooledBuf::take(RESPONSE_BUF_BYTES));
    let initial = progress.advance(
        &urbuf[head_len..],
        decoder,
        decoded.as_deref_mut(),
        usage_scan.as_deref_mut(),
    )?;
    let mut body_end = head_len + initial;
    if !side.streamed && decoded.is_none() && !progress.done {
        body_end = read_held_body(up, &mut urbuf, &mut progress, side, body_end, clock).await?;
    }
    let mut extra = body_end < urbuf.len();
    // Tokens: a whole JSON body is read in place, with no copy (the common
    // non-streaming case).
    if progress.done
        && matches!(framing.body, BodyKind::Length(_))
        && (200..300).contains(&side.head.status)
    {
        let body = &urbuf[head_len..body_end];
        side.usage = match facts.dialect {
            Dialect::OpenAi => openai_response_usage(body),
            Dialect::Anthropic => anthropic_response_usage(body),
        };
    }

    // Head and the first body bytes in one write.
    let mut iov = side.iov.take().unwrap_or_default();
    iov.reset(hbuf, Some(urbuf));
    iov.push(0, 0..iov.buf_len(0));
    if decoded.is_none() {
        iov.push(1, head_len..body_end);
    }
    let Some((res, back)) = to_client(facts, write_all_vectored(client, iov)).await else {
        return Ok(Relayed::Broken);
    };
    iov = back;
    let (_, u) = iov.take_bufs();
    side.iov = Some(iov);
    urbuf = u.expect("response buffer returned");
    if res.is_err() {
        return Ok(Relayed::Broken);
    }
    if body_end > head_len {
        side.mark_first_body();
    }
    if let Some(d) = decoded.as_mut() {
        if !write_out(client, d, facts).await {
            return Ok(Relayed::Broken);
        }
    }

    while !progress.done {
        urbuf.clear();
        // Upstream failed, stalled or ran out of total time after the
        // response began, or closed before the body's end: the client's
        // response is cut.
        let n = match clock.body(read_more(up, &mut urbuf)).await {
            Ok(Ok(0)) if progress.kind == BodyKind::CloseDelimited => break,
            Ok(Ok(n)) if n > 0 => n,
            _ => {
                side.truncated = true;
                return Ok(end_cut_response(
                    client,
                    side.streamed,
                    &framing,
                    decode_for_client,
                    facts,
                    close,
                )
                .await);
            }
        };
        let take = progress.advance(
            &urbuf,
            side.decoder(),
            decoded.as_deref_mut(),
            usage_scan.as_deref_mut(),
        )?;
        extra |= take < n;
        side.mark_first_body();
        match decoded.as_mut() {
            Some(d) => {
                if !write_out(client, d, facts).await {
                    return Ok(Relayed::Broken);
                }
            }
            None => {
                let Some((res, slice)) =
                    to_client(facts, client.write_all(urbuf.slice(0..take))).await
                else {
                    return Ok(Relayed::Broken);
                };
                urbuf = slice.into_inner();
                if res.is_err() {
                    return Ok(Relayed::Broken);
                }
            }
        }
    }
    side.upstream_reusable =
        framing.keep_alive && !extra && progress.kind != BodyKind::CloseDelimited;
    Ok(Relayed::Complete { close })
}

/// Non-streamed bodies up to this size are read whole before the client
/// gets a byte, so an upstream that breaks off inside one is answered with
/// an error (or retried) rather than relayed as a cut response.
const MAX_HELD_BODY_BYTES: usize = 256 * 1024;

/// Reads the rest of a non-streamed Content-Length or chunked body into
/// `urbuf` (bounded by [`MAX_HELD_BODY_BYTES`]; past that the caller relays
/// as usual) and returns where the body's bytes end. An `Err` means the
/// upstream failed inside the body, while nothing has reached the client.
async fn read_held_body(
    up: &mut UpstreamConn,
    urbuf: &mut PooledBuf,
    progress: &mut BodyProgress,
    side: &mut UpstreamSide,
    mut body_end: usize,
    clock: AttemptClock,
) -> Result<usize, Error> {
    if progress.kind == BodyKind::CloseDelimited {
        return Ok(body_end);
    }
    while !progress.done && body_end - side.head.head_len < MAX_HELD_BODY_BYTES {
        // Not done means every byte so far was body: read after them.
        let n = match clock.body(read_more(up, urbuf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                return Err(Error::upstream(
                    Kind::UpstreamClosed,
                    false,
                    format!("upstream read failed inside the response body: {e}"),
                ))
            }
            Err(expired) => {
                return Err(Error::upstream(
                    Kind::UpstreamTimeout,
                    false,
                    format!("upstream {expired} inside the response body"),
                ))
            }
        };
        if n == 0 {
            return Err(Error::upstream(
                Kind::UpstreamClosed,
                false,
                "upstream closed the connection inside the response body",
            ));
        }
        let fresh = urbuf.len() - n..urbuf.len();
        body_end = fresh.start + progress.advance(&urbuf[fresh], side.decoder(), None, None)?;
    }
    Ok(body_end)
}

/// Ends a response the upstream cut after it began. An event stream tells
/// the client in-band, in its dialect, and is then ended properly (the last
/// chunk, or the close for a close-delimited one, which `close` then says),
/// so the SDK raises an API
/// error instead of returning a truncated answer as whole or reporting a
/// network failure. Other bodies cannot say it: the connection closes
/// mid-body.
async fn end_cut_response(
    client: &mut monoio::net::TcpStream,
    streamed: bool,
    framing: &crate::http1::framing::ResponseFraming,
    decode_for_client: bool,
    facts: &ClientFacts,
    close: bool,
) -> Relayed {
    let chunked = framing.body == BodyKind::Chunked && !decode_for_client;
    let raw = decode_for_client || framing.body == BodyKind::CloseDelimited;
    if !streamed || !(chunked || raw) {
        return Relayed::Broken;
    }
    // A chunked stream ended this way is whole as HTTP: the client
    // connection stays in sync and is kept as the head announced.
    if write_stream_cut(client, facts, chunked).await {
        Relayed::Complete { close }
    } else {
        Relayed::Broken
    }
}

/// Writes the dialect's stream-cut event (as one chunk, with the last chunk
/// after it, when `chunked`); false if the client is gone.
pub(super) async fn write_stream_cut(
    client: &mut monoio::net::TcpStream,
    facts: &ClientFacts,
    chunked: bool,
) -> bool {
    let event = match facts.dialect {
        Dialect::OpenAi => OPENAI_STREAM_CUT,
        Dialect::Anthropic => ANTHROPIC_STREAM_CUT,
    };
    let mut out = PooledBuf::take(event.len() + 16);
    if chunked {
        push_chunk_size(&mut out, event.len());
    }
    out.extend_from_slice(event);
    if chunked {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(LAST_CHUNK);
    }
    matches!(
        to_client(facts, client.write_all(out)).await,
        Some((Ok(_), _))
    )
}

/// Runs a write to the client within the client write timeout; `None` when
/// it ran out. A client that stops reading must not hold the upstream
/// connection and its in-flight slot for ever; the write's buffer goes with
/// the cancelled write, and the caller closes the connection.
pub(super) async fn to_client<F: Future>(facts: &ClientFacts, write: F) -> Option<F::Output> {
    monoio::time::timeout(facts.write_timeout, write).await.ok()
}

/// Writes and clears `buf`; false if the client is gone (or stopped reading).
async fn write_out(
    client: &mut monoio::net::TcpStream,
    buf: &mut PooledBuf,
    facts: &ClientFacts,
) -> bool {
    if buf.is_empty() {
        return true;
    }
    let owned = mem::replace(buf, PooledBuf::empty());
    let Some((res, mut owned)) = to_client(facts, client.write_all(owned)).await else {
        return false;
    };
    owned.clear();
    *buf = owned;
    res.is_ok()
}
