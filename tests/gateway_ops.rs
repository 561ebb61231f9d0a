//! Operations of the real `shardgate` binary over loopback sockets, under
//! both monoio drivers: what a service manager and an operator do to a
//! running gateway.
//!
//! - **SIGTERM drain**: a slow SSE stream in flight finishes whole, new
//!   connections are refused once the drain began, and the process exits 0
//!   as soon as the stream is done; with a short `server.drain_timeout_ms`
//!   and a longer stream, the process exits after about the timeout.
//! - **SIGHUP reload**: a rewritten config (new base URL, new model alias)
//!   is served to new requests while the process stays up and clients keep
//!   sending, with no failed request; an invalid config (unknown key, wrong
//!   type, dangling reference) is refused with a log line naming the field,
//!   and the old routes keep serving.
//! - **Zero-downtime upgrade**: gateway B starts beside A with
//!   `--share-port`, A is sent SIGTERM while clients open fresh connections
//!   in a loop, and every request succeeds. Without `--share-port` B refuses
//!   to start, and once A has gone B holds the port as A did (a third
//!   gateway is refused). A connection that sits in A's accept queue when
//!   A's listener is shut is reset by the kernel (SO_REUSEPORT without
//!   `net.ipv4.tcp_migrate_req`): the kernel completed the handshake, no
//!   process ever read a byte of it. The load clients therefore retry a
//!   request only when connect fails or the connection is reset before any
//!   response byte arrived, count those retries (printed), and the test
//!   checks that the upstreams saw exactly one request per success (no
//!   retried request was ever processed).
//! - **systemd notify**: with `$NOTIFY_SOCKET` bound to a datagram socket,
//!   `READY=1` arrives once `/health` answers (probed the moment it
//!   arrives), then `STATUS=`; SIGHUP gives `RELOADING=1` with a current
//!   `MONOTONIC_USEC` then `READY=1` (for a refused config too); SIGTERM
//!   gives `STOPPING=1` and nothing after it.
//!
//! Every read has a deadline; every wait on the process is bounded.

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const STREAM_PATH: &str = "/v1/chat/completions";

fn chat_body(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

/// A config file with one `openai` provider at `base_url`, `server_extra`
/// lines in `[server]`, and `extra` TOML after.
fn ops_config(base_url: &str, server_extra: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n{server_extra}\n\n\
         [providers.openai]\nbase_url = \"{base_url}\"\napi_key = \"{PROVIDER_KEY}\"\n\n{extra}\n"
    )
}

/// A mock streaming `events` events `delay` apart to `"stream": true`
/// requests, plain JSON otherwise.
fn slow_stream_mock(events: usize, delay: Duration) -> MockUpstream {
    MockUpstream::with(move |info| {
        if common::contains(info.body, br#""stream":true"#) {
            Reply::Sse {
                events,
                delay,
                framing: SseFraming::Chunked,
            }
        } else {
            Reply::Auto
        }
    })
}

/// Opens a stream through the gateway and waits for its first event.
fn open_stream(gw: &Gateway) -> Client {
    let mut c = gw.connect();
    c.send(post(STREAM_PATH, &chat_body("gpt-4o-mini", true), &[]))
        .unwrap();
    c.read_until(b"tok0", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("first event: {e}\n{}", gw.log()));
    c
}

/// True when a new connection to `addr` gets no answer: connect refused,
/// or the connection reset/closed without a response.
fn refused(addr: SocketAddr) -> bool {
    let Ok(mut c) = Client::connect(addr) else {
        return true;
    };
    c.request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
        .is_err()
}

#[test]
fn sigterm_lets_a_stream_finish_refuses_new_connections_and_exits_zero() {
    const EVENTS: usize = 12;
    const DELAY: Duration = Duration::from_millis(100);
    each_driver(|d| {
        let mock = slow_stream_mock(EVENTS, DELAY);
        let mut opts = GatewayOpts::config(d, ops_config(&mock.base_url(), "", ""));
        opts.shards = 2;
        let mut gw = Gateway::start(opts);
        let mut stream = open_stream(&gw);

        let sent = Instant::now();
        gw.signal(libc::SIGTERM);
        assert!(
            gw.wait_log("draining", 1, Duration::from_secs(2)),
            "{}",
            gw.log()
        );
        thread::sleep(Duration::from_millis(50));
        // Several attempts: with two shards, each has its own listener.
        for i in 0..6 {
            assert!(
                refused(gw.addr),
                "attempt {i}: a new connection was served during the drain\n{}",
                gw.log()
            );
        }
        assert!(gw.is_running(), "exited with a stream in flight");

        let r = stream
            .read_response_within(Duration::from_secs(10), false)
            .unwrap_or_else(|e| panic!("stream cut during the drain: {e}\n{}", gw.log()));
        let stream_done = Instant::now();
        assert_eq!(r.status, 200);
        let data = sse_data(&r.body);
        assert_eq!(data.len(), EVENTS + 1, "{}", r.text());
        for (i, ev) in data[..EVENTS].iter().enumerate() {
            assert!(ev.contains(&format!("\"tok{i}\"")), "event {i}: {ev}");
        }
        assert_eq!(data[EVENTS], "[DONE]");

        let status = gw
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no exit 5 s after the stream ended\n{}", gw.log()));
        let exited = Instant::now();
        assert_eq!(status.code(), Some(0), "{}", gw.log());
        let after_stream = exited - stream_done;
        eprintln!(
            "{d:?}: SIGTERM→stream end {:?}, stream end→exit {after_stream:?}",
            stream_done - sent
        );
        assert!(
            after_stream < Duration::from_secs(2),
            "exit took {after_stream:?} after the stream ended (drain timeout is 30 s)"
        );
        assert!(gw.log().contains("drained in"), "{}", gw.log());
    });
}

#[test]
fn sigterm_exits_after_the_drain_timeout_when_a_stream_outlasts_it() {
    const EVENTS: usize = 60;
    const DRAIN_MS: u64 = 600;
    each_driver(|d| {
        let mock = slow_stream_mock(EVENTS, Duration::from_millis(100));
        let cfg = ops_config(
            &mock.base_url(),
            &format!("drain_timeout_ms = {DRAIN_MS}"),
            "",
        );
        let mut gw = Gateway::start(GatewayOpts::config(d, cfg));
        let mut stream = open_stream(&gw);

        let sent = Instant::now();
        gw.signal(libc::SIGTERM);
        let status = gw
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no exit 10 s after SIGTERM\n{}", gw.log()));
        let took = sent.elapsed();
        eprintln!("{d:?}: drain timeout {DRAIN_MS} ms, exited after {took:?}");
        assert_eq!(status.code(), Some(0), "{}", gw.log());
        assert!(
            took >= Duration::from_millis(DRAIN_MS - 50) && took < Duration::from_millis(3000),
            "exited after {took:?} with a {DRAIN_MS} ms drain timeout\n{}",
            gw.log()
        );
        assert!(
            gw.log()
                .contains("drain timeout: 1 request(s) still in flight"),
            "{}",
            gw.log()
        );
        // The stream was cut, not completed.
        match stream.read_response_within(Duration::from_secs(5), false) {
            Ok(r) => panic!("the stream completed: {} events", sse_data(&r.body).len()),
            Err(e) => assert_ne!(e.kind(), io::ErrorKind::TimedOut, "{e}"),
        }
        assert!(mock.events_sent() < EVENTS);
    });
}

// ---------------------------------------------------------------------------
// Load clients
// ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct LoadStats {
    ok: usize,
    /// Connect failures and resets before any response byte, retried.
    retried: usize,
    failures: Vec<String>,
}

/// One request/response on `client`; `Err((retryable, why))`.
fn one_request(client: &mut Client, req: &str) -> Result<Response, (bool, String)> {
    if let Err(e) = client.send(req) {
        return Err((is_reset(&e), format!("send: {e}")));
    }
    match client.read_response_within(Duration::from_secs(10), false) {
        Ok(r) => Ok(r),
        Err(e) => Err((
            is_reset(&e) && client.pending_bytes() == 0,
            format!("read: {e}"),
        )),
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// A client thread sending chat requests for `model` until `stop`, on fresh
/// connections or on one keep-alive connection (reopened when the gateway
/// says `connection: close`). Only connection-level errors before any
/// response byte are retried (see the file doc); anything else, and any
/// non-200, is a failure.
fn load_client(
    addr: SocketAddr,
    model: &'static str,
    fresh: bool,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<LoadStats> {
    thread::spawn(move || {
        let req = post(STREAM_PATH, &chat_body(model, false), &[]);
        let mut stats = LoadStats::default();
        let mut conn: Option<Client> = None;
        while !stop.load(Ordering::Relaxed) {
            let mut client = match conn.take() {
                Some(c) => c,
                None => match Client::connect(addr) {
                    Ok(c) => c,
                    Err(_) => {
                        stats.retried += 1;
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                },
            };
            match one_request(&mut client, &req) {
                Ok(r) if r.status == 200 => {
                    stats.ok += 1;
                    let close = r
                        .header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    if !fresh && !close {
                        conn = Some(client);
                    }
                }
                Ok(r) => stats
                    .failures
                    .push(format!("status {}: {}", r.status, r.text())),
                Err((true, _)) => stats.retried += 1,
                Err((false, why)) => stats.failures.push(why),
            }
        }
        stats
    })
}

struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<LoadStats>>,
}

impl Load {
    /// `fresh` clients on new connections per request, `keep_alive` clients
    /// on persistent ones.
    fn start(addr: SocketAddr, model: &'static str, fresh: usize, keep_alive: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..fresh + keep_alive)
            .map(|i| load_client(addr, model, i < fresh, stop.clone()))
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> LoadStats {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadStats::default();
        for t in self.threads {
            let s = t.join().expect("load client panicked");
            all.ok += s.ok;
            all.retried += s.retried;
            all.failures.extend(s.failures);
        }
        all
    }
}

fn chat_requests(mock: &MockUpstream) -> Vec<Recorded> {
    mock.requests()
        .into_iter()
        .filter(|r| r.target == STREAM_PATH)
        .collect()
}

// ---------------------------------------------------------------------------
// SIGHUP
// ---------------------------------------------------------------------------

/// A keep-alive connection idle across a reload does not keep the old
/// generation alive: once a request has installed the new one, the old
/// one's pooled upstream connection is closed, not held until the client
/// leaves.
#[test]
fn an_idle_connection_does_not_keep_a_reloaded_away_generation() {
    each_driver(|d| {
        let (old_up, new_up) = (MockUpstream::start(), MockUpstream::start());
        let gw = Gateway::start(GatewayOpts::config(
            d,
            ops_config(&old_up.base_url(), "", ""),
        ));
        let request = format!(
            "POST {STREAM_PATH} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            chat_body("fast", false).len(),
            chat_body("fast", false)
        );
        // A client connection left idle after a request: the shard's pool
        // holds one upstream connection to the old provider.
        let mut idle = gw.connect();
        assert_eq!(idle.request(&request).unwrap().status, 200);
        let fds = fd_count(gw.pid());
        gw.rewrite_config(&ops_config(&new_up.base_url(), "", ""));
        gw.signal(libc::SIGHUP);
        assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(5)));
        // Another client's request takes the new generation (and a new
        // upstream connection); the old one's goes with it.
        assert_eq!(gw.post(STREAM_PATH, &chat_body("fast", false)).status, 200);
        let deadline = Instant::now() + Duration::from_secs(3);
        while fd_count(gw.pid()) > fds {
            assert!(
                Instant::now() < deadline,
                "{d:?}: {} fds, {fds} before the reload: the old pool is still open",
                fd_count(gw.pid())
            );
            thread::sleep(Duration::from_millis(20));
        }
        // The idle connection goes on, on the new routes.
        assert_eq!(idle.request(&request).unwrap().status, 200);
        assert_eq!(chat_requests(&new_up).len(), 2);
    });
}

#[test]
fn sighup_reload_switches_routes_under_load_without_a_failed_request() {
    each_driver(|d| {
        let old_up = MockUpstream::start();
        let new_up = MockUpstream::start();
        let mut opts = GatewayOpts::config(d, ops_config(&old_up.base_url(), "", ""));
        opts.shards = 2;
        let mut gw = Gateway::start(opts);
        // Before: the bare name goes to the only provider as is.
        assert_eq!(gw.post(STREAM_PATH, &chat_body("fast", false)).status, 200);
        assert_eq!(old_up.last().json()["model"], "fast");

        let load = Load::start(gw.addr, "fast", 2, 2);
        thread::sleep(Duration::from_millis(300));
        gw.rewrite_config(&ops_config(
            &new_up.base_url(),
            "",
            "[[models]]\nname = \"fast\"\nprovider = \"openai\"\n\
             upstream_model = \"fast-v2\"\naliases = [\"quick\"]\n",
        ));
        let hup = Instant::now();
        gw.signal(libc::SIGHUP);
        assert!(
            gw.wait_log("configuration reloaded", 1, Duration::from_secs(5)),
            "{}",
            gw.log()
        );
        eprintln!("{d:?}: reload logged {:?} after SIGHUP", hup.elapsed());
        // Requests that took the old routes just before the swap finish.
        thread::sleep(Duration::from_millis(200));
        let old_count = chat_requests(&old_up).len();
        let new_count = chat_requests(&new_up).len();
        thread::sleep(Duration::from_millis(400));
        let stats = load.finish();
        eprintln!("{d:?}: reload under load: {stats:?}");
        assert!(
            stats.failures.is_empty(),
            "{:?}\n{}",
            stats.failures,
            gw.log()
        );
        assert_eq!(stats.retried, 0, "connection errors during a reload");
        assert_eq!(
            chat_requests(&old_up).len(),
            old_count,
            "requests reached the old upstream after the reload"
        );
        assert!(
            chat_requests(&new_up).len() > new_count,
            "no load after the reload"
        );
        // Every request was served by one upstream or the other, once.
        let old_reqs = chat_requests(&old_up);
        let new_reqs = chat_requests(&new_up);
        assert_eq!(old_reqs.len() + new_reqs.len(), stats.ok + 1);
        assert!(old_reqs.iter().all(|r| r.json()["model"] == "fast"));
        assert!(new_reqs.iter().all(|r| r.json()["model"] == "fast-v2"));

        // The new alias is routed.
        assert_eq!(gw.post(STREAM_PATH, &chat_body("quick", false)).status, 200);
        assert_eq!(new_up.last().json()["model"], "fast-v2");
        assert!(gw.is_running());
        gw.assert_healthy();
    });
}

#[test]
fn sighup_with_an_invalid_config_is_refused_and_the_old_routes_serve() {
    // ([server] lines, other tables, what its log line must say).
    let bad: [(&str, &str, &str); 3] = [
        ("drain_timeot_ms = 5", "", "server.drain_timeot_ms"),
        (
            "",
            "[upstream]\nconnect_timeout_ms = \"soon\"\n",
            "upstream.connect_timeout_ms: invalid type",
        ),
        (
            "",
            "[[models]]\nname = \"fast\"\nprovider = \"nowhere\"\n",
            "models[0].provider",
        ),
    ];
    each_driver(|d| {
        let old_up = MockUpstream::start();
        let new_up = MockUpstream::start();
        let good = ops_config(&old_up.base_url(), "", "");
        let mut gw = Gateway::start(GatewayOpts::config(d, good));
        let load = Load::start(gw.addr, "fast", 1, 2);
        for (n, (server_extra, extra, field)) in bad.iter().enumerate() {
            gw.rewrite_config(&ops_config(&new_up.base_url(), server_extra, extra));
            gw.signal(libc::SIGHUP);
            assert!(
                gw.wait_log("reload refused", n + 1, Duration::from_secs(5)),
                "{}",
                gw.log()
            );
            let log = gw.log();
            let line = log
                .lines()
                .filter(|l| l.contains("reload refused"))
                .nth(n)
                .unwrap();
            assert!(line.contains(field), "{field} not named in {line:?}");
            thread::sleep(Duration::from_millis(150));
            assert!(gw.is_running());
        }
        let stats = load.finish();
        eprintln!("{d:?}: invalid reloads under load: {stats:?}");
        assert!(
            stats.failures.is_empty(),
            "{:?}\n{}",
            stats.failures,
            gw.log()
        );
        assert_eq!(stats.retried, 0);
        assert!(stats.ok > 0);
        assert!(
            chat_requests(&new_up).is_empty(),
            "a refused config was served"
        );
        assert_eq!(chat_requests(&old_up).len(), stats.ok);
        assert!(!gw.log().contains("configuration reloaded"));

        // A valid config after the refusals is still taken.
        gw.rewrite_config(&ops_config(&new_up.base_url(), "", ""));
        gw.signal(libc::SIGHUP);
        assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(5)));
        assert_eq!(gw.post(STREAM_PATH, &chat_body("fast", false)).status, 200);
        assert_eq!(chat_requests(&new_up).len(), 1);
    });
}

// ---------------------------------------------------------------------------
// Upgrade
// ---------------------------------------------------------------------------

#[test]
fn upgrade_with_share_port_serves_every_request_while_the_old_one_drains() {
    each_driver(|d| {
        let up_a = MockUpstream::start();
        let up_b = MockUpstream::start();
        let mut opts_a = GatewayOpts::config(d, ops_config(&up_a.base_url(), "", ""));
        opts_a.shards = 2;
        let mut a = Gateway::start(opts_a);
        let mut opts_b = GatewayOpts::config(d, ops_config(&up_b.base_url(), "", ""));
        opts_b.shards = 2;

        // Without --share-port the new binary refuses the port A holds.
        let err = match Gateway::spawn_at(&opts_b, a.addr, &[], &[]) {
            Ok(_) => panic!(
                "a second gateway started on {} without --share-port",
                a.addr
            ),
            Err(e) => e,
        };
        assert!(err.contains("already in use"), "{err}");

        let load = Load::start(a.addr, "gpt-4o-mini", 3, 0);
        thread::sleep(Duration::from_millis(300));
        let b = Gateway::spawn_at(&opts_b, a.addr, &["--share-port"], &[])
            .unwrap_or_else(|e| panic!("B did not start beside A: {e}"));
        thread::sleep(Duration::from_millis(300));
        let term = Instant::now();
        a.signal(libc::SIGTERM);
        let status = a
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("A did not exit\n{}", a.log()));
        let a_exit = term.elapsed();
        assert_eq!(status.code(), Some(0), "{}", a.log());
        let a_served = chat_requests(&up_a).len();
        let b_before = chat_requests(&up_b).len();
        thread::sleep(Duration::from_millis(400));
        let stats = load.finish();
        eprintln!(
            "{d:?}: upgrade: A exited {a_exit:?} after SIGTERM; A served {a_served}, \
             B served {}; {stats:?}",
            chat_requests(&up_b).len()
        );
        assert!(
            stats.failures.is_empty(),
            "{:?}\nA: {}\nB: {}",
            stats.failures,
            a.log(),
            b.log()
        );
        assert!(a_served > 0 && chat_requests(&up_b).len() > b_before);
        // Exactly one upstream request per success: no retried request was
        // ever seen by a gateway.
        assert_eq!(a_served + chat_requests(&up_b).len(), stats.ok);
        b.assert_healthy();
        // With A gone, B takes over the port's claim: a third gateway
        // without --share-port is refused again.
        assert!(
            b.wait_log("now holds the port", 1, Duration::from_secs(3)),
            "{}",
            b.log()
        );
        let err = match Gateway::spawn_at(&opts_b, a.addr, &[], &[]) {
            Ok(_) => panic!("a third gateway started beside B without --share-port"),
            Err(e) => e,
        };
        assert!(err.contains("already in use"), "{err}");
    });
}

// ---------------------------------------------------------------------------
// systemd notify protocol
// ---------------------------------------------------------------------------

/// One datagram on the notify socket; for the first `READY=1`, the status
/// of a `/health` request sent the moment it arrived.
struct Notice {
    text: String,
    health_at_ready: Option<io::Result<u16>>,
}

/// Binds a `$NOTIFY_SOCKET` and forwards every datagram until `stop`.
fn notify_listener(
    dir: &TempDir,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> (String, std::sync::mpsc::Receiver<Notice>) {
    let path = dir.0.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut ready_seen = false;
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let health_at_ready = (text == "READY=1" && !ready_seen).then(|| {
                ready_seen = true;
                Client::connect(addr)
                    .and_then(|mut c| c.request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n"))
                    .map(|r| r.status)
            });
            if tx
                .send(Notice {
                    text,
                    health_at_ready,
                })
                .is_err()
            {
                break;
            }
        }
    });
    (path.to_str().unwrap().to_string(), rx)
}

fn next_notice(rx: &std::sync::mpsc::Receiver<Notice>, what: &str, gw: &Gateway) -> Notice {
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("no notify datagram ({what} expected)\n{}", gw.log()))
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec; CLOCK_MONOTONIC exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Expects `RELOADING=1` with a current `MONOTONIC_USEC`, then `READY=1`.
fn expect_reload_notices(rx: &std::sync::mpsc::Receiver<Notice>, gw: &Gateway, since: u64) {
    let n = next_notice(rx, "RELOADING=1", gw);
    let (first, second) = n
        .text
        .split_once('\n')
        .unwrap_or_else(|| panic!("reloading notice: {:?}", n.text));
    assert_eq!(first, "RELOADING=1");
    let usec: u64 = second
        .strip_prefix("MONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("reloading notice: {:?}", n.text));
    assert!(
        usec >= since && usec <= monotonic_usec(),
        "{usec} vs {since}"
    );
    assert_eq!(next_notice(rx, "READY=1 after reload", gw).text, "READY=1");
}

#[test]
fn notify_socket_gets_ready_reloading_and_stopping() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let dir = TempDir::new("notify");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (socket, rx) = notify_listener(&dir, addr, stop.clone());
        let opts = GatewayOpts::config(d, ops_config(&mock.base_url(), "", ""));
        let mut gw = Gateway::spawn_at(&opts, addr, &[], &[("NOTIFY_SOCKET", &socket)])
            .unwrap_or_else(|e| panic!("start: {e}"));

        // READY=1 only once the gateway serves.
        let ready = next_notice(&rx, "READY=1", &gw);
        assert_eq!(ready.text, "READY=1");
        match ready.health_at_ready {
            Some(Ok(200)) => {}
            other => panic!("/health at READY=1: {other:?}"),
        }
        let status = next_notice(&rx, "STATUS=", &gw);
        assert!(status.text.starts_with("STATUS="), "{}", status.text);

        // SIGHUP: RELOADING=1 then READY=1, for a good and a refused config.
        let since = monotonic_usec();
        gw.signal(libc::SIGHUP);
        expect_reload_notices(&rx, &gw, since);
        assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(5)));
        gw.rewrite_config("[server]\nno_such_key = 1\n");
        let since = monotonic_usec();
        gw.signal(libc::SIGHUP);
        expect_reload_notices(&rx, &gw, since);
        assert!(gw.wait_log("reload refused", 1, Duration::from_secs(5)));
        gw.assert_healthy();

        // SIGTERM: STOPPING=1, then a clean exit.
        gw.signal(libc::SIGTERM);
        assert_eq!(next_notice(&rx, "STOPPING=1", &gw).text, "STOPPING=1");
        let exit = gw.wait_exit(Duration::from_secs(5)).expect("exit");
        assert_eq!(exit.code(), Some(0), "{}", gw.log());
        thread::sleep(Duration::from_millis(200));
        if let Ok(n) = rx.try_recv() {
            panic!("a datagram after STOPPING=1: {:?}", n.text);
        }
        stop.store(true, Ordering::Relaxed);
    });
}
