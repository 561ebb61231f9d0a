//! The CPU-heavy work on a large request body (the JSON admission scan, the
//! dialect translation), done on the process's blocking pool (attached to
//! every shard runtime in `runtime`) instead of the shard's event loop, so
//! one large body does not hold up the shard's other connections (health
//! checks, streams in flight) for the tens of milliseconds it takes.
//!
//! Invariants:
//! - [`applies`] is the one place that decides: a body below
//!   `limits.offload_body_bytes` is scanned and translated on the loop as
//!   before, and pays nothing here.
//! - The body is not copied: its buffer (the read buffer, or the decoded
//!   chunked body) is moved to the job and back when the job is done; the
//!   connection does nothing else meanwhile. The job sees exactly the bytes
//!   the shard would have, so a scan's spans hold against them afterwards.
//! - A client that leaves while its job runs is let go at once (499): the
//!   job runs to its end on the pool and its result, buffer included, is
//!   dropped there. Nothing is kept for it.
//! - At most [`MAX_QUEUED`] jobs are waiting or running, process-wide; a
//!   job's place is freed when the job itself ends (not when its client
//!   leaves). Past that a request is refused with 503 and `Retry-After`
//!   (in its client's dialect), instead of queuing without bound.

use crate::net::ClientIo;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::downstream::{Body, Downstream};
use super::exchange::PIPELINED_RECHECK;
use super::route::{admission_error, translate_body, translate_error, translate_limits, Plan};
use crate::buf::PooledBuf;
use crate::config::LimitsConfig;
use crate::error::{Error, Kind};
use crate::json::{scan_top_level, TopLevel};
use crate::shard::Gateway;

/// Large-body jobs waiting for the pool or running on it, at most: with
/// the pool's couple of threads and some tens of milliseconds a job at
/// worst, a request past this would wait about a second for its turn.
const MAX_QUEUED: usize = 16;

/// Jobs taken and not yet finished, all shards together.
static QUEUED: AtomicUsize = AtomicUsize::new(0);

/// Whether `body`'s work goes off the loop.
pub(super) fn applies(limits: &LimitsConfig, body: &Body) -> bool {
    !matches!(body, Body::Streamed(_)) && body.len() >= limits.offload_body_bytes as u64
}

/// What became of work sent off the loop.
pub(super) enum OffLoop<T> {
    Done(T),
    /// The client left before it was done (nothing was sent upstream).
    ClientLeft,
}

/// Validates the body and locates its top-level fields, off the loop; the
/// result holds for the same bytes (what `Source::Scanned` needs).
pub(super) async fn scan<S: ClientIo>(
    down: &mut Downstream<S>,
    body: &mut Body,
) -> Result<OffLoop<TopLevel<'static>>, Error> {
    let scanned = run(down, body, |bytes| {
        scan_top_level(bytes).map(TopLevel::into_owned)
    })
    .await?;
    Ok(match scanned {
        OffLoop::Done(top) => OffLoop::Done(top.map_err(admission_error)?),
        OffLoop::ClientLeft => OffLoop::ClientLeft,
    })
}

/// Translates the body for `plan`, off the loop, when `plan_request` left
/// its translation to be done (a scanned source); otherwise nothing.
pub(super) async fn translate<S: ClientIo>(
    gw: &Gateway,
    down: &mut Downstream<S>,
    body: &mut Body,
    plan: &mut Plan<'_>,
) -> Result<OffLoop<()>, Error> {
    let Plan::Translate {
        body: out @ None,
        upstream_model,
        call,
        ..
    } = plan
    else {
        return Ok(OffLoop::Done(()));
    };
    let model = upstream_model.to_string();
    let mut translation = call.translation.clone();
    let limits = translate_limits(gw);
    let done = run(down, body, move |bytes| {
        let translated = translate_body(bytes, &mut translation, &model, limits);
        (translated, translation)
    })
    .await?;
    let OffLoop::Done((translated, translation)) = done else {
        return Ok(OffLoop::ClientLeft);
    };
    *out = Some(translated.map_err(translate_error)?);
    call.translation = translation;
    Ok(OffLoop::Done(()))
}

/// Runs `job` over the body's bytes on the blocking pool, lending it the
/// body's buffer, while the shard serves its other connections.
async fn run<S: ClientIo, T, F>(
    down: &mut Downstream<S>,
    body: &mut Body,
    job: F,
) -> Result<OffLoop<T>, Error>
where
    F: FnOnce(&[u8]) -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(place) = Place::take() else {
        return Err(Error::gateway(
            Kind::Overloaded,
            "too many large request bodies are being processed; retry shortly",
        ));
    };
    let (buf, range) = match body {
        // Never sent off the loop (`applies`).
        Body::Empty | Body::Streamed(_) => (Vec::new(), 0..0),
        Body::InPlace(r) => (mem::take(&mut *down.rbuf), r.clone()),
        Body::Decoded(b) => {
            let len = b.len();
            (mem::take(&mut **b), 0..len)
        }
    };
    let handle = monoio::spawn_blocking(move || {
        // A panic is this request's alone (as on a shard, where the
        // connection catches it): the buffer still comes back.
        let out = panic::catch_unwind(AssertUnwindSafe(|| job(&buf[range])));
        drop(place);
        (buf, out)
    });
    let gone = crate::net::peer_gone(down.stream.tcp(), PIPELINED_RECHECK);
    let joined = monoio::select! {
        biased;
        joined = handle => joined,
        () = gone => return Ok(OffLoop::ClientLeft),
    };
    let Ok((buf, out)) = joined else {
        // The pool dropped the job (the process is going down): so went
        // the body with it.
        return Err(Error::gateway(
            Kind::Internal,
            "the request body was lost off the event loop",
        ));
    };
    match body {
        Body::Empty | Body::Streamed(_) => {}
        Body::InPlace(_) => down.rbuf = PooledBuf::from_vec(buf),
        Body::Decoded(b) => *b = PooledBuf::from_vec(buf),
    }
    match out {
        Ok(out) => Ok(OffLoop::Done(out)),
        Err(_) => Err(Error::gateway(
            Kind::Internal,
            "processing the request body failed",
        )),
    }
}

/// One of the [`MAX_QUEUED`] places; freed on drop (on the pool thread,
/// when the job ends).
struct Place(());

impl Place {
    fn take() -> Option<Place> {
        let before = QUEUED.fetch_add(1, Ordering::AcqRel);
        if before >= MAX_QUEUED {
            QUEUED.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Place(()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        QUEUED.fetch_sub(1, Ordering::AcqRel);
    }
}
