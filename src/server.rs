//! Starting the shards and accepting connections: one pinned thread per
//! listener, each building its runtime and serving its own SO_REUSEPORT
//! listener; each accepted connection is counted against the shard's limit
//! (or turned away with a 503) and served by `proxy::serve_connection`
//! inside a panic guard, so a handler's panic closes one connection, never
//! the shard. On a TLS listener the handshake runs in the connection's own
//! task, bounded by `limits.header_read_timeout_ms`, before anything else:
//! a client that stalls or fails it holds its own task and slot until then,
//! and delays neither the accept loop nor any other connection's I/O.

use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::net::TlsStream;
use crate::runtime::{build_runtime, Driver};
use crate::shard::{housekeeping, panic_message, CatchPanic, Control, CoreId, Shard, ShardSetup};

/// Where a shard reports that it is accepting (or why it could not start).
pub type ReadySender = std::sync::mpsc::Sender<(usize, std::io::Result<Driver>)>;

/// Starts one thread per listener, each pinned to `cores[i]` when given.
/// Each thread reports its driver on `ready` once it is accepting.
pub fn spawn_shards(
    control: Arc<Control>,
    listeners: Vec<std::net::TcpListener>,
    cores: Vec<Option<CoreId>>,
    setups: Vec<ShardSetup>,
    ready: ReadySender,
) -> Vec<JoinHandle<()>> {
    listeners
        .into_iter()
        .zip(setups)
        .enumerate()
        .map(|(id, (listener, setup))| {
            let control = control.clone();
            let core = cores.get(id).copied().flatten();
            let ready = ready.clone();
            std::thread::Builder::new()
                .name(format!("shard-{id}"))
                .spawn(move || run_shard_thread(id, control, setup, listener, core, ready))
                .expect("spawn shard thread")
        })
        .collect()
}

/// Runs shard `id` on the calling thread until the process ends: pins it,
/// builds its runtime, and serves `listener`.
pub fn run_shard_thread(
    id: usize,
    control: Arc<Control>,
    setup: ShardSetup,
    listener: std::net::TcpListener,
    core: Option<CoreId>,
    ready: ReadySender,
) {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    match build_runtime() {
        Ok((mut rt, driver)) => rt.block_on(run_shard(id, driver, control, setup, listener, ready)),
        Err(e) => {
            let _ = ready.send((id, Err(e)));
        }
    }
}

async fn run_shard(
    id: usize,
    driver: Driver,
    control: Arc<Control>,
    setup: ShardSetup,
    listener: std::net::TcpListener,
    ready: ReadySender,
) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send((id, Err(e)));
            return;
        }
    };
    let tls = setup.tls.clone();
    let shard = Rc::new(Shard::new(id, driver, control, setup));
    let _ = ready.send((id, Ok(driver)));
    drop(ready);
    monoio::spawn(housekeeping(shard.clone()));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let max = shard
                    .generation()
                    .gateway
                    .config
                    .limits
                    .max_connections_per_shard;
                let Some(open) = shard.open_connection(max) else {
                    // A 503 in clear means nothing to a TLS client, and a
                    // handshake to send it costs what the cap protects:
                    // over the cap, a TLS connection is closed at once.
                    if tls.is_none() {
                        reject_connection(&shard, stream);
                    }
                    continue;
                };
                // Two spawn sites, so that a plain connection's task is the
                // size of the plain proxy's future, not of the TLS one's.
                match &tls {
                    None => {
                        let s = shard.clone();
                        spawn_guarded(shard.clone(), open, move || {
                            crate::proxy::serve_connection(stream, peer, s)
                        })
                    }
                    Some(config) => {
                        let (config, s) = (config.clone(), shard.clone());
                        let serve = move || async move {
                            if let Some(tls) = handshake(&s, stream, config).await {
                                crate::proxy::serve_connection(tls, peer, s).await;
                            }
                        };
                        spawn_guarded(shard.clone(), open, serve);
                    }
                }
            }
            // The listener was shut down to drain: stop accepting, but keep
            // the runtime (and every in-flight request) running until the
            // process exits.
            Err(_) if shard.is_draining() => break,
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                crate::telemetry::log_error(format_args!("shard {id}: accept failed: {e}"));
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    std::future::pending::<()>().await;
}

/// Runs one connection's future as a task of its own, holding its slot
/// (`open`) until it ends, inside the panic guard.
///
/// Takes a maker, not the future: a future moved into the task's block
/// would be kept there beside the copy being polled, doubling every
/// connection's task (the generator keeps its captures apart from its
/// locals); made inside, it exists once.
fn spawn_guarded<F: std::future::Future<Output = ()> + 'static>(
    shard: Rc<Shard>,
    open: impl Sized + 'static,
    serve: impl FnOnce() -> F + 'static,
) {
    monoio::spawn(async move {
        let _open = open;
        if let Err(panic) = CatchPanic::new(serve()).await {
            shard
                .metrics
                .error(shard.metrics.labels().no_provider(), "panic");
            crate::telemetry::log_error(format_args!(
                "shard {}: a connection handler panicked ({}); connection closed, shard continues",
                shard.id,
                panic_message(&panic)
            ));
        }
    });
}

/// The server side of a TLS handshake, within the head deadline
/// (`limits.header_read_timeout_ms`). A failure or a timeout is counted
/// (`tls_handshake`, `tls_handshake_timeout` errors) and closes this
/// connection only; it is not logged, since any scanner can cause one.
async fn handshake(
    shard: &Shard,
    stream: monoio::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Option<TlsStream> {
    // Sooner is better for the handshake's own flights too.
    let _ = stream.set_nodelay(true);
    let deadline = shard
        .generation()
        .gateway
        .config
        .limits
        .header_read_timeout_ms;
    let failed = match monoio::time::timeout(deadline, TlsStream::accept(stream, config)).await {
        Ok(Ok(tls)) => return Some(tls),
        Ok(Err(_)) => "tls_handshake",
        Err(_) => "tls_handshake_timeout",
    };
    shard
        .metrics
        .error(shard.metrics.labels().no_provider(), failed);
    None
}

/// Turns away a connection over `limits.max_connections_per_shard`: 503
/// with `Retry-After: 1`, then close. Fail fast: the answer is written at
/// once, and what the client already sent is read (briefly, bounded) only so
/// that closing does not reset the connection before the answer is read.
fn reject_connection(shard: &Rc<Shard>, stream: monoio::net::TcpStream) {
    const LINGER: Duration = Duration::from_millis(200);
    // Turned-away connections lingering at once; past it, close at once.
    let max_lingering = shard
        .generation()
        .gateway
        .config
        .limits
        .max_lingering_connections;
    let Some(rejecting) = shard.rejecting(max_lingering) else {
        return;
    };
    monoio::spawn(async move {
        use monoio::io::{AsyncReadRent, AsyncWriteRent};
        let mut stream = stream;
        let err = crate::error::Error::gateway(
            crate::error::Kind::Overloaded,
            "too many connections to this gateway; retry shortly",
        );
        let mut body = Vec::with_capacity(256);
        err.write_openai_body(&mut body);
        let out = crate::proxy::local_response(503, &body, true, false, Some(1), b"");
        let (res, _) = crate::buf::write_all(&mut stream, out).await;
        if res.is_ok() {
            let _ = stream.shutdown().await;
            let deadline = std::time::Instant::now() + LINGER;
            let mut buf = vec![0u8; 4096];
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match monoio::time::timeout(left, stream.read(buf)).await {
                    Ok((Ok(n), b)) if n > 0 => buf = b,
                    _ => break,
                }
            }
        }
        drop(rejecting);
    });
}
