//! Building upstream's settings from the configuration: per-provider
//! timeouts, the retry policy's and the breaker's settings.
//!
//! Invariant: upstream imports `config`, never the reverse, so `config`
//! stays a leaf of the crate's module graph.

use super::breaker::BreakerConfig;
use super::retry::{Jitter, RetryConfig};
use super::timeouts::Timeouts;
use crate::config::{ProviderConfig, ResilienceConfig, UpstreamConfig};

impl Timeouts {
    /// A provider's timeouts: its own where set, else `upstream`'s.
    pub fn for_provider(p: &ProviderConfig, upstream: &UpstreamConfig) -> Timeouts {
        let total = p.total_timeout_ms.unwrap_or(upstream.total_timeout_ms);
        Timeouts {
            connect: p.connect_timeout_ms.unwrap_or(upstream.connect_timeout_ms),
            first_byte: p
                .first_byte_timeout_ms
                .unwrap_or(upstream.first_byte_timeout_ms),
            idle: p.idle_timeout_ms.unwrap_or(upstream.idle_timeout_ms),
            // 0: unbounded.
            total: (!total.is_zero()).then_some(total),
        }
    }
}

impl From<&ResilienceConfig> for RetryConfig {
    fn from(r: &ResilienceConfig) -> RetryConfig {
        RetryConfig {
            max_retries: r.max_retries,
            backoff_base: r.backoff_base_ms,
            backoff_cap: r.backoff_cap_ms,
            jitter: Jitter::Full,
            max_retry_after: r.max_retry_after_ms,
            budget_ratio: r.retry_budget_ratio,
            budget_min_retries: r.retry_budget_min_retries,
            budget_window: r.retry_budget_window_ms,
            on_timeout: r.retry_on_timeout,
            on_broken_response: r.retry_on_broken_response,
        }
    }
}

impl From<&ResilienceConfig> for BreakerConfig {
    fn from(r: &ResilienceConfig) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: r.breaker_consecutive_failures,
            base_ejection: r.breaker_base_ejection_ms,
            max_ejection: r.breaker_max_ejection_ms,
            probe_timeout: BreakerConfig::default().probe_timeout,
            count_429: r.breaker_count_429,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn provider_timeouts_override_upstream_and_inherit_the_rest() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let c = Config::from_toml(
            "[upstream]\nconnect_timeout_ms = 700\nfirst_byte_timeout_ms = 9000\ntotal_timeout_ms = 60000\n\
             [providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\nfirst_byte_timeout_ms = 200\nidle_timeout_ms = 300\n\
             [providers.b]\nbase_url = \"http://127.0.0.1:2/v1\"\nconnect_timeout_ms = 50\ntotal_timeout_ms = 0\n\
             [providers.c]\nbase_url = \"http://127.0.0.1:3/v1\"\n",
        )
        .unwrap();
        crate::providers::validate(&c).unwrap();
        let t = |n: &str| Timeouts::for_provider(&c.providers[n], &c.upstream);
        let a = t("a");
        assert_eq!(
            (a.connect, a.first_byte, a.idle),
            (ms(700), ms(200), ms(300))
        );
        assert_eq!(a.total, Some(ms(60_000)));
        // 0 lifts a global total for this provider alone.
        let b = t("b");
        assert_eq!((b.connect, b.first_byte, b.total), (ms(50), ms(9000), None));
        let c3 = t("c");
        assert_eq!(c3.idle, UpstreamConfig::default().idle_timeout_ms);
        assert_eq!(c3.total, Some(ms(60_000)));
        // The shipped default total is finite; 0 globally means unbounded.
        let d = ProviderConfig::default();
        assert_eq!(
            Timeouts::for_provider(&d, &UpstreamConfig::default()).total,
            Some(ms(3_600_000))
        );
        let none = Config::from_toml("[upstream]\ntotal_timeout_ms = 0\n").unwrap();
        crate::providers::validate(&none).unwrap();
        assert_eq!(Timeouts::for_provider(&d, &none.upstream).total, None);
    }
}
