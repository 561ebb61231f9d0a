//! The mock's configurable misbehaviour: response latency (fixed or drawn from
//! a distribution) and faults injected into a fraction of requests. Each
//! request draws once; the fractions are cumulative slices of [0, 1), so they
//! are honoured independently and must sum to at most 1.

use crate::args::{parse_duration, Flags};
use crate::rng::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    Uniform(Duration, Duration),
    Exponential(Duration),
}

impl Latency {
    pub fn parse(spec: &str) -> Result<Latency, String> {
        let bad = || format!("--latency: bad spec `{spec}` (5ms, uniform:2ms..10ms, exp:5ms)");
        let d = |s: &str| parse_duration(s).ok_or_else(bad);
        if let Some(range) = spec.strip_prefix("uniform:") {
            let (a, b) = range.split_once("..").ok_or_else(bad)?;
            let (a, b) = (d(a)?, d(b)?);
            return if a <= b {
                Ok(Latency::Uniform(a, b))
            } else {
                Err(bad())
            };
        }
        if let Some(mean) = spec.strip_prefix("exp:") {
            return Ok(Latency::Exponential(d(mean)?));
        }
        Ok(Latency::Fixed(d(spec)?))
    }

    pub fn sample(self, rng: &mut Rng) -> Duration {
        match self {
            Latency::Fixed(d) => d,
            Latency::Uniform(a, b) => a + (b - a).mul_f64(rng.unit()),
            Latency::Exponential(mean) => {
                Duration::from_secs_f64(rng.exponential(mean.as_secs_f64()))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    TooManyRequests,
    InternalError,
    Unavailable,
    Reset,
    Stall,
    Truncate,
}

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// (cumulative upper bound, fault), in draw order.
    slices: Vec<(f64, Fault)>,
    pub stall_for: Duration,
}

impl Faults {
    pub fn from_flags(f: &mut Flags) -> Result<Faults, String> {
        let mut slices = Vec::new();
        let mut total = 0.0;
        for (flag, fault) in [
            ("fail-429", Fault::TooManyRequests),
            ("fail-500", Fault::InternalError),
            ("fail-503", Fault::Unavailable),
            ("reset", Fault::Reset),
            ("stall", Fault::Stall),
            ("truncate", Fault::Truncate),
        ] {
            let fraction = f.fraction(flag)?;
            if fraction > 0.0 {
                total += fraction;
                slices.push((total, fault));
            }
        }
        if total > 1.0 + 1e-9 {
            return Err(format!("fault fractions sum to {total}, more than 1"));
        }
        Ok(Faults {
            slices,
            stall_for: f.duration("stall-for")?.unwrap_or(Duration::from_secs(60)),
        })
    }

    pub fn draw(&self, rng: &mut Rng) -> Option<Fault> {
        if self.slices.is_empty() {
            return None;
        }
        let u = rng.unit();
        self.slices
            .iter()
            .find(|(upper, _)| u < *upper)
            .map(|&(_, fault)| fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_specs() {
        assert_eq!(
            Latency::parse("5ms").unwrap(),
            Latency::Fixed(Duration::from_millis(5))
        );
        assert!(matches!(
            Latency::parse("uniform:1ms..2ms").unwrap(),
            Latency::Uniform(..)
        ));
        assert!(matches!(
            Latency::parse("exp:3ms").unwrap(),
            Latency::Exponential(..)
        ));
        assert!(Latency::parse("uniform:3ms..1ms").is_err());
    }

    #[test]
    fn fractions_are_cumulative_and_bounded() {
        let args = ["--fail-429", "0.25", "--reset", "0.25"];
        let faults = Faults::from_flags(&mut Flags::mock(&args).unwrap()).unwrap();
        let mut rng = Rng::new(3);
        let n = 40_000;
        let draws: Vec<_> = (0..n).map(|_| faults.draw(&mut rng)).collect();
        let share = |f| draws.iter().filter(|d| **d == f).count() as f64 / n as f64;
        assert!((share(Some(Fault::TooManyRequests)) - 0.25).abs() < 0.02);
        assert!((share(Some(Fault::Reset)) - 0.25).abs() < 0.02);
        assert!((share(None) - 0.5).abs() < 0.02);
        let too_much = ["--fail-500", "0.7", "--stall", "0.7"];
        assert!(Faults::from_flags(&mut Flags::mock(&too_much).unwrap()).is_err());
    }
}
