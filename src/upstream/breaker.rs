//! Passive outlier ejection for one deployment, per shard: after
//! `consecutive_failures` failures in a row the deployment is ejected for a
//! cool-down; when it ends, exactly one probe request is let through
//! (half-open); the probe's success closes the breaker, its failure ejects
//! again for longer.
//!
//! Invariants:
//! - Cool-downs grow exponentially with each ejection that follows another
//!   without a healthy period in between (`base × 2^(n-1)`, capped at
//!   `max_ejection`); after `max_ejection` spent closed the count restarts.
//! - While ejected or half-open, only the probe's outcome counts: requests
//!   admitted before the ejection neither extend nor end it.
//! - At most one probe is out at a time; a probe whose outcome never comes
//!   (cancelled, or lost past `probe_timeout`) frees the slot for another.
//! - Every state change is returned as a [`BreakerEvent`] for the caller to
//!   log and count; time is always passed in, so tests use a fake clock.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// What a breaker counts as failure, and for how long it ejects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that eject the deployment.
    pub consecutive_failures: u32,
    /// The first cool-down.
    pub base_ejection: Duration,
    /// The longest cool-down, however often the deployment is re-ejected.
    pub max_ejection: Duration,
    /// A probe with no outcome after this long is taken as lost.
    pub probe_timeout: Duration,
    /// Whether a 429 counts as a failure (a rate-limited deployment may be
    /// better left alone for a while, but the limit may be the caller's key).
    pub count_429: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            probe_timeout: Duration::from_secs(120),
            count_429: false,
        }
    }
}

/// How one attempt on a deployment ended, as far as its health goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response head arrived with this status.
    Status(u16),
    /// No connection (refused, unreachable, TLS failure, connect timeout).
    Connect,
    /// No response within the first-byte deadline.
    Timeout,
    /// Malformed response, or the connection broke before a response.
    Protocol,
    /// The attempt was abandoned by our side (client gone, deadline of the
    /// whole request): says nothing about the deployment.
    Cancelled,
}

/// A state change, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerEvent {
    /// Closed → ejected after `failures` failures in a row; `ejections`
    /// counts this one among those without a healthy period between.
    Ejected {
        failures: u32,
        cool_down: Duration,
        ejections: u32,
    },
    /// The cool-down ended and a probe was let through (also when a lost
    /// probe is replaced).
    HalfOpen,
    /// The probe succeeded.
    Closed,
    /// The probe failed: ejected again, for longer.
    ReEjected { cool_down: Duration, ejections: u32 },
}

/// The breaker's answer to "may a request go to this deployment now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed: send it and report its outcome with the ticket.
    Allowed(Ticket),
    /// This request is the single probe; the breaker just went half-open
    /// ([`Admission::event`] says so).
    Probe(Ticket),
    /// Ejected, or half-open with the probe still out. If the balancer chose
    /// this deployment anyway (every deployment is ejected), the caller may
    /// send without a ticket; the outcome is then not reported.
    Rejected,
}

impl Admission {
    /// The state change admitting this request caused, if any.
    pub fn event(&self) -> Option<BreakerEvent> {
        matches!(self, Admission::Probe(_)).then_some(BreakerEvent::HalfOpen)
    }

    pub fn ticket(&self) -> Option<Ticket> {
        match *self {
            Admission::Allowed(t) | Admission::Probe(t) => Some(t),
            Admission::Rejected => None,
        }
    }
}

/// Proof of admission, handed back with the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    probe: bool,
}

impl Ticket {
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
        /// When the breaker last closed; `None` if it never opened.
        since: Option<Instant>,
    },
    Ejected {
        until: Instant,
    },
    HalfOpen {
        probe_sent: Instant,
    },
}

/// One deployment's breaker, shard-local.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Cell<State>,
    /// Ejections since the last healthy period, for the cool-down's growth.
    ejections: Cell<u32>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            state: Cell::new(State::Closed {
                failures: 0,
                since: None,
            }),
            ejections: Cell::new(0),
        }
    }

    /// Takes over `old`'s state and ejection count: the same deployment in a
    /// new configuration generation stays ejected (or healthy) as it was.
    pub fn carry_over(&self, old: &Breaker) {
        self.state.set(old.state.get());
        self.ejections.set(old.ejections.get());
    }

    /// Whether a request sent now would be admitted (for
    /// `Balancer::set_available`); changes nothing.
    pub fn is_available(&self, now: Instant) -> bool {
        match self.state.get() {
            State::Closed { .. } => true,
            State::Ejected { until } => now >= until,
            State::HalfOpen { probe_sent } => self.probe_lost(probe_sent, now),
        }
    }

    /// Whether the deployment is ejected now (ejected, or half-open).
    pub fn is_ejected(&self) -> bool {
        !matches!(self.state.get(), State::Closed { .. })
    }

    /// Whether its cool-down ended and a probe decides (for the dashboard).
    pub fn is_half_open(&self) -> bool {
        matches!(self.state.get(), State::HalfOpen { .. })
    }

    /// Asks to send one request now. Call right before sending; report the
    /// outcome with [`Breaker::record`].
    pub fn admit(&self, now: Instant) -> Admission {
        match self.state.get() {
            State::Closed { .. } => Admission::Allowed(Ticket { probe: false }),
            State::Ejected { until } if now >= until => self.send_probe(now),
            State::HalfOpen { probe_sent } if self.probe_lost(probe_sent, now) => {
                self.send_probe(now)
            }
            State::Ejected { .. } | State::HalfOpen { .. } => Admission::Rejected,
        }
    }

    /// Reports how an admitted request ended (for a stream: when its
    /// response head arrived, not when it finished). Returns the state
    /// change it caused.
    pub fn record(&self, ticket: Ticket, outcome: Outcome, now: Instant) -> Option<BreakerEvent> {
        let failed = match outcome {
            Outcome::Cancelled => {
                if ticket.probe {
                    if let State::HalfOpen { .. } = self.state.get() {
                        // Free the probe slot at once: the cool-down is over.
                        self.state.set(State::Ejected { until: now });
                    }
                }
                return None;
            }
            Outcome::Status(429) => self.config.count_429,
            Outcome::Status(s) => s >= 500,
            Outcome::Connect | Outcome::Timeout | Outcome::Protocol => true,
        };
        match self.state.get() {
            State::Closed { failures, since } => {
                if !failed {
                    self.state.set(State::Closed { failures: 0, since });
                    return None;
                }
                let failures = failures + 1;
                if failures < self.config.consecutive_failures.max(1) {
                    self.state.set(State::Closed { failures, since });
                    return None;
                }
                // A long healthy spell forgets earlier ejections.
                if since
                    .is_some_and(|s| now.saturating_duration_since(s) >= self.config.max_ejection)
                {
                    self.ejections.set(0);
                }
                let cool_down = self.eject(now);
                Some(BreakerEvent::Ejected {
                    failures,
                    cool_down,
                    ejections: self.ejections.get(),
                })
            }
            State::HalfOpen { .. } if ticket.probe => {
                if failed {
                    let cool_down = self.eject(now);
                    Some(BreakerEvent::ReEjected {
                        cool_down,
                        ejections: self.ejections.get(),
                    })
                } else {
                    self.state.set(State::Closed {
                        failures: 0,
                        since: Some(now),
                    });
                    Some(BreakerEvent::Closed)
                }
            }
            // Requests admitted before the ejection. (A lost probe that
            // answers while its replacement is out is caught above: either
            // probe's word on the deployment's health is as good.)
            State::Ejected { .. } | State::HalfOpen { .. } => None,
        }
    }

    fn send_probe(&self, now: Instant) -> Admission {
        self.state.set(State::HalfOpen { probe_sent: now });
        Admission::Probe(Ticket { probe: true })
    }

    fn probe_lost(&self, probe_sent: Instant, now: Instant) -> bool {
        now.saturating_duration_since(probe_sent) >= self.config.probe_timeout
    }

    /// Ejects from now; returns the cool-down.
    fn eject(&self, now: Instant) -> Duration {
        let n = self.ejections.get().saturating_add(1);
        self.ejections.set(n);
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        let cool_down = self
            .config
            .base_ejection
            .saturating_mul(factor)
            .min(self.config.max_ejection);
        self.state.set(State::Ejected {
            until: now + cool_down,
        });
        cool_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            base_ejection: 10 * S,
            max_ejection: 35 * S,
            probe_timeout: 5 * S,
            count_429: false,
        }
    }

    /// Admits and records `outcome`; returns the event.
    fn send(b: &Breaker, outcome: Outcome, now: Instant) -> Option<BreakerEvent> {
        let t = b.admit(now).ticket().expect("admitted");
        b.record(t, outcome, now)
    }

    fn eject(b: &Breaker, now: Instant) -> Option<BreakerEvent> {
        send(b, Outcome::Connect, now);
        send(b, Outcome::Timeout, now);
        send(b, Outcome::Status(503), now)
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let b = Breaker::new(cfg());
        let t0 = Instant::now();
        assert_eq!(send(&b, Outcome::Status(500), t0), None);
        assert_eq!(send(&b, Outcome::Protocol, t0), None);
        assert_eq!(send(&b, Outcome::Status(200), t0), None);
        assert_eq!(send(&b, Outcome::Status(502), t0), None);
        assert_eq!(send(&b, Outcome::Status(504), t0), None);
        assert!(b.is_available(t0) && !b.is_ejected());
        assert_eq!(
            send(&b, Outcome::Connect, t0),
            Some(BreakerEvent::Ejected {
                failures: 3,
                cool_down: 10 * S,
                ejections: 1
            })
        );
        assert!(b.is_ejected());
        assert!(!b.is_available(t0 + 9 * S));
        assert_eq!(b.admit(t0 + 9 * S), Admission::Rejected);
    }

    #[test]
    fn client_errors_succeed_429_is_configurable_and_cancel_is_neutral() {
        let b = Breaker::new(cfg());
        let t0 = Instant::now();
        for outcome in [
            Outcome::Status(400),
            Outcome::Status(404),
            Outcome::Status(429),
            Outcome::Cancelled,
            Outcome::Status(429),
            Outcome::Status(401),
        ] {
            assert_eq!(send(&b, outcome, t0), None);
        }
        assert!(!b.is_ejected());
        // Cancellations neither count nor reset.
        send(&b, Outcome::Connect, t0);
        send(&b, Outcome::Cancelled, t0);
        send(&b, Outcome::Connect, t0);
        assert!(matches!(
            send(&b, Outcome::Connect, t0),
            Some(BreakerEvent::Ejected { .. })
        ));

        let b = Breaker::new(BreakerConfig {
            count_429: true,
            ..cfg()
        });
        send(&b, Outcome::Status(429), t0);
        send(&b, Outcome::Status(429), t0);
        assert!(send(&b, Outcome::Status(429), t0).is_some());
    }

    #[test]
    fn after_the_cool_down_exactly_one_probe_goes_and_success_closes() {
        let b = Breaker::new(cfg());
        let t0 = Instant::now();
        eject(&b, t0);
        let t1 = t0 + 10 * S;
        assert!(b.is_available(t1));
        let probe = b.admit(t1);
        assert!(matches!(probe, Admission::Probe(t) if t.is_probe()));
        assert_eq!(probe.event(), Some(BreakerEvent::HalfOpen));
        assert!(!b.is_available(t1));
        assert_eq!(b.admit(t1), Admission::Rejected);
        assert_eq!(b.admit(t1 + 4 * S), Admission::Rejected);
        assert_eq!(
            b.record(probe.ticket().unwrap(), Outcome::Status(200), t1 + S),
            Some(BreakerEvent::Closed)
        );
        assert!(!b.is_ejected());
        let next = b.admit(t1 + S);
        assert!(matches!(next, Admission::Allowed(t) if !t.is_probe()));
        assert_eq!(next.event(), None);
    }

    #[test]
    fn a_failed_probe_re_ejects_with_a_growing_capped_cool_down() {
        let b = Breaker::new(cfg());
        let mut now = Instant::now();
        eject(&b, now);
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for (n, cool) in [(2, 20), (3, 35), (4, 35)] {
            now += b_cool_down(&b, now);
            got.push(send(&b, Outcome::Status(500), now));
            expected.push(Some(BreakerEvent::ReEjected {
                cool_down: cool * S,
                ejections: n,
            }));
        }
        assert_eq!(got, expected);
        assert!(!b.is_available(now + 34 * S));
        assert!(b.is_available(now + 35 * S));
    }

    /// How long until the breaker admits again (probing forward in seconds).
    fn b_cool_down(b: &Breaker, from: Instant) -> Duration {
        (0..1000)
            .map(|s| s * S)
            .find(|&d| b.is_available(from + d))
            .unwrap()
    }

    #[test]
    fn quick_re_ejection_keeps_growing_but_a_healthy_spell_resets_it() {
        let b = Breaker::new(cfg());
        let t0 = Instant::now();
        eject(&b, t0);
        let t1 = t0 + 10 * S;
        assert_eq!(
            send(&b, Outcome::Status(200), t1),
            Some(BreakerEvent::Closed)
        );
        // Fails again soon after closing: second ejection, twice as long.
        assert_eq!(
            eject(&b, t1 + S),
            Some(BreakerEvent::Ejected {
                failures: 3,
                cool_down: 20 * S,
                ejections: 2
            })
        );
        let t2 = t1 + 21 * S;
        assert_eq!(
            send(&b, Outcome::Status(200), t2),
            Some(BreakerEvent::Closed)
        );
        // Healthy for max_ejection: back to the base cool-down.
        assert_eq!(
            eject(&b, t2 + 35 * S),
            Some(BreakerEvent::Ejected {
                failures: 3,
                cool_down: 10 * S,
                ejections: 1
            })
        );
    }

    #[test]
    fn outcomes_of_requests_admitted_before_the_ejection_are_ignored() {
        let b = Breaker::new(cfg());
        let t0 = Instant::now();
        let early: Vec<Ticket> = (0..3).map(|_| b.admit(t0).ticket().unwrap()).collect();
        eject(&b, t0);
        assert_eq!(b.record(early[0], Outcome::Status(200), t0), None);
        assert_eq!(b.record(early[1], Outcome::Connect, t0), None);
        assert!(
            !b.is_available(t0 + 9 * S),
            "late outcomes moved the breaker"
        );
        let probe = b.admit(t0 + 10 * S).ticket().unwrap();
        // Still half-open: a late success of an ordinary request does not close.
        assert_eq!(b.record(early[2], Outcome::Status(200), t0 + 10 * S), None);
        assert!(b.is_ejected());
        assert_eq!(
            b.record(probe, Outcome::Status(200), t0 + 11 * S),
            Some(BreakerEvent::Closed)
        );
    }

    #[test]
    fn a_cancelled_or_lost_probe_frees_the_slot() {
        let b = Breaker::new(cfg());
        let t0 = Instant::now();
        eject(&b, t0);
        let t1 = t0 + 10 * S;
        let probe = b.admit(t1).ticket().unwrap();
        assert_eq!(b.record(probe, Outcome::Cancelled, t1), None);
        assert!(b.is_available(t1));
        // The replacement probe is lost: after probe_timeout another may go.
        let lost = b.admit(t1);
        assert_eq!(lost.event(), Some(BreakerEvent::HalfOpen));
        assert_eq!(b.admit(t1 + 4 * S), Admission::Rejected);
        let again = b.admit(t1 + 5 * S);
        assert_eq!(again.event(), Some(BreakerEvent::HalfOpen));
        assert_eq!(
            b.record(again.ticket().unwrap(), Outcome::Timeout, t1 + 6 * S),
            Some(BreakerEvent::ReEjected {
                cool_down: 20 * S,
                ejections: 2
            })
        );
        // The lost probe's late answer changes nothing.
        assert_eq!(
            b.record(lost.ticket().unwrap(), Outcome::Status(200), t1 + 7 * S),
            None
        );
        assert!(!b.is_available(t1 + 7 * S));
    }
}
