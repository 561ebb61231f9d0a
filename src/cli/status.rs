//! `shardgate status`: `GET /admin/status` and a summary an operator reads
//! at a glance (or the JSON as it came, `--json`). Exit 0 when ready, 1
//! when starting, draining or unreachable.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::Value;

use super::{api_message, AdminClient};

pub(super) fn run(client: &AdminClient, json: bool) -> Result<ExitCode, String> {
    let addr = client.addr();
    let answer =
        client
            .request("GET", "/admin/status", None)
            .map_err(|e| match e.is_unreachable() {
                true => format!(
                    "{e}\n  is the gateway running, with admin.listen at this address? \
                 (choose another with --admin ADDR or --config PATH)"
                ),
                false => e.to_string(),
            })?;
    let status: Value = match (answer.status, serde_json::from_slice(&answer.body)) {
        (200 | 503, Ok(v @ Value::Object(_))) => v,
        (404, _) => {
            return Err(format!(
                "the admin listener at {addr} has no /admin/status (a gateway older than this \
                 command?)"
            ))
        }
        (code, _) => {
            return Err(format!(
                "the admin listener at {addr} answered {code}: {}",
                api_message(&answer.body)
            ))
        }
    };
    if json {
        println!("{}", String::from_utf8_lossy(&answer.body));
    } else {
        print!("{}", summary(&status, &addr.to_string()));
    }
    if status["ready"] == true {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "shardgate: the gateway at {addr} is not ready: {}",
            status["status"].as_str().unwrap_or("unknown")
        );
        Ok(ExitCode::from(1))
    }
}

/// `1h 02m 03s`, `4m 05s`, `7s`.
fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h:02}h {m:02}m"),
    }
}

/// The human summary of a `/admin/status` answer.
fn summary(v: &Value, addr: &str) -> String {
    let num = |k: &str| v[k].as_u64().unwrap_or(0);
    let shards = v["shards"].as_array().cloned().unwrap_or_default();
    let mut by_driver: Vec<(String, usize)> = Vec::new();
    for s in &shards {
        let d = s["driver"].as_str().unwrap_or("not started").to_string();
        match by_driver.iter_mut().find(|(name, _)| *name == d) {
            Some((_, n)) => *n += 1,
            None => by_driver.push((d, 1)),
        }
    }
    let drivers = by_driver
        .iter()
        .map(|(d, n)| format!("{n} {d}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shardgate {} at {addr}: {}",
        v["version"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("unknown")
    );
    let _ = writeln!(out, "  uptime      {}", duration(num("uptime_s")));
    let _ = writeln!(
        out,
        "  generation  {} (configuration reloads since start)",
        num("generation")
    );
    let _ = writeln!(out, "  in flight   {}", num("in_flight"));
    let _ = writeln!(out, "  shards      {}: {drivers}", shards.len());
    for s in &shards {
        let _ = writeln!(
            out,
            "    shard {:<3} {:<12} {} in flight",
            s["id"].as_u64().unwrap_or(0),
            s["driver"].as_str().unwrap_or("not started"),
            s["in_flight"].as_u64().unwrap_or(0)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_each_part() {
        let v = serde_json::json!({
            "status": "ready", "ready": true, "version": "0.1.0", "uptime_s": 3723,
            "generation": 2, "in_flight": 1, "drivers": {"io_uring": 1, "epoll": 1},
            "shards": [
                {"id": 0, "driver": "io_uring", "in_flight": 1},
                {"id": 1, "driver": "epoll", "in_flight": 0}
            ]
        });
        let s = summary(&v, "127.0.0.1:9090");
        assert!(
            s.starts_with("shardgate 0.1.0 at 127.0.0.1:9090: ready\n"),
            "{s}"
        );
        assert!(s.contains("uptime      1h 02m 03s"), "{s}");
        assert!(s.contains("generation  2 "), "{s}");
        assert!(s.contains("in flight   1\n"), "{s}");
        assert!(s.contains("shards      2: 1 io_uring, 1 epoll"), "{s}");
        assert!(s.contains("shard 1   epoll        0 in flight"), "{s}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(245), "4m 05s");
        assert_eq!(duration(90_061), "1d 01h 01m");
    }
}
