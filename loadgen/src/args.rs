//! Command-line flags: `--name value` pairs and bare `--switch`es, parsed by
//! hand to keep the instrument's build small. Every flag a command does not
//! consume is an error, so a typo never silently falls back to a default.

use std::collections::HashMap;
use std::time::Duration;

pub struct Flags {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    /// Splits `args` into valued flags and the switches named in `switch_names`.
    pub fn parse(args: &[String], switch_names: &[&str]) -> Result<Flags, String> {
        let mut values = HashMap::new();
        let mut switches = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument `{arg}`"))?;
            if switch_names.contains(&name) {
                switches.push(name.to_string());
            } else if let Some((n, v)) = name.split_once('=') {
                values.insert(n.to_string(), v.to_string());
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                values.insert(name.to_string(), v.clone());
            }
        }
        Ok(Flags { values, switches })
    }

    pub fn switch(&mut self, name: &str) -> bool {
        let before = self.switches.len();
        self.switches.retain(|s| s != name);
        before != self.switches.len()
    }

    pub fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
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

    /// Fails on any flag no one consumed.
    pub fn finish(self) -> Result<(), String> {
        let mut left: Vec<_> = self.values.keys().chain(self.switches.iter()).collect();
        left.sort();
        match left.first() {
            None => Ok(()),
            Some(name) => Err(format!("unknown flag --{name}")),
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
    fn leftover_flags_are_errors() {
        let args: Vec<String> = ["--rate", "5", "--typo", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut f = Flags::parse(&args, &[]).unwrap();
        assert_eq!(f.parsed::<u32>("rate").unwrap(), Some(5));
        assert!(f.finish().unwrap_err().contains("typo"));
    }
}
