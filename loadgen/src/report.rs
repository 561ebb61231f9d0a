//! The result of a run for people (an aligned table) and for scripts
//! (`--json`, one object). Times are in milliseconds in both.

use crate::run_config::RunConfig;
use crate::stats::{Stats, LATE};
use crate::validate::ErrorClass;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::Instant;

pub const PERCENTILES: [(f64, &str); 4] =
    [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9")];

/// The facts of a run that the table, the JSON and the plot all show.
pub struct Summary {
    pub target: String,
    pub workload: String,
    pub mode: String,
    pub connections: usize,
    pub cpus: Vec<usize>,
    pub seconds: f64,
    pub throughput: f64,
}

impl Summary {
    pub fn new(config: &RunConfig, stats: &Stats, measure_from: Instant) -> Summary {
        let seconds = stats.window.map_or(0.0, |(_, end)| {
            end.saturating_duration_since(measure_from).as_secs_f64()
        });
        let completed = stats.ok + stats.total_errors();
        let w = &config.workload;
        Summary {
            target: config.target.clone(),
            workload: format!(
                "{} ({} {}, {} B body)",
                w.name,
                w.method,
                w.path,
                w.body.len()
            ),
            mode: match config.rate {
                None => "closed loop".into(),
                Some((rate, arrivals)) => {
                    format!("open loop, {rate} req/s {arrivals:?} arrivals").to_lowercase()
                }
            },
            connections: config.connections,
            cpus: config.cpus.clone(),
            seconds,
            throughput: if seconds > 0.0 {
                completed as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn percentiles_json(h: &Histogram<u64>) -> Value {
    let mut o = serde_json::Map::new();
    for (p, name) in PERCENTILES {
        o.insert(name.into(), json!(ms(h.value_at_percentile(p))));
    }
    o.insert("max".into(), json!(ms(h.max())));
    o.insert("mean".into(), json!(h.mean() / 1000.0));
    o.insert("count".into(), json!(h.len()));
    Value::Object(o)
}

pub fn json(s: &Summary, stats: &Stats) -> Value {
    let errors: serde_json::Map<_, _> = ErrorClass::ALL
        .iter()
        .map(|c| (c.name().to_string(), json!(stats.errors[*c as usize])))
        .collect();
    json!({
        "target": s.target,
        "workload": s.workload,
        "mode": s.mode,
        "connections": s.connections,
        "cpus": s.cpus,
        "seconds": s.seconds,
        "ok": stats.ok,
        "errors": errors,
        "throughput_rps": s.throughput,
        "bytes_in": stats.bytes_in,
        "latency_ms": percentiles_json(&stats.latency),
        "ttft_ms": (!stats.ttft.is_empty()).then(|| percentiles_json(&stats.ttft)),
        "inter_chunk_ms": (!stats.gaps.is_empty()).then(|| percentiles_json(&stats.gaps)),
        "generator_late": stats.generator_late,
        "generator_max_lag_ms": stats.generator_max_lag.as_secs_f64() * 1000.0,
        "queued_late": stats.queued_late,
    })
}

fn row(out: &mut String, label: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    let _ = write!(out, "{label:<12}");
    for (p, name) in PERCENTILES {
        let _ = write!(out, " {name} {:>8.3}", ms(h.value_at_percentile(p)));
    }
    let _ = writeln!(out, "  max {:>8.3}  ms", ms(h.max()));
}

pub fn table(s: &Summary, stats: &Stats) -> String {
    let mut out = String::new();
    let total = stats.ok + stats.total_errors();
    let _ = writeln!(out, "target      {}  workload {}", s.target, s.workload);
    let _ = writeln!(
        out,
        "mode        {}, {} connections on CPUs {:?}",
        s.mode, s.connections, s.cpus
    );
    let _ = writeln!(
        out,
        "measured    {:.2} s, {total} requests: {} ok, {} errors",
        s.seconds,
        stats.ok,
        stats.total_errors()
    );
    if stats.total_errors() > 0 {
        let detail: Vec<String> = ErrorClass::ALL
            .iter()
            .filter(|c| stats.errors[**c as usize] > 0)
            .map(|c| format!("{} {}", c.name(), stats.errors[*c as usize]))
            .collect();
        let _ = writeln!(out, "errors      {}", detail.join(", "));
    }
    let _ = writeln!(
        out,
        "throughput  {:.1} req/s, {:.2} MB/s in",
        s.throughput,
        stats.bytes_in as f64 / s.seconds.max(1e-9) / 1e6
    );
    row(&mut out, "latency", &stats.latency);
    row(&mut out, "ttft", &stats.ttft);
    row(&mut out, "inter-chunk", &stats.gaps);
    if stats.generator_late > 0 {
        let _ = writeln!(
            out,
            "WARNING     the generator fell behind schedule: {} sends ({:.2}%) left more than {} ms late \
(worst {:.2} ms); add --cores or lower --rate",
            stats.generator_late,
            100.0 * stats.generator_late as f64 / total.max(1) as f64,
            LATE.as_millis(),
            stats.generator_max_lag.as_secs_f64() * 1000.0
        );
    }
    if stats.queued_late > 0 {
        let _ = writeln!(
            out,
            "note        {} sends ({:.2}%) waited for a free connection; their wait is in the latency \
(coordinated omission corrected); more --connections avoids it if the server is not saturated",
            stats.queued_late,
            100.0 * stats.queued_late as f64 / total.max(1) as f64
        );
    }
    out
}
