//! The command line, declared with clap: `loadgen run` and `loadgen mock`,
//! every flag a `--name value` pair or a bare `--switch`. clap refuses an
//! unknown flag or a stray argument (exit 2), so a typo never silently falls
//! back to a default; each command's `from_flags` takes its values out of
//! [`Flags`] and applies its own defaults (some depend on other flags).

use clap::{Arg, ArgAction, ArgMatches, Command};
use std::ffi::OsString;
use std::time::Duration;

/// A parsed command line: which command, and its flags.
pub enum Cmd {
    Run(Flags),
    Mock(Flags),
}

/// Parses `argv` (program name first). A help request or a bad flag is a
/// `clap::Error` whose `exit()` prints it and exits 0 or 2.
pub fn parse<I, T>(argv: I) -> Result<Cmd, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut m = command().try_get_matches_from(argv)?;
    match m.remove_subcommand() {
        Some((name, sub)) if name == "run" => Ok(Cmd::Run(Flags(sub))),
        Some((_, sub)) => Ok(Cmd::Mock(Flags(sub))),
        None => unreachable!("clap requires a subcommand"),
    }
}

fn command() -> Command {
    Command::new("loadgen")
        .about("shardgate's load generator (run) and mock upstream (mock), on glommio")
        .subcommand_required(true)
        .arg_required_else_help(true)
        // As before clap: a flag given twice takes its last value.
        .args_override_self(true)
        .subcommand(run_command())
        .subcommand(mock_command())
}

fn run_command() -> Command {
    Command::new("run")
        .about("Send a workload to a target and report latency and throughput")
        .args([
            valued(
                "target",
                "http://HOST:PORT",
                "The server under test (required)",
            ),
            valued("workload", "NAME", "Built-in workload [default: chat]"),
            valued(
                "connections",
                "N",
                "Connections [default: 32, at least one per core]",
            ),
            valued(
                "rate",
                "R",
                "Requests per second: open loop (default: closed loop)",
            ),
            valued(
                "arrivals",
                "constant|poisson",
                "Open-loop arrivals [default: constant]",
            ),
            valued(
                "duration",
                "10s",
                "How long to run [default: 10s unless --requests]",
            ),
            valued("requests", "N", "Stop after N requests"),
            valued("warmup", "0s", "Unmeasured warm-up [default: 0s]"),
            valued(
                "cores",
                "N|LIST",
                "The last N CPUs, or a list (=0, 2-3, 0,2) [default: 1]",
            ),
            valued("timeout", "30s", "Per-request timeout [default: 30s]"),
            valued(
                "model",
                "NAME",
                "Model in the request body [default: gpt-4o-mini]",
            ),
            valued(
                "body-bytes",
                "N",
                "Approximate request body size [default: 500]",
            ),
            valued(
                "body",
                "FILE",
                "Send this body instead of a workload (needs --path)",
            ),
            valued("path", "/v1/...", "Request path"),
            Arg::new("unique")
                .long("unique")
                .action(ArgAction::SetTrue)
                .help("Start every request's prompt with its own number (a cache miss each time)"),
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print the result as JSON"),
            valued("plot", "FILE.svg", "Write a latency plot"),
            valued("seed", "N", "PRNG seed for arrivals [default: 1]"),
        ])
        .after_help(format!(
            "Closed loop by default (each connection sends when its last answer is in); --rate \
             makes it open loop, with latency measured from each request's scheduled time.\n\
             Workloads: {}",
            crate::workload::NAMES
        ))
}

fn mock_command() -> Command {
    Command::new("mock")
        .about("Serve an OpenAI- and Anthropic-compatible mock upstream")
        .args([
            valued("listen", "ADDR", "Listen address [default: 127.0.0.1:8000]"),
            valued(
                "cores",
                "N|LIST",
                "The last N CPUs, or a list [default: =0]",
            ),
            valued(
                "latency",
                "0|5ms|uniform:2ms..10ms|exp:5ms",
                "Added latency per request [default: 0]",
            ),
            valued("tokens", "N", "Content tokens per response [default: 16]"),
            valued(
                "chunk-interval",
                "0ms",
                "Pause between stream events [default: 0ms]",
            ),
            valued(
                "embedding-dims",
                "N",
                "Embedding dimensions [default: 1536]",
            ),
            valued("seed", "N", "PRNG seed for latency and faults [default: 1]"),
            valued("fail-429", "F", "Fraction of requests answered 429"),
            valued("fail-500", "F", "Fraction of requests answered 500"),
            valued("fail-503", "F", "Fraction of requests answered 503"),
            valued(
                "reset",
                "F",
                "Fraction of requests answered by a connection reset",
            ),
            valued("stall", "F", "Fraction of requests stalled"),
            valued("stall-for", "60s", "How long a stall lasts [default: 60s]"),
            valued("truncate", "F", "Fraction of responses cut short"),
        ])
        .after_help(
            "Serves POST /v1/{chat/completions,completions,embeddings,responses,messages,\
             messages/count_tokens} and GET /v1/models (also without /v1). `\"stream\": true` \
             answers with SSE. Faults are fractions of requests. A request with \
             `x-mock-echo-body: 1` (or POST /mock/echo) gets back JSON {method, target, headers: \
             [[name, value]...], body} describing exactly what arrived.",
        )
}

fn valued(name: &'static str, value: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name(value).help(help)
}

/// One command's flags, taken out one by one by its `from_flags`.
pub struct Flags(ArgMatches);

impl Flags {
    pub fn switch(&mut self, name: &str) -> bool {
        self.0.get_flag(name)
    }

    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove_one::<String>(name)
    }

    pub fn parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        self.take(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{name}: cannot parse `{v}`"))
            })
            .transpose()
    }

    pub fn fraction(&mut self, name: &str) -> Result<f64, String> {
        let f: f64 = self.parsed(name)?.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("--{name} must be a fraction in 0..=1, got {f}"));
        }
        Ok(f)
    }

    pub fn duration(&mut self, name: &str) -> Result<Option<Duration>, String> {
        self.take(name)
            .map(|v| {
                parse_duration(&v)
                    .ok_or_else(|| format!("--{name}: bad duration `{v}` (e.g. 10s, 250ms, 50us)"))
            })
            .transpose()
    }

    /// `loadgen mock ARGS`' flags, for tests.
    #[cfg(test)]
    pub fn mock(args: &[&str]) -> Result<Flags, clap::Error> {
        match parse(["loadgen", "mock"].iter().chain(args))? {
            Cmd::Mock(f) => Ok(f),
            Cmd::Run(_) => unreachable!(),
        }
    }
}

/// `1.5s`, `250ms`, `40us`, `2m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("40us"), Some(Duration::from_micros(40)));
        assert_eq!(parse_duration("1x"), None);
    }

    #[test]
    fn unknown_flags_are_errors() {
        let argv = ["loadgen", "run", "--rate", "5", "--typo", "1"];
        let err = parse(argv).err().expect("--typo accepted");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("typo"), "{err}");
        let Ok(Cmd::Run(mut f)) = parse(&argv[..4]) else {
            panic!("run --rate 5 refused")
        };
        assert_eq!(f.parsed::<u32>("rate").unwrap(), Some(5));
    }

    #[test]
    fn the_command_definition_is_consistent() {
        command().debug_assert();
    }
}
