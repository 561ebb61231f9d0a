//! What one upstream exchange carries between the phases that send it
//! (`forward`), relay it (`relay`, `translated`) and decide about it
//! (`attempt`): the assembled request, the per-connection upstream
//! machinery and the request's [`Report`], how an exchange ended
//! ([`Relayed`]), what the client connection needs to know
//! ([`ClientFacts`]), and the bounded writes to the client all of them use.
//!
//! Invariant: this module imports none of the phases; they import it.

use super::downstream::Upload;
use std::future::Future;
use std::mem;
use std::ops::Range;
use std::time::{Duration, Instant};

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

use super::govern::Cut;
use crate::api::translate::{
    ANTHROPIC_BUDGET_CUT, ANTHROPIC_STREAM_CUT, ANTHROPIC_TOKENS_CUT, OPENAI_BUDGET_CUT,
    OPENAI_STREAM_CUT, OPENAI_TOKENS_CUT,
};
use crate::api::usage::{StreamUsageScanner, Usage};
use crate::buf::{IoVecs, PooledBuf};
use crate::cache::replay::Form;
use crate::config::LimitsConfig;
use crate::http1::chunked::{ChunkLimits, ChunkedDecoder};
use crate::http1::parse::{HeadLimits, HeadScanner, ResponseHead};
use crate::http1::write::{push_chunk_size, LAST_CHUNK};
use crate::providers::Dialect;
use crate::upstream::timeouts::AttemptClock;
use crate::upstream::UpstreamConn;

/// The first read buffer of an upstream response.
pub(super) const RESPONSE_BUF_BYTES: usize = 16 * 1024;

/// How often a client that pipelined its next request (its socket stays
/// readable until that is read) is checked for having left while its
/// response head, or a retry's backoff, is awaited.
pub(super) const PIPELINED_RECHECK: Duration = Duration::from_millis(250);

/// The request as slices of two owned buffers: `head` holds the upstream
/// request head in `head_range` and the replacement `model` value in
/// `value_range`; `body` holds the client's body bytes in `body_range`, of
/// which `patch` (if any) is the old value to replace.
pub struct OutgoingRequest {
    pub head: PooledBuf,
    pub head_range: Range<usize>,
    pub value_range: Range<usize>,
    pub body: Option<PooledBuf>,
    pub body_range: Range<usize>,
    pub patch: Option<Range<usize>>,
    /// Bytes of `head` inserted into the body at an offset (a member added
    /// before the closing brace); after `patch` in the body.
    pub insert: Option<(usize, Range<usize>)>,
    /// An upload streamed through: `body` holds its start, the rest is
    /// copied from the client once that is written.
    pub upload: Option<Upload>,
}

impl OutgoingRequest {
    /// Whether the request's method is idempotent (RFC 9110 §9.2.2): the
    /// upstream may get it twice to the effect of once. Read off the head's
    /// request line, which starts with the client's method.
    pub(super) fn is_idempotent(&self) -> bool {
        let line = &self.head[self.head_range.clone()];
        let method = line.split(|&b| b == b' ').next().unwrap_or_default();
        matches!(
            method,
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }

    /// Head, then the body with each edit (span of the body replaced by a
    /// range of the head buffer) applied in order: at most six segments.
    pub(super) fn segments(&self, iov: &mut IoVecs) {
        iov.clear_segments();
        iov.push(0, self.head_range.clone());
        let edits = self
            .patch
            .clone()
            .map(|old| (old, self.value_range.clone()))
            .into_iter()
            .chain(self.insert.clone().map(|(at, bytes)| (at..at, bytes)));
        let mut cursor = self.body_range.start;
        for (span, replacement) in edits {
            iov.push(1, cursor..span.start);
            iov.push(0, replacement);
            cursor = span.end;
        }
        iov.push(1, cursor..self.body_range.end);
    }
}

/// Per-connection machinery of the upstream side, reused across requests
/// (buffers, scanners, a held response); what one request's exchange came
/// to is its [`Report`], started afresh for every request.
#[derive(Default)]
pub struct UpstreamSide {
    /// Boxed iovecs, allocated once per connection; `None` only while a
    /// write owns them.
    pub(super) iov: Option<IoVecs>,
    pub(super) scanner: HeadScanner,
    pub(super) head: ResponseHead,
    pub(super) decoder: Option<ChunkedDecoder>,
    /// Reused across this connection's streams.
    pub(super) usage_scanner: Option<StreamUsageScanner>,
    /// An error response held back (not yet relayed) so the caller can
    /// decide to retry instead.
    held: Option<Held>,
    /// The current request's exchange.
    pub(super) report: Report,
    /// The current request's response limits, from its generation.
    pub(super) limits: ResponseLimits,
    /// A governed request's reservation, from before its first attempt to
    /// its settle; streams check their output against it as they run.
    pub(super) gate: Option<super::govern::OutputGate>,
    /// The request makes a file or batch: read the `id` of a 2xx answer
    /// into `created_id`.
    pub(super) capture_id: bool,
    pub(super) created_id: Option<String>,
    /// The request deletes this file: forget it once the provider did.
    pub(super) forget_id: Option<String>,
    /// A files or batches route: an answer's `usage` is not this
    /// request's (a batch's is metered once, by `batch_usage`).
    pub(super) no_usage: bool,
    /// A batch fetched: its `usage` and `model` if it is completed.
    pub(super) batch_usage: Option<(Usage, String)>,
    /// The answer may be cached: a whole 2xx body is copied into
    /// `cache_body` as it goes out, a stream recorded into it (bounded by
    /// `max_entry_bytes`) as it passes.
    pub(super) capture_body: Option<usize>,
    pub(super) cache_body: Option<(Form, Vec<u8>)>,
}

/// The bounds on an upstream response that `[limits]` sets
/// (`max_response_head_bytes`, `max_response_headers`,
/// `max_held_body_bytes`), copied from the request's generation when it
/// begins, so the exchange reads them from the side it already holds.
#[derive(Clone, Copy)]
pub(super) struct ResponseLimits {
    pub head: HeadLimits,
    pub max_held_body_bytes: usize,
}

impl ResponseLimits {
    pub fn new(l: &LimitsConfig) -> ResponseLimits {
        ResponseLimits {
            head: HeadLimits {
                max_head_bytes: l.max_response_head_bytes,
                max_headers: l.max_response_headers,
            },
            max_held_body_bytes: l.max_held_body_bytes,
        }
    }
}

impl Default for ResponseLimits {
    fn default() -> ResponseLimits {
        ResponseLimits::new(&LimitsConfig::default())
    }
}

/// What the current request's upstream exchange came to, for the attempt
/// loop and the log phase. Reset when a request begins (nothing of the
/// previous request's survives into a gateway-made answer) and when an
/// attempt is sent.
#[derive(Default, Clone, Copy)]
pub(super) struct Report {
    /// When the request was sent upstream (None: it never was).
    pub sent_at: Option<Instant>,
    /// The response is an event stream (TTFT applies).
    pub streamed: bool,
    /// When the first body bytes reached the client.
    pub first_body: Option<Instant>,
    /// The status the client got (0: none yet).
    pub status: u16,
    pub usage: Option<Usage>,
    /// The upstream cut the response after it began.
    pub truncated: bool,
    /// The response left the upstream connection reusable.
    pub reusable: bool,
    /// The client left while the response head (or a held error body) was
    /// awaited: the upstream request was abandoned.
    pub client_left: bool,
    /// Output tokens a governed stream relayed, estimated as it ran.
    pub output_seen: u64,
    /// A governed stream was cut by its key's budget or token limit.
    pub cut: Option<super::govern::Cut>,
    /// An upload's rest began to be copied from the client: it cannot be
    /// sent again, and the client connection ends after the answer.
    pub upload_taken: bool,
}

impl Report {
    /// When the first event of a streamed response reached the client.
    pub fn first_event(&self) -> Option<Instant> {
        self.first_body.filter(|_| self.streamed)
    }

    pub fn mark_first_body(&mut self) {
        // A clock read, not the loop clock: time to first token runs to it.
        self.first_body.get_or_insert_with(Instant::now);
    }
}

/// A response whose head (and a bounded part of its body) has arrived but
/// not a byte of which went to the client.
pub(super) struct Held {
    pub up: UpstreamConn,
    pub urbuf: PooledBuf,
    pub hbuf: PooledBuf,
    pub provider: usize,
    /// The attempt's clock: its total deadline still runs.
    pub clock: AttemptClock,
}

/// Statuses held back when the caller may still try elsewhere: the
/// retryable ones, and 400 (a context-window error goes to a fallback).
pub(super) fn is_held_status(status: u16) -> bool {
    matches!(status, 400 | 429 | 500 | 502 | 503 | 504)
}

/// How the exchange ended, for the connection loop.
pub enum Relayed {
    /// The response went out whole; the client connection may continue
    /// unless `close` (the response had to be close-delimited).
    Complete { close: bool },
    /// The client went away (before the response head, too: then
    /// [`UpstreamSide::client_left`]), or the upstream broke off after the
    /// response began: the client connection must close (its response is
    /// cut).
    Broken,
    /// An error response arrived and is held in the [`UpstreamSide`]:
    /// nothing reached the client. Relay it with [`relay_held`] or drop it
    /// with [`UpstreamSide::discard_held`].
    Held,
}

/// What the client connection needs to know about the request.
pub struct ClientFacts {
    pub http10: bool,
    pub keep_alive: bool,
    pub is_head: bool,
    /// The dialect errors must be shaped in.
    pub dialect: crate::providers::Dialect,
    /// The longest one write to the client may take (a client that stops
    /// reading is cut off after this).
    pub write_timeout: std::time::Duration,
    /// The key's `x-ratelimit-*` headers, for every response head (a
    /// limited key's only); they replace any the upstream sent.
    pub rate: Option<crate::governance::RateHeaders>,
    /// With `[cache]` on, the `x-shardgate-cache` value of a relayed
    /// answer (`miss` or `bypass`).
    pub cache: Option<&'static str>,
}

impl ClientFacts {
    /// Appends the headers the gateway adds to every relayed answer: the
    /// key's rate headers and the cache's verdict.
    pub(super) fn push_gateway_headers(&self, out: &mut Vec<u8>) {
        if let Some(rate) = &self.rate {
            rate.push(out);
        }
        if let Some(cache) = self.cache {
            crate::http1::write::push_header(out, b"x-shardgate-cache", cache.as_bytes());
        }
    }
}

impl UpstreamSide {
    /// Starts a request under `limits`: nothing of the previous one's
    /// exchange is kept.
    pub(super) fn begin_request(&mut self, limits: &LimitsConfig) {
        self.held = None;
        self.report = Report::default();
        self.limits = ResponseLimits::new(limits);
        self.gate = None;
        self.capture_id = false;
        self.created_id = None;
        self.forget_id = None;
        self.no_usage = false;
        self.batch_usage = None;
        self.capture_body = None;
        self.cache_body = None;
    }

    /// Takes the held response, if any.
    pub(super) fn take_held(&mut self) -> Option<Held> {
        self.held.take()
    }

    /// Holds a response back (see [`Relayed::Held`]).
    pub(super) fn hold(&mut self, held: Held) {
        self.held = Some(held);
    }

    /// Drops a held response (its connection is closed, not pooled).
    pub(super) fn discard_held(&mut self) {
        self.held = None;
    }

    /// A header of the held response (`name` in lower case).
    pub(super) fn held_header(&self, name: &[u8]) -> Option<&[u8]> {
        let held = self.held.as_ref()?;
        self.head.header(&held.urbuf, name)
    }

    /// What arrived of the held response's body (bounded).
    pub(super) fn held_body(&self) -> &[u8] {
        match &self.held {
            Some(h) => &h.urbuf[self.head.head_len.min(h.urbuf.len())..],
            None => b"",
        }
    }

    pub(super) fn decoder(&mut self) -> &mut ChunkedDecoder {
        self.decoder.get_or_insert_with(|| {
            ChunkedDecoder::new(ChunkLimits {
                max_line_bytes: 4096,
                max_trailer_bytes: 64 * 1024,
                max_body_bytes: u64::MAX,
            })
        })
    }
}

/// Writes the dialect's stream-cut event (as one chunk, with the last chunk
/// after it, when `chunked`); false if the client is gone. With
/// `mid_event`, a blank line first ends the event the client is inside, so
/// the cut event is read as one of its own.
pub(super) async fn write_stream_cut(
    client: &mut impl AsyncWriteRent,
    facts: &ClientFacts,
    chunked: bool,
    mid_event: bool,
    by: Option<Cut>,
) -> bool {
    let event = match (facts.dialect, by) {
        (Dialect::OpenAi, None) => OPENAI_STREAM_CUT,
        (Dialect::Anthropic, None) => ANTHROPIC_STREAM_CUT,
        (Dialect::OpenAi, Some(Cut::Budget)) => OPENAI_BUDGET_CUT,
        (Dialect::OpenAi, Some(Cut::Tokens)) => OPENAI_TOKENS_CUT,
        (Dialect::Anthropic, Some(Cut::Budget)) => ANTHROPIC_BUDGET_CUT,
        (Dialect::Anthropic, Some(Cut::Tokens)) => ANTHROPIC_TOKENS_CUT,
    };
    let end_event: &[u8] = if mid_event { b"\n\n" } else { b"" };
    let mut out = PooledBuf::take(event.len() + 16);
    if chunked {
        push_chunk_size(&mut out, end_event.len() + event.len());
    }
    out.extend_from_slice(end_event);
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
pub(super) async fn write_out(
    client: &mut impl AsyncWriteRent,
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
