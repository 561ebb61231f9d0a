//! The price table: US dollars per million tokens by model, for the cost of
//! each request. A shipped table of public list prices (late 2025), which
//! `[[prices]]` in the config overrides or extends.
//!
//! Lookup is by the model name sent upstream: exact, else the longest
//! shipped name it starts with (`gpt-4o-2024-08-06` → `gpt-4o`,
//! `claude-3-5-sonnet-20241022` → `claude-3-5-sonnet`); unknown models cost 0.
//! Lookups borrow and never allocate.
//!
//! Cost = uncached input × input rate + cache reads × cache-read rate +
//! cache writes × cache-write rate + output × output rate, over the disjoint
//! parts of [`Usage::input_split`], so a cached token is priced once, at its
//! own rate. Rates of a `[[prices]]` entry that gives none: cache reads and
//! writes at the input rate. The shipped rates follow the providers' own:
//! Anthropic writes at 1.25× input (the 5-minute cache) and reads at 0.1×
//! (<https://platform.claude.com/docs/en/about-claude/pricing>); OpenAI and
//! Gemini read at their per-model cached-input prices and report no writes
//! (the write rate is the input rate, never used).

use rustc_hash::FxHashMap;

use crate::api::usage::Usage;
use crate::config::PriceConfig;

/// Rates in billionths of a dollar per million tokens: integral for any
/// price given to nine decimals, so a cost is an exact integer sum,
/// rounded once; converted from the configured USD once, not per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    /// Input tokens read from a prompt cache.
    pub cache_read: u64,
    /// Input tokens written to a prompt cache (for five minutes).
    pub cache_write: u64,
    /// Input tokens written to a prompt cache for an hour.
    pub cache_write_1h: u64,
    pub output: u64,
}

/// Which cache-write rates a shipped model has.
#[derive(Clone, Copy)]
enum Write {
    /// Anthropic's cache writes: 1.25× input for 5 minutes, 2× for an hour.
    Anthropic,
    /// No write charge is reported; the input rate stands in.
    Input,
}

/// (model, input, cache read, cache write, output), USD per million tokens.
const SHIPPED: &[(&str, f64, f64, Write, f64)] = &[
    ("gpt-4o", 2.50, 1.25, Write::Input, 10.00),
    ("gpt-4o-mini", 0.15, 0.075, Write::Input, 0.60),
    ("gpt-4.1", 2.00, 0.50, Write::Input, 8.00),
    ("gpt-4.1-mini", 0.40, 0.10, Write::Input, 1.60),
    ("gpt-4.1-nano", 0.10, 0.025, Write::Input, 0.40),
    ("gpt-5", 1.25, 0.125, Write::Input, 10.00),
    ("gpt-5-mini", 0.25, 0.025, Write::Input, 2.00),
    ("gpt-5-nano", 0.05, 0.005, Write::Input, 0.40),
    ("o3", 2.00, 0.50, Write::Input, 8.00),
    ("o3-mini", 1.10, 0.55, Write::Input, 4.40),
    ("o4-mini", 1.10, 0.275, Write::Input, 4.40),
    ("text-embedding-3-small", 0.02, 0.02, Write::Input, 0.0),
    ("text-embedding-3-large", 0.13, 0.13, Write::Input, 0.0),
    ("claude-opus-4", 15.00, 1.50, Write::Anthropic, 75.00),
    ("claude-sonnet-4", 3.00, 0.30, Write::Anthropic, 15.00),
    ("claude-haiku-4-5", 1.00, 0.10, Write::Anthropic, 5.00),
    ("claude-3-7-sonnet", 3.00, 0.30, Write::Anthropic, 15.00),
    ("claude-3-5-sonnet", 3.00, 0.30, Write::Anthropic, 15.00),
    ("claude-3-5-haiku", 0.80, 0.08, Write::Anthropic, 4.00),
    ("gemini-2.5-pro", 1.25, 0.31, Write::Input, 10.00),
    ("gemini-2.5-flash", 0.30, 0.075, Write::Input, 2.50),
    ("gemini-2.0-flash", 0.10, 0.025, Write::Input, 0.40),
    ("deepseek-chat", 0.27, 0.07, Write::Input, 1.10),
    ("deepseek-reasoner", 0.55, 0.14, Write::Input, 2.19),
    ("mistral-large-latest", 2.00, 2.00, Write::Input, 6.00),
    ("mistral-small-latest", 0.20, 0.20, Write::Input, 0.60),
    ("grok-3", 3.00, 0.75, Write::Input, 15.00),
    ("grok-3-mini", 0.30, 0.075, Write::Input, 0.50),
    ("llama-3.3-70b-versatile", 0.59, 0.59, Write::Input, 0.79),
];

/// A rate in USD per million tokens as billionths of a dollar per million.
fn nanos_per_million(usd_per_million: f64) -> u64 {
    (usd_per_million * 1e9).round() as u64
}

impl Price {
    /// The price of these rates, each in USD per million tokens; writes
    /// for an hour cost what other writes do (see [`Price::with_write_1h`]).
    pub fn usd(input: f64, cache_read: f64, cache_write: f64, output: f64) -> Price {
        Price {
            input: nanos_per_million(input),
            cache_read: nanos_per_million(cache_read),
            cache_write: nanos_per_million(cache_write),
            cache_write_1h: nanos_per_million(cache_write),
            output: nanos_per_million(output),
        }
    }

    /// The same price with hour-long cache writes at `usd` per million.
    pub fn with_write_1h(self, usd: f64) -> Price {
        Price {
            cache_write_1h: nanos_per_million(usd),
            ..self
        }
    }

    /// The cost of `usage` in units of 10⁻¹⁵ US dollars (billionths of a
    /// dollar per million tokens, times tokens): exact integer arithmetic.
    fn cost_femtos(&self, usage: &Usage) -> u128 {
        let (uncached, read, write) = usage.input_split();
        let write_1h = usage.cache_write_1h_tokens.min(write);
        uncached as u128 * self.input as u128
            + read as u128 * self.cache_read as u128
            + (write - write_1h) as u128 * self.cache_write as u128
            + write_1h as u128 * self.cache_write_1h as u128
            + usage.output_tokens as u128 * self.output as u128
    }

    /// The cost of `usage`, in billionths of a US dollar (rounded half up):
    /// exact for prices given to a thousandth of a dollar per million tokens,
    /// which is what budgets are charged in.
    pub fn cost_nanos(&self, usage: &Usage) -> u64 {
        rounded_div(self.cost_femtos(usage), 1_000_000)
    }
}

fn rounded_div(n: u128, d: u128) -> u64 {
    u64::try_from((n + d / 2) / d).unwrap_or(u64::MAX)
}

pub struct PriceTable {
    /// FxHash: the table is built from config alone, so a client's model
    /// name can only look it up, never choose what collides in it.
    exact: FxHashMap<String, Price>,
    /// Names for prefix matching, longest first.
    by_length: Vec<(String, Price)>,
}

impl PriceTable {
    pub fn new(overrides: &[PriceConfig]) -> PriceTable {
        let mut exact: FxHashMap<String, Price> = SHIPPED
            .iter()
            .map(|&(m, input, cache_read, write, output)| {
                let (cache_write, for_an_hour) = match write {
                    Write::Anthropic => (input * 1.25, input * 2.0),
                    Write::Input => (input, input),
                };
                let price =
                    Price::usd(input, cache_read, cache_write, output).with_write_1h(for_an_hour);
                (m.to_string(), price)
            })
            .collect();
        for p in overrides {
            let cache_write = p.cache_write.unwrap_or(p.input);
            let price = Price::usd(
                p.input,
                p.cached_input.unwrap_or(p.input),
                cache_write,
                p.output,
            )
            .with_write_1h(p.cache_write_1h.unwrap_or(cache_write));
            exact.insert(p.model.clone(), price);
        }
        let mut by_length: Vec<(String, Price)> =
            exact.iter().map(|(m, p)| (m.clone(), *p)).collect();
        by_length.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        PriceTable { exact, by_length }
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.exact.get(model).copied().or_else(|| {
            self.by_length
                .iter()
                .find(|(m, _)| model.starts_with(m.as_str()))
                .map(|(_, p)| *p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage::from_inclusive(input, cached, output)
    }

    #[test]
    fn exact_then_longest_prefix() {
        let t = PriceTable::new(&[]);
        assert_eq!(t.price("gpt-4o").unwrap().input, 2_500_000_000);
        assert_eq!(
            t.price("gpt-4o-mini-2024-07-18").unwrap().input,
            150_000_000,
            "longest prefix wins"
        );
        assert_eq!(t.price("gpt-4o-2024-08-06").unwrap().output, 10_000_000_000);
        assert_eq!(
            t.price("claude-3-5-sonnet-20241022").unwrap().output,
            15_000_000_000
        );
        assert_eq!(t.price("my-local-llama"), None);
    }

    #[test]
    fn cost_with_cached_input() {
        let t = PriceTable::new(&[]);
        // 1000 input (200 cached) and 500 output tokens of gpt-4o:
        // 800 * 2.50 + 200 * 1.25 + 500 * 10 = 2000 + 250 + 5000 micro-dollars.
        assert_eq!(t.cost_nanos_of("gpt-4o", &usage(1000, 200, 500)), 7_250_000);
        assert_eq!(t.cost_nanos_of("unknown", &usage(1000, 0, 500)), 0);
    }

    #[test]
    fn config_overrides_and_extends() {
        let t = PriceTable::new(&[
            PriceConfig {
                model: "gpt-4o".into(),
                input: 1.0,
                cached_input: None,
                cache_write: None,
                cache_write_1h: None,
                output: 2.0,
            },
            PriceConfig {
                model: "local-70b".into(),
                input: 0.5,
                cached_input: Some(0.1),
                cache_write: Some(0.7),
                cache_write_1h: Some(0.9),
                output: 0.5,
            },
        ]);
        assert_eq!(t.cost_nanos_of("gpt-4o", &usage(1000, 0, 1000)), 3_000_000);
        assert_eq!(t.cost_nanos_of("local-70b", &usage(100, 100, 0)), 10_000);
        let written = Usage::from_additive(0, 0, 100, 0);
        assert_eq!(t.cost_nanos_of("local-70b", &written), 70_000);
        let for_an_hour = written.with_writes_for_an_hour(100);
        assert_eq!(t.cost_nanos_of("local-70b", &for_an_hour), 90_000);
        // Without a rate for an hour, such writes cost what others do.
        assert_eq!(
            t.cost_nanos_of("gpt-4o", &for_an_hour),
            t.cost_nanos_of("gpt-4o", &written)
        );
        // Without cache rates, cached tokens cost what uncached ones do.
        let cached = Usage::from_additive(10, 20, 30, 0);
        assert_eq!(t.cost_nanos_of("gpt-4o", &cached), 60_000);
    }

    impl PriceTable {
        fn cost_nanos_of(&self, model: &str, usage: &Usage) -> u64 {
            self.price(model).map_or(0, |p| p.cost_nanos(usage))
        }
    }

    #[test]
    fn anthropic_cache_writes_at_a_quarter_more_and_reads_at_a_tenth() {
        let t = PriceTable::new(&[]);
        let p = t.price("claude-sonnet-4-20250514").unwrap();
        assert_eq!(
            (p.input, p.cache_read, p.cache_write),
            (3_000_000_000, 300_000_000, 3_750_000_000)
        );
        // 6 uncached, 5678 read, 1234 written, 100 out: 6 * 3000 + 5678 *
        // 300 + 1234 * 3750 + 100 * 15000 nano-dollars.
        let u = Usage::from_additive(6, 5678, 1234, 100);
        assert_eq!(p.cost_nanos(&u), 18_000 + 1_703_400 + 4_627_500 + 1_500_000);
        // Of 3000 written, 2000 for an hour at 2× input: 6 * 3000 + 1000 *
        // 3750 + 2000 * 6000 nano-dollars.
        let hour = Usage::from_additive(6, 0, 3000, 0).with_writes_for_an_hour(2000);
        assert_eq!(p.cost_nanos(&hour), 18_000 + 3_750_000 + 12_000_000);
        let p = t.price("gpt-4o").unwrap();
        assert_eq!(p.cache_write, p.input, "OpenAI reports no cache writes");
    }

    #[test]
    fn sub_micro_prices_are_exact_in_nanos() {
        let p = Price::usd(0.005, 0.0005, 0.005, 0.04);
        // 999 uncached at 5, 1 read at 0.5, 3 out at 40 nano-dollars: 5115.5.
        let u = Usage::from_inclusive(1000, 1, 3);
        assert_eq!(p.cost_nanos(&u), 5116);
        let huge = Usage::from_additive(u64::MAX, u64::MAX, 0, u64::MAX);
        assert_eq!(p.cost_nanos(&huge), u64::MAX, "saturates, never wraps");
    }
}
