//! One subject's (a key's or a team's) live counters and the decision over
//! them: requests and tokens in the last minute, requests in flight, and the
//! budget's spend and reservations in its current period. Sans-IO: `now` is
//! passed in (Unix seconds), money is in nano-dollars (exact for prices
//! given to a thousandth of a dollar per million tokens).
//!
//! Invariants, for a `Ledger` behind its subject's lock:
//! - `reserve` either takes everything a request needs (a request slot, its
//!   estimated tokens, its worst-case cost) or nothing;
//! - a reservation is given back exactly once, by `settle`, which replaces
//!   the estimate with what was really used;
//! - `spent + reserved` never passes the budget through `reserve` (a settle
//!   may: the upstream's real usage is charged even past the budget, and
//!   the next request is refused);
//! - in-flight never passes `max_concurrent`;
//! - under a shared store (`View::shared`), a budget's reservation also
//!   fits in this instance's lease (`Lease::nanos`, a grant the store
//!   counts against the budget for every instance), and a request of an
//!   rpm-limited subject takes one unit of this instance's rate chunk;
//!   without them the answer is `Pending` (the `state-sync` thread is asked
//!   for more) or, with the store away, what `state.on_unavailable` says.

use super::clock::Period;
use super::window::Window;

/// A subject's limits; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub budget_nanos: Option<u64>,
    pub period: Period,
}

impl Limits {
    /// No limit and no budget.
    pub fn is_none(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.max_concurrent.is_none()
            && self.budget_nanos.is_none()
    }
}

/// What one request needs, reserved before it goes upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Need {
    /// Input tokens estimated from the body plus the most output allowed.
    pub tokens: u64,
    /// The cost of `tokens` at the model's price (input and output priced
    /// apart), nano-dollars.
    pub nanos: u64,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Requests {
        retry_after: u64,
    },
    Tokens {
        retry_after: u64,
    },
    Concurrency,
    Budget {
        resets_in: Option<u64>,
    },
    /// Shared store only: no lease covers the request yet; the sync thread
    /// was asked for one (the caller may wait a bounded time and retry).
    Pending,
    /// Shared store only: the store is unreachable, no lease covers the
    /// request and the limit fails closed.
    Unavailable,
}

/// How a request meets the shared store, read once per request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// `state.backend = "redis"`: budgets and rpm are leased.
    pub shared: bool,
    /// The store is unreachable now.
    pub unavailable: bool,
    /// `state.on_unavailable.budget = "fail_open"`.
    pub budget_fail_open: bool,
    /// `state.on_unavailable.rate_limit = "fail_open"`.
    pub rate_fail_open: bool,
}

/// This instance's share of the shared store's capacity for one subject,
/// and what it owes the store. Written by the shards (taking and giving
/// back) and by the `state-sync` thread (grants, settles), both under the
/// subject's lock. Untouched under the local backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// A budget grant is held and has not expired.
    pub live: bool,
    /// Budget left to reserve from, nano-dollars. Together with
    /// `reserved_nanos` and `unsynced_nanos` it is what the store counts
    /// as this instance's grant.
    pub nanos: u64,
    /// The store said the budget has no room for the biggest need asked
    /// (every instance's grant counted): refuse as over budget.
    pub denied: bool,
    /// Spend settled here and not yet added to the store's.
    pub unsynced_nanos: u64,
    /// Units of this instance's rpm chunk left.
    pub requests: u64,
    /// Until this Unix second the shared minute is full.
    pub full_until: u64,
    /// Requests admitted without a chunk (rate limits failing open), still
    /// to be counted in the store.
    pub unsynced_requests: u64,
    /// A request found no lease: the sync thread should fetch one.
    pub wanted: bool,
    /// The biggest reservation refused for want of a lease since the last
    /// grant: the next grant's floor.
    pub want_nanos: u64,
}

/// A subject's live state.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub requests: Window,
    pub tokens: Window,
    pub in_flight: u64,
    /// Start of the budget period `spent_nanos` is for.
    pub period_start: u64,
    pub spent_nanos: u64,
    pub reserved_nanos: u64,
    /// Lifetime totals, for the admin API.
    pub totals: Totals,
    /// The shared store's grants (Redis backend only).
    pub lease: Lease,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Admitted requests.
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Spend over every period, nano-dollars.
    pub spent_nanos: u64,
    /// Requests refused by a rate, token or concurrency limit, or the budget.
    pub rate_limited: u64,
    pub over_budget: u64,
}

/// What a request really used, charged when it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Used {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub nanos: u64,
}

impl Ledger {
    /// Starts a new budget period if `now` is past the current one's end.
    fn roll(&mut self, period: Period, now: u64) {
        let start = period.start(now);
        if start != self.period_start {
            self.period_start = start;
            self.spent_nanos = 0;
            // A grant is for one period: the next one's is asked afresh.
            self.lease.nanos = 0;
            self.lease.live = false;
            self.lease.denied = false;
        }
    }

    /// Whether `need` fits now, without taking it.
    pub fn check(
        &mut self,
        limits: &Limits,
        need: Need,
        now: u64,
        view: View,
    ) -> Result<(), Refusal> {
        self.roll(limits.period, now);
        if let Some(max) = limits.max_concurrent {
            if self.in_flight >= max {
                return Err(Refusal::Concurrency);
            }
        }
        if let Some(budget) = limits.budget_nanos {
            let committed = self.spent_nanos.saturating_add(self.reserved_nanos);
            if committed.saturating_add(need.nanos) > budget || self.spent_nanos >= budget {
                let resets_in = limits
                    .period
                    .end(self.period_start)
                    .map(|end| end.saturating_sub(now).max(1));
                return Err(Refusal::Budget { resets_in });
            }
            let l = &mut self.lease;
            if view.shared && need.nanos > 0 && !(l.live && l.nanos >= need.nanos) {
                if view.unavailable {
                    if !view.budget_fail_open {
                        return Err(Refusal::Unavailable);
                    }
                } else {
                    // Asked again even when denied: another instance may
                    // have given its grant back (re-asked at most once a
                    // second by the sync thread).
                    l.wanted = true;
                    l.want_nanos = l.want_nanos.max(need.nanos);
                    if l.denied {
                        let resets_in = limits
                            .period
                            .end(self.period_start)
                            .map(|end| end.saturating_sub(now).max(1));
                        return Err(Refusal::Budget { resets_in });
                    }
                    return Err(Refusal::Pending);
                }
            }
        }
        if let Some(rpm) = limits.rpm {
            match self.requests.wait_for(now, 1, rpm) {
                Some(0) => {}
                wait => {
                    return Err(Refusal::Requests {
                        retry_after: wait.unwrap_or(60).max(1),
                    })
                }
            }
            let l = &mut self.lease;
            if view.shared && l.requests == 0 {
                if view.unavailable {
                    if !view.rate_fail_open {
                        return Err(Refusal::Unavailable);
                    }
                } else if now < l.full_until {
                    return Err(Refusal::Requests {
                        retry_after: l.full_until - now,
                    });
                } else {
                    l.wanted = true;
                    return Err(Refusal::Pending);
                }
            }
        }
        if let Some(tpm) = limits.tpm {
            // A request bigger than the whole minute's tokens can never fit:
            // it is refused as over the limit, not left to wait forever.
            match self.tokens.wait_for(now, need.tokens.min(tpm), tpm) {
                Some(0) if need.tokens <= tpm => {}
                wait => {
                    return Err(Refusal::Tokens {
                        retry_after: wait.unwrap_or(60).max(1),
                    })
                }
            }
        }
        Ok(())
    }

    /// Takes `need` (after a successful [`Ledger::check`] under the same lock).
    pub fn take(&mut self, limits: &Limits, need: Need, now: u64, view: View) {
        if view.shared {
            let l = &mut self.lease;
            if limits.budget_nanos.is_some() {
                // Short only when failing open: the store hears of it as
                // part of this instance's hold.
                l.nanos = l.nanos.saturating_sub(need.nanos);
            }
            if limits.rpm.is_some() {
                match l.requests.checked_sub(1) {
                    Some(left) => l.requests = left,
                    None => l.unsynced_requests += 1,
                }
            }
        }
        self.in_flight += 1;
        self.reserved_nanos += need.nanos;
        self.requests.add(now, 1);
        self.tokens.add(now, need.tokens);
        self.totals.requests += 1;
    }

    /// [`Ledger::check`] and [`Ledger::take`] in one.
    pub fn reserve(
        &mut self,
        limits: &Limits,
        need: Need,
        now: u64,
        view: View,
    ) -> Result<(), Refusal> {
        self.check(limits, need, now, view)?;
        self.take(limits, need, now, view);
        Ok(())
    }

    /// Replaces the reservation `need` made at `at` by what was `used`.
    pub fn settle(
        &mut self,
        limits: &Limits,
        need: Need,
        at: u64,
        used: Used,
        now: u64,
        view: View,
    ) {
        let period = self.period_start;
        self.roll(limits.period, now);
        if view.shared {
            let l = &mut self.lease;
            // Every subject's spend is shared, budget or not.
            l.unsynced_nanos = l.unsynced_nanos.saturating_add(used.nanos);
            // What the reservation did not use goes back to the lease (it
            // is still inside the grant); an overrun comes out of it. Not
            // into an expired lease, nor across a period boundary: that
            // grant is gone.
            if limits.budget_nanos.is_some() && l.live && period == self.period_start {
                l.nanos = (l.nanos + need.nanos).saturating_sub(used.nanos);
            }
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.reserved_nanos = self.reserved_nanos.saturating_sub(need.nanos);
        self.spent_nanos = self.spent_nanos.saturating_add(used.nanos);
        self.tokens.take_back(now, at, need.tokens);
        self.tokens
            .add(now, used.input_tokens.saturating_add(used.output_tokens));
        self.totals.input_tokens += used.input_tokens;
        self.totals.output_tokens += used.output_tokens;
        self.totals.spent_nanos = self.totals.spent_nanos.saturating_add(used.nanos);
    }

    /// Grows a running request's reservation by `more` (a stream past
    /// what was reserved for its output), if the budget and the token
    /// window have room.
    ///
    /// Under a shared store the growth comes out of the lease; when the
    /// lease is short it is refused only if the store said the budget is
    /// spent (or is away and budgets fail closed), else it runs on
    /// uncovered (counted in this instance's hold, part of the stated
    /// overrun) and a lease is asked for.
    pub fn extend(
        &mut self,
        limits: &Limits,
        more: Need,
        now: u64,
        view: View,
    ) -> Result<(), Refusal> {
        self.roll(limits.period, now);
        if let Some(budget) = limits.budget_nanos {
            let committed = self.spent_nanos.saturating_add(self.reserved_nanos);
            if committed.saturating_add(more.nanos) > budget {
                return Err(Refusal::Budget { resets_in: None });
            }
            let l = &self.lease;
            if view.shared && !(l.live && l.nanos >= more.nanos) {
                if l.denied {
                    return Err(Refusal::Budget { resets_in: None });
                }
                if view.unavailable && !view.budget_fail_open {
                    return Err(Refusal::Unavailable);
                }
            }
        }
        if let Some(tpm) = limits.tpm {
            if self.tokens.used(now).saturating_add(more.tokens) > tpm {
                return Err(Refusal::Tokens { retry_after: 1 });
            }
        }
        if view.shared && limits.budget_nanos.is_some() {
            let l = &mut self.lease;
            if l.nanos < more.nanos {
                l.wanted = true;
            }
            l.nanos = l.nanos.saturating_sub(more.nanos);
        }
        self.reserved_nanos += more.nanos;
        self.tokens.add(now, more.tokens);
        Ok(())
    }

    /// Counts a refusal of a request under this subject (a wait for a
    /// lease is not one).
    pub fn count_refusal(&mut self, r: Refusal) {
        match r {
            Refusal::Pending => {}
            Refusal::Budget { .. } => self.totals.over_budget += 1,
            _ => self.totals.rate_limited += 1,
        }
    }

    /// Gives back a growth [`Ledger::extend`] took at `now` (its team
    /// refused it: all or nothing).
    pub fn unextend(&mut self, limits: &Limits, more: Need, now: u64, view: View) {
        self.reserved_nanos = self.reserved_nanos.saturating_sub(more.nanos);
        self.tokens.take_back(now, now, more.tokens);
        if view.shared && limits.budget_nanos.is_some() {
            self.lease.nanos += more.nanos;
        }
    }

    /// The budget left in this period (never below zero), nano-dollars.
    pub fn remaining_nanos(&mut self, limits: &Limits, now: u64) -> Option<u64> {
        self.roll(limits.period, now);
        limits
            .budget_nanos
            .map(|b| b.saturating_sub(self.spent_nanos))
    }

    /// This period's spend.
    pub fn spent_nanos(&mut self, limits: &Limits, now: u64) -> u64 {
        self.roll(limits.period, now);
        self.spent_nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: View = View {
        shared: false,
        unavailable: false,
        budget_fail_open: false,
        rate_fail_open: false,
    };

    fn limits() -> Limits {
        Limits {
            rpm: Some(3),
            tpm: Some(1000),
            max_concurrent: Some(2),
            budget_nanos: Some(1_000),
            period: Period::Total,
        }
    }

    #[test]
    fn reserve_takes_all_or_nothing() {
        let l = limits();
        let mut g = Ledger::default();
        let need = Need {
            tokens: 100,
            nanos: 300,
        };
        assert_eq!(g.reserve(&l, need, 10, LOCAL), Ok(()));
        assert_eq!(g.reserve(&l, need, 10, LOCAL), Ok(()));
        assert_eq!(g.reserve(&l, need, 10, LOCAL), Err(Refusal::Concurrency));
        assert_eq!(
            (g.in_flight, g.reserved_nanos, g.requests.used(10)),
            (2, 600, 2)
        );
        g.settle(
            &l,
            need,
            10,
            Used {
                input_tokens: 10,
                output_tokens: 5,
                nanos: 50,
            },
            11,
            LOCAL,
        );
        assert_eq!((g.in_flight, g.reserved_nanos, g.spent_nanos), (1, 300, 50));
        assert_eq!(
            g.tokens.used(11),
            115,
            "the estimate replaced by the real tokens"
        );
        assert_eq!(g.reserve(&l, need, 11, LOCAL), Ok(()));
        // rpm 3 reached within the minute.
        g.settle(&l, need, 11, Used::default(), 11, LOCAL);
        assert_eq!(
            g.reserve(&l, need, 12, LOCAL),
            Err(Refusal::Requests { retry_after: 58 })
        );
    }

    #[test]
    fn budget_counts_reservations_in_flight() {
        let l = Limits {
            budget_nanos: Some(1_000),
            ..Limits::default()
        };
        let mut g = Ledger::default();
        let need = Need {
            tokens: 1,
            nanos: 100,
        };
        let admitted = (0..200)
            .filter(|_| g.reserve(&l, need, 5, LOCAL).is_ok())
            .count();
        assert_eq!(admitted, 10);
        assert_eq!(
            g.reserve(&l, need, 5, LOCAL),
            Err(Refusal::Budget { resets_in: None })
        );
    }

    #[test]
    fn a_period_budget_starts_again_at_the_boundary() {
        let l = Limits {
            budget_nanos: Some(100),
            period: Period::Day,
            ..Limits::default()
        };
        let mut g = Ledger::default();
        let need = Need {
            tokens: 1,
            nanos: 100,
        };
        let day = 86_400;
        g.reserve(&l, need, day * 3 + 5, LOCAL).unwrap();
        g.settle(
            &l,
            need,
            day * 3 + 5,
            Used {
                nanos: 100,
                ..Used::default()
            },
            day * 3 + 6,
            LOCAL,
        );
        assert_eq!(
            g.reserve(&l, need, day * 3 + 7, LOCAL),
            Err(Refusal::Budget {
                resets_in: Some(day - 7)
            })
        );
        assert_eq!(g.reserve(&l, need, day * 4, LOCAL), Ok(()));
    }

    #[test]
    fn a_request_over_the_whole_tpm_is_refused_not_queued() {
        let l = Limits {
            tpm: Some(100),
            ..Limits::default()
        };
        let mut g = Ledger::default();
        assert!(matches!(
            g.reserve(
                &l,
                Need {
                    tokens: 101,
                    nanos: 0
                },
                1,
                LOCAL
            ),
            Err(Refusal::Tokens { .. })
        ));
        assert_eq!(
            g.reserve(
                &l,
                Need {
                    tokens: 100,
                    nanos: 0
                },
                1,
                LOCAL
            ),
            Ok(())
        );
    }

    #[test]
    fn extend_respects_budget_and_tokens() {
        let l = limits();
        let mut g = Ledger::default();
        let need = Need {
            tokens: 100,
            nanos: 300,
        };
        g.reserve(&l, need, 1, LOCAL).unwrap();
        assert_eq!(
            g.extend(
                &l,
                Need {
                    tokens: 100,
                    nanos: 700
                },
                2,
                LOCAL
            ),
            Ok(())
        );
        assert_eq!(
            g.extend(
                &l,
                Need {
                    tokens: 1,
                    nanos: 1
                },
                2,
                LOCAL
            ),
            Err(Refusal::Budget { resets_in: None })
        );
    }
}
