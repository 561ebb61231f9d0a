//! One request's reservation against its key and team: taken before the
//! request goes upstream (both ledgers or neither), grown while a stream
//! runs past what was reserved for its output, and settled to what was
//! really used when it ends — or given back if it is dropped unsettled.
//! Also the `x-ratelimit-*` headers the reservation's view of the key
//! gives (OpenAI's names and formats).
//!
//! Invariant: every `Admission` gives back exactly what it took, once
//! (`settle`, else `Drop`); the key's lock is always taken before its
//! team's, so two requests never wait on each other in a circle.

use std::sync::Arc;

use super::ledger::{Need, Refusal, Used, View};
use super::table::KeyEntry;

/// A request admitted under its key (and team).
pub struct Admission {
    key: Arc<KeyEntry>,
    need: Need,
    at: u64,
    /// How it met the shared store when admitted (its settle gives back to
    /// the same place it took from).
    view: View,
    /// Reservations added while a stream ran, and when.
    grown: Vec<(Need, u64)>,
    settled: bool,
}

/// Why a request was not admitted, and whose limit it was.
#[derive(Debug)]
pub struct Denied {
    pub refusal: Refusal,
    /// The team's limit, not the key's own.
    pub by_team: bool,
    pub headers: RateHeaders,
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: limit, what is
/// left counting this request, seconds until the oldest counted use leaves
/// the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<(u64, u64, u64)>,
    pub tokens: Option<(u64, u64, u64)>,
}

/// Reserves `need` for a request under `key` at `now` (Unix seconds);
/// `view` is how the shared store stands (`View::default()` under the
/// local backend).
pub fn admit(
    key: &Arc<KeyEntry>,
    need: Need,
    now: u64,
    view: View,
) -> Result<(Admission, RateHeaders), Denied> {
    let mut ledger = key.ledger.lock();
    let mut team = key.team.as_ref().map(|t| (t, t.ledger.lock()));
    let deny = |refusal, by_team, headers| Denied {
        refusal,
        by_team,
        headers,
    };
    if let Err(r) = ledger.check(&key.limits, need, now, view) {
        ledger.count_refusal(r);
        if r == Refusal::Pending {
            // Let the team ask for its lease in the same round: a check
            // takes nothing, it only raises the team's want.
            if let Some((t, tl)) = team.as_mut() {
                let _ = tl.check(&t.limits, need, now, view);
            }
        }
        let headers = rate_headers(key, &mut ledger, now);
        return Err(deny(r, false, headers));
    }
    if let Some((t, tl)) = team.as_mut() {
        if let Err(r) = tl.check(&t.limits, need, now, view) {
            ledger.count_refusal(r);
            tl.count_refusal(r);
            let headers = rate_headers(key, &mut ledger, now);
            return Err(deny(r, true, headers));
        }
        tl.take(&t.limits, need, now, view);
    }
    ledger.take(&key.limits, need, now, view);
    let headers = rate_headers(key, &mut ledger, now);
    drop(team);
    drop(ledger);
    Ok((
        Admission {
            key: key.clone(),
            need,
            at: now,
            view,
            grown: Vec::new(),
            settled: false,
        },
        headers,
    ))
}

fn rate_headers(key: &KeyEntry, ledger: &mut super::ledger::Ledger, now: u64) -> RateHeaders {
    let view = |limit: Option<u64>, w: &mut super::window::Window| {
        limit.map(|l| {
            let used = w.used(now);
            (l, l.saturating_sub(used), w.oldest_leaves_in(now))
        })
    };
    RateHeaders {
        requests: view(key.limits.rpm, &mut ledger.requests),
        tokens: view(key.limits.tpm, &mut ledger.tokens),
    }
}

impl Admission {
    pub fn key(&self) -> &KeyEntry {
        &self.key
    }

    /// What was reserved for this request, growth included.
    pub fn reserved(&self) -> Need {
        self.grown.iter().fold(self.need, |a, (g, _)| Need {
            tokens: a.tokens + g.tokens,
            nanos: a.nanos + g.nanos,
        })
    }

    /// Grows the reservation by `more`, if key and team both have room.
    pub fn grow(&mut self, more: Need, now: u64) -> Result<(), Denied> {
        let key = &self.key;
        let mut ledger = key.ledger.lock();
        ledger
            .extend(&key.limits, more, now, self.view)
            .map_err(|refusal| Denied {
                refusal,
                by_team: false,
                headers: RateHeaders::default(),
            })?;
        if let Some(t) = &key.team {
            if let Err(refusal) = t.ledger.lock().extend(&t.limits, more, now, self.view) {
                // Give the key's part back: all or nothing.
                ledger.unextend(&key.limits, more, now, self.view);
                return Err(Denied {
                    refusal,
                    by_team: true,
                    headers: RateHeaders::default(),
                });
            }
        }
        drop(ledger);
        self.grown.push((more, now));
        Ok(())
    }

    /// Charges what the request really used, in place of the reservation.
    pub fn settle(mut self, used: Used, now: u64) {
        self.give_back(used, now);
    }

    fn give_back(&mut self, used: Used, now: u64) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let key = &self.key;
        let view = self.view;
        let mut ledger = key.ledger.lock();
        let mut team = key.team.as_ref().map(|t| (t, t.ledger.lock()));
        // Growth is settled as part of the whole: its money joins the
        // first reservation's (so a lease gets back what neither used), its
        // tokens leave the window at the second they were counted.
        let mut whole = self.need;
        for &(g, at) in &self.grown {
            ledger.tokens.take_back(now, at, g.tokens);
            if let Some((_, tl)) = team.as_mut() {
                tl.tokens.take_back(now, at, g.tokens);
            }
            whole.nanos += g.nanos;
        }
        ledger.settle(&key.limits, whole, self.at, used, now, view);
        if let Some((t, tl)) = team.as_mut() {
            tl.settle(&t.limits, whole, self.at, used, now, view);
        }
    }
}

impl Drop for Admission {
    /// A request dropped without its settle (a panic in its handler) gives
    /// its reservation back and is charged nothing more: its usage was
    /// never read.
    fn drop(&mut self) {
        if !self.settled {
            self.give_back(Used::default(), super::clock::unix_now());
        }
    }
}

impl RateHeaders {
    /// Appends the headers there are, as response header lines (on every
    /// response of a limited key: written without allocating).
    pub fn push(&self, out: &mut Vec<u8>) {
        const NAMES: [[&[u8]; 3]; 2] = [
            [
                b"x-ratelimit-limit-requests: ",
                b"\r\nx-ratelimit-remaining-requests: ",
                b"\r\nx-ratelimit-reset-requests: ",
            ],
            [
                b"x-ratelimit-limit-tokens: ",
                b"\r\nx-ratelimit-remaining-tokens: ",
                b"\r\nx-ratelimit-reset-tokens: ",
            ],
        ];
        let mut digits = itoa::Buffer::new();
        for (names, v) in NAMES.iter().zip([self.requests, self.tokens]) {
            let Some((limit, remaining, reset)) = v else {
                continue;
            };
            out.reserve(160);
            out.extend_from_slice(names[0]);
            out.extend_from_slice(digits.format(limit).as_bytes());
            out.extend_from_slice(names[1]);
            out.extend_from_slice(digits.format(remaining).as_bytes());
            out.extend_from_slice(names[2]);
            push_duration(out, reset);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// OpenAI's duration format: `1s`, `6m0s`, `1h2m3s`.
fn push_duration(out: &mut Vec<u8>, secs: u64) {
    let mut digits = itoa::Buffer::new();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        out.extend_from_slice(digits.format(h).as_bytes());
        out.push(b'h');
    }
    if h > 0 || m > 0 {
        out.extend_from_slice(digits.format(m).as_bytes());
        out.push(b'm');
    }
    out.extend_from_slice(digits.format(s).as_bytes());
    out.push(b's');
}

#[cfg(test)]
mod tests {
    use super::super::ledger::Limits;
    use super::super::records::KeySpec;
    use super::super::table::{LedgerCell, TeamEntry};
    use super::*;

    fn key(limits: Limits, team: Option<Limits>) -> Arc<KeyEntry> {
        Arc::new(KeyEntry {
            spec: KeySpec::default(),
            limits,
            ledger: Arc::new(LedgerCell::default()),
            team: team.map(|limits| {
                Arc::new(TeamEntry {
                    spec: Default::default(),
                    limits,
                    ledger: Arc::new(LedgerCell::default()),
                })
            }),
        })
    }

    #[test]
    fn concurrent_first_requests_never_pass_the_budget() {
        // 200 threads at once on a fresh key whose budget covers 10.
        let k = key(
            Limits {
                budget_nanos: Some(10_000),
                ..Limits::default()
            },
            None,
        );
        let admitted: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..200)
                .map(|_| {
                    s.spawn(|| {
                        admit(
                            &k,
                            Need {
                                tokens: 5,
                                nanos: 1_000,
                            },
                            100,
                            View::default(),
                        )
                        .ok()
                        .map(|a| a.0)
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(admitted.len(), 10);
        for a in admitted {
            a.settle(
                Used {
                    input_tokens: 1,
                    output_tokens: 1,
                    nanos: 400,
                },
                101,
            );
        }
        let mut l = k.ledger.lock();
        assert_eq!(
            (l.spent_nanos, l.reserved_nanos, l.in_flight),
            (4_000, 0, 0)
        );
        assert_eq!(l.tokens.used(101), 20);
    }

    #[test]
    fn a_team_limit_refuses_and_the_key_keeps_nothing() {
        let k = key(
            Limits::default(),
            Some(Limits {
                max_concurrent: Some(1),
                ..Limits::default()
            }),
        );
        let (a, _) = admit(&k, Need::default(), 1, View::default()).unwrap();
        let Err(denied) = admit(&k, Need::default(), 1, View::default()) else {
            panic!("admitted past the team's concurrency")
        };
        assert!(denied.by_team);
        assert_eq!(denied.refusal, Refusal::Concurrency);
        assert_eq!(k.ledger.lock().in_flight, 1);
        drop(a);
        assert_eq!(k.ledger.lock().in_flight, 0);
        assert!(admit(&k, Need::default(), 1, View::default()).is_ok());
    }

    #[test]
    fn headers_count_the_request_they_are_sent_with() {
        let k = key(
            Limits {
                rpm: Some(3),
                tpm: Some(100),
                ..Limits::default()
            },
            None,
        );
        let (_a, h) = admit(
            &k,
            Need {
                tokens: 10,
                nanos: 0,
            },
            50,
            View::default(),
        )
        .unwrap();
        assert_eq!(h.requests, Some((3, 2, 60)));
        assert_eq!(h.tokens, Some((100, 90, 60)));
        let mut out = Vec::new();
        h.push(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("x-ratelimit-remaining-requests: 2\r\n"),
            "{text}"
        );
        assert!(
            text.contains("x-ratelimit-reset-tokens: 1m0s\r\n"),
            "{text}"
        );
        for (secs, text) in [(1, "1s"), (360, "6m0s"), (3723, "1h2m3s"), (3600, "1h0m0s")] {
            let mut out = Vec::new();
            push_duration(&mut out, secs);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn growth_is_given_back_with_the_settle() {
        let k = key(
            Limits {
                budget_nanos: Some(1_000),
                tpm: Some(1_000),
                ..Limits::default()
            },
            Some(Limits {
                budget_nanos: Some(600),
                ..Limits::default()
            }),
        );
        let (mut a, _) = admit(
            &k,
            Need {
                tokens: 10,
                nanos: 300,
            },
            5,
            View::default(),
        )
        .unwrap();
        a.grow(
            Need {
                tokens: 10,
                nanos: 200,
            },
            6,
        )
        .unwrap();
        let denied = a
            .grow(
                Need {
                    tokens: 10,
                    nanos: 200,
                },
                7,
            )
            .unwrap_err();
        assert!(denied.by_team, "the team's 600 is the tighter budget");
        assert_eq!(
            k.ledger.lock().reserved_nanos,
            500,
            "the key's part of the refused growth was given back"
        );
        a.settle(
            Used {
                input_tokens: 5,
                output_tokens: 20,
                nanos: 450,
            },
            8,
        );
        let mut l = k.ledger.lock();
        assert_eq!((l.reserved_nanos, l.spent_nanos), (0, 450));
        assert_eq!(l.tokens.used(8), 25);
    }
}
