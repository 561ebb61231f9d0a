//! The price table: US dollars per million tokens by model, for the cost of
//! each request. A shipped table of public list prices (late 2025), which
//! `[[prices]]` in the config overrides or extends.
//!
//! Lookup is by the model name sent upstream: exact, else the longest
//! shipped name it starts with (`gpt-4o-2024-08-06` → `gpt-4o`,
//! `claude-3-5-sonnet-20241022` → `claude-3-5-sonnet`); unknown models cost 0.
//! Lookups borrow and never allocate.

use rustc_hash::FxHashMap;

use crate::api::usage::Usage;
use crate::config::PriceConfig;

/// USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input: f64,
    /// Cached (cache-read) input tokens; defaults to the input price.
    pub cached_input: f64,
    pub output: f64,
}

/// (model, input, cached input, output), USD per million tokens.
const SHIPPED: &[(&str, f64, f64, f64)] = &[
    ("gpt-4o", 2.50, 1.25, 10.00),
    ("gpt-4o-mini", 0.15, 0.075, 0.60),
    ("gpt-4.1", 2.00, 0.50, 8.00),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40),
    ("gpt-5", 1.25, 0.125, 10.00),
    ("gpt-5-mini", 0.25, 0.025, 2.00),
    ("gpt-5-nano", 0.05, 0.005, 0.40),
    ("o3", 2.00, 0.50, 8.00),
    ("o3-mini", 1.10, 0.55, 4.40),
    ("o4-mini", 1.10, 0.275, 4.40),
    ("text-embedding-3-small", 0.02, 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.13, 0.0),
    ("claude-opus-4", 15.00, 1.50, 75.00),
    ("claude-sonnet-4", 3.00, 0.30, 15.00),
    ("claude-haiku-4-5", 1.00, 0.10, 5.00),
    ("claude-3-7-sonnet", 3.00, 0.30, 15.00),
    ("claude-3-5-sonnet", 3.00, 0.30, 15.00),
    ("claude-3-5-haiku", 0.80, 0.08, 4.00),
    ("gemini-2.5-pro", 1.25, 0.31, 10.00),
    ("gemini-2.5-flash", 0.30, 0.075, 2.50),
    ("gemini-2.0-flash", 0.10, 0.025, 0.40),
    ("deepseek-chat", 0.27, 0.07, 1.10),
    ("deepseek-reasoner", 0.55, 0.14, 2.19),
    ("mistral-large-latest", 2.00, 2.00, 6.00),
    ("mistral-small-latest", 0.20, 0.20, 0.60),
    ("grok-3", 3.00, 0.75, 15.00),
    ("grok-3-mini", 0.30, 0.075, 0.50),
    ("llama-3.3-70b-versatile", 0.59, 0.59, 0.79),
];

impl Price {
    /// The cost of `usage`, in millionths of a US dollar.
    pub fn cost_micros(&self, usage: &Usage) -> u64 {
        // USD per million tokens is exactly micro-dollars per token.
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let micros = (usage.input_tokens - cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + usage.output_tokens as f64 * self.output;
        micros.round() as u64
    }

    /// The cost of `usage`, in billionths of a US dollar: exact for prices
    /// given to a thousandth of a dollar per million tokens, which is what
    /// budgets are charged in.
    pub fn cost_nanos(&self, usage: &Usage) -> u64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let nanos = ((usage.input_tokens - cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + usage.output_tokens as f64 * self.output)
            * 1000.0;
        nanos.round() as u64
    }
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
            .map(|&(m, input, cached_input, output)| {
                (
                    m.to_string(),
                    Price {
                        input,
                        cached_input,
                        output,
                    },
                )
            })
            .collect();
        for p in overrides {
            let price = Price {
                input: p.input,
                cached_input: p.cached_input.unwrap_or(p.input),
                output: p.output,
            };
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

    /// The cost of `usage` on `model`, in millionths of a US dollar.
    pub fn cost_micros(&self, model: &str, usage: &Usage) -> u64 {
        self.price(model).map_or(0, |p| p.cost_micros(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
        }
    }

    #[test]
    fn exact_then_longest_prefix() {
        let t = PriceTable::new(&[]);
        assert_eq!(t.price("gpt-4o").unwrap().input, 2.50);
        assert_eq!(
            t.price("gpt-4o-mini-2024-07-18").unwrap().input,
            0.15,
            "longest prefix wins"
        );
        assert_eq!(t.price("gpt-4o-2024-08-06").unwrap().output, 10.0);
        assert_eq!(t.price("claude-3-5-sonnet-20241022").unwrap().output, 15.0);
        assert_eq!(t.price("my-local-llama"), None);
    }

    #[test]
    fn cost_in_micro_dollars_with_cached_input() {
        let t = PriceTable::new(&[]);
        // 1000 input (200 cached) and 500 output tokens of gpt-4o:
        // 800 * 2.50 + 200 * 1.25 + 500 * 10 = 2000 + 250 + 5000 micro-dollars.
        assert_eq!(t.cost_micros("gpt-4o", &usage(1000, 200, 500)), 7250);
        assert_eq!(t.cost_micros("unknown", &usage(1000, 0, 500)), 0);
    }

    #[test]
    fn config_overrides_and_extends() {
        let t = PriceTable::new(&[
            PriceConfig {
                model: "gpt-4o".into(),
                input: 1.0,
                cached_input: None,
                output: 2.0,
            },
            PriceConfig {
                model: "local-70b".into(),
                input: 0.5,
                cached_input: Some(0.1),
                output: 0.5,
            },
        ]);
        assert_eq!(t.cost_micros("gpt-4o", &usage(1000, 0, 1000)), 3000);
        assert_eq!(t.cost_micros("local-70b", &usage(100, 100, 0)), 10);
    }
}
