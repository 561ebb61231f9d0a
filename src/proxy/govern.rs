//! The governance step of a request that presented a key, between its first
//! routing and its first attempt: the key's model allow-list (403), then its
//! reservation against the key's and team's limits and budgets (429, in
//! the caller's dialect, with `Retry-After`); and, in the log phase, the
//! settle of that reservation to what the request really used.
//!
//! Estimates (what is reserved before the upstream says what it used):
//! input tokens are the body's bytes / 4, rounded up — an over-estimate
//! for English text in JSON (tokens average about 4 characters, and the
//! JSON around the text costs bytes but no tokens), so a reservation is on
//! the safe side; output tokens are the request's `max_tokens` (or
//! `max_completion_tokens`, `max_output_tokens`), else
//! `governance.default_max_output_tokens`. The settle replaces both by the
//! upstream's reported usage; a response without one (a stream cut before
//! its usage event) pays its input estimate and the output relayed until
//! then, as the stream's running count estimated it.
//!
//! Under the shared store (`state.backend = "redis"`) a request whose
//! subject has no lease yet (a fresh key, or one whose lease ran out)
//! nudges the `state-sync` thread and waits for one, yielding the shard,
//! at most `state.unavailable_wait_ms`; past it the store counts as away
//! for that request, and each limit follows `state.on_unavailable` (a
//! budget failing closed is a 503 `state_unavailable`). In steady state
//! the lease is topped up before it runs out and nothing waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::usage::Usage;
use crate::error::{Error, Kind};
use crate::governance::{
    admit, unix_now, Admission, Denied, Governance, KeyEntry, Need, RateHeaders, Refusal, Used,
    View,
};
use crate::providers::prices::Price;
use crate::shard::Gateway;

/// Why a governed stream was cut while it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    Budget,
    Tokens,
}

/// A governed request's reservation while it runs, and, for a stream that
/// reserved a default output (no `max_tokens`), how far its output may go
/// before the reservation must grow: by one more default reservation at a
/// time, as long as the key and team have the budget and tokens for it.
pub(super) struct OutputGate {
    pub admission: Admission,
    /// Output tokens covered so far; `None` when the request named its own
    /// most (the upstream stops it there, and the reservation covers it).
    allowed: Option<u64>,
    /// One growth: tokens, and their cost at the model's output price.
    step: Need,
}

impl OutputGate {
    /// After `seen` output tokens: whether the stream may go on (growing
    /// the reservation if it must), or why it is cut.
    pub fn check(&mut self, seen: u64) -> Result<(), Cut> {
        let Some(allowed) = self.allowed.as_mut() else {
            return Ok(());
        };
        while seen > *allowed {
            if let Err(d) = self.admission.grow(self.step, unix_now()) {
                return Err(match d.refusal {
                    Refusal::Tokens { .. } | Refusal::Requests { .. } | Refusal::Concurrency => {
                        Cut::Tokens
                    }
                    // No lease covers more (or the store is away): a stream
                    // cannot wait for one, and budgets fail closed.
                    Refusal::Budget { .. } | Refusal::Pending | Refusal::Unavailable => Cut::Budget,
                });
            }
            *allowed += self.step.tokens;
        }
        Ok(())
    }

    /// Whether the stream's output is watched at all.
    pub fn watches(&self) -> bool {
        self.allowed.is_some()
    }
}

/// Input tokens estimated from a body of `bytes`.
pub(super) fn input_estimate(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

/// Checks the allow-list and reserves for a request to `model` (as the
/// client sent it), routed to `provider`'s `upstream_model`. The rate
/// headers come back either way, for the answer's head.
#[allow(clippy::too_many_arguments)]
pub(super) async fn reserve(
    gw: &Gateway,
    gov: &Governance,
    key: &Arc<KeyEntry>,
    model: &str,
    provider: usize,
    upstream_model: &str,
    body_bytes: u64,
    max_output: Option<u64>,
) -> Result<(OutputGate, RateHeaders), (Error, Option<RateHeaders>)> {
    if key.spec.models.is_some() {
        let resolved = format!("{}/{upstream_model}", gw.router.providers[provider].name);
        if !key.allows(model, &resolved) {
            let e = Error::client(
                Kind::Forbidden,
                format!("this API key may not use the model `{model}`"),
            )
            .with_param("model");
            return Err((e, None));
        }
    }
    let input = input_estimate(body_bytes);
    let default_output = gw.config.governance.default_max_output_tokens;
    let output = max_output.unwrap_or(default_output);
    let price = gw.router.prices.price(upstream_model);
    let cost = |input_tokens, output_tokens| {
        price.map_or(0, |p| {
            p.cost_nanos(&Usage {
                input_tokens,
                output_tokens,
                ..Usage::default()
            })
        })
    };
    let need = Need {
        tokens: input.saturating_add(output),
        nanos: cost(input, output),
    };
    let gate = |admission| OutputGate {
        admission,
        allowed: max_output.is_none().then_some(output),
        step: Need {
            tokens: default_output,
            nanos: cost(0, default_output),
        },
    };
    let mut deadline = None;
    loop {
        match admit(key, need, unix_now(), gov.shared.view()) {
            Err(d) if d.refusal == Refusal::Pending => {
                let now = Instant::now();
                let until = *deadline.get_or_insert_with(|| now + gov.shared.wait());
                if now >= until {
                    // Waited long enough: for this request the store is
                    // away, and each limit follows `state.on_unavailable`.
                    let away = View {
                        unavailable: true,
                        ..gov.shared.view()
                    };
                    return admit(key, need, unix_now(), away)
                        .map(|(a, headers)| (gate(a), headers))
                        .map_err(|d| {
                            let headers = d.headers;
                            (refused(key, &d), Some(headers))
                        });
                }
                gov.shared.wake();
                monoio::time::sleep(LEASE_POLL.min(until - now)).await;
            }
            other => {
                return other.map(|(a, headers)| (gate(a), headers)).map_err(|d| {
                    let headers = d.headers;
                    (refused(key, &d), Some(headers))
                })
            }
        }
    }
}

/// How often a request waiting for a lease looks again.
const LEASE_POLL: Duration = Duration::from_millis(1);

/// The error for a refused reservation, naming whose limit it was.
fn refused(key: &KeyEntry, d: &Denied) -> Error {
    let whose = match (&key.team, d.by_team) {
        (Some(t), true) => format!("team `{}`", t.spec.name),
        _ => format!("API key `{}`", key.spec.name),
    };
    let limits = match (&key.team, d.by_team) {
        (Some(t), true) => t.limits,
        _ => key.limits,
    };
    match d.refusal {
        Refusal::Requests { retry_after } => Error::client(
            Kind::RateLimited,
            format!(
                "rate limit reached for {whose}: {} requests per minute; try again in {retry_after}s",
                limits.rpm.unwrap_or(0)
            ),
        )
        .with_retry_after(retry_after),
        Refusal::Tokens { retry_after } => Error::client(
            Kind::RateLimited,
            format!(
                "rate limit reached for {whose}: {} tokens per minute (this request reserves its \
                 input and its max_tokens); try again in {retry_after}s",
                limits.tpm.unwrap_or(0)
            ),
        )
        .with_retry_after(retry_after),
        Refusal::Concurrency => Error::client(
            Kind::RateLimited,
            format!(
                "{whose} already has {} requests in flight (max_concurrent)",
                limits.max_concurrent.unwrap_or(0)
            ),
        )
        .with_retry_after(1),
        Refusal::Pending | Refusal::Unavailable => Error::gateway(
            Kind::StateUnavailable,
            format!(
                "the shared state store cannot be reached, and the limits of {whose} cannot be \
                 checked without it; try again shortly"
            ),
        )
        .with_retry_after(1),
        Refusal::Budget { resets_in } => {
            let e = Error::client(
                Kind::BudgetExceeded,
                format!(
                    "the budget of {whose} (${:.2}, {}) is spent{}",
                    limits.budget_nanos.unwrap_or(0) as f64 / 1e9,
                    period_name(limits.period),
                    if resets_in.is_some() { "; it starts again at the period's end" } else { "" }
                ),
            );
            match resets_in {
                Some(s) => e.with_retry_after(s),
                None => e,
            }
        }
    }
}

fn period_name(p: crate::governance::Period) -> &'static str {
    match p {
        crate::governance::Period::Day => "per day",
        crate::governance::Period::Week => "per week",
        crate::governance::Period::Month => "per month",
        crate::governance::Period::Total => "in total",
    }
}

/// Settles `admission` to what the request used: the upstream's usage when
/// it reported one, else the input estimate (for a response that reached
/// the client at all) and the output the stream's running count saw.
pub(super) fn settle(
    gate: OutputGate,
    price: Option<Price>,
    usage: Option<Usage>,
    answered: bool,
    body_bytes: u64,
    output_seen: u64,
) {
    let usage = match usage {
        Some(u) => u,
        None if answered => Usage {
            input_tokens: input_estimate(body_bytes),
            output_tokens: output_seen,
            ..Usage::default()
        },
        None => Usage::default(),
    };
    let used = Used {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        nanos: price.map_or(0, |p| p.cost_nanos(&usage)),
    };
    gate.admission.settle(used, unix_now());
}
