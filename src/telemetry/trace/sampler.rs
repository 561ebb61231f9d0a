//! Which traces are recorded: OpenTelemetry's `parentbased_traceidratio`.
//! A request that continues a client's trace follows the client's sampled
//! flag (so a trace is whole or absent, never holed); a new trace is
//! sampled when its id falls under the ratio.
//!
//! Invariant: the decision for a new trace depends on its id alone (the
//! low 56 bits of its last 8 bytes, the bits W3C Trace Context level 2
//! calls random), so every process with the same ratio decides the same
//! for the same trace, and ratio 0 samples none, ratio 1 every one.

use super::span::TraceId;

/// A ratio sampler, honouring a parent's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    /// Sampled when the id's 56 random bits are below this; 2^56 for all.
    threshold: u64,
}

const RANDOM_BITS: u32 = 56;

impl Sampler {
    /// `ratio` in 0..=1 (validated with the config); outside, clamped.
    pub fn new(ratio: f64) -> Sampler {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        Sampler {
            threshold: (ratio * (1u64 << RANDOM_BITS) as f64) as u64,
        }
    }

    /// Whether a trace is recorded: the parent's flag when there is a
    /// parent, else by the trace id.
    pub fn sampled(&self, trace_id: &TraceId, parent_sampled: Option<bool>) -> bool {
        if let Some(parent) = parent_sampled {
            return parent;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id.0[8..]);
        let random = u64::from_be_bytes(low) & ((1u64 << RANDOM_BITS) - 1);
        random < self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> TraceId {
        let mut t = [1u8; 16];
        t[8..].copy_from_slice(&n.to_be_bytes());
        TraceId(t)
    }

    #[test]
    fn zero_samples_none_one_samples_all() {
        let (none, all) = (Sampler::new(0.0), Sampler::new(1.0));
        for n in [0, 1, 12345, (1 << 56) - 1, u64::MAX] {
            assert!(!none.sampled(&id(n), None));
            assert!(all.sampled(&id(n), None));
        }
    }

    #[test]
    fn the_parents_flag_wins() {
        assert!(Sampler::new(0.0).sampled(&id(5), Some(true)));
        assert!(!Sampler::new(1.0).sampled(&id(5), Some(false)));
    }

    #[test]
    fn a_ratio_samples_about_its_share() {
        let s = Sampler::new(0.25);
        let mut rng = fastrand::Rng::with_seed(7);
        let hits = (0..100_000)
            .filter(|_| s.sampled(&id(rng.u64(..)), None))
            .count();
        assert!((23_500..26_500).contains(&hits), "{hits}");
    }
}
