//! The shardgate binary: command line, config load, shard start-up, and
//! signal handling.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use shardgate::config::{Config, ConfigError};
use shardgate::governance::Governance;
use shardgate::net::ServerCert;
use shardgate::providers::router::Router;
use shardgate::runtime::missing_cpu_feature;
use std::os::fd::{AsRawFd, RawFd};

use shardgate::admin::{spawn_admin, Admin};
use shardgate::proxy::ROUTE_NAMES;
use shardgate::server::spawn_shards;
use shardgate::shard::{allowed_cores, Control, Gateway, ShardSetup};
use shardgate::telemetry::trace::{Exporter, ExporterOptions, ShardTracer};
use shardgate::telemetry::{
    init_log, log_error, log_event, log_info, log_warn, notify, AccessLog, AccessLogOptions, Field,
    LabelTable, Level, LogFormat, LogTarget,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// shardgate — a thread-per-core LLM gateway (OpenAI-compatible)
///
/// Without a command it runs the gateway; the commands are an operator's
/// chores (each has --help).
#[derive(Clone, Parser)]
#[command(name = "shardgate", version, args_override_self = true)]
struct Args {
    #[command(subcommand)]
    command: Option<shardgate::cli::Command>,
    /// TOML config file (default: none; providers from the environment,
    /// e.g. OPENAI_API_KEY and OPENAI_BASE_URL)
    #[arg(short = 'c', long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Listen address, overrides server.listen (default 127.0.0.1:8080)
    #[arg(short = 'l', long, value_name = "ADDR")]
    listen: Option<String>,
    /// Admin address (metrics, reload), overrides admin.listen (default
    /// 127.0.0.1:9090); `off` runs without it. A taken admin address stops
    /// the start-up.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Number of shards (default: one per CPU this process may use)
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Start beside a running instance on the same port (upgrade: start the
    /// new binary with this, then SIGTERM the old one)
    #[arg(long)]
    share_port: bool,
    /// Validate the configuration and exit (non-zero if invalid)
    #[arg(long)]
    check_config: bool,
    /// Operational log format on stderr: `text` or `json` (default: text,
    /// or $SHARDGATE_LOG_FORMAT). Under journald neither has a timestamp.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Least important operational lines written: error, warn, info or
    /// debug (default: info, or $SHARDGATE_LOG_LEVEL)
    #[arg(long, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug"])]
    log_level: Option<String>,
}

/// The log format and level: the flag's, else the environment's, else the
/// defaults; a bad environment value is an error, not ignored.
fn log_settings(args: &Args) -> Result<(LogFormat, Level), String> {
    let pick = |flag: &Option<String>, var: &str| match flag {
        Some(v) => Some(v.clone()),
        None => std::env::var(var).ok().filter(|v| !v.is_empty()),
    };
    let format = match pick(&args.log_format, "SHARDGATE_LOG_FORMAT") {
        None => LogFormat::Text,
        Some(v) => LogFormat::parse(&v)
            .ok_or_else(|| format!("SHARDGATE_LOG_FORMAT={v}: expected text or json"))?,
    };
    let level = match pick(&args.log_level, "SHARDGATE_LOG_LEVEL") {
        None => Level::Info,
        Some(v) => Level::parse(&v).ok_or_else(|| {
            format!("SHARDGATE_LOG_LEVEL={v}: expected error, warn, info or debug")
        })?,
    };
    Ok((format, level))
}

fn main() -> ExitCode {
    if let Some(feature) = missing_cpu_feature() {
        eprintln!(
            "shardgate: this CPU lacks {feature}, which this binary was built for; rebuild with \
             `cargo build --release --config 'target.x86_64-unknown-linux-gnu.rustflags=[]'`"
        );
        return ExitCode::from(1);
    }
    // `--help` and `--version` exit 0 on stdout; a bad argument exits 2
    // with clap's message on stderr.
    let mut args = Args::parse();
    match log_settings(&args) {
        Ok((format, level)) => init_log(format, level),
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(2);
        }
    }
    match args.command.take() {
        // The same as --check-config, with the same config load.
        Some(shardgate::cli::Command::CheckConfig { config }) => {
            args.config = config.or(args.config);
            args.check_config = true;
        }
        Some(chore) => return shardgate::cli::run(chore, args.config.as_deref()),
        None => {}
    }
    let (config, tls_key) = match load_config(&args).and_then(|c| {
        let key = load_tls_key(&c)?;
        Ok((c, key))
    }) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("shardgate: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        return shardgate::providers::report_check(&config, args.config.as_deref());
    }
    match run(config, tls_key, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log_error(format_args!("{e}"));
            ExitCode::from(1)
        }
    }
}

fn load_config(args: &Args) -> Result<Config, shardgate::config::ConfigError> {
    let mut config = shardgate::providers::load_config(args.config.as_deref())?;
    if let Some(listen) = &args.listen {
        config.server.listen = shardgate::config::listen_addr(listen)?;
    }
    match args.admin_listen.as_deref() {
        Some("off") => config.admin.listen = None,
        Some(addr) => config.admin.listen = shardgate::config::admin_addr(addr)?,
        None => {}
    }
    if let Some(shards) = args.shards {
        config.server.shards = shards;
    }
    config.server.share_port |= args.share_port;
    shardgate::providers::validate(&config)?;
    Ok(config)
}

/// `[server.tls]`'s certificate and key, read and checked against each
/// other; `None` without the table.
fn load_tls_key(config: &Config) -> Result<Option<Arc<rustls::sign::CertifiedKey>>, ConfigError> {
    config
        .server
        .tls
        .as_ref()
        .map(shardgate::net::load_certified_key)
        .transpose()
}

fn run(
    config: Config,
    tls_key: Option<Arc<rustls::sign::CertifiedKey>>,
    args: &Args,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let config_path = args
        .config
        .as_ref()
        .map_or("(none)".into(), |p| p.display().to_string());
    log_event(
        Level::Info,
        "start",
        &[
            ("version", Field::Str(env!("CARGO_PKG_VERSION"))),
            ("pid", Field::U64(std::process::id().into())),
            ("config", Field::Str(&config_path)),
        ],
        Some(format_args!(
            "shardgate {} starting",
            env!("CARGO_PKG_VERSION")
        )),
    );
    // Signals are taken by the main thread only: block them before any
    // shard thread exists so the threads inherit the mask.
    let signals = block_signals();
    let router = Router::new(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    for p in &router.providers {
        if p.addrs.is_empty() {
            log_warn(format_args!(
                "provider {}: cannot resolve {} yet; its requests will fail with 502",
                p.name, p.url.host
            ));
        }
    }
    if let Some(why) = shardgate::providers::no_providers(&config, args.config.as_deref()) {
        log_warn(format_args!("{why}"));
    }
    let cores = allowed_cores();
    let shards = if config.server.shards == 0 {
        cores.len()
    } else {
        config.server.shards
    };
    let governance = Governance::new();
    let store_writer = shardgate::governance::start(&governance, &config)?;
    let addr = config.server.listen;
    // `claim` tells later gateways this port is served; it lives until exit.
    let shardgate::net::Listeners {
        sockets: listeners,
        mut claim,
    } = shardgate::net::bind_listeners(addr, shards, config.server.share_port)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listeners[0].local_addr().map_err(|e| e.to_string())?;
    let placement: Vec<_> = (0..shards)
        .map(|i| config.server.pin_cores.then(|| cores[i % cores.len()]))
        .collect();
    let listener_fds: Vec<RawFd> = listeners.iter().map(|l| l.as_raw_fd()).collect();
    if config.server.incoming_cpu {
        for (fd, core) in listener_fds.iter().zip(&placement) {
            let Some(core) = core else { continue };
            if let Err(e) = shardgate::net::set_incoming_cpu(*fd, core.id) {
                log_warn(format_args!(
                    "SO_INCOMING_CPU {} on a listener: {e}",
                    core.id
                ));
            }
        }
    }
    // The certificate is swapped behind one ServerConfig on reload (see
    // `net::server_tls`); whether the listener speaks TLS is fixed here.
    let server_cert = tls_key.map(ServerCert::new);
    let tls_config = server_cert.clone().map(shardgate::net::server_config);
    if let Some(tls) = &config.server.tls {
        log_info(format_args!(
            "TLS for clients: TLS 1.3/1.2, ALPN http/1.1, certificate {}",
            tls.cert_file.display()
        ));
    }
    let labels = Arc::new(LabelTable::from_config(&config, &ROUTE_NAMES));
    let access_log = start_access_log(&config.access_log)?;
    let tracing = start_tracing(&config.tracing)?;
    let setups = (0..shards)
        .map(|_| ShardSetup {
            labels: labels.clone(),
            access_log: access_log.as_ref().map(|l| l.sender()),
            tracer: tracing
                .as_ref()
                .map(|e| ShardTracer::new(e.sender(), config.tracing.sample_ratio, random_seed())),
            tls: tls_config.clone(),
        })
        .collect();
    let admin_listen = config.admin.listen;
    let gateway = Arc::new(Gateway::new(config, router, None)?);
    let control = Control::with_governance(gateway, shards, governance);
    // The admin port is the operator's view and hand on the gateway
    // (metrics, reload): a gateway that cannot have it does not start,
    // unless it was turned off.
    let reloader = Reloader::new(args, &control, server_cert);
    if let Some(addr) = admin_listen {
        let reloader = reloader.clone();
        let admin = Admin {
            control: control.clone(),
            log_dropped: access_log
                .as_ref()
                .map(|l| l.dropped_counter())
                .unwrap_or_default(),
            traces: tracing.as_ref().map(|e| e.counters()),
            reload: Box::new(move || reloader.reload()),
        };
        let bound = spawn_admin(addr, admin).map_err(|e| {
            format!(
                "cannot listen on the admin address {addr}: {e} (choose another with \
                 --admin-listen ADDR or admin.listen, or run without it: --admin-listen off)"
            )
        })?;
        log_event(
            Level::Info,
            "admin_listening",
            &[("addr", Field::Shown(&bound))],
            Some(format_args!("admin (metrics, reload) on http://{bound}")),
        );
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let _threads = spawn_shards(
        control.clone(),
        listeners,
        placement.clone(),
        setups,
        ready_tx,
    );
    let mut drivers = vec![None; shards];
    for _ in 0..shards {
        let (id, res) = ready_rx
            .recv()
            .map_err(|_| "a shard died during start-up".to_string())?;
        let driver = res.map_err(|e| format!("shard {id} failed to start: {e}"))?;
        let core = placement[id].map_or("unpinned".to_string(), |c| format!("cpu {}", c.id));
        log_event(
            Level::Info,
            "shard_started",
            &[
                ("shard", Field::U64(id as u64)),
                ("driver", Field::Shown(&driver)),
                // The CPU it is pinned to, or "unpinned".
                (
                    "cpu",
                    match placement[id] {
                        Some(c) => Field::U64(c.id as u64),
                        None => Field::Str("unpinned"),
                    },
                ),
            ],
            Some(format_args!("shard {id}: {driver} driver, {core}")),
        );
        drivers[id] = Some(driver);
    }
    let ready_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    log_event(
        Level::Info,
        "ready",
        &[
            ("listen", Field::Shown(&bound)),
            ("shards", Field::U64(shards as u64)),
            ("ready_ms", Field::F64(ready_ms)),
        ],
        Some(format_args!(
            "listening on {bound} with {shards} shard(s), ready in {ready_ms:.1} ms"
        )),
    );
    // systemd (Type=notify): every shard is accepting.
    let _ = notify::ready();
    let _ = notify::status(&format!("listening on {bound} with {shards} shard(s)"));
    loop {
        // Beside an old gateway (share_port), the port's claim is taken over
        // once it has gone, so the port is protected again; checked once a
        // second until then.
        let poll = claim
            .can_take_over()
            .then_some(std::time::Duration::from_secs(1));
        let Some(signal) = wait_for_signal(&signals, poll) else {
            if let Ok(true) = claim.try_again() {
                log_event(
                    Level::Info,
                    "port_claimed",
                    &[("port", Field::U64(claim.port().into()))],
                    Some(format_args!(
                        "port {}: the previous gateway has gone; this one now holds the port",
                        claim.port()
                    )),
                );
            }
            continue;
        };
        match signal {
            libc::SIGHUP => {
                // The outcome is logged either way.
                let _ = reloader.reload();
                if let Some(log) = &access_log {
                    log.reopen(); // after logrotate moved the file
                }
            }
            sig => {
                drain(&control, &listener_fds, sig);
                if let Some(log) = access_log {
                    // Shards flush their batches on their next tick.
                    std::thread::sleep(std::time::Duration::from_millis(150));
                    log.shutdown();
                }
                if let Some(tracing) = tracing {
                    // What the shards handed over is exported; what they
                    // still batch (under a second's worth) is not waited for.
                    tracing.shutdown();
                }
                // After the drain: the requests that finished are charged.
                store_writer.stop();
                return Ok(());
            }
        }
    }
}

/// Reloads the configuration: SIGHUP's and `POST /admin/reload`'s, one at
/// a time.
struct Reloader {
    args: Args,
    control: Arc<Control>,
    /// The listener's certificate, when it speaks TLS.
    server_cert: Option<Arc<ServerCert>>,
    one_at_a_time: std::sync::Mutex<()>,
}

impl Reloader {
    fn new(
        args: &Args,
        control: &Arc<Control>,
        server_cert: Option<Arc<ServerCert>>,
    ) -> Arc<Reloader> {
        Arc::new(Reloader {
            args: args.clone(),
            control: control.clone(),
            server_cert,
            one_at_a_time: std::sync::Mutex::new(()),
        })
    }

    /// Loads, validates and publishes the configuration again, and logs
    /// the outcome. An invalid one is refused and the running one kept.
    fn reload(&self) -> Result<String, String> {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let _ = notify::reloading();
        let outcome = reload_config(&self.args, &self.control, self.server_cert.as_deref());
        let _ = notify::ready();
        self.control.note_reload(outcome.is_ok());
        let generation = Field::U64(self.control.generation());
        match &outcome {
            Ok(applied) => log_event(
                Level::Info,
                "reload",
                &[
                    ("outcome", Field::Str("applied")),
                    ("generation", generation),
                ],
                Some(format_args!("{applied}")),
            ),
            Err(why) => log_event(
                Level::Error,
                "reload",
                &[
                    ("outcome", Field::Str("refused")),
                    ("generation", generation),
                    ("error", Field::Str(why)),
                ],
                Some(format_args!(
                    "reload refused, keeping the running configuration: {why}"
                )),
            ),
        }
        outcome
    }
}

fn reload_config(
    args: &Args,
    control: &Control,
    server_cert: Option<&ServerCert>,
) -> Result<String, String> {
    let old = control.current();
    let config = load_config(args).map_err(|e| e.to_string())?;
    let restart_only = config.server.listen != old.config.server.listen
        || config.server.shards != old.config.server.shards;
    // Read (and checked) before anything is published: a bad certificate
    // refuses the whole reload and the served one stays.
    let tls_key = match server_cert {
        Some(_) => load_tls_key(&config).map_err(|e| e.to_string())?,
        None => None,
    };
    let tls_toggled = config.server.tls.is_some() != server_cert.is_some();
    let mut router = Router::new(&config).map_err(|e| e.to_string())?;
    // Quotas count the last minute across reloads, not from each reload.
    router.carry_quotas(&old.router);
    let (providers, models) = (router.providers.len(), config.models.len());
    control.governance.sync_config(&config)?;
    shardgate::governance::check_exposure(&control.governance, &config)?;
    let cert_file = config.server.tls.as_ref().map(|t| t.cert_file.clone());
    control.publish(Arc::new(Gateway::new(config, router, Some(&old))?));
    let mut applied = format!("configuration reloaded: {providers} provider(s), {models} model(s)");
    if let (Some(key), Some(cert), Some(file)) = (tls_key, server_cert, cert_file) {
        cert.replace(key);
        applied.push_str(&format!(
            "; TLS certificate reloaded from {} (new connections)",
            file.display()
        ));
    }
    if restart_only {
        applied.push_str("; server.listen and server.shards take effect only after a restart");
    }
    if tls_toggled {
        applied.push_str("; turning [server.tls] on or off takes effect only after a restart");
    }
    Ok(applied)
}

/// Stops accepting, lets in-flight requests and streams finish (up to the
/// drain timeout), then returns so the process exits.
fn drain(control: &Control, listener_fds: &[RawFd], sig: i32) {
    let timeout = control.current().config.server.drain_timeout_ms;
    log_event(
        Level::Info,
        "drain",
        &[
            ("signal", Field::U64(sig as u64)),
            ("timeout_ms", Field::U64(timeout.as_millis() as u64)),
            ("in_flight", Field::U64(control.in_flight() as u64)),
        ],
        Some(format_args!("signal {sig}: draining (up to {timeout:?})")),
    );
    let _ = notify::stopping();
    control.start_draining();
    for &fd in listener_fds {
        // Wakes each shard's pending accept with an error; it sees the drain
        // flag and stops accepting. New connections go to other instances
        // sharing the port, or are refused.
        // SAFETY: shutting down a listening socket we own.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    }
    let started = std::time::Instant::now();
    let mut idle_checks = 0;
    while started.elapsed() < timeout {
        // Two consecutive idle readings: a request whose head was just read
        // has had time to register.
        idle_checks = if control.in_flight() == 0 {
            idle_checks + 1
        } else {
            0
        };
        if idle_checks >= 2 {
            let ms = started.elapsed().as_millis() as u64;
            log_event(
                Level::Info,
                "drained",
                &[("drain_ms", Field::U64(ms))],
                Some(format_args!("drained in {ms} ms; exiting")),
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left = control.in_flight();
    log_event(
        Level::Warn,
        "drain_timeout",
        &[("in_flight", Field::U64(left as u64))],
        Some(format_args!(
            "drain timeout: {left} request(s) still in flight; exiting"
        )),
    );
}

/// `[tracing]`: the OTLP exporter thread, when `otlp_endpoint` is set.
fn start_tracing(cfg: &shardgate::config::TracingConfig) -> Result<Option<Exporter>, String> {
    let Some(endpoint) = &cfg.otlp_endpoint else {
        return Ok(None);
    };
    let post =
        shardgate::upstream::blocking::otlp_post(endpoint, &cfg.headers, cfg.export_timeout_ms)
            .map_err(|e| format!("tracing.otlp_endpoint: {e}"))?;
    let opts = ExporterOptions {
        shard_batch_spans: cfg.shard_batch_spans,
        flush_interval: cfg.flush_interval_ms,
        queue_batches: cfg.queue_batches,
        export_spans: cfg.max_export_spans,
    };
    let exporter = Exporter::start(cfg.service_name.clone(), opts, post)
        .map_err(|e| format!("tracing: cannot start the exporter thread: {e}"))?;
    log_info(format_args!(
        "tracing: OTLP/HTTP to {endpoint}, sample ratio {}",
        cfg.sample_ratio
    ));
    Ok(Some(exporter))
}

/// A seed for a shard's trace and span ids, from the OS: ids must not
/// repeat across shards, processes and restarts.
fn random_seed() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

fn start_access_log(cfg: &shardgate::config::AccessLogConfig) -> Result<Option<AccessLog>, String> {
    let target = match cfg.target.as_str() {
        "stdout" => LogTarget::Stdout,
        "file" => LogTarget::File {
            path: cfg.path.clone().into(),
            max_bytes: cfg.max_bytes,
            keep: cfg.keep,
        },
        _ => return Ok(None),
    };
    AccessLog::start(target, AccessLogOptions::default())
        .map(Some)
        .map_err(|e| format!("access_log: cannot open {}: {e}", cfg.path))
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; every thread it
/// starts afterwards inherits the mask, and [`wait_for_signal`] takes them
/// with `sigwait`. So no signal handler ever runs, on a shard thread or
/// elsewhere: a shard's `io_uring_enter`/`epoll_wait` is never interrupted
/// (EINTR) and nothing has to be async-signal-safe. We keep this over
/// `signal-hook`: its iterator installs a handler (run on whichever thread
/// the kernel picks) that writes to a self-pipe, so it would still need
/// this mask to keep the shards clear, and would then replace only the
/// `sigwait` call below with a handler, a pipe and a dependency.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// The next of the blocked signals; `None` when `timeout` passed first.
fn wait_for_signal(set: &libc::sigset_t, timeout: Option<std::time::Duration>) -> Option<i32> {
    loop {
        let Some(t) = timeout else {
            let mut sig = 0;
            // SAFETY: `set` is a valid signal set blocked in every thread.
            if unsafe { libc::sigwait(set, &mut sig) } == 0 {
                return Some(sig);
            }
            continue;
        };
        let ts = libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        };
        // SAFETY: as above; a null siginfo is allowed.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
        if sig > 0 {
            return Some(sig);
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
            return None;
        }
    }
}
