//! `loadgen run`'s configuration: the command line's flags checked and turned
//! into one `RunConfig`, which the runner executes and the report describes.
//!
//! Invariant: a `RunConfig` is complete (the target resolved, defaults applied,
//! the rate positive), so nothing downstream re-reads a flag.

use crate::args::Flags;
use crate::cores;
use crate::drive::Arrivals;
use crate::workload::Workload;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub struct RunConfig {
    pub target: String,
    pub addr: SocketAddr,
    pub workload: Workload,
    pub connections: usize,
    pub rate: Option<(f64, Arrivals)>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub warmup: Duration,
    pub cpus: Vec<usize>,
    pub timeout: Duration,
    pub json: bool,
    pub plot: Option<String>,
    pub seed: u64,
}

impl RunConfig {
    pub fn from_flags(f: &mut Flags) -> Result<RunConfig, String> {
        let target = f
            .take("target")
            .ok_or("--target http://HOST:PORT is required")?;
        let host = target.trim_start_matches("http://");
        let host = host.split('/').next().unwrap_or(host).to_string();
        let addr = host
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("--target: cannot resolve `{host}`"))?;
        let path = f.take("path");
        let unique = f.switch("unique");
        let workload = match f.take("body") {
            Some(_) if unique => return Err("--unique needs a built-in workload".into()),
            Some(file) => Workload::custom(&file, path.ok_or("--body needs --path /v1/...")?)?,
            None => Workload::builtin(
                &f.take("workload").unwrap_or_else(|| "chat".into()),
                &f.take("model").unwrap_or_else(|| "gpt-4o-mini".into()),
                f.parsed("body-bytes")?.unwrap_or(500),
                path,
                unique,
            )?,
        };
        let arrivals = match f.take("arrivals").as_deref() {
            None | Some("constant") => Arrivals::Constant,
            Some("poisson") => Arrivals::Poisson,
            Some(other) => return Err(format!("--arrivals: `{other}` is not constant or poisson")),
        };
        let rate = f.parsed::<f64>("rate")?;
        if rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
            return Err("--rate must be positive".into());
        }
        let cpus = cores::parse_cores(&f.take("cores").unwrap_or_else(|| "1".into()))?;
        let connections = f.parsed("connections")?.unwrap_or(32).max(cpus.len());
        let mut duration = f.duration("duration")?;
        let requests = f.parsed("requests")?;
        if duration.is_none() && requests.is_none() {
            duration = Some(Duration::from_secs(10));
        }
        Ok(RunConfig {
            target: host,
            addr,
            workload,
            connections,
            rate: rate.map(|r| (r, arrivals)),
            duration,
            requests,
            warmup: f.duration("warmup")?.unwrap_or_default(),
            cpus,
            timeout: f.duration("timeout")?.unwrap_or(Duration::from_secs(30)),
            json: f.switch("json"),
            plot: f.take("plot"),
            seed: f.parsed("seed")?.unwrap_or(1),
        })
    }
}
