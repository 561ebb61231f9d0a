//! Where loadgen's executors run: a CPU list (`1`, `0,2`, `2-3`) or a count
//! (`--cores 2` = the last two CPUs, so the generator stays off CPU 0 where
//! servers are usually started). One glommio executor per CPU, pinned.

use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;

/// Resolves `--cores`: `N` means the last N online CPUs; anything with `,`
/// or `-` (or a leading `=`, e.g. `=1`) is an explicit list.
pub fn parse_cores(spec: &str) -> Result<Vec<usize>, String> {
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spec = spec.trim();
    if let (Ok(n), false) = (spec.parse::<usize>(), spec.starts_with('=')) {
        if n == 0 || n > online {
            return Err(format!("--cores {n}: this machine has {online} CPUs"));
        }
        return Ok((online - n..online).collect());
    }
    let mut cpus = Vec::new();
    for part in spec.trim_start_matches('=').split(',') {
        let bad = || format!("--cores: bad CPU list `{spec}`");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if let Some(cpu) = cpus.iter().find(|&&c| c >= online) {
        return Err(format!(
            "--cores: CPU {cpu} does not exist ({online} online)"
        ));
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Submission ring entries per executor. glommio also arms a "throughput
/// preemption" timeout that fires after this many completions and wakes the
/// executor through an eventfd write, which the kernel runs on an io-wq
/// thread: at the default 128 that was a thread switch every ~130 requests.
const RING_DEPTH: usize = 4096;

/// Runs `make(index)` on one pinned executor per CPU and returns each result,
/// in CPU order. A panicking executor is reported, not swallowed.
pub fn run_pinned<T, F, Fut>(cpus: &[usize], name: &str, make: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = T> + 'static,
{
    let handles: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(index, &cpu)| {
            let make = make.clone();
            LocalExecutorBuilder::new(Placement::Fixed(cpu))
                .ring_depth(RING_DEPTH)
                .name(&format!("{name}-{cpu}"))
                .spawn(move || make(index))
                .unwrap_or_else(|e| panic!("cannot start an executor on CPU {cpu}: {e}"))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|e| panic!("executor failed: {e:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse_cores("=0").unwrap(), vec![0]);
        assert_eq!(parse_cores("0-0").unwrap(), vec![0]);
        assert!(parse_cores("0,999").is_err());
        assert_eq!(parse_cores("1").unwrap().len(), 1);
    }
}
