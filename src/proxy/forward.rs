//! The upstream phase of a request: send the assembled request on a pooled
//! (or fresh) connection, read the response head, and relay the response to
//! the client as it arrives, one upstream read → one client write. Every
//! wait runs on the provider's own timeouts (`Provider::timeouts`); one
//! attempt's clock, started at the send, bounds the head and every body read
//! (see `upstream::timeouts`).
//!
//! Invariants:
//! - A pooled connection is checked (a peek, see `upstream::pool`) right
//!   before the request is written on it: there is no await between taking
//!   it and the write.
//! - A request is re-sent at once only after a *reused* connection failed,
//!   only once, on a fresh connection, and only when the upstream provably
//!   did not read it (the write failed before a byte of it was taken) or
//!   it is idempotent: a POST the upstream read and then dropped may have
//!   been done, and billed. Each failure says which (`error::Retry`), and
//!   [`resend_on_fresh`] alone decides.
//! - A connection goes back to the pool only after a complete, well-framed
//!   response with nothing after it.
//! - While the response head (or a held error body) is awaited, the client
//!   is watched: one that left has its upstream request abandoned at once
//!   (the connection closed, never pooled), not held to the first-byte
//!   timeout. One that pipelined its next request meanwhile is still there.

use super::exchange::{
    is_held_status, ClientFacts, Held, OutgoingRequest, Relayed, Report, UpstreamSide,
    PIPELINED_RECHECK, RESPONSE_BUF_BYTES,
};
use super::relay::relay_response;
use std::future::Future;
use std::mem;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use super::downstream::Upload;
use crate::buf::{write_all, write_all_vectored, IoVecs, PooledBuf};
use crate::error::{Error, Kind, Retry};
use crate::http1::framing::{response_framing, BodyKind};
use crate::http1::parse::Parsed;
use crate::net::peer_gone;
use crate::net::{ClientIo, ClientStream};
use crate::providers::Provider;
use crate::proxy::downstream::read_more;
use crate::runtime::loop_now;
use crate::shard::{Generation, Shard};
use crate::upstream::timeouts::Timeouts;
use crate::upstream::timeouts::{AttemptClock, Expired};
use crate::upstream::{connect, UpstreamConn, UpstreamPool};

use super::translated::{relay_translated, TranslatedCall};

/// How long the response head may take before the client is watched for
/// having left. A head that comes sooner (a local or cached upstream, a
/// benchmark's mock) costs the watch one entry in monoio's timer wheel and
/// no syscall; a later one adds a readiness poll on the client socket (on
/// io_uring a PollAdd and, when the head comes, its cancel, riding the
/// ring's next submit; on epoll a poll(2) at arming), against a wait that
/// is by then at least this long. An LLM's head takes hundreds of ms.
const WATCH_CLIENT_AFTER: Duration = Duration::from_millis(10);

/// The most of a held error body read ahead for the retry decision.
const HELD_BODY_BYTES: usize = 16 * 1024;

/// Where one attempt goes and how its response is read.
pub struct Leg<'a> {
    pub shard: &'a Shard,
    pub generation: &'a Generation,
    pub provider: usize,
    /// How the response is translated for the client, if it is.
    pub translation: Option<&'a TranslatedCall>,
    /// Hold back an error response another attempt might improve on
    /// (see [`is_held_status`]) instead of relaying it ([`Relayed::Held`]).
    pub hold: bool,
}

/// Sends `req` along `leg` and relays the response to `client`. An `Err`
/// means nothing has been written to the client yet, so the caller can
/// still answer with an error. The request's body buffer is handed back,
/// except after an upstream write that timed out (`None`: the body is
/// gone). `on_head` is told the status as soon as the response head
/// arrives.
pub async fn forward<S: ClientIo>(
    leg: &Leg<'_>,
    side: &mut UpstreamSide,
    mut req: OutgoingRequest,
    client: &mut ClientStream<S>,
    facts: &ClientFacts,
    on_head: &mut dyn FnMut(u16),
) -> (Result<Relayed, Error>, Option<PooledBuf>) {
    let &Leg {
        shard,
        generation,
        provider,
        translation,
        hold,
    } = leg;
    // Nothing of an upload is held back for another attempt to improve on:
    // there can be none.
    let hold = hold && req.upload.is_none();
    side.discard_held();
    let gw = &generation.gateway;
    let p = &gw.router.providers[provider];
    let pool = &generation.pools[provider];
    if p.addrs.is_empty() {
        let err = Error::upstream(
            Kind::UpstreamConnect,
            true,
            format!("provider {}: cannot resolve {}", p.name, p.url.host),
        );
        return (Err(err), req.body.take());
    }

    side.report = Report {
        // A clock read, not the loop clock: the upstream latency runs from it.
        sent_at: Some(Instant::now()),
        ..Report::default()
    };
    let mut urbuf = PooledBuf::take(RESPONSE_BUF_BYTES);
    let dial = ProviderDial {
        shard,
        provider,
        p,
        pool,
    };
    let exchanged = match req.upload.take() {
        None => exchange(&dial, side, &mut req, &mut urbuf, client.tcp()).await,
        Some(upload) => exchange_upload(&dial, side, &mut req, &mut urbuf, client, &upload).await,
    };
    let body_buf = req.body.take();
    let (mut up, clock) = match exchanged {
        Exchanged::Head(up, clock) => (up, clock),
        Exchanged::Failed(e) => return (Err(e), body_buf),
        // The buffers went with the cancelled write: nothing can be
        // re-sent, and the caller closes the client connection after
        // answering.
        Exchanged::WriteTimedOut(e) => return (Err(e), None),
        Exchanged::ClientLeft => return (Ok(Relayed::Broken), body_buf),
    };
    if let Some(refused) = super::headers::response_head_refusal(&side.head, &urbuf) {
        return (Err(refused), body_buf);
    }
    on_head(side.head.status);
    if hold && is_held_status(side.head.status) {
        let read = {
            let read = pin!(read_error_body(&mut up, &mut urbuf, side, clock));
            unless_client_leaves(client.tcp(), read).await
        };
        let Some(read) = read else {
            side.report.client_left = true;
            return (Ok(Relayed::Broken), body_buf);
        };
        if let Err(expired) = read {
            let err = Error::upstream(
                Kind::UpstreamTimeout,
                false,
                format!(
                    "{} {expired} (inside a {} response)",
                    p.name, side.head.status
                ),
            );
            return (Err(err), body_buf);
        }
        side.hold(Held {
            up,
            urbuf,
            hbuf: req.head,
            provider,
            clock,
        });
        return (Ok(Relayed::Held), body_buf);
    }
    let relayed = match translation {
        None => relay_response(&mut up, urbuf, req.head, side, client, facts, clock).await,
        Some(call) => relay_translated(&mut up, urbuf, side, client, facts, call, clock).await,
    };
    if let Ok(Relayed::Complete { .. }) = &relayed {
        if side.report.reusable {
            pool.put(up);
        }
    }
    (relayed, body_buf)
}

/// What sending a request and reading its response head came to.
pub(super) enum Exchanged<C> {
    /// The head is in `side.head` (its bytes in the read buffer).
    Head(C, AttemptClock),
    /// Nothing reached the client; the request's buffers are back.
    Failed(Error),
    /// The upstream did not take the request in time; the request's
    /// buffers went with the cancelled write.
    WriteTimedOut(Error),
    /// The client left while the head was awaited: the request abandoned.
    ClientLeft,
}

/// Where an attempt's connections come from: the provider's pool, checked
/// as a connection is taken, and fresh connections.
pub(super) trait Dial {
    type Conn: AsyncReadRent + AsyncWriteRent;
    /// The upstream's name, for errors.
    fn name(&self) -> &str;
    fn timeouts(&self) -> Timeouts;
    /// A pooled connection that is still good, if any.
    fn pooled(&self) -> Option<Self::Conn>;
    /// A fresh connection.
    async fn dial(&self) -> Result<Self::Conn, Error>;
}

/// A provider's connections on this shard, counted in its metrics.
struct ProviderDial<'a> {
    shard: &'a Shard,
    provider: usize,
    p: &'a Provider,
    pool: &'a UpstreamPool,
}

impl Dial for ProviderDial<'_> {
    type Conn = UpstreamConn;

    fn name(&self) -> &str {
        &self.p.name
    }

    fn timeouts(&self) -> Timeouts {
        self.p.timeouts
    }

    fn pooled(&self) -> Option<UpstreamConn> {
        let conn = self.pool.take()?;
        let metrics = &self.shard.metrics;
        metrics.upstream_connection(metrics.labels().provider(self.provider), true);
        Some(conn)
    }

    async fn dial(&self) -> Result<UpstreamConn, Error> {
        let metrics = &self.shard.metrics;
        metrics.upstream_connection(metrics.labels().provider(self.provider), false);
        let tls = self.p.tls.as_ref().map(|(c, n)| (c, n));
        connect(&self.p.addrs, tls, self.p.timeouts.connect).await
    }
}

/// Sends `req` on a connection from `dial` and reads the response head
/// into `urbuf` and `side.head`, re-sending once on a fresh connection when
/// a reused one failed and [`resend_on_fresh`] allows it. The client
/// (`client`) is watched while the head is awaited.
pub(super) async fn exchange<D: Dial>(
    dial: &D,
    side: &mut UpstreamSide,
    req: &mut OutgoingRequest,
    urbuf: &mut PooledBuf,
    client: &impl ClientWatch,
) -> Exchanged<D::Conn> {
    let (name, timeouts) = (dial.name(), dial.timeouts());
    let mut iov = side.iov.take().unwrap_or_default();
    let idempotent = req.is_idempotent();
    let mut resent = false;
    let exchanged = loop {
        // Checked as it is taken: no await from here to the write.
        let pooled = if resent { None } else { dial.pooled() };
        let reused = pooled.is_some();
        let mut up = match pooled {
            Some(c) => c,
            None => match dial.dial().await {
                Ok(c) => c,
                Err(e) => break Exchanged::Failed(e),
            },
        };
        // The total runs from the send (connecting has its own limit).
        let clock = AttemptClock::start(timeouts, loop_now());
        // Hand the buffers to the iovec for the write, take them back after.
        let Some((res, none_taken, back)) =
            write_request(&mut up, req, iov, timeouts.first_byte).await
        else {
            return Exchanged::WriteTimedOut(write_timed_out(name, "request", timeouts.first_byte));
        };
        iov = back;
        if let Err(e) = res {
            let retry = reached(none_taken, reused);
            if resend_on_fresh(retry, reused, idempotent, resent) {
                resent = true;
                continue;
            }
            break closed(retry, format!("writing to {name} failed: {e}"));
        }
        urbuf.clear();
        side.scanner.reset();
        let head = {
            let head = pin!(clock.head(read_response_head(&mut up, urbuf, side)));
            unless_client_leaves(client, head).await
        };
        let Some(head) = head else {
            side.report.client_left = true;
            break Exchanged::ClientLeft;
        };
        match head {
            Ok(Ok(())) => break Exchanged::Head(up, clock),
            Ok(Err(HeadFailure::ClosedBeforeResponse(e))) => {
                // Written whole: the upstream may have read it, acted on it
                // and then closed.
                let retry = reached(false, reused);
                if resend_on_fresh(retry, reused, idempotent, resent) {
                    resent = true;
                    continue;
                }
                break closed(
                    retry,
                    format!("{name} closed the connection before responding{e}"),
                );
            }
            Ok(Err(HeadFailure::Malformed(why))) => {
                break Exchanged::Failed(Error::upstream(
                    Kind::UpstreamProtocol,
                    false,
                    format!("{name}: {why}"),
                ))
            }
            Err(expired) => {
                break Exchanged::Failed(Error::upstream(
                    Kind::UpstreamTimeout,
                    false,
                    format!("{name} {expired}"),
                ))
            }
        }
    };
    side.iov = Some(iov);
    exchanged
}

/// Writes `req`'s head and body segments on `up` within `limit` and takes
/// its buffers back: the write's result, whether not a byte of it was
/// taken, and the iovecs. `None` when the time ran out: the buffers went
/// with the cancelled write.
async fn write_request(
    up: &mut impl AsyncWriteRent,
    req: &mut OutgoingRequest,
    mut iov: IoVecs,
    limit: Duration,
) -> Option<(std::io::Result<()>, bool, IoVecs)> {
    iov.reset(
        mem::replace(&mut req.head, PooledBuf::empty()),
        req.body.take(),
    );
    req.segments(&mut iov);
    let request_len = iov.remaining();
    let (res, mut iov) = monoio::time::timeout(limit, write_all_vectored(up, iov))
        .await
        .ok()?;
    // Not a byte taken: the upstream cannot have read the request. (A TLS
    // stream takes the first segment, the head, before writing it: it may
    // have had part of the head, never the body.)
    let none_taken = iov.remaining() == request_len;
    let (h, b) = iov.take_bufs();
    req.head = h.expect("head buffer returned");
    req.body = b;
    Some((res, none_taken, iov))
}

/// The error of an upstream that did not take `what` within `limit`.
fn write_timed_out(name: &str, what: &str, limit: Duration) -> Error {
    Error::upstream(
        Kind::UpstreamTimeout,
        false,
        format!("{name} did not take the {what} within {limit:?}"),
    )
}

/// How much of an upload is copied at a time.
const UPLOAD_COPY_BYTES: usize = 64 * 1024;

/// [`exchange`] for an upload streamed through: on a fresh connection (a
/// stale pooled one could fail after the copy began, and nothing can be
/// sent again then), the request's head and the upload's start, then the
/// rest copied from the client as it arrives, then the response head.
/// Once the copy begins (`side.report.upload_taken`), every failure is
/// final. The client is not watched during the copy: its reads tell.
async fn exchange_upload<S: ClientIo>(
    dial: &ProviderDial<'_>,
    side: &mut UpstreamSide,
    req: &mut OutgoingRequest,
    urbuf: &mut PooledBuf,
    client: &mut ClientStream<S>,
    upload: &Upload,
) -> Exchanged<UpstreamConn> {
    let (name, timeouts) = (dial.name(), dial.timeouts());
    let mut up = match dial.dial().await {
        Ok(c) => c,
        Err(e) => return Exchanged::Failed(e),
    };
    let clock = AttemptClock::start(timeouts, loop_now());
    let iov = side.iov.take().unwrap_or_default();
    let Some((res, none_taken, iov)) = write_request(&mut up, req, iov, timeouts.first_byte).await
    else {
        return Exchanged::WriteTimedOut(write_timed_out(name, "upload", timeouts.first_byte));
    };
    side.iov = Some(iov);
    if let Err(e) = res {
        return closed(
            reached(none_taken, false),
            format!("writing to {name} failed: {e}"),
        );
    }
    side.report.upload_taken = true;
    if let Err(cut) = copy_upload(client, &mut up, upload, timeouts.first_byte).await {
        return match cut {
            UploadCut::Client(why) => {
                side.report.client_left = true;
                Exchanged::Failed(Error::client(Kind::BadRequest, why))
            }
            UploadCut::Upstream(why) => closed(Retry::Never, format!("{name} {why}")),
        };
    }
    urbuf.clear();
    side.scanner.reset();
    let head = {
        let head = pin!(clock.head(read_response_head(&mut up, urbuf, side)));
        unless_client_leaves(client.tcp(), head).await
    };
    match head {
        None => {
            side.report.client_left = true;
            Exchanged::ClientLeft
        }
        Some(Ok(Ok(()))) => Exchanged::Head(up, clock),
        Some(Ok(Err(HeadFailure::ClosedBeforeResponse(e)))) => closed(
            Retry::Never,
            format!("{name} closed the connection before responding{e}"),
        ),
        Some(Ok(Err(HeadFailure::Malformed(why)))) => Exchanged::Failed(Error::upstream(
            Kind::UpstreamProtocol,
            false,
            format!("{name}: {why}"),
        )),
        Some(Err(expired)) => Exchanged::Failed(Error::upstream(
            Kind::UpstreamTimeout,
            false,
            format!("{name} {expired}"),
        )),
    }
}

/// Why an upload's copy stopped short.
enum UploadCut {
    /// The client closed, failed or was too slow inside its body.
    Client(String),
    /// The upstream stopped taking it.
    Upstream(String),
}

/// Copies the `upload.rest` bytes still on the client's socket to `up`,
/// one buffer at a time: each read bounded by the upload's deadline, each
/// write by `write_timeout`. Never reads past the body.
async fn copy_upload<S: ClientIo>(
    client: &mut ClientStream<S>,
    up: &mut impl AsyncWriteRent,
    upload: &Upload,
    write_timeout: Duration,
) -> Result<(), UploadCut> {
    let mut rest = upload.rest;
    let mut buf = PooledBuf::take(UPLOAD_COPY_BYTES);
    while rest > 0 {
        let want = (rest as usize).min(UPLOAD_COPY_BYTES);
        buf.clear();
        let left = upload.deadline.saturating_duration_since(loop_now());
        let read = monoio::time::timeout(left, client.read(buf.slice_mut(0..want))).await;
        let Ok((res, slice)) = read else {
            return Err(UploadCut::Client(
                "the upload did not arrive in time (limits.body_read_timeout_ms)".into(),
            ));
        };
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(UploadCut::Client(
                    "connection closed inside an upload".into(),
                ))
            }
            Ok(n) => rest -= n as u64,
            Err(e) => {
                return Err(UploadCut::Client(format!(
                    "read failed inside an upload: {e}"
                )))
            }
        }
        let written = monoio::time::timeout(write_timeout, write_all(up, buf)).await;
        let Ok((res, back)) = written else {
            return Err(UploadCut::Upstream(format!(
                "did not take the upload within {write_timeout:?}"
            )));
        };
        buf = back;
        if let Err(e) = res {
            return Err(UploadCut::Upstream(format!(
                "stopped taking the upload: {e}"
            )));
        }
    }
    Ok(())
}

/// Relays the response [`forward`] held, as it would have relayed it.
pub async fn relay_held<S: ClientIo>(
    generation: &Generation,
    side: &mut UpstreamSide,
    client: &mut ClientStream<S>,
    facts: &ClientFacts,
    translation: Option<&TranslatedCall>,
) -> Result<Relayed, Error> {
    let Some(Held {
        mut up,
        urbuf,
        hbuf,
        provider,
        clock,
    }) = side.take_held()
    else {
        return Ok(Relayed::Broken);
    };
    let relayed = match translation {
        None => relay_response(&mut up, urbuf, hbuf, side, client, facts, clock).await,
        Some(call) => relay_translated(&mut up, urbuf, side, client, facts, call, clock).await,
    };
    if let Ok(Relayed::Complete { .. }) = &relayed {
        if side.report.reusable {
            generation.pools[provider].put(up);
        }
    }
    relayed
}

/// How far a request got on a connection that then closed or failed:
/// not a byte of it taken (`none_taken`) means the upstream cannot have
/// read it; otherwise it may have, and only a `reused` connection's
/// failure can be the connection's (gone stale) rather than the upstream's.
fn reached(none_taken: bool, reused: bool) -> Retry {
    match (none_taken, reused) {
        (true, _) => Retry::Safe,
        (false, true) => Retry::ReusedOnly,
        (false, false) => Retry::Never,
    }
}

fn closed<C>(retry: Retry, why: String) -> Exchanged<C> {
    Exchanged::Failed(Error::upstream(Kind::UpstreamClosed, retry, why))
}

/// Whether an exchange that failed, as `retry` says, on a connection that
/// was `reused` is sent again at once on a fresh connection: once per
/// request (`resent`), only after a reused connection failed (a fresh one
/// failing tells of the upstream, and is the retry policy's to judge), and
/// only when the upstream cannot have read it, or it was read but may
/// safely be done twice (`idempotent`).
fn resend_on_fresh(retry: Retry, reused: bool, idempotent: bool, resent: bool) -> bool {
    if resent || !reused {
        return false;
    }
    match retry {
        Retry::Safe => true,
        Retry::ReusedOnly => idempotent,
        Retry::Never => false,
    }
}

/// A client connection that may be watched for having left.
pub(super) trait ClientWatch {
    /// Resolves once the client has gone.
    fn gone(&self) -> impl Future<Output = ()>;
}

impl ClientWatch for TcpStream {
    fn gone(&self) -> impl Future<Output = ()> {
        peer_gone(self, PIPELINED_RECHECK)
    }
}

/// Runs `work` unless the client leaves first (`None`): the client socket
/// is watched once `work` has taken [`WATCH_CLIENT_AFTER`], and `work` is
/// dropped (cancelled) the moment the client is seen gone.
///
/// `work` comes pinned in the caller's frame: moved in by value, it would
/// be stored twice in this future (a coroutine keeps a moved-from argument's
/// slot), and this is the deepest await of every upstream exchange, so its
/// size is every connection task's size.
async fn unless_client_leaves<F: Future>(
    client: &impl ClientWatch,
    work: Pin<&mut F>,
) -> Option<F::Output> {
    let gone = async {
        monoio::time::sleep(WATCH_CLIENT_AFTER).await;
        client.gone().await
    };
    monoio::select! {
        biased;
        out = work => Some(out),
        () = gone => None,
    }
}

/// Reads ahead (bounded, best effort) so a held error's body is at hand for
/// the retry decision; what was read stays in `urbuf` for the relay. `Err`
/// when a limit ran out first: the response cannot be relayed (the timed-out
/// read took `urbuf`, head and all, with it) nor finished in time.
pub(super) async fn read_error_body(
    up: &mut impl AsyncReadRent,
    urbuf: &mut PooledBuf,
    side: &UpstreamSide,
    clock: AttemptClock,
) -> Result<(), Expired> {
    let head_len = side.head.head_len;
    let want = match response_framing(urbuf, &side.head, false).map(|f| f.body) {
        Ok(BodyKind::Length(n)) => (n as usize).min(HELD_BODY_BYTES),
        Ok(BodyKind::Chunked) | Ok(BodyKind::CloseDelimited) => HELD_BODY_BYTES,
        _ => 0,
    };
    while urbuf.len() - head_len < want && !urbuf[head_len..].ends_with(b"0\r\n\r\n") {
        match clock.body(read_more(up, urbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => break,
            Err(expired) => return Err(expired),
        }
    }
    Ok(())
}

pub(super) enum HeadFailure {
    /// EOF or reset before the first response byte, after the request was
    /// written: the upstream may or may not have read it.
    ClosedBeforeResponse(String),
    Malformed(String),
}

pub(super) async fn read_response_head(
    up: &mut impl AsyncReadRent,
    urbuf: &mut PooledBuf,
    side: &mut UpstreamSide,
) -> Result<(), HeadFailure> {
    // Over `limits.max_response_head_bytes` or `max_response_headers`:
    // malformed.
    let limits = side.limits.head;
    loop {
        match side.scanner.response(urbuf, &limits, &mut side.head) {
            Ok(Parsed::Complete) => {
                // Interim responses (100 Continue, 103 Early Hints) precede the real one.
                if (100..200).contains(&side.head.status) && side.head.status != 101 {
                    let n = side.head.head_len;
                    urbuf.drain(..n);
                    side.scanner.reset();
                    continue;
                }
                return Ok(());
            }
            Ok(Parsed::Partial) => {}
            Err(e) => {
                return Err(HeadFailure::Malformed(format!(
                    "malformed response head: {e:?}"
                )))
            }
        }
        let was_empty = urbuf.is_empty();
        match read_more(up, urbuf).await {
            Ok(0) if was_empty => return Err(HeadFailure::ClosedBeforeResponse(String::new())),
            Ok(0) => {
                return Err(HeadFailure::Malformed(
                    "connection closed inside the response head".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if was_empty => return Err(HeadFailure::ClosedBeforeResponse(format!(": {e}"))),
            Err(e) => {
                return Err(HeadFailure::Malformed(format!(
                    "read failed inside the response head: {e}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_reused_connection_that_failed_is_resent_once_and_only_when_safe() {
        use Retry::*;
        // (retry, reused, idempotent) → re-sent at once on a fresh connection.
        let cases = [
            (Safe, true, false, true),
            (Safe, true, true, true),
            (ReusedOnly, true, true, true),
            (ReusedOnly, true, false, false),
            (Never, true, true, false),
            (Never, true, false, false),
            // A fresh connection's failure is the retry policy's to judge.
            (Safe, false, true, false),
            (ReusedOnly, false, true, false),
        ];
        for (retry, reused, idempotent, expected) in cases {
            assert_eq!(
                resend_on_fresh(retry, reused, idempotent, false),
                expected,
                "{retry:?} reused={reused} idempotent={idempotent}"
            );
            assert!(!resend_on_fresh(retry, reused, idempotent, true), "twice");
        }
    }

    #[test]
    fn idempotence_is_read_off_the_request_line() {
        let request = |line: &[u8]| {
            let mut head = PooledBuf::take(64);
            head.extend_from_slice(b"xx");
            head.extend_from_slice(line);
            OutgoingRequest {
                head_range: 2..head.len(),
                head,
                value_range: 0..0,
                body: None,
                body_range: 0..0,
                patch: None,
                insert: None,
                upload: None,
            }
        };
        for line in [&b"GET /v1/models HTTP/1.1\r\n"[..], b"HEAD / HTTP/1.1\r\n"] {
            assert!(request(line).is_idempotent());
        }
        for line in [
            &b"POST /v1/chat/completions HTTP/1.1\r\n"[..],
            b"PATCH / HTTP/1.1\r\n",
            b"GETX / HTTP/1.1\r\n",
            b"",
        ] {
            assert!(!request(line).is_idempotent());
        }
    }
}
