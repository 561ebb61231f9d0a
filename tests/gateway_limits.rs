//! Client-side limits over loopback against the real binary, under both
//! drivers: slowloris heads and slow bodies get 408 and a close, idle
//! keep-alive connections are closed silently, the per-shard connection cap
//! and the per-upstream in-flight cap answer 503 with `Retry-After: 1`, a
//! client leaving mid-stream closes the upstream connection (never pooled),
//! and idle client connections cost a bounded amount of memory.
//!
//! Memory per idle client connection (debug build, one shard, 2,000 idle
//! connections, VmRSS before/after): measured about 24 KiB each on io_uring
//! (23.6) and legacy (24.6) alike — mostly the 16 KiB read buffer each
//! connection takes at accept, plus its task; the test asserts under 64 KiB.

mod common;

use std::io::{self, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str = r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#;

fn start(d: Driver, mock: &MockUpstream, limits: &str) -> Gateway {
    Gateway::start(GatewayOpts::config(
        d,
        config_for(mock, "", &format!("[limits]\n{limits}\n")),
    ))
}

/// Reads a response in short slices, calling `between` after each empty
/// one, until one arrives or `cap` passes.
fn response_while(
    c: &mut Client,
    cap: Duration,
    mut between: impl FnMut(),
) -> io::Result<Response> {
    let deadline = Instant::now() + cap;
    loop {
        match c.read_response_within(Duration::from_millis(100), false) {
            Ok(r) => return Ok(r),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && Instant::now() < deadline =>
            {
                between()
            }
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn slowloris_head_gets_408_and_close_within_the_timeout() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = start(d, &mock, "header_read_timeout_ms = 600");
        let started = Instant::now();
        let mut c = gw.connect();
        c.send("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\n")
            .unwrap();
        // One header byte every 100 ms: always progress, never a whole head.
        let mut trickle = c.stream.try_clone().unwrap();
        let r = response_while(&mut c, Duration::from_secs(5), || {
            let _ = trickle.write_all(b"x");
        })
        .expect("a 408 before the cap");
        let took = started.elapsed();
        let e = r.assert_openai_error(408);
        assert_eq!(e["code"], "request_timeout", "{e}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
            "408 after {took:?} (timeout 600 ms)"
        );
        assert!(c.is_closed(Duration::from_secs(3)));
        assert!(mock.requests().is_empty(), "nothing went upstream");
    });
}

#[test]
fn slow_body_gets_408_and_close() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = start(d, &mock, "body_read_timeout_ms = 500");
        for chunked in [false, true] {
            let mut c = gw.connect();
            let started = Instant::now();
            if chunked {
                c.send("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"mod\r\n")
                    .unwrap();
            } else {
                c.send("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{\"model\"")
                    .unwrap();
            }
            let mut trickle = c.stream.try_clone().unwrap();
            let r = response_while(&mut c, Duration::from_secs(5), || {
                // Progress that never completes the body.
                let _ = trickle.write_all(if chunked { b"1\r\n \r\n" } else { b" " });
            })
            .expect("a 408 before the cap");
            let took = started.elapsed();
            let e = r.assert_openai_error(408);
            assert_eq!(e["code"], "request_timeout", "{e}");
            assert!(
                took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
                "chunked={chunked}: 408 after {took:?} (timeout 500 ms)"
            );
            assert!(c.is_closed(Duration::from_secs(3)), "chunked={chunked}");
        }
        assert!(mock.requests().is_empty(), "nothing went upstream");
    });
}

#[test]
fn idle_keepalive_connection_is_closed_silently() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = start(d, &mock, "keepalive_idle_timeout_ms = 500");
        let mut c = gw.connect();
        // Idle, but less than the timeout, between requests: still served.
        for _ in 0..3 {
            let r = c.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            thread::sleep(Duration::from_millis(250));
        }
        let idle_from = Instant::now();
        assert!(
            c.is_closed(Duration::from_secs(3)),
            "closed with no bytes sent"
        );
        let took = idle_from.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(1500),
            "closed after {took:?} idle (timeout 500 ms)"
        );
    });
}

#[test]
fn connection_limit_answers_503_with_retry_after() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = start(d, &mock, "max_connections_per_shard = 2");
        let mut held: Vec<Client> = (0..2)
            .map(|_| {
                let mut c = gw.connect();
                let r = c
                    .request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
                    .unwrap();
                assert_eq!(r.status, 200);
                c
            })
            .collect();
        let mut over = gw.connect();
        over.send(post("/v1/chat/completions", CHAT, &[])).unwrap();
        let r = over.read_response().expect("a 503, not a queue");
        let e = r.assert_openai_error(503);
        assert_eq!(e["code"], "overloaded", "{e}");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("connection"), Some("close"));
        assert!(over.is_closed(Duration::from_secs(3)));
        // The held ones still work; a freed slot admits a new connection.
        let r = held[0]
            .request(post("/v1/chat/completions", CHAT, &[]))
            .unwrap();
        assert_eq!(r.status, 200);
        drop(held.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut c = gw.connect();
            let r = c
                .request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
                .unwrap();
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503);
            assert!(Instant::now() < deadline, "the freed slot never came back");
            thread::sleep(Duration::from_millis(20));
        }
    });
}

#[test]
fn in_flight_limit_per_upstream_answers_503_before_sending() {
    let mock = MockUpstream::with(|info| {
        if info.body.windows(6).any(|w| w == b"stream") {
            Reply::Sse {
                events: 4,
                delay: Duration::from_millis(250),
                framing: SseFraming::Chunked,
            }
        } else {
            Reply::Auto
        }
    });
    each_driver(|d| {
        let gw = start(d, &mock, "max_in_flight_per_upstream = 1");
        let before = mock.requests().len();
        let mut a = gw.connect();
        a.send(post("/v1/chat/completions", STREAM, &[])).unwrap();
        a.read_until(b"tok0", Duration::from_secs(5)).unwrap();
        let mut b = gw.connect();
        let r = b.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
        let e = r.assert_openai_error(503);
        assert_eq!(e["code"], "overloaded", "{e}");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(mock.requests().len(), before + 1, "the 503 went nowhere");
        // Local answers need no upstream slot; the connection stays usable.
        let h = b
            .request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        assert_eq!(h.status, 200);
        let streamed = a.read_response().unwrap();
        assert_eq!(streamed.status, 200);
        let r = b.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
        assert_eq!(r.status, 200, "the slot is free again: {}", r.text());
    });
}

#[test]
fn client_leaving_mid_stream_closes_the_upstream_connection() {
    const EVENTS: usize = 40;
    let mock = MockUpstream::with(|_| Reply::Sse {
        events: EVENTS,
        delay: Duration::from_millis(50),
        framing: SseFraming::Chunked,
    });
    each_driver(|d| {
        let gw = start(d, &mock, "");
        let first = mock.requests().len();
        let mut a = gw.connect();
        a.send(post("/v1/chat/completions", STREAM, &[])).unwrap();
        a.read_until(b"tok1", Duration::from_secs(5)).unwrap();
        drop(a);
        // The mock's writes start failing once the gateway drops its side.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = mock.events_sent();
        loop {
            thread::sleep(Duration::from_millis(300));
            let now = mock.events_sent();
            if now == last {
                break;
            }
            last = now;
            assert!(Instant::now() < deadline, "the upstream kept streaming");
        }
        let stream_conn = mock.requests()[first].conn;
        let mut b = gw.connect();
        b.send(post("/v1/chat/completions", STREAM, &[])).unwrap();
        b.read_until(b"tok0", Duration::from_secs(5)).unwrap();
        let next_conn = mock.last().conn;
        assert_ne!(
            next_conn, stream_conn,
            "the abandoned upstream connection was pooled and reused"
        );
    });
}

/// Raises RLIMIT_NOFILE (soft up to hard) so this process and the gateway
/// it spawns can hold the connections.
fn raise_nofile(want: u64) -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = lim.rlim_max.min(want);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn idle_connections_cost_bounded_memory() {
    const WANT: usize = 2_000;
    const BOUND_KIB: u64 = 64;
    let limit = raise_nofile(2 * WANT as u64 + 256);
    // Both ends live in this process, plus the gateway's side.
    let conns = WANT.min((limit as usize).saturating_sub(256) / 2);
    assert!(
        conns >= 500,
        "RLIMIT_NOFILE {limit} is too low for the test"
    );
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = start(d, &mock, "header_read_timeout_ms = 60000");
        // Warm up: the shard's pools and buffers as a working gateway has them.
        for _ in 0..20 {
            assert_eq!(gw.post("/v1/chat/completions", CHAT).status, 200);
        }
        thread::sleep(Duration::from_millis(200));
        let before = rss_kib(gw.pid());
        let started = Instant::now();
        let mut idle: Vec<TcpStream> = Vec::with_capacity(conns);
        for _ in 0..conns {
            idle.push(TcpStream::connect(gw.addr).unwrap());
        }
        // Accepts are in order: once a later connection is answered, every
        // idle one has its task and buffer.
        let mut probe = gw.connect();
        let r = probe
            .request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        assert_eq!(r.status, 200);
        thread::sleep(Duration::from_millis(300));
        let after = rss_kib(gw.pid());
        let per = after.saturating_sub(before) as f64 / conns as f64;
        eprintln!(
            "{d:?}: {conns} idle connections: RSS {before} KiB -> {after} KiB, {per:.1} KiB per connection"
        );
        assert!(
            per < BOUND_KIB as f64,
            "{per:.1} KiB per idle connection (bound {BOUND_KIB} KiB)"
        );
        drop(idle);
        assert!(started.elapsed() < Duration::from_secs(30));
        // Still serving.
        assert_eq!(gw.post("/v1/chat/completions", CHAT).status, 200);
    });
}
