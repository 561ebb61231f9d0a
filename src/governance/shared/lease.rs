//! The lease arithmetic of one subject (a key or a team) between this
//! instance's ledger and the shared store, sans-IO: what to ask the store
//! for ([`Subject::plan`]), and what its answer changes
//! ([`Subject::applied`]). The store's side is the Lua script in
//! `scripts.rs`; a model of it in Rust drives the tests here.
//!
//! The exchange, one `Op` per subject per sync:
//! - `batch`: spend settled here since the last op, added to the store's
//!   (`INCRBY`, exactly once: an op is retried verbatim, same `seq`, until
//!   it is answered, and the store answers a repeated `seq` from memory);
//! - `hold`: what this instance holds of the budget after this op before
//!   any new grant: lease left plus reservations in flight. Absolute, so a
//!   store that lost its grants (restarted empty) learns them again;
//! - `want`: more budget, granted only within
//!   `budget − spend − every other live grant − hold`, at most a share of
//!   what is left; `floor` is what the biggest reservation waiting lacks
//!   (all of it or nothing is granted: a part would strand budget);
//!   a lease is topped up ahead of need only while the share covers the
//!   biggest reservation seen, else on demand, first come first served;
//! - `rpm_want`: units of the rpm chunk, granted only while the store's
//!   sliding minute (sixty one-second buckets, every instance's grants
//!   counted when granted) has room, and only up to the chunk size;
//!   `rpm_unsynced`: requests admitted while the store was away (rate
//!   limits failing open), counted now.
//!
//! Invariants:
//! - the store's record of this instance's grant covers every nano-dollar
//!   the shards here may still reserve from the lease (`hold + granted`);
//! - a lease is usable only until `lease_ttl` after the op that granted it
//!   was *sent*; the store keeps the grant for twice that from when it
//!   *received* it, so the store never forgets a grant this instance may
//!   still use, unless the store itself is lost;
//! - at most one rpm chunk (`rpm_target` units) is held at a time, so at
//!   a minute's edge an instance has at most one chunk granted before it.

use crate::governance::ledger::{Ledger, Limits};

/// One request to the store for one subject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Op {
    pub seq: u64,
    /// The budget period the batch and the grant are for.
    pub period: u64,
    pub budget: Option<u64>,
    pub batch: u64,
    pub hold: u64,
    pub want: u64,
    pub floor: u64,
    pub rpm: Option<u64>,
    pub rpm_hold: u64,
    pub rpm_want: u64,
    pub rpm_unsynced: u64,
    /// When it was first sent, this instance's milliseconds.
    pub sent_ms: u64,
}

/// The store's answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub granted: u64,
    /// The period's spend, this op's batch included.
    pub spend: u64,
    /// The lease size to keep (the next grant's size).
    pub target: u64,
    pub rpm_granted: u64,
    /// The rpm chunk size.
    pub rpm_target: u64,
    /// Seconds until the shared minute has room (when nothing was granted).
    pub retry: u64,
}

/// What this instance's sync thread keeps of one subject.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    seq: u64,
    /// Sent and not answered: sent again, unchanged, until it is.
    pub pending: Option<Op>,
    target: u64,
    rpm_target: u64,
    deadline_ms: u64,
    last_ok_ms: u64,
    last_requests: u64,
    planned_requests: u64,
    denied_ms: Option<u64>,
    /// The biggest reservation that waited for a lease.
    need: u64,
    /// Send an op at the next plan whether one is due or not.
    force: bool,
}

/// A denied budget is asked again at most this often.
const DENIED_RETRY_MS: u64 = 1000;

/// Spend settled here goes to the store at most this long after (with an
/// op due anyway, sooner): with the store's spend read every second
/// elsewhere, spend shows everywhere within 2 s, and a busy subject costs
/// about two ops a second, not one per request.
const SETTLE_MS: u64 = 500;

impl Subject {
    /// Ends a lease past its deadline: what it had left is not used.
    pub fn expire(&mut self, ledger: &mut Ledger, now_ms: u64) {
        let l = &mut ledger.lease;
        if l.live && now_ms >= self.deadline_ms {
            l.live = false;
            l.nanos = 0;
        }
    }

    /// The op to send now, if one is due (the pending one first).
    pub fn plan(
        &mut self,
        ledger: &mut Ledger,
        limits: &Limits,
        now_ms: u64,
        now_s: u64,
        ttl_ms: u64,
    ) -> Option<Op> {
        self.expire(ledger, now_ms);
        if let Some(op) = &self.pending {
            return Some(op.clone());
        }
        ledger.spent_nanos(limits, now_s); // rolls the period
        let reserved = ledger.reserved_nanos;
        let requests = ledger.totals.requests;
        let active = requests != self.last_requests;
        let l = &mut ledger.lease;
        let half_life = now_ms >= self.last_ok_ms + ttl_ms / 2;
        let settle_due = l.unsynced_nanos > 0 && now_ms >= self.last_ok_ms + SETTLE_MS;
        let mut send = settle_due || l.unsynced_requests > 0 || self.force;
        self.force = false;
        let (mut want, mut floor) = (0, 0);
        if let Some(budget) = limits.budget_nanos {
            let backoff = l.denied && self.denied_ms.is_some_and(|t| now_ms < t + DENIED_RETRY_MS);
            self.need = self.need.max(l.want_nanos);
            let low = l.live && l.nanos < self.target / 2 && self.target >= self.need;
            if (l.wanted && !backoff) || (active && low && !l.denied) {
                floor = l.want_nanos.saturating_sub(l.nanos);
                let size = if self.target == 0 {
                    (budget / 10).max(l.want_nanos)
                } else {
                    self.target.max(l.want_nanos)
                };
                want = size.saturating_sub(l.nanos).max(1);
                send = true;
            } else if l.live && half_life {
                if !active && reserved == 0 {
                    // Idle: the grant goes back for others to use.
                    l.nanos = 0;
                    l.live = false;
                }
                send = true;
            } else if reserved > 0 && half_life {
                send = true; // keep what is in flight counted
            }
        }
        let mut rpm_want = 0;
        if let Some(rpm) = limits.rpm {
            let low = self.rpm_target == 0 || l.requests * 2 <= self.rpm_target;
            if (l.wanted || active) && low && now_s >= l.full_until {
                rpm_want = if self.rpm_target == 0 {
                    rpm
                } else {
                    self.rpm_target - l.requests.min(self.rpm_target)
                };
                send |= rpm_want > 0;
            }
        }
        if !send {
            return None;
        }
        self.seq += 1;
        let op = Op {
            seq: self.seq,
            period: ledger.period_start,
            budget: limits.budget_nanos,
            batch: std::mem::take(&mut l.unsynced_nanos),
            hold: if l.live { l.nanos } else { 0 } + reserved,
            want,
            floor,
            rpm: limits.rpm,
            rpm_hold: l.requests,
            rpm_want,
            rpm_unsynced: std::mem::take(&mut l.unsynced_requests),
            sent_ms: now_ms,
        };
        l.wanted = false;
        l.want_nanos = 0;
        self.planned_requests = requests;
        self.pending = Some(op.clone());
        Some(op)
    }

    /// Sends an op at the next plan, due or not (the lease was given back
    /// at a clean stop, or the store lost the holds).
    pub fn force(&mut self) {
        self.force = true;
    }

    /// Takes in the store's answer to `op`.
    #[allow(clippy::too_many_arguments)] // the ledger, the op, and three clocks
    pub fn applied(
        &mut self,
        ledger: &mut Ledger,
        limits: &Limits,
        op: &Op,
        a: &Answer,
        now_ms: u64,
        now_s: u64,
        ttl_ms: u64,
    ) {
        self.pending = None;
        self.last_ok_ms = op.sent_ms;
        self.last_requests = self.planned_requests;
        ledger.spent_nanos(limits, now_s); // rolls the period
        let same = ledger.period_start == op.period;
        let l = &mut ledger.lease;
        // Wants raised while the op was out are stale: the requests that
        // raised them look again within a millisecond and raise them anew
        // if the answer did not cover them. (Kept, they asked twice: one
        // instance took a second grant it had no request for.)
        l.wanted = false;
        l.want_nanos = 0;
        if op.budget.is_some() && same {
            l.nanos += a.granted;
            l.live = true;
            self.deadline_ms = op.sent_ms + ttl_ms;
            self.target = a.target;
            l.denied = op.floor > 0 && a.granted < op.floor;
            self.denied_ms = l.denied.then_some(now_ms);
        }
        if same {
            ledger.spent_nanos = a.spend + l.unsynced_nanos;
        }
        if op.rpm.is_some() {
            l.requests += a.rpm_granted;
            self.rpm_target = a.rpm_target;
            if op.rpm_want > 0 && a.rpm_granted == 0 {
                l.full_until = now_s + a.retry.max(1);
            }
        }
    }

    /// The store answered `op` with an error: it did nothing we can count
    /// on, so what it carried goes back to be sent with the next one.
    pub fn refused(&mut self, ledger: &mut Ledger) {
        if let Some(op) = self.pending.take() {
            let l = &mut ledger.lease;
            l.unsynced_nanos += op.batch;
            l.unsynced_requests += op.rpm_unsynced;
        }
    }

    /// The period's spend as the store last said it, for a store that came
    /// back empty (what this instance owes is not in it).
    pub fn known_spend(&self, ledger: &Ledger) -> u64 {
        let pending = self.pending.as_ref().map_or(0, |op| op.batch);
        ledger
            .spent_nanos
            .saturating_sub(ledger.lease.unsynced_nanos)
            .saturating_sub(pending)
    }

    /// The store's spend for `period`, read without an op.
    pub fn refresh_spend(
        &self,
        ledger: &mut Ledger,
        limits: &Limits,
        period: u64,
        spend: u64,
        now_s: u64,
    ) {
        ledger.spent_nanos(limits, now_s);
        if ledger.period_start == period {
            let pending = self.pending.as_ref().map_or(0, |op| op.batch);
            ledger.spent_nanos = spend + ledger.lease.unsynced_nanos + pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::governance::ledger::{Need, Refusal, Used, View};

    const SHARED: View = View {
        shared: true,
        unavailable: false,
        budget_fail_open: false,
        rate_fail_open: true,
    };

    /// The Lua script's arithmetic (scripts.rs), for one subject.
    #[derive(Default)]
    struct Store {
        spend: u64,
        /// instance → (hold, expires_ms)
        grants: HashMap<usize, (u64, u64)>,
        /// instance → expires_ms (the script's `i:` fields)
        alive: HashMap<usize, u64>,
        answered: HashMap<usize, (u64, Answer)>,
        buckets: HashMap<u64, u64>,
    }

    impl Store {
        fn op(&mut self, inst: usize, op: &Op, now_ms: u64, ttl: u64) -> Answer {
            if let Some((seq, a)) = self.answered.get(&inst) {
                if *seq == op.seq {
                    return *a;
                }
            }
            self.grants.retain(|_, (_, exp)| *exp > now_ms);
            self.alive.retain(|_, exp| *exp > now_ms);
            let n = 1 + self.alive.keys().filter(|&&i| i != inst).count() as u64;
            self.alive.insert(inst, now_ms + 2 * ttl);
            let others: u64 = self
                .grants
                .iter()
                .filter(|(&i, _)| i != inst)
                .map(|(_, g)| g.0)
                .sum();
            self.spend += op.batch;
            let mut a = Answer {
                spend: self.spend,
                ..Answer::default()
            };
            if let Some(budget) = op.budget {
                let room = budget.saturating_sub(self.spend + others + op.hold);
                let cap = (room / (2 * n)).min(budget / 10).max(op.floor);
                if room >= op.floor {
                    a.granted = op.want.min(room).min(cap);
                }
                self.grants
                    .insert(inst, (op.hold + a.granted, now_ms + 2 * ttl));
                a.target = ((room - a.granted) / (2 * n)).min(budget / 10);
            }
            if let Some(rpm) = op.rpm {
                let now_s = now_ms / 1000;
                *self.buckets.entry(now_s).or_default() += op.rpm_unsynced;
                a.rpm_target = (rpm / (10 * n)).max(1);
                let want = op.rpm_want.min(a.rpm_target.saturating_sub(op.rpm_hold));
                let used: u64 = (now_s.saturating_sub(59)..=now_s)
                    .map(|s| self.buckets.get(&s).copied().unwrap_or(0))
                    .sum();
                a.rpm_granted = want.min(rpm.saturating_sub(used));
                *self.buckets.entry(now_s).or_default() += a.rpm_granted;
                if a.rpm_granted < want {
                    a.retry = 1;
                }
            }
            self.answered.insert(inst, (op.seq, a));
            a
        }
    }

    fn budget(b: u64) -> Limits {
        Limits {
            budget_nanos: Some(b),
            ..Limits::default()
        }
    }

    #[test]
    fn a_first_request_waits_for_a_grant_then_fits() {
        let l = budget(1_000);
        let mut g = Ledger::default();
        let need = Need {
            tokens: 1,
            nanos: 70,
        };
        assert_eq!(g.reserve(&l, need, 5, SHARED), Err(Refusal::Pending));
        let mut s = Subject::default();
        let mut store = Store::default();
        let op = s.plan(&mut g, &l, 0, 5, 3000).unwrap();
        assert_eq!((op.want, op.floor, op.hold), (100, 70, 0));
        let a = store.op(0, &op, 0, 3000);
        s.applied(&mut g, &l, &op, &a, 1, 5, 3000);
        assert_eq!(g.lease.nanos, 100, "a tenth of the budget");
        assert_eq!(g.reserve(&l, need, 5, SHARED), Ok(()));
        assert_eq!(g.reserve(&l, need, 5, SHARED), Err(Refusal::Pending));
        // Settled under its reservation: the rest goes back to the lease,
        // the spend waits for the next batch.
        g.settle(
            &l,
            need,
            5,
            Used {
                nanos: 20,
                ..Used::default()
            },
            6,
            SHARED,
        );
        assert_eq!(
            (g.lease.nanos, g.lease.unsynced_nanos, g.spent_nanos),
            (80, 20, 20)
        );
        let op = s.plan(&mut g, &l, 600, 6, 3000).unwrap();
        assert_eq!((op.batch, op.hold), (20, 80));
        let a = store.op(0, &op, 600, 3000);
        // A lost answer: the same op again changes nothing in the store.
        assert_eq!(store.op(0, &op, 601, 3000), a);
        s.applied(&mut g, &l, &op, &a, 602, 6, 3000);
        assert_eq!(store.spend, 20);
        assert_eq!(g.spent_nanos, 20);
        assert!(g.lease.nanos >= 80);
    }

    #[test]
    fn a_want_raised_while_the_op_is_out_takes_no_second_grant() {
        // Two requests' worth of budget: one instance's one waiting request
        // gets one grant, however often it looked while the op was out,
        // and the other half stays for others (the share left, 3.5, is
        // below a request, so nothing is taken ahead of need).
        let l = budget(14);
        let mut g = Ledger::default();
        let (mut s, mut store) = (Subject::default(), Store::default());
        let need = Need {
            tokens: 1,
            nanos: 7,
        };
        assert_eq!(g.reserve(&l, need, 1, SHARED), Err(Refusal::Pending));
        let op = s.plan(&mut g, &l, 0, 1, 3000).unwrap();
        // The request looks again before the answer.
        assert_eq!(g.reserve(&l, need, 1, SHARED), Err(Refusal::Pending));
        let a = store.op(0, &op, 0, 3000);
        s.applied(&mut g, &l, &op, &a, 1, 1, 3000);
        assert_eq!(g.reserve(&l, need, 1, SHARED), Ok(()));
        // Nothing waits now: no op asks for more.
        assert_eq!(s.plan(&mut g, &l, 2, 1, 3000), None);
        assert_eq!(store.grants[&0].0, 7);
    }

    #[test]
    fn requests_served_on_a_failing_open_rate_limit_are_counted_when_the_store_returns() {
        let l = Limits {
            rpm: Some(1000),
            ..Limits::default()
        };
        let mut g = Ledger::default();
        let (mut s, mut store) = (Subject::default(), Store::default());
        let away = View {
            unavailable: true,
            ..SHARED
        };
        for _ in 0..7 {
            assert_eq!(g.reserve(&l, Need::default(), 5, away), Ok(()));
        }
        assert_eq!(g.lease.unsynced_requests, 7);
        let closed = View {
            rate_fail_open: false,
            ..away
        };
        assert_eq!(
            g.reserve(&l, Need::default(), 5, closed),
            Err(Refusal::Unavailable)
        );
        // Back: the seven go into the store's minute with the first op.
        let op = s.plan(&mut g, &l, 0, 5, 3000).unwrap();
        assert_eq!(op.rpm_unsynced, 7);
        let a = store.op(0, &op, 5_000, 3000);
        s.applied(&mut g, &l, &op, &a, 1, 5, 3000);
        assert_eq!(store.buckets[&5], 7 + a.rpm_granted);
        assert_eq!(g.lease.unsynced_requests, 0);
    }

    #[test]
    fn a_lease_expires_and_the_budget_fails_closed_while_the_store_is_away() {
        let l = budget(1_000);
        let mut g = Ledger::default();
        let mut s = Subject::default();
        let mut store = Store::default();
        let need = Need {
            tokens: 1,
            nanos: 10,
        };
        let _ = g.reserve(&l, need, 1, SHARED);
        let op = s.plan(&mut g, &l, 0, 1, 3000).unwrap();
        let a = store.op(0, &op, 0, 3000);
        s.applied(&mut g, &l, &op, &a, 0, 1, 3000);
        let away = View {
            unavailable: true,
            ..SHARED
        };
        assert_eq!(
            g.reserve(&l, need, 1, away),
            Ok(()),
            "the lease still holds"
        );
        s.expire(&mut g, 2999);
        assert!(g.lease.live);
        s.expire(&mut g, 3000);
        assert_eq!(g.reserve(&l, need, 4, away), Err(Refusal::Unavailable));
        let open = View {
            budget_fail_open: true,
            ..away
        };
        assert_eq!(g.reserve(&l, need, 4, open), Ok(()));
    }

    /// Three instances, one store, random requests and settles (some over
    /// their reservation) and lost answers: the spend plus every
    /// reservation in flight never passes the budget by more than the
    /// overruns of settled requests.
    #[test]
    fn instances_together_never_pass_the_budget() {
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..50 {
            let budget_n = 10_000 + rng.u64(..50_000);
            let l = budget(budget_n);
            let mut store = Store::default();
            let n = 3;
            let mut ledgers = vec![Ledger::default(); n];
            let mut subjects = vec![Subject::default(); n];
            let mut flying: Vec<Vec<Need>> = vec![Vec::new(); n];
            let mut overrun = 0u64;
            let mut admitted_nanos = 0u64;
            let ttl = 3000;
            for step in 0..3000u64 {
                let now_ms = step * 10;
                let now_s = now_ms / 1000;
                let i = rng.usize(..n);
                match rng.u8(..10) {
                    0..=4 => {
                        let need = Need {
                            tokens: 1,
                            nanos: 50 + rng.u64(..500),
                        };
                        if ledgers[i].reserve(&l, need, now_s, SHARED).is_ok() {
                            flying[i].push(need);
                            admitted_nanos += need.nanos;
                        }
                    }
                    5..=7 if !flying[i].is_empty() => {
                        let need = flying[i].swap_remove(0);
                        let used = if rng.u8(..10) == 0 {
                            need.nanos + 20
                        } else {
                            rng.u64(..=need.nanos)
                        };
                        overrun += used.saturating_sub(need.nanos);
                        admitted_nanos -= need.nanos - need.nanos.min(used);
                        admitted_nanos += used.saturating_sub(need.nanos);
                        ledgers[i].settle(
                            &l,
                            need,
                            now_s,
                            Used {
                                nanos: used,
                                ..Used::default()
                            },
                            now_s,
                            SHARED,
                        );
                    }
                    _ => {
                        if let Some(op) = subjects[i].plan(&mut ledgers[i], &l, now_ms, now_s, ttl)
                        {
                            let a = store.op(i, &op, now_ms, ttl);
                            // One answer in five is lost: sent again later.
                            if rng.u8(..5) != 0 {
                                subjects[i].applied(
                                    &mut ledgers[i],
                                    &l,
                                    &op,
                                    &a,
                                    now_ms,
                                    now_s,
                                    ttl,
                                );
                            }
                        }
                    }
                }
                assert!(
                    admitted_nanos <= budget_n + overrun,
                    "round {round} step {step}: {admitted_nanos} committed over a budget of {budget_n} (+{overrun} overrun)"
                );
            }
            assert!(store.spend <= budget_n + overrun);
        }
    }

    #[test]
    fn rpm_chunks_are_a_share_and_a_full_minute_says_when() {
        let l = Limits {
            rpm: Some(100),
            ..Limits::default()
        };
        let mut store = Store::default();
        let mut a = (Ledger::default(), Subject::default());
        let mut b = (Ledger::default(), Subject::default());
        let need = Need::default();
        let mut admitted = 0;
        for step in 0..400u64 {
            let now_ms = 1_000_000 + step * 10;
            let now_s = now_ms / 1000;
            for (i, (g, s)) in [&mut a, &mut b].into_iter().enumerate() {
                for _ in 0..3 {
                    match g.reserve(&l, need, now_s, SHARED) {
                        Ok(()) => {
                            admitted += 1;
                            g.settle(&l, need, now_s, Used::default(), now_s, SHARED);
                        }
                        Err(Refusal::Pending) | Err(Refusal::Requests { .. }) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
                if let Some(op) = s.plan(g, &l, now_ms, now_s, 3000) {
                    assert!(op.rpm_hold + op.rpm_want <= 100);
                    let ans = store.op(i, &op, now_ms, 3000);
                    if i == 1 {
                        assert!(ans.rpm_target <= 5, "a tenth shared by two: {ans:?}");
                    }
                    s.applied(g, &l, &op, &ans, now_ms, now_s, 3000);
                }
            }
        }
        // Four seconds of asking: the minute's 100, never more.
        assert_eq!(admitted, 100);
        assert!(a.0.lease.full_until > 0 || b.0.lease.full_until > 0);
    }
}
