//! Whether, when and where a failed attempt is sent again: retries on the
//! same deployment with jittered exponential backoff or the upstream's
//! `Retry-After`, fail-over to another deployment or the next fallback
//! model, and the context-window fallback — all under a per-shard retry
//! budget so that retries cannot multiply an outage.
//!
//! Invariants:
//! - Nothing is re-sent once a byte of the response has reached the client.
//! - Connect errors (and failures the upstream provably never read the
//!   request through, `Retry::Safe`) and 429/500/502/503/504 are retried:
//!   the upstream either never saw the request or said it did not act on
//!   it. A first-byte timeout fails over to another deployment (the stalled
//!   one would likely stall again), and a response cut before any of it
//!   reached the client, or a connection closed after the request was
//!   written and before any response byte, is retried like a 5xx; both may
//!   have cost tokens upstream, so each has a switch (`on_timeout`,
//!   `on_broken_response`) that answers them instead.
//! - Every re-send (retry or fail-over) is paid from the budget: at most
//!   `min_retries + ratio × requests` over the sliding window (as Finagle's
//!   and Envoy's budgets), so a total outage adds at most that fraction of
//!   load instead of multiplying it by the retry count.
//! - A `Retry-After` longer than `max_retry_after` is not waited out: the
//!   request fails over at once.
//! - A context-window error (400) goes to the context-window fallback
//!   without a retry: the same model would refuse it again.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::balance::ShardRng;
use super::breaker::Outcome;

/// How backoff delays are randomised (see AWS's "Exponential Backoff And
/// Jitter").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `0..=min(cap, base × 2^n)`.
    #[default]
    Full,
    /// Uniform in `base..=min(cap, 3 × previous delay)`.
    Decorrelated,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    /// Retries on one deployment before failing over (0: fail over at once).
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub jitter: Jitter,
    /// The longest `Retry-After` waited out; longer ones fail over.
    pub max_retry_after: Duration,
    /// Re-sends allowed per request sent, over the window.
    pub budget_ratio: f64,
    /// Re-sends always allowed per window, so a quiet shard can still retry.
    pub budget_min_retries: u32,
    pub budget_window: Duration,
    /// A first-byte timeout fails over instead of being answered (504).
    pub on_timeout: bool,
    /// A response that broke before any byte reached the client is retried
    /// instead of being answered (502).
    pub on_broken_response: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
            jitter: Jitter::Full,
            max_retry_after: Duration::from_secs(10),
            budget_ratio: 0.2,
            budget_min_retries: 10,
            budget_window: Duration::from_secs(10),
            on_timeout: true,
            on_broken_response: true,
        }
    }
}

/// What the caller learned from one attempt.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub outcome: Outcome,
    /// Whether any response byte has been written to the client.
    pub client_bytes_sent: bool,
    /// The response's `Retry-After` value, if any.
    pub retry_after: Option<&'a [u8]>,
    /// The response's `retry-after-ms` value (OpenAI's and Azure's), which
    /// takes precedence over `Retry-After`.
    pub retry_after_ms: Option<&'a [u8]>,
    /// The (bounded) error body, for a 400; empty otherwise.
    pub error_body: &'a [u8],
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send again to the same deployment after this delay.
    Retry { after: Duration },
    /// This deployment is done: pick another (`Balancer::pick` excluding
    /// those tried), and when none is left, the next of
    /// [`Fallbacks::next_model`]; if neither exists, respond with this error.
    FailOver,
    /// The prompt is too long for the model: send it to
    /// [`Fallbacks::next_context_window_model`] (or respond if none).
    ContextWindowFallback,
    /// Give the client this response (or the gateway's error for it).
    Respond,
}

/// The ordered fallback models of one model, from the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fallbacks {
    pub models: Vec<String>,
    pub context_window: Vec<String>,
}

impl Fallbacks {
    /// The next fallback model for this request, in order, each once.
    pub fn next_model(&self, state: &mut RetryState) -> Option<&str> {
        let m = self.models.get(state.next_fallback)?;
        state.next_fallback += 1;
        Some(m)
    }

    /// The next model with a larger context window, in order, each once.
    pub fn next_context_window_model(&self, state: &mut RetryState) -> Option<&str> {
        let m = self.context_window.get(state.next_context_fallback)?;
        state.next_context_fallback += 1;
        Some(m)
    }
}

/// One request's retry bookkeeping.
#[derive(Clone, Debug, Default)]
pub struct RetryState {
    /// Retries spent on the current deployment.
    retries_here: u32,
    /// The last backoff delay, for decorrelated jitter.
    last_delay: Option<Duration>,
    next_fallback: usize,
    next_context_fallback: usize,
}

impl RetryState {
    pub fn retries_on_deployment(&self) -> u32 {
        self.retries_here
    }
}

/// The per-shard retry policy: the rules plus the shared budget.
#[derive(Debug)]
pub struct RetryPolicy {
    config: RetryConfig,
    budget: RetryBudget,
}

impl RetryPolicy {
    pub fn new(config: RetryConfig, now: Instant) -> RetryPolicy {
        let budget = RetryBudget::new(
            config.budget_ratio,
            config.budget_min_retries,
            config.budget_window,
            now,
        );
        RetryPolicy { config, budget }
    }

    /// Starts a client request: counted in the budget once, however many
    /// attempts it takes.
    pub fn start(&self, now: Instant) -> RetryState {
        self.budget.record_request(now);
        RetryState::default()
    }

    /// Decides what follows `attempt`. `wall` is the wall clock, for a
    /// `Retry-After` given as an HTTP-date.
    pub fn decide(
        &self,
        state: &mut RetryState,
        attempt: &Attempt<'_>,
        now: Instant,
        wall: SystemTime,
        rng: &ShardRng,
    ) -> Decision {
        if attempt.client_bytes_sent {
            return Decision::Respond;
        }
        let status = match attempt.outcome {
            Outcome::Connect => None,
            Outcome::Status(400) if is_context_window_error(attempt.error_body) => {
                return Decision::ContextWindowFallback
            }
            Outcome::Status(s @ (429 | 500 | 502 | 503 | 504)) => Some(s),
            Outcome::Timeout if self.config.on_timeout => {
                return self.fail_over(state, now);
            }
            Outcome::Protocol if self.config.on_broken_response => None,
            Outcome::Status(_) | Outcome::Timeout | Outcome::Protocol | Outcome::Cancelled => {
                return Decision::Respond
            }
        };
        let asked_wait = status.and_then(|_| {
            let ms = attempt.retry_after_ms.and_then(parse_retry_after_ms);
            ms.or_else(|| parse_retry_after(attempt.retry_after?, wall))
        });
        let decision = match asked_wait {
            Some(wait) if wait > self.config.max_retry_after => Decision::FailOver,
            _ if state.retries_here >= self.config.max_retries => Decision::FailOver,
            Some(wait) => Decision::Retry { after: wait },
            None => Decision::Retry {
                after: self.backoff(state, rng),
            },
        };
        if !self.budget.try_withdraw(now) {
            return Decision::Respond;
        }
        match decision {
            Decision::Retry { .. } => state.retries_here += 1,
            _ => {
                state.retries_here = 0;
                state.last_delay = None;
            }
        }
        decision
    }

    /// Gives up on this deployment (paid from the budget like any re-send).
    fn fail_over(&self, state: &mut RetryState, now: Instant) -> Decision {
        if !self.budget.try_withdraw(now) {
            return Decision::Respond;
        }
        state.retries_here = 0;
        state.last_delay = None;
        Decision::FailOver
    }

    fn backoff(&self, state: &mut RetryState, rng: &ShardRng) -> Duration {
        let (base, cap) = (self.config.backoff_base, self.config.backoff_cap);
        let delay = match self.config.jitter {
            Jitter::Full => {
                let ceiling = base
                    .saturating_mul(1u32.checked_shl(state.retries_here).unwrap_or(u32::MAX))
                    .min(cap);
                rng.duration_between(Duration::ZERO, ceiling)
            }
            Jitter::Decorrelated => {
                let prev = state.last_delay.unwrap_or(base);
                rng.duration_between(base.min(cap), prev.saturating_mul(3).min(cap))
            }
        };
        state.last_delay = Some(delay);
        delay
    }
}

/// Re-sends allowed per request over a sliding window, per shard.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_retries: u32,
    slot_len: Duration,
    origin: Instant,
    slots: [Cell<Slot>; SLOTS],
}

/// The window is kept as this many slots, each a tenth of it: a slot's
/// counts leave the window whole when it ages out.
const SLOTS: usize = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Which slot-length interval since `origin` the counts belong to.
    epoch: u64,
    requests: u32,
    retries: u32,
}

impl RetryBudget {
    pub fn new(ratio: f64, min_retries: u32, window: Duration, now: Instant) -> RetryBudget {
        RetryBudget {
            ratio: ratio.max(0.0),
            min_retries,
            slot_len: (window / SLOTS as u32).max(Duration::from_millis(1)),
            origin: now,
            slots: Default::default(),
        }
    }

    pub fn record_request(&self, now: Instant) {
        self.update(now, |s| s.requests = s.requests.saturating_add(1));
    }

    /// Takes one re-send from the budget if it has one.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let epoch = self.epoch(now);
        let (mut requests, mut retries) = (0u64, 0u64);
        for slot in &self.slots {
            let s = slot.get();
            if s.epoch + (SLOTS as u64) > epoch && s.epoch <= epoch {
                requests += u64::from(s.requests);
                retries += u64::from(s.retries);
            }
        }
        let allowed = f64::from(self.min_retries) + self.ratio * requests as f64;
        if (retries as f64) < allowed {
            self.update(now, |s| s.retries = s.retries.saturating_add(1));
            true
        } else {
            false
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        (since.as_nanos() / self.slot_len.as_nanos()) as u64
    }

    fn update(&self, now: Instant, f: impl FnOnce(&mut Slot)) {
        let epoch = self.epoch(now);
        let cell = &self.slots[(epoch % SLOTS as u64) as usize];
        let mut slot = cell.get();
        if slot.epoch != epoch {
            slot = Slot {
                epoch,
                ..Slot::default()
            };
        }
        f(&mut slot);
        cell.set(slot);
    }
}

/// OpenAI's `context_length_exceeded` code, and the messages OpenAI,
/// Azure, Anthropic and OpenAI-compatible servers use for it.
fn is_context_window_error(body: &[u8]) -> bool {
    const MARKERS: [&[u8]; 4] = [
        b"context_length_exceeded",
        b"maximum context length",
        b"context window",
        b"prompt is too long",
    ];
    MARKERS
        .iter()
        .any(|m| body.windows(m.len()).any(|w| w.eq_ignore_ascii_case(m)))
}

/// `retry-after-ms` as a wait: milliseconds, a fraction accepted.
pub fn parse_retry_after_ms(value: &[u8]) -> Option<Duration> {
    let ms: f64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// `Retry-After` as a wait from `wall`: delay-seconds (a fraction is
/// accepted, as some providers send one) or an IMF-fixdate HTTP-date
/// (RFC 9110 §10.2.3; a date in the past means no wait). `None` if invalid.
pub fn parse_retry_after(value: &[u8], wall: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.bytes().next()?.is_ascii_digit() {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
        }
        let secs: f64 = text.parse().ok()?;
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = UNIX_EPOCH + Duration::from_secs(parse_imf_fixdate(text)?);
    Some(at.duration_since(wall).unwrap_or(Duration::ZERO))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → seconds since the Unix epoch.
fn parse_imf_fixdate(s: &str) -> Option<u64> {
    let (_weekday, rest) = s.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    // IMF-fixdate's year has four digits; a longer one from a lying
    // upstream would overflow the arithmetic below.
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = crate::civil::days_from_civil(year as i64, month as u32, day as u32);
    Some(days as u64 * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);
    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    fn attempt(outcome: Outcome) -> Attempt<'static> {
        Attempt {
            outcome,
            client_bytes_sent: false,
            retry_after: None,
            retry_after_ms: None,
            error_body: b"",
        }
    }

    /// A policy with a budget too big to matter.
    fn policy(config: RetryConfig) -> RetryPolicy {
        RetryPolicy::new(
            RetryConfig {
                budget_min_retries: 1_000_000,
                ..config
            },
            Instant::now(),
        )
    }

    fn decide(p: &RetryPolicy, st: &mut RetryState, a: &Attempt<'_>) -> Decision {
        p.decide(st, a, Instant::now(), SystemTime::now(), &ShardRng::new(1))
    }

    #[test]
    fn only_connect_errors_and_retryable_statuses_are_retried() {
        let p = policy(RetryConfig::default());
        for outcome in [
            Outcome::Connect,
            Outcome::Status(429),
            Outcome::Status(500),
            Outcome::Status(502),
            Outcome::Status(503),
            Outcome::Status(504),
        ] {
            let mut st = p.start(Instant::now());
            assert!(
                matches!(
                    decide(&p, &mut st, &attempt(outcome)),
                    Decision::Retry { .. }
                ),
                "{outcome:?}"
            );
        }
        for outcome in [
            Outcome::Status(200),
            Outcome::Status(400),
            Outcome::Status(401),
            Outcome::Status(404),
            Outcome::Status(501),
            Outcome::Cancelled,
        ] {
            let mut st = p.start(Instant::now());
            assert_eq!(
                decide(&p, &mut st, &attempt(outcome)),
                Decision::Respond,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn timeouts_fail_over_and_broken_responses_retry_unless_switched_off() {
        let p = policy(RetryConfig::default());
        let mut st = p.start(Instant::now());
        assert_eq!(
            decide(&p, &mut st, &attempt(Outcome::Timeout)),
            Decision::FailOver
        );
        assert!(matches!(
            decide(&p, &mut st, &attempt(Outcome::Protocol)),
            Decision::Retry { .. }
        ));
        let off = policy(RetryConfig {
            on_timeout: false,
            on_broken_response: false,
            ..RetryConfig::default()
        });
        for outcome in [Outcome::Timeout, Outcome::Protocol] {
            let mut st = off.start(Instant::now());
            assert_eq!(decide(&off, &mut st, &attempt(outcome)), Decision::Respond);
        }
    }

    #[test]
    fn retry_after_ms_takes_precedence() {
        let p = policy(RetryConfig::default());
        let run = |ms: &[u8], secs: Option<&[u8]>| {
            let mut st = p.start(Instant::now());
            let a = Attempt {
                retry_after_ms: Some(ms),
                retry_after: secs,
                ..attempt(Outcome::Status(429))
            };
            decide(&p, &mut st, &a)
        };
        assert_eq!(run(b"250", Some(b"3")), Decision::Retry { after: 250 * MS });
        assert_eq!(run(b"1.5", None), Decision::Retry { after: 1500 * US });
        assert_eq!(run(b"60000", None), Decision::FailOver);
        // An unreadable value falls back to Retry-After.
        assert_eq!(run(b"soon", Some(b"2")), Decision::Retry { after: 2 * S });
        assert_eq!(run(b"-5", Some(b"2")), Decision::Retry { after: 2 * S });
    }

    #[test]
    fn nothing_is_retried_once_the_client_has_bytes() {
        let p = policy(RetryConfig::default());
        let mut st = p.start(Instant::now());
        for outcome in [Outcome::Connect, Outcome::Status(503)] {
            let a = Attempt {
                client_bytes_sent: true,
                ..attempt(outcome)
            };
            assert_eq!(decide(&p, &mut st, &a), Decision::Respond);
        }
    }

    #[test]
    fn retries_per_deployment_then_fail_over_which_resets_the_count() {
        let p = policy(RetryConfig {
            max_retries: 2,
            ..RetryConfig::default()
        });
        let mut st = p.start(Instant::now());
        let a = attempt(Outcome::Status(502));
        let seq: Vec<Decision> = (0..6).map(|_| decide(&p, &mut st, &a)).collect();
        let kinds: Vec<bool> = seq
            .iter()
            .map(|d| matches!(d, Decision::Retry { .. }))
            .collect();
        assert_eq!(kinds, [true, true, false, true, true, false]);
        assert_eq!(seq[2], Decision::FailOver);
        assert_eq!(seq[5], Decision::FailOver);
        let p0 = policy(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        });
        let mut st = p0.start(Instant::now());
        assert_eq!(decide(&p0, &mut st, &a), Decision::FailOver);
    }

    #[test]
    fn full_jitter_backoff_grows_exponentially_up_to_the_cap() {
        let p = policy(RetryConfig {
            max_retries: 10,
            backoff_base: 100 * MS,
            backoff_cap: 1000 * MS,
            ..RetryConfig::default()
        });
        let rng = ShardRng::new(9);
        // The largest of many draws approaches each attempt's ceiling.
        let mut max = [Duration::ZERO; 6];
        for _ in 0..300 {
            let mut st = p.start(Instant::now());
            for m in &mut max {
                let d = p.decide(
                    &mut st,
                    &attempt(Outcome::Connect),
                    Instant::now(),
                    SystemTime::now(),
                    &rng,
                );
                let Decision::Retry { after } = d else {
                    panic!("{d:?}")
                };
                *m = (*m).max(after);
            }
        }
        let ceilings = [100, 200, 400, 800, 1000, 1000];
        for (m, c) in max.iter().zip(ceilings) {
            assert!(*m <= c * MS && *m >= c * MS * 9 / 10, "{max:?}");
        }
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_cap_and_three_times_the_last() {
        let p = policy(RetryConfig {
            max_retries: 100,
            backoff_base: 100 * MS,
            backoff_cap: 2000 * MS,
            jitter: Jitter::Decorrelated,
            ..RetryConfig::default()
        });
        let rng = ShardRng::new(4);
        let mut st = p.start(Instant::now());
        let mut prev = 100 * MS;
        let mut reached_cap_region = false;
        for _ in 0..100 {
            let d = p.decide(
                &mut st,
                &attempt(Outcome::Status(500)),
                Instant::now(),
                SystemTime::now(),
                &rng,
            );
            let Decision::Retry { after } = d else {
                panic!("{d:?}")
            };
            assert!(
                after >= 100 * MS && after <= (prev * 3).min(2000 * MS),
                "{after:?} after {prev:?}"
            );
            reached_cap_region |= after > 1000 * MS;
            prev = after;
        }
        assert!(reached_cap_region);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_max_then_fails_over() {
        let p = policy(RetryConfig {
            max_retry_after: 10 * S,
            ..RetryConfig::default()
        });
        let wall = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let run = |value: &[u8], outcome| {
            let mut st = p.start(Instant::now());
            let a = Attempt {
                retry_after: Some(value),
                ..attempt(outcome)
            };
            p.decide(&mut st, &a, Instant::now(), wall, &ShardRng::new(1))
        };
        let s429 = Outcome::Status(429);
        assert_eq!(run(b"7", s429), Decision::Retry { after: 7 * S });
        assert_eq!(
            run(b" 0 ", s429),
            Decision::Retry {
                after: Duration::ZERO
            }
        );
        assert_eq!(
            run(b"1.5", Outcome::Status(503)),
            Decision::Retry { after: 1500 * MS }
        );
        assert_eq!(run(b"11", s429), Decision::FailOver);
        assert_eq!(run(b"99999999999999999999999", s429), Decision::FailOver);
        assert_eq!(
            run(b"Sun, 06 Nov 1994 08:49:45 GMT", s429),
            Decision::Retry { after: 8 * S }
        );
        assert_eq!(
            run(b"Sun, 06 Nov 1994 08:50:37 GMT", s429),
            Decision::FailOver
        );
        // In the past: retry now.
        assert_eq!(
            run(b"Sat, 05 Nov 1994 08:49:37 GMT", s429),
            Decision::Retry {
                after: Duration::ZERO
            }
        );
        // Unparseable: ordinary backoff.
        for junk in [
            &b"soon"[..],
            b"-3",
            b"Sun, 06 Nov 1994 25:00:00 GMT",
            b"NaN",
            b"",
        ] {
            let d = run(junk, s429);
            assert!(
                matches!(d, Decision::Retry { after } if after <= 100 * MS),
                "{junk:?}: {d:?}"
            );
        }
        // A non-retryable status is not retried whatever it says.
        assert_eq!(run(b"1", Outcome::Status(400)), Decision::Respond);
    }

    #[test]
    fn http_dates_parse_to_unix_seconds() {
        let at = |s: &str| parse_imf_fixdate(s);
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(at("Tue, 29 Feb 2000 12:00:00 GMT"), Some(951_825_600));
        assert_eq!(at("Wed, 31 Dec 2099 23:59:59 GMT"), Some(4_102_444_799));
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT x",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 18446744073709551615 08:49:37 GMT",
            "Sun, 06 Nov 10000 08:49:37 GMT",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn context_window_errors_fall_back_without_retrying() {
        let p = policy(RetryConfig::default());
        let bodies: [&[u8]; 4] = [
            br#"{"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            br#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."}}"#,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 201234 tokens > 200000 maximum"}}"#,
            br#"{"error":{"message":"Input exceeds the Context Window of this model"}}"#,
        ];
        for body in bodies {
            let mut st = p.start(Instant::now());
            let a = Attempt {
                error_body: body,
                ..attempt(Outcome::Status(400))
            };
            assert_eq!(decide(&p, &mut st, &a), Decision::ContextWindowFallback);
            assert_eq!(st.retries_on_deployment(), 0);
        }
        let mut st = p.start(Instant::now());
        let other = Attempt {
            error_body: br#"{"error":{"message":"temperature must be <= 2"}}"#,
            ..attempt(Outcome::Status(400))
        };
        assert_eq!(decide(&p, &mut st, &other), Decision::Respond);
        // Only a 400 means the prompt: a 500 saying so is still a 500.
        let a500 = Attempt {
            error_body: bodies[0],
            ..attempt(Outcome::Status(500))
        };
        assert!(matches!(decide(&p, &mut st, &a500), Decision::Retry { .. }));
    }

    #[test]
    fn fallbacks_are_walked_in_order_each_once() {
        let f = Fallbacks {
            models: vec!["b".into(), "c".into()],
            context_window: vec!["big".into()],
        };
        let mut st = RetryState::default();
        assert_eq!(f.next_model(&mut st), Some("b"));
        assert_eq!(f.next_context_window_model(&mut st), Some("big"));
        assert_eq!(f.next_model(&mut st), Some("c"));
        assert_eq!(f.next_model(&mut st), None);
        assert_eq!(f.next_context_window_model(&mut st), None);
    }

    #[test]
    fn the_budget_caps_retries_under_a_total_outage() {
        let window = 10 * S;
        let p = RetryPolicy::new(
            RetryConfig {
                max_retries: 3,
                budget_ratio: 0.2,
                budget_min_retries: 5,
                budget_window: window,
                ..RetryConfig::default()
            },
            Instant::now(),
        );
        let rng = ShardRng::new(3);
        let t0 = Instant::now();
        // 100 requests a second for 60 s, every attempt failing; each
        // request re-sends for as long as the policy lets it.
        let mut resends_at: Vec<Duration> = Vec::new();
        let mut requests = 0u32;
        for ms in (0..60_000).step_by(10) {
            let now = t0 + ms * MS;
            let mut st = p.start(now);
            requests += 1;
            loop {
                let d = p.decide(
                    &mut st,
                    &attempt(Outcome::Status(503)),
                    now,
                    SystemTime::now(),
                    &rng,
                );
                if d == Decision::Respond {
                    break;
                }
                resends_at.push(ms * MS);
            }
        }
        let total = resends_at.len() as f64;
        // Without a budget this would be 3 retries + fail-overs per request.
        // (A tenth of slack: the window slides a slot, a tenth, at a time.)
        assert!(
            total <= 1.1 * (5.0 * 6.0 + 0.2 * f64::from(requests)),
            "{total}"
        );
        assert!(
            total >= 0.15 * f64::from(requests),
            "budget too stingy: {total}"
        );
        // And in every window, not just on average.
        for start in (0..50_000).step_by(1000) {
            let lo = start * MS;
            let in_window = resends_at
                .iter()
                .filter(|t| **t >= lo && **t < lo + window)
                .count();
            assert!(
                in_window as f64 <= 1.1 * (5.0 + 0.2 * 1000.0),
                "{in_window} at {lo:?}"
            );
        }
    }

    #[test]
    fn the_budget_floor_allows_retries_on_a_quiet_shard_and_refills() {
        let t0 = Instant::now();
        let b = RetryBudget::new(0.2, 3, 10 * S, t0);
        let granted = (0..10).filter(|_| b.try_withdraw(t0)).count();
        assert_eq!(granted, 3, "the floor, with no requests");
        for _ in 0..10 {
            b.record_request(t0 + S);
        }
        let granted = (0..10).filter(|_| b.try_withdraw(t0 + S)).count();
        assert_eq!(granted, 2, "0.2 × 10 requests more");
        assert!(!b.try_withdraw(t0 + 9 * S));
        // The window slides past the spent retries.
        assert!(b.try_withdraw(t0 + 11 * S));
    }
}
