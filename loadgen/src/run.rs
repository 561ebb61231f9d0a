//! `loadgen run`: flags → a plan per executor, the pinned executors, the live
//! progress line, and the merged result handed to the report.

use crate::client::Target;
use crate::cores;
use crate::drive::{self, Plan, Progress};
use crate::report::{self, Summary};
use crate::run_config::RunConfig;
use crate::stats::Stats;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Splits `total` into `parts` shares that differ by at most one.
fn share(total: u64, parts: usize, index: usize) -> u64 {
    total / parts as u64 + u64::from((index as u64) < total % parts as u64)
}

pub fn run(config: RunConfig) -> Result<(), String> {
    let request = config.workload.encode(&config.target);
    // The body is the request's end.
    let body_at = request.len() - config.workload.body.len();
    let target = Arc::new(Target {
        addr: config.addr,
        unique_at: config.workload.unique_at.map(|at| body_at + at),
        request,
        stream: config.workload.stream,
        timeout: config.timeout,
    });
    let cores = config.cpus.len();
    // A new nonce each run: a cache must not answer this run's unique
    // prompts from the last run's (or from a warm-up's).
    let nonce = {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mixed = (t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as u32
    };
    // Executors start a little in the future so all begin the schedule together.
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + config.warmup;
    let plans: Vec<Plan> = (0..cores)
        .map(|i| Plan {
            connections: share(config.connections as u64, cores, i) as usize,
            start,
            measure_from,
            stop_at: config.duration.map(|d| measure_from + d),
            quota: config.requests.map(|n| share(n, cores, i)),
            rate: config.rate.map(|(r, a)| (r / cores as f64, a)),
            seed: config.seed.wrapping_add(i as u64),
            nonce,
            first_connection: (0..i)
                .map(|j| share(config.connections as u64, cores, j))
                .sum(),
        })
        .collect();
    let progress: Vec<Arc<Progress>> = (0..cores).map(|_| Arc::default()).collect();
    let runner = {
        let (target, progress, cpus) = (target.clone(), progress.clone(), config.cpus.clone());
        std::thread::spawn(move || {
            cores::run_pinned(&cpus, "loadgen", move |i| {
                let (target, plan, progress) =
                    (target.clone(), plans[i].clone(), progress[i].clone());
                async move {
                    glommio::timer::sleep(plan.start.saturating_duration_since(Instant::now()))
                        .await;
                    drive::drive(target, plan, progress).await
                }
            })
        })
    };
    let live = config
        .duration
        .is_none_or(|d| d + config.warmup > Duration::from_secs(3));
    let mut last = (start, 0u64);
    while !runner.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if live && now.duration_since(last.0) >= Duration::from_secs(1) && now > start {
            let done: u64 = progress.iter().map(|p| p.done.load(Relaxed)).sum();
            let errors: u64 = progress.iter().map(|p| p.errors.load(Relaxed)).sum();
            let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            let phase = if now < measure_from { " (warmup)" } else { "" };
            eprint!(
                "\r{:>6.1}s  {done:>9} done  {rate:>9.0} req/s  {errors} errors{phase}   ",
                now.duration_since(start).as_secs_f64()
            );
            last = (now, done);
        }
    }
    if live {
        eprintln!();
    }
    let mut merged = Stats::new();
    for stats in runner.join().map_err(|_| "an executor panicked")? {
        merged.merge(&stats);
    }
    let summary = Summary::new(&config, &merged, measure_from);
    if config.json {
        println!("{}", report::json(&summary, &merged));
    } else {
        print!("{}", report::table(&summary, &merged));
    }
    if let Some(path) = &config.plot {
        std::fs::write(path, crate::plot::svg(&summary, &merged))
            .map_err(|e| format!("--plot {path}: {e}"))?;
    }
    Ok(())
}
