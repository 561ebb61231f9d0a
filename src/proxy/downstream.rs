//! The client side of a connection: reading request heads and bodies into
//! the connection's buffer, and writing the gateway's own responses.
//!
//! Invariants: `rbuf` holds the current request from offset 0 (head, then a
//! Content-Length body in place) followed by any pipelined bytes; the
//! scanner only looks at bytes it has not seen; nothing is read past the
//! configured limits. A new connection holds no buffer until bytes arrive,
//! and a keep-alive one gives its buffer back after `HOT_WAIT` without a
//! request: an idle connection costs its task, not a read buffer.

use std::future::Future;
use std::io;
use std::mem;
use std::ops::Range;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

use crate::api::multipart::{self, Scan};
use crate::api::translate::anthropic_error;
use crate::buf::{write_all, PooledBuf};
use crate::config::LimitsConfig;
use crate::error::{Error, Kind};
use crate::governance::RateHeaders;
use crate::http1::chunked::{ChunkError, ChunkLimits, ChunkedDecoder};
use crate::http1::framing::{BodyKind, RequestFraming};
use crate::http1::parse::{HeadError, HeadLimits, HeadScanner, Parsed, RequestHead};
use crate::http1::write::{end_head, push_content_length, push_header, push_status_line};
use crate::net::{ClientIo, ClientStream};
use crate::providers::Dialect;
use crate::proxy::headers::PeerAddr;
use crate::runtime::loop_now;
use monoio::net::TcpStream;

/// Read buffer taken when a request starts arriving: a typical chat
/// request (head + body) fits at once.
pub const READ_BUF_BYTES: usize = 16 * 1024;

/// How long a keep-alive connection that just finished a request keeps its
/// read buffer waiting for the next one before it waits without it.
const HOT_WAIT: Duration = Duration::from_millis(250);

/// What waiting for a request head is bounded by, copied out of the
/// generation's limits so that an idle connection's task holds these few
/// words and not the generation (which a reload would otherwise keep
/// alive, its pools and all, as long as the connection idles).
#[derive(Clone, Copy, Debug)]
pub struct HeadWait {
    pub head: HeadLimits,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl HeadWait {
    pub fn of(limits: &LimitsConfig) -> HeadWait {
        HeadWait {
            head: HeadLimits {
                max_head_bytes: limits.max_head_bytes,
                max_headers: limits.max_headers,
            },
            header_timeout: limits.header_read_timeout_ms,
            idle_timeout: limits.keepalive_idle_timeout_ms,
        }
    }
}

/// Where a request body is.
pub enum Body {
    Empty,
    /// A Content-Length body, in place in `rbuf`.
    InPlace(Range<usize>),
    /// A decoded chunked body.
    Decoded(PooledBuf),
    /// An upload larger than `max_body_bytes`: its start (through its
    /// `model` field) in place in `rbuf`, the rest still on the client's
    /// socket, copied upstream as it arrives (see [`Upload`]).
    Streamed(Upload),
}

/// An upload streamed through rather than held: how much of it is still
/// to be read from the client, and by when.
#[derive(Clone, Debug)]
pub struct Upload {
    /// The part read so far, in `rbuf`.
    pub prefix: Range<usize>,
    /// Bytes of it still unread.
    pub rest: u64,
    /// The whole body must have arrived by then (`body_read_timeout_ms`).
    pub deadline: Instant,
}

/// How much of an upload is read, at most, to find its `model` field
/// before the rest is streamed: a form's small fields come first when
/// curl or Python's SDK writes it.
pub const UPLOAD_PREFIX_BYTES: usize = 1024 * 1024;

impl Body {
    /// The body's length, all of it.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::InPlace(r) => r.len() as u64,
            Body::Decoded(b) => b.len() as u64,
            Body::Streamed(u) => u.prefix.len() as u64 + u.rest,
        }
    }
}

/// Generic over the transport (`TcpStream`, or TLS over it): a plain
/// connection's code is what it was before TLS existed.
pub struct Downstream<S = TcpStream> {
    pub stream: ClientStream<S>,
    /// The client's address, from `accept` (for `X-Forwarded-For`).
    pub peer: PeerAddr,
    pub rbuf: PooledBuf,
    pub head: RequestHead,
    scanner: HeadScanner,
    decoder: Option<ChunkedDecoder>,
}

/// Reads into the spare capacity of `buf` (growing it when full).
pub async fn read_more<S: AsyncReadRent>(stream: &mut S, buf: &mut PooledBuf) -> io::Result<usize> {
    if buf.len() == buf.capacity() {
        let grow = buf.capacity().max(4096);
        buf.reserve(grow);
    }
    let owned = mem::replace(buf, PooledBuf::empty());
    let (len, cap) = (owned.len(), owned.capacity());
    let (res, slice) = stream.read(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res
}

/// Runs a read until `deadline`; `None` when it passes first. After a
/// timeout the read's buffer is left empty (the in-flight read owns it, or
/// it was never taken): the caller closes the connection.
async fn before<T>(deadline: Instant, read: impl Future<Output = T>) -> Option<T> {
    // A deadline, so the loop clock (`runtime::loop_now`), and the timer is
    // set at it rather than at a duration measured again.
    if deadline <= loop_now() {
        return None;
    }
    monoio::time::timeout_at(deadline.into(), read).await.ok()
}

fn read_timeout(what: &'static str) -> Error {
    Error::client(Kind::RequestTimeout, what)
}

impl<S: ClientIo> Downstream<S> {
    pub fn new(stream: ClientStream<S>, peer: PeerAddr) -> Downstream<S> {
        Downstream {
            stream,
            peer,
            // Taken when the first bytes are there to read.
            rbuf: PooledBuf::empty(),
            head: RequestHead::default(),
            scanner: HeadScanner::default(),
            decoder: None,
        }
    }

    /// Waits for a complete request head. `Ok(false)`: the client closed
    /// cleanly between requests, or stayed idle past the keep-alive idle
    /// timeout (closed silently). The head must arrive whole within
    /// `header_read_timeout_ms`, counted from now on a connection's first
    /// request and from the first byte of a later one; else 408.
    pub async fn read_head(&mut self, limits: HeadWait, first: bool) -> Result<bool, Error> {
        let head_limits = limits.head;
        let now = loop_now();
        let head_timeout = limits.header_timeout;
        let idle_deadline = now + limits.idle_timeout;
        let mut head_deadline = (first || !self.rbuf.is_empty()).then(|| now + head_timeout);
        loop {
            match self
                .scanner
                .request(&self.rbuf, &head_limits, &mut self.head)
            {
                Ok(Parsed::Complete) => return Ok(true),
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(head_error(e)),
            }
            if head_deadline.is_none() && !self.rbuf.is_empty() {
                head_deadline = Some(loop_now() + head_timeout);
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            let read = if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
                // Just answered: a busy client's next request usually
                // follows, and a read on the buffer in hand costs one ring
                // op. A quiet client gets the buffer back after HOT_WAIT
                // (the timed-out read takes it; the next turn waits bare).
                let hot = deadline.min(loop_now() + HOT_WAIT);
                match before(hot, read_more(&mut self.stream, &mut self.rbuf)).await {
                    None if hot < deadline => continue,
                    read => read,
                }
            } else if self.rbuf.is_empty() {
                // Nothing of a request yet: wait without holding a buffer.
                let read = self
                    .stream
                    .read_when_readable(&mut self.rbuf, READ_BUF_BYTES);
                before(deadline, read).await
            } else {
                before(deadline, read_more(&mut self.stream, &mut self.rbuf)).await
            };
            let read = match (read, head_deadline) {
                (Some(r), _) => r,
                (None, Some(_)) => {
                    return Err(read_timeout("the request head did not arrive in time"))
                }
                (None, None) => return Ok(false),
            };
            match read {
                Ok(0) if self.rbuf.is_empty() => return Ok(false),
                Ok(0) => {
                    return Err(Error::client(
                        Kind::BadRequest,
                        "connection closed inside a request head",
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(Error::client(Kind::BadRequest, format!("read failed: {e}"))),
            }
        }
    }

    /// Reads the body the framing announces. Returns it and the offset in
    /// `rbuf` where the next pipelined request starts.
    pub async fn read_body(
        &mut self,
        framing: &RequestFraming,
        limits: &LimitsConfig,
    ) -> Result<(Body, usize), Error> {
        let head_len = self.head.head_len;
        let deadline = loop_now() + limits.body_read_timeout_ms;
        match framing.body {
            BodyKind::Empty | BodyKind::CloseDelimited => Ok((Body::Empty, head_len)),
            BodyKind::Length(0) => Ok((Body::Empty, head_len)),
            BodyKind::Length(n) => {
                if n > limits.max_body_bytes as u64 {
                    return Err(too_large(limits));
                }
                let end = head_len + n as usize;
                if self.rbuf.len() < end {
                    if framing.expect_continue {
                        self.write_continue().await?;
                    }
                    let missing = end - self.rbuf.len();
                    self.rbuf.reserve(missing);
                    while self.rbuf.len() < end {
                        self.read_body_more(deadline, "a request body").await?;
                    }
                }
                Ok((Body::InPlace(head_len..end), end))
            }
            BodyKind::Chunked => self.read_chunked(framing, limits, deadline).await,
        }
    }

    /// Reads the start of an upload of `len` bytes (more than
    /// `max_body_bytes`, at most `max_upload_bytes`) until its `field` is
    /// whole, or the form ends without it (no `field`: what has arrived);
    /// never past the body. Returns it and the offset where the next
    /// request starts (after the rest, which stays on the socket).
    pub async fn read_upload_start(
        &mut self,
        len: u64,
        boundary: &[u8],
        field: Option<&[u8]>,
        framing: &RequestFraming,
        limits: &LimitsConfig,
    ) -> Result<(Body, usize), Error> {
        if len > limits.max_upload_bytes {
            return Err(Error::client(
                Kind::PayloadTooLarge,
                format!(
                    "upload of {len} bytes is over this gateway's limit of {} (limits.max_upload_bytes)",
                    limits.max_upload_bytes
                ),
            ));
        }
        let head_len = self.head.head_len;
        let deadline = loop_now() + limits.body_read_timeout_ms;
        let cap = (len as usize).min(UPLOAD_PREFIX_BYTES);
        if framing.expect_continue {
            self.write_continue().await?;
        }
        loop {
            // Pipelined bytes after a (small) body are not the body's.
            let read = (self.rbuf.len() - head_len).min(cap);
            let prefix = &self.rbuf[head_len..head_len + read];
            let Some(field) = field else {
                break;
            };
            match multipart::find_field(prefix, boundary, field, read as u64 == len) {
                Ok(Scan::NeedMore) if read < cap => {}
                Ok(Scan::NeedMore) => {
                    return Err(Error::client(
                        Kind::PayloadTooLarge,
                        format!(
                            "an upload larger than {} bytes (limits.max_body_bytes) is streamed, \
                             and must send its `model` field before its file, within its first {} bytes",
                            limits.max_body_bytes, UPLOAD_PREFIX_BYTES
                        ),
                    ))
                }
                Ok(_) => break,
                Err(e) => {
                    return Err(Error::client(
                        Kind::BadRequest,
                        format!("the multipart/form-data body is malformed: {e}"),
                    ))
                }
            }
            // Read into the room left before `cap`: never past the body.
            let room = head_len + cap - self.rbuf.len();
            self.rbuf.reserve(room);
            let owned = mem::replace(&mut self.rbuf, PooledBuf::empty());
            let at = owned.len();
            let read = before(deadline, self.stream.read(owned.slice_mut(at..at + room))).await;
            let Some((res, slice)) = read else {
                return Err(body_timeout());
            };
            self.rbuf = slice.into_inner();
            match res {
                Ok(0) => {
                    return Err(Error::client(
                        Kind::BadRequest,
                        "connection closed inside an upload",
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(Error::client(Kind::BadRequest, format!("read failed: {e}"))),
            }
        }
        let prefix = head_len..(head_len + cap).min(self.rbuf.len());
        let rest = len - prefix.len() as u64;
        let next = prefix.end;
        Ok((
            Body::Streamed(Upload {
                prefix,
                rest,
                deadline,
            }),
            next,
        ))
    }

    async fn read_chunked(
        &mut self,
        framing: &RequestFraming,
        limits: &LimitsConfig,
        deadline: Instant,
    ) -> Result<(Body, usize), Error> {
        let mut decoder = self.decoder.take().unwrap_or_else(|| {
            ChunkedDecoder::new(ChunkLimits {
                max_line_bytes: limits.max_chunk_line_bytes,
                max_trailer_bytes: 16 * 1024,
                max_body_bytes: limits.max_body_bytes as u64,
            })
        });
        decoder.reset();
        let result = self
            .read_chunked_with(&mut decoder, framing, limits, deadline)
            .await;
        self.decoder = Some(decoder);
        result
    }

    async fn read_chunked_with(
        &mut self,
        decoder: &mut ChunkedDecoder,
        framing: &RequestFraming,
        limits: &LimitsConfig,
        deadline: Instant,
    ) -> Result<(Body, usize), Error> {
        let head_len = self.head.head_len;
        let mut body = PooledBuf::take(READ_BUF_BYTES);
        let mut sent_continue = false;
        loop {
            let mut over_limit = false;
            let progress = decoder
                .feed(&self.rbuf[head_len..], |data| {
                    if body.len() + data.len() > limits.max_body_bytes {
                        over_limit = true;
                    } else {
                        body.extend_from_slice(data);
                    }
                })
                .map_err(|e| match e {
                    ChunkError::BodyTooLarge => too_large(limits),
                    e => Error::client(Kind::BadRequest, format!("invalid chunked body: {e:?}")),
                })?;
            if over_limit {
                return Err(too_large(limits));
            }
            if progress.done {
                // Keep the head (its spans are still used) and any pipelined
                // bytes after the body, contiguous.
                let next = head_len + progress.consumed;
                return Ok((Body::Decoded(body), next));
            }
            // Everything fed was consumed: drop it so raw chunk framing never
            // accumulates in `rbuf`.
            self.rbuf.truncate(head_len);
            if framing.expect_continue && !sent_continue {
                self.write_continue().await?;
                sent_continue = true;
            }
            self.read_body_more(deadline, "a chunked body").await?;
        }
    }

    /// Reads more body bytes before `deadline`; the client closing or
    /// failing inside the body (`inside`) ends the request.
    async fn read_body_more(
        &mut self,
        deadline: Instant,
        inside: &'static str,
    ) -> Result<(), Error> {
        let read = before(deadline, read_more(&mut self.stream, &mut self.rbuf))
            .await
            .ok_or_else(body_timeout)?;
        match read {
            Ok(0) => Err(Error::client(
                Kind::BadRequest,
                format!("connection closed inside {inside}"),
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(Error::client(Kind::BadRequest, format!("read failed: {e}"))),
        }
    }

    async fn write_continue(&mut self) -> Result<(), Error> {
        let mut buf = PooledBuf::take(64);
        buf.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        let (res, _) = write_all(&mut self.stream, buf).await;
        res.map_err(|e| Error::client(Kind::BadRequest, format!("write failed: {e}")))
    }

    /// Drops the finished request (and its body) from the front of `rbuf`,
    /// keeping pipelined bytes, and readies the scanner for the next head.
    pub fn finish_request(&mut self, next: usize) {
        self.rbuf.consume_front(next);
        self.scanner.reset();
    }

    /// Writes a complete response the gateway makes itself.
    pub async fn write_response(
        &mut self,
        status: u16,
        body: &[u8],
        close: bool,
        head_only: bool,
    ) -> io::Result<()> {
        let out = local_response(status, body, close, head_only, None, b"");
        let (res, _) = write_all(&mut self.stream, out).await;
        res
    }

    /// Writes an error response shaped for the client's dialect.
    pub async fn write_error(
        &mut self,
        err: &Error,
        close: bool,
        dialect: Dialect,
        rate: Option<&RateHeaders>,
    ) -> io::Result<()> {
        let mut body = PooledBuf::take(256);
        match dialect {
            Dialect::OpenAi => err.write_openai_body(&mut body),
            // Anthropic's errors have no code: it starts the message.
            Dialect::Anthropic => match err
                .code()
                .filter(|_| err.status() == 429 || err.status() == 503)
            {
                Some(code) => body.extend_from_slice(&anthropic_error(
                    err.status(),
                    &format!("{code}: {}", err.message),
                )),
                None => body.extend_from_slice(&anthropic_error(err.status(), &err.message)),
            },
        }
        // Overload is momentary: tell the client when to come back.
        let retry_after = err.retry_after_header();
        let mut extra = Vec::new();
        if let Some(rate) = rate {
            rate.push(&mut extra);
        }
        // A spent budget does not come back by retrying: the official SDKs
        // retry a 429 unless told not to.
        if err.kind == Kind::BudgetExceeded {
            extra.extend_from_slice(b"x-should-retry: false\r\n");
        }
        let out = local_response(err.status(), &body, close, false, retry_after, &extra);
        let (res, _) = write_all(&mut self.stream, out).await;
        res
    }
}

/// A complete response the gateway makes itself, JSON body, with
/// `Retry-After: retry_after` (whole seconds) when given.
pub fn local_response(
    status: u16,
    body: &[u8],
    close: bool,
    head_only: bool,
    retry_after: Option<u32>,
    extra_headers: &[u8],
) -> PooledBuf {
    let mut out = PooledBuf::take(256 + body.len() + extra_headers.len());
    push_status_line(&mut out, status);
    push_header(&mut out, b"content-type", b"application/json");
    push_content_length(&mut out, body.len() as u64);
    if let Some(seconds) = retry_after {
        push_header(
            &mut out,
            b"retry-after",
            itoa::Buffer::new().format(seconds).as_bytes(),
        );
    }
    out.extend_from_slice(extra_headers);
    if close {
        push_header(&mut out, b"connection", b"close");
    }
    end_head(&mut out);
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn head_error(e: HeadError) -> Error {
    match e {
        HeadError::Invalid(why) => {
            Error::client(Kind::BadRequest, format!("malformed request: {why}"))
        }
        HeadError::TooLarge => Error::client(Kind::HeadersTooLarge, "request head too large"),
        HeadError::TooManyHeaders => {
            Error::client(Kind::HeadersTooLarge, "too many request headers")
        }
    }
}

fn body_timeout() -> Error {
    read_timeout("the request body did not arrive in time")
}

fn too_large(limits: &LimitsConfig) -> Error {
    Error::client(
        Kind::PayloadTooLarge,
        format!(
            "request body exceeds the limit of {} bytes",
            limits.max_body_bytes
        ),
    )
}
