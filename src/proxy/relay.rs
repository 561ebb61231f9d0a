//! The respond phase for a same-dialect response: the head rewritten for
//! the client (hop-by-hop headers dropped, framing set), then the body
//! relayed as it arrives, one upstream read → one client write, with token
//! usage read on the side from streams.
//!
//! Two phases, split by the type system: before the head is sent
//! ([`read_body_start`]) a failure is an `Err` the caller answers (or
//! retries); once it is sent ([`send_response`]) there is only a
//! [`Relayed`], so no failure can put a second response inside the first:
//! it ends the response as an upstream cut does (the dialect's error event
//! and a proper end for a stream, a close otherwise) and marks it truncated.
//!
//! Invariants: bytes past the end of the upstream's framing are never
//! relayed, and a connection that had any, or whose response broke, goes
//! back to no pool.

use super::exchange::{
    to_client, write_out, write_stream_cut, ClientFacts, Relayed, UpstreamSide, RESPONSE_BUF_BYTES,
};
use super::govern::Cut;
use crate::api::usage::{
    anthropic_response_usage, openai_response_usage, StreamUsageScanner, Usage,
};
use crate::buf::{write_all_vectored, PooledBuf};
use crate::cache::record::Recorder;
use crate::cache::replay::Form;
use crate::error::{Error, Kind};
use crate::http1::framing::{response_framing, BodyKind, ResponseFraming};
use crate::http1::parse::media_type_is;
use crate::http1::write::{end_head, push_content_length, push_header, push_status_line};
use crate::providers::Dialect;
use crate::proxy::body::{BodyFailure, BodyProgress, ClientPosition};
use crate::proxy::downstream::read_more;
use crate::proxy::headers::{is_forwarded_response_header, ConnectionOptions};
use crate::upstream::timeouts::AttemptClock;
use crate::upstream::AckPromptly;
use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

/// The provider's own `x-ratelimit-*`: replaced by the key's when the key
/// is limited (a client reads one set of limits, the one it is held to).
fn is_ratelimit_header(name: &[u8]) -> bool {
    name.len() > 12 && name[..12].eq_ignore_ascii_case(b"x-ratelimit-")
}

pub(super) async fn relay_response(
    up: &mut (impl AsyncReadRent + AckPromptly),
    urbuf: PooledBuf,
    mut hbuf: PooledBuf,
    side: &mut UpstreamSide,
    client: &mut impl AsyncWriteRent,
    facts: &ClientFacts,
    clock: AttemptClock,
) -> Result<Relayed, Error> {
    side.report.reusable = false;
    side.report.status = side.head.status;
    let content_type = side
        .head
        .header(&urbuf, b"content-type")
        .unwrap_or_default();
    side.report.streamed = media_type_is(content_type, b"text/event-stream");
    if side.report.streamed {
        up.ack_promptly();
    }
    // Held whole so that a cut can still be retried, except streams and
    // audio (speech), relayed as they come: their first bytes are what the
    // client waits for.
    let hold = !side.report.streamed && !media_type_is(content_type, b"audio/");
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
        if is_forwarded_response_header(name)
            && !connection.names(name)
            && !(facts.rate.is_some() && is_ratelimit_header(name))
        {
            push_header(&mut hbuf, name, h.value.get(&urbuf));
        }
    }
    facts.push_gateway_headers(&mut hbuf);
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
    let mut usage_scan = side.report.streamed.then(|| {
        let mut scan = side.usage_scanner.take().unwrap_or_default();
        scan.reset(facts.dialect == Dialect::Anthropic);
        if side.gate.as_ref().is_some_and(|g| g.watches()) {
            scan.meter_output();
        }
        scan
    });
    let framing = ClientFraming {
        upstream: framing,
        decode_for_client,
        close,
        hold,
    };
    // A 2xx stream the cache may keep: recorded as the client gets it.
    let mut record = side
        .capture_body
        .filter(|_| side.report.streamed && (200..300).contains(&side.head.status))
        .map(|limit| Recorder::new(limit, framing.relays_chunks()));
    let relayed =
        match read_body_start(up, urbuf, side, facts, clock, &framing, &mut usage_scan).await {
            Ok(start) => {
                let committed = Committed {
                    head: hbuf,
                    framing: &framing,
                    usage_scan: usage_scan.as_mut(),
                    record: record.as_mut(),
                };
                let relayed = send_response(up, start, committed, side, client, facts, clock).await;
                if let (Relayed::Complete { .. }, Some(r)) = (&relayed, record) {
                    if !side.report.truncated {
                        side.cache_body = r.finish().map(|events| (Form::Stream, events));
                    }
                }
                Ok(relayed)
            }
            Err(e) => Err(e),
        };
    if let Some(mut scan) = usage_scan {
        if side.report.usage.is_none() {
            side.report.usage = scan.usage();
        }
        side.report.output_seen = scan.output_seen();
        // Gives back what a huge event grew, while the connection idles.
        scan.reset(false);
        side.usage_scanner = Some(scan);
    }
    relayed
}

/// The response as the client gets it: its head, how its body is framed,
/// the stream's usage scanner (streams only) and its recording (a stream
/// the cache may keep).
struct Committed<'a> {
    head: PooledBuf,
    framing: &'a ClientFraming,
    usage_scan: Option<&'a mut StreamUsageScanner>,
    record: Option<&'a mut Recorder>,
}

/// How the body reaches the client.
struct ClientFraming {
    upstream: ResponseFraming,
    /// Chunked payload decoded and relayed bare (an HTTP/1.0 client).
    decode_for_client: bool,
    /// The client connection closes after this response.
    close: bool,
    /// The body is read whole (bounded) before the head goes out.
    hold: bool,
}

impl ClientFraming {
    /// The upstream's chunk framing reaches the client as is.
    fn relays_chunks(&self) -> bool {
        self.upstream.body == BodyKind::Chunked && !self.decode_for_client
    }
}

/// What was read of the body before the head goes out.
struct BodyStart {
    urbuf: PooledBuf,
    progress: BodyProgress,
    /// The decoded payload for an HTTP/1.0 client (else `None`).
    decoded: Option<PooledBuf>,
    /// Where the body's bytes in `urbuf` end (they start at the head's end).
    body_end: usize,
    /// Bytes followed the body's end: the connection cannot be reused.
    extra: bool,
}

/// Before the head is sent: the body bytes already read, a non-streamed
/// body's start read ahead (bounded), its usage read. An `Err` means
/// nothing reached the client.
async fn read_body_start(
    up: &mut impl AsyncReadRent,
    mut urbuf: PooledBuf,
    side: &mut UpstreamSide,
    facts: &ClientFacts,
    clock: AttemptClock,
    framing: &ClientFraming,
    usage_scan: &mut Option<StreamUsageScanner>,
) -> Result<BodyStart, Error> {
    let head_len = side.head.head_len;
    let mut progress = BodyProgress::new(framing.upstream.body);
    let decoder = side.decoder();
    decoder.reset();
    let mut decoded = framing
        .decode_for_client
        .then(|| PooledBuf::take(RESPONSE_BUF_BYTES));
    let initial = progress.advance(
        &urbuf[head_len..],
        decoder,
        decoded.as_deref_mut(),
        usage_scan.as_mut(),
    )?;
    let mut body_end = head_len + initial;
    if framing.hold && decoded.is_none() && !progress.is_done() {
        body_end = read_held_body(up, &mut urbuf, &mut progress, side, body_end, clock).await?;
    }
    // Tokens: a whole JSON body is read in place, with no copy (the common
    // non-streaming case).
    if progress.is_done()
        && matches!(framing.upstream.body, BodyKind::Length(_))
        && (200..300).contains(&side.head.status)
    {
        let body = &urbuf[head_len..body_end];
        if side.no_usage {
            side.batch_usage = completed_batch_usage(body);
        } else {
            side.report.usage = match facts.dialect {
                Dialect::OpenAi => openai_response_usage(body),
                Dialect::Anthropic => anthropic_response_usage(body),
            };
        }
        if side.capture_id {
            side.created_id = created_id(body);
        }
        if side.capture_body.is_some_and(|limit| body.len() <= limit) {
            side.cache_body = Some((Form::Whole, body.to_vec()));
        }
    }
    Ok(BodyStart {
        extra: body_end < urbuf.len(),
        urbuf,
        progress,
        decoded,
        body_end,
    })
}

/// The `id` of a file or batch object the provider made (a plain string:
/// ids have no escapes).
fn created_id(body: &[u8]) -> Option<String> {
    let raw = crate::json::top_level_value(body, b"id")?;
    let id = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let plain = id
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| String::from_utf8_lossy(id).into_owned())
}

/// A batch object's `usage` and `model`, once it is `completed`.
fn completed_batch_usage(body: &[u8]) -> Option<(Usage, String)> {
    let status = crate::json::top_level_value(body, b"status")?;
    if status != b"\"completed\"" {
        return None;
    }
    let usage = openai_response_usage(body)?;
    let model = crate::json::top_level_value(body, b"model")
        .and_then(|m| m.strip_prefix(b"\"")?.strip_suffix(b"\""))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Some((usage, model))
}

/// After the head is committed: writes it with the body's start, then
/// relays the rest. Whatever fails from here on ends the response in place
/// ([`end_cut_response`]); nothing here can answer the request again.
async fn send_response(
    up: &mut impl AsyncReadRent,
    start: BodyStart,
    committed: Committed<'_>,
    side: &mut UpstreamSide,
    client: &mut impl AsyncWriteRent,
    facts: &ClientFacts,
    clock: AttemptClock,
) -> Relayed {
    let Committed {
        head: hbuf,
        framing,
        mut usage_scan,
        mut record,
    } = committed;
    let BodyStart {
        mut urbuf,
        mut progress,
        mut decoded,
        body_end,
        mut extra,
    } = start;
    let head_len = side.head.head_len;
    // Where the client's copy stands after each relayed read, should the
    // next one fail.
    let mut at = progress.position(
        side.decoder(),
        usage_scan.as_deref(),
        framing.decode_for_client,
    );
    // The usage scan failed inside a chunk the client is in (see below).
    let mut unmetered = false;

    // Head and the first body bytes in one write.
    let mut iov = side.iov.take().unwrap_or_default();
    iov.reset(hbuf, Some(urbuf));
    iov.push(0, 0..iov.buf_len(0));
    if decoded.is_none() {
        iov.push(1, head_len..body_end);
    }
    let Some((res, back)) = to_client(facts, write_all_vectored(client, iov)).await else {
        return Relayed::Broken;
    };
    iov = back;
    let (_, u) = iov.take_bufs();
    side.iov = Some(iov);
    urbuf = u.expect("response buffer returned");
    if res.is_err() {
        return Relayed::Broken;
    }
    if body_end > head_len {
        side.report.mark_first_body();
    }
    if let Some(r) = record.as_deref_mut() {
        r.push(match decoded.as_deref() {
            Some(d) => d,
            None => &urbuf[head_len..body_end],
        });
    }
    if let Some(d) = decoded.as_mut() {
        if !write_out(client, d, facts).await {
            return Relayed::Broken;
        }
    }

    while !progress.is_done() {
        urbuf.clear();
        // Upstream failed, stalled or ran out of total time after the
        // response began, or closed before the body's end: the client's
        // response is cut.
        let n = match clock.body(read_more(up, &mut urbuf)).await {
            Ok(Ok(0)) if progress.kind() == BodyKind::CloseDelimited => break,
            Ok(Ok(n)) if n > 0 => n,
            _ => return end_cut_response(client, side, facts, framing, at, None).await,
        };
        // A read whose framing is malformed is not relayed: the response
        // ends where the previous read left the client. So is one past
        // which the stream can no longer be metered (an event too large),
        // unless the client is inside a chunk relayed as is: the stream
        // then goes on, unmetered, to that chunk's end, where it is cut.
        let advanced = if unmetered {
            progress.advance_to_chunk_end(&urbuf, side.decoder())
        } else {
            progress.advance(
                &urbuf,
                side.decoder(),
                decoded.as_deref_mut(),
                usage_scan.as_deref_mut(),
            )
        };
        let take = match advanced {
            Ok(take) => take,
            Err(BodyFailure::Unmetered { consumed, .. })
                if framing.relays_chunks() && !at.between_chunks =>
            {
                unmetered = true;
                consumed
            }
            Err(_) => return end_cut_response(client, side, facts, framing, at, None).await,
        };
        at = progress.position(
            side.decoder(),
            usage_scan.as_deref(),
            framing.decode_for_client,
        );
        extra |= take < n;
        side.report.mark_first_body();
        if let Some(r) = record.as_deref_mut() {
            r.push(match decoded.as_deref() {
                Some(d) => d,
                None => &urbuf[..take],
            });
        }
        match decoded.as_mut() {
            Some(d) => {
                if !write_out(client, d, facts).await {
                    return Relayed::Broken;
                }
            }
            None => {
                let Some((res, slice)) =
                    to_client(facts, client.write_all(urbuf.slice(0..take))).await
                else {
                    return Relayed::Broken;
                };
                urbuf = slice.into_inner();
                if res.is_err() {
                    return Relayed::Broken;
                }
            }
        }
        if unmetered && at.between_chunks && !progress.is_done() {
            return end_cut_response(client, side, facts, framing, at, None).await;
        }
        // A governed stream past its reservation grows it or is cut, at
        // the first point the client is between chunks.
        if let (Some(gate), Some(scan)) = (side.gate.as_mut(), usage_scan.as_deref()) {
            side.report.output_seen = scan.output_seen();
            if let Err(cut) = gate.check(scan.output_seen()) {
                if at.between_chunks && !progress.is_done() {
                    side.report.cut = Some(cut);
                    return end_cut_response(client, side, facts, framing, at, Some(cut)).await;
                }
            }
        }
    }
    side.report.reusable =
        framing.upstream.keep_alive && !extra && progress.kind() != BodyKind::CloseDelimited;
    Relayed::Complete {
        close: framing.close,
    }
}

/// Reads the rest of a non-streamed Content-Length or chunked body into
/// `urbuf` (bounded by `limits.max_held_body_bytes`, so an upstream that
/// breaks off inside a body that size is answered with an error, or
/// retried, rather than relayed as a cut response; past it the caller relays
/// as usual) and returns where the body's bytes end. An `Err` means the
/// upstream failed inside the body, while nothing has reached the client.
async fn read_held_body(
    up: &mut impl AsyncReadRent,
    urbuf: &mut PooledBuf,
    progress: &mut BodyProgress,
    side: &mut UpstreamSide,
    mut body_end: usize,
    clock: AttemptClock,
) -> Result<usize, Error> {
    if progress.kind() == BodyKind::CloseDelimited {
        return Ok(body_end);
    }
    while !progress.is_done() && body_end - side.head.head_len < side.limits.max_held_body_bytes {
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

/// Ends a committed response the upstream cut or broke after it began,
/// where `at` left the client: marked truncated, and never reused. An event
/// stream tells the client in-band, in its dialect (after a blank line, if
/// the client is inside an event), and is then ended properly (the last
/// chunk, or the close for a close-delimited one), so the SDK raises an API
/// error instead of returning a truncated answer as whole or reporting a
/// network failure. Other bodies cannot say it, nor can a stream cut inside
/// a chunk relayed as is: the connection closes mid-body.
async fn end_cut_response(
    client: &mut impl AsyncWriteRent,
    side: &mut UpstreamSide,
    facts: &ClientFacts,
    framing: &ClientFraming,
    at: ClientPosition,
    by: Option<Cut>,
) -> Relayed {
    side.report.truncated = true;
    side.report.reusable = false;
    let chunked = framing.relays_chunks();
    let raw = framing.decode_for_client || framing.upstream.body == BodyKind::CloseDelimited;
    if !side.report.streamed || !(chunked || raw) || !at.between_chunks {
        return Relayed::Broken;
    }
    // A chunked stream ended this way is whole as HTTP: the client
    // connection stays in sync and is kept as the head announced.
    if write_stream_cut(client, facts, chunked, at.mid_event, by).await {
        Relayed::Complete {
            close: framing.close,
        }
    } else {
        Relayed::Broken
    }
}
