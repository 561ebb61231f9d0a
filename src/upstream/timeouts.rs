//! An upstream attempt's time limits (connect, first response byte, silence
//! between body reads, and the whole exchange), resolved per provider when
//! the config is loaded, and [`AttemptClock`], which turns them into how
//! long each read of one attempt may wait ([`Within`]: the read and its
//! timer as one future).
//!
//! Invariants: no read of an attempt waits past its total deadline, and
//! none starts once that deadline has passed (a read that is always ready
//! at once would otherwise outrun it). The total costs no timer of its
//! own: it only shortens the one timer each read already has.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use monoio::time::Timeout;

/// The time limits of one upstream attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// From the request's send to the first byte of the response head.
    pub first_byte: Duration,
    /// Longest silence between two reads of the response body.
    pub idle: Duration,
    /// From the request's send to the last response byte; `None`: unbounded.
    pub total: Option<Duration>,
}

/// Which limit a read ran into, and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    FirstByte(Duration),
    Idle(Duration),
    Total(Duration),
}

impl fmt::Display for Expired {
    /// Completes "<the upstream> …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expired::FirstByte(d) => write!(f, "sent no response within {d:?}"),
            Expired::Idle(d) => write!(f, "was silent for {d:?}"),
            Expired::Total(d) => write!(f, "did not finish within the total timeout of {d:?}"),
        }
    }
}

/// What a read waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The response head (bounded by `first_byte`).
    Head,
    /// More of the body (bounded by `idle`).
    Body,
}

/// The clock of one attempt, started when its request is sent.
#[derive(Clone, Copy, Debug)]
pub struct AttemptClock {
    limits: Timeouts,
    /// `sent + total`; `None` when the total is unbounded.
    deadline: Option<Instant>,
}

impl AttemptClock {
    pub fn start(limits: Timeouts, sent: Instant) -> AttemptClock {
        AttemptClock {
            limits,
            deadline: limits.total.and_then(|t| sent.checked_add(t)),
        }
    }

    /// Reads the response head within the first-byte limit (and the total).
    pub fn head<F: Future>(&self, read: F) -> Within<F> {
        self.within(Phase::Head, read)
    }

    /// One read of the body within the idle limit (and the total).
    pub fn body<F: Future>(&self, read: F) -> Within<F> {
        self.within(Phase::Body, read)
    }

    fn within<F: Future>(&self, phase: Phase, read: F) -> Within<F> {
        match self.wait(phase, crate::runtime::loop_now) {
            Ok((wait, limit)) => Within {
                read: Some(monoio::time::timeout(wait, read)),
                limit,
            },
            Err(limit) => Within { read: None, limit },
        }
    }

    /// How long a read in `phase` may wait, and the limit reported if it
    /// runs out; `Err` when the total deadline has already passed. `now` is
    /// only asked for when there is a total deadline.
    fn wait(
        &self,
        phase: Phase,
        now: impl FnOnce() -> Instant,
    ) -> Result<(Duration, Expired), Expired> {
        let own = match phase {
            Phase::Head => (
                self.limits.first_byte,
                Expired::FirstByte(self.limits.first_byte),
            ),
            Phase::Body => (self.limits.idle, Expired::Idle(self.limits.idle)),
        };
        let (Some(deadline), Some(total)) = (self.deadline, self.limits.total) else {
            return Ok(own);
        };
        let left = deadline.saturating_duration_since(now());
        if left.is_zero() {
            return Err(Expired::Total(total));
        }
        Ok(if left < own.0 {
            (left, Expired::Total(total))
        } else {
            own
        })
    }
}

/// A read bounded by an attempt's clock: the read and its timer as one
/// plain future. (Async wrappers moved the read's whole state, often
/// kilobytes, once per layer on every read.) Its wait is measured when it
/// is made, so it is awaited at once.
#[must_use = "a read does nothing unless awaited"]
pub struct Within<F> {
    /// `None`: the total deadline had passed, so the read never starts.
    read: Option<Timeout<F>>,
    /// Reported when the timer runs out (or had already).
    limit: Expired,
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `read` is pinned along with `self`: nothing moves it out
        // or replaces it, and `Within` has no `Drop` of its own.
        let (read, limit) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.read), this.limit)
        };
        match read.as_pin_mut() {
            Some(read) => read.poll(cx).map(|r| r.map_err(|_| limit)),
            None => Poll::Ready(Err(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits(total: Option<Duration>) -> Timeouts {
        Timeouts {
            connect: 100 * MS,
            first_byte: 300 * MS,
            idle: 200 * MS,
            total,
        }
    }

    #[test]
    fn without_a_total_each_phase_waits_its_own_limit_and_never_reads_the_clock() {
        let t0 = Instant::now();
        let c = AttemptClock::start(limits(None), t0);
        let never = || -> Instant { panic!("no clock read without a total") };
        assert_eq!(
            c.wait(Phase::Head, never),
            Ok((300 * MS, Expired::FirstByte(300 * MS)))
        );
        assert_eq!(
            c.wait(Phase::Body, never),
            Ok((200 * MS, Expired::Idle(200 * MS)))
        );
    }

    #[test]
    fn the_total_shortens_a_wait_that_would_outlast_it() {
        let t0 = Instant::now();
        let c = AttemptClock::start(limits(Some(1000 * MS)), t0);
        let total = Expired::Total(1000 * MS);
        // Far from the deadline: the phase's own limit.
        assert_eq!(
            c.wait(Phase::Head, || t0),
            Ok((300 * MS, Expired::FirstByte(300 * MS)))
        );
        assert_eq!(
            c.wait(Phase::Body, || t0 + 800 * MS),
            Ok((200 * MS, Expired::Idle(200 * MS)))
        );
        // Nearer than the phase's limit: what is left, reported as the total.
        assert_eq!(c.wait(Phase::Body, || t0 + 850 * MS), Ok((150 * MS, total)));
        assert_eq!(c.wait(Phase::Head, || t0 + 999 * MS), Ok((MS, total)));
        // At or past it: no read at all.
        assert_eq!(c.wait(Phase::Body, || t0 + 1000 * MS), Err(total));
        assert_eq!(c.wait(Phase::Body, || t0 + 5000 * MS), Err(total));
    }

    #[test]
    fn a_total_shorter_than_the_first_byte_limit_bounds_the_head() {
        let t0 = Instant::now();
        let c = AttemptClock::start(limits(Some(100 * MS)), t0);
        assert_eq!(
            c.wait(Phase::Head, || t0),
            Ok((100 * MS, Expired::Total(100 * MS)))
        );
    }

    #[test]
    fn a_read_ends_at_its_limit_and_none_starts_past_the_total() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let t0 = Instant::now();
            let c = AttemptClock::start(limits(Some(1000 * MS)), t0);
            assert_eq!(c.head(async { 7 }).await, Ok(7));
            assert_eq!(
                c.body(std::future::pending::<()>()).await,
                Err(Expired::Idle(200 * MS))
            );
            let spent = AttemptClock::start(limits(Some(Duration::ZERO)), t0);
            let never = std::future::poll_fn(|_| -> Poll<()> { panic!("a read started") });
            assert_eq!(spent.head(never).await, Err(Expired::Total(Duration::ZERO)));
        });
    }

    #[test]
    fn expiry_messages_name_the_limit() {
        assert_eq!(
            Expired::FirstByte(300 * MS).to_string(),
            "sent no response within 300ms"
        );
        assert_eq!(Expired::Idle(2000 * MS).to_string(), "was silent for 2s");
        assert_eq!(
            Expired::Total(600 * MS).to_string(),
            "did not finish within the total timeout of 600ms"
        );
    }
}
