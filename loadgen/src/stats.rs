//! What one executor measured: latency histograms (microseconds), outcome
//! counts and schedule lag. Recorded without sharing on the hot path; merged
//! once at the end.

use crate::validate::ErrorClass;
use hdrhistogram::Histogram;
use std::time::Duration;

/// Lateness beyond which a send counts as behind schedule.
pub const LATE: Duration = Duration::from_millis(1);

pub struct Stats {
    /// Whole exchange, from the (scheduled) send time to the last byte.
    pub latency: Histogram<u64>,
    /// Streams: send time to the first complete SSE event.
    pub ttft: Histogram<u64>,
    /// Streams: time between reads that completed at least one event.
    pub gaps: Histogram<u64>,
    pub ok: u64,
    pub errors: [u64; ErrorClass::ALL.len()],
    pub bytes_in: u64,
    /// Open loop: sends the generator itself started late (its timer woke
    /// more than `LATE` after the scheduled time), and the worst such lag.
    pub generator_late: u64,
    pub generator_max_lag: Duration,
    /// Open loop: sends that waited because every connection was busy.
    pub queued_late: u64,
    /// Measurement window as seen by this executor (first measured start, last completion).
    pub window: Option<(std::time::Instant, std::time::Instant)>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds")
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            latency: histogram(),
            ttft: histogram(),
            gaps: histogram(),
            ok: 0,
            errors: [0; ErrorClass::ALL.len()],
            bytes_in: 0,
            generator_late: 0,
            generator_max_lag: Duration::ZERO,
            queued_late: 0,
            window: None,
        }
    }

    pub fn record(h: &mut Histogram<u64>, d: Duration) {
        h.saturating_record((d.as_micros() as u64).max(1));
    }

    pub fn error(&mut self, class: ErrorClass) {
        self.errors[class as usize] += 1;
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        let _ = self.ttft.add(&other.ttft);
        let _ = self.gaps.add(&other.gaps);
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.bytes_in += other.bytes_in;
        self.generator_late += other.generator_late;
        self.generator_max_lag = self.generator_max_lag.max(other.generator_max_lag);
        self.queued_late += other.queued_late;
        self.window = match (self.window, other.window) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            (a, b) => a.or(b),
        };
    }

    pub fn widen_window(&mut self, start: std::time::Instant, end: std::time::Instant) {
        self.window = Some(match self.window {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }
}
