//! `loadgen mock`: an OpenAI- and Anthropic-compatible upstream on glommio,
//! one SO_REUSEPORT listener per pinned executor. Latency, stream pacing,
//! response size and faults are configured once and shared read-only.

mod bodies;
mod conn;
mod faults;

pub use faults::{Faults, Latency};

use crate::args::Flags;
use crate::cores;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct MockConfig {
    pub listen: SocketAddr,
    pub cpus: Vec<usize>,
    pub latency: Latency,
    /// Content tokens per response: the number of delta events in a stream.
    pub tokens: usize,
    /// Pause between stream events; zero sends the whole stream in one write.
    pub chunk_interval: Duration,
    pub embedding_dims: usize,
    pub faults: Faults,
    pub seed: u64,
}

impl MockConfig {
    pub fn from_flags(f: &mut Flags) -> Result<MockConfig, String> {
        let listen = f.take("listen").unwrap_or_else(|| "127.0.0.1:8000".into());
        Ok(MockConfig {
            listen: listen
                .parse()
                .map_err(|_| format!("--listen: bad address `{listen}`"))?,
            cpus: cores::parse_cores(&f.take("cores").unwrap_or_else(|| "=0".into()))?,
            latency: Latency::parse(&f.take("latency").unwrap_or_else(|| "0".into()))?,
            tokens: f.parsed("tokens")?.unwrap_or(16),
            chunk_interval: f.duration("chunk-interval")?.unwrap_or_default(),
            embedding_dims: f.parsed("embedding-dims")?.unwrap_or(1536),
            faults: Faults::from_flags(f)?,
            seed: f.parsed("seed")?.unwrap_or(1),
        })
    }
}

/// Binds every executor's listener (port 0 is resolved once, on the first,
/// so all share it), calls `ready` with the bound address, and serves forever.
pub fn serve(config: MockConfig, ready: impl FnOnce(SocketAddr)) -> ! {
    let probe = std::net::TcpListener::bind(config.listen)
        .map_err(|e| format!("bind {}: {e}", config.listen));
    let addr = match probe.and_then(|l| l.local_addr().map_err(|e| e.to_string())) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("loadgen mock: {e}");
            std::process::exit(1);
        }
    };
    let config = Arc::new(MockConfig {
        listen: addr,
        ..config
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = config.clone();
    std::thread::spawn(move || {
        cores::run_pinned(&shared.cpus.clone(), "mock", move |index| {
            let config = shared.clone();
            let tx = tx.clone();
            async move { conn::accept_loop(config, index, tx).await }
        });
    });
    for _ in 0..config.cpus.len() {
        if let Ok(Err(e)) | Err(e) = rx.recv().map_err(|e| e.to_string()) {
            eprintln!("loadgen mock: {e}");
            std::process::exit(1);
        }
    }
    ready(addr);
    loop {
        std::thread::park();
    }
}
