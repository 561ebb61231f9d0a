//! Memory after load (issue 13, item 8), against the real binary under both
//! drivers: a few thousand client connections, each holding a read buffer
//! (half a request head sent), take the gateway's RSS up by tens of MB;
//! once they have all closed, RSS must come back near its baseline within a
//! bounded wait, not stay at the peak (it used to: the shard's arena kept
//! its free buffers and mimalloc its freed pages, 47 MB for a 6 MB baseline
//! after 5,000 connections).
//!
//! A behaviour test with a wide bound, not a benchmark: the return must
//! come within 10 s and leave at most a fifth of the growth (and 8 MiB).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Connections opened; fewer where the file-descriptor limit is lower.
const WANTED: usize = 2_000;

/// Raises this process's soft descriptor limit to its hard one (the gateway
/// inherits it) and returns how many connections it leaves room for.
fn connections_allowed() -> usize {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    let hard = unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 500;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_max
    };
    // Room for the test harness's and the gateway's own descriptors.
    (hard.saturating_sub(200) as usize).clamp(100, WANTED)
}

/// Polls until `done(rss)` or `within` passed; the last reading, KiB.
fn rss_until(pid: u32, within: Duration, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let rss = rss_kib(pid);
        if done(rss) || Instant::now() > deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rss_returns_near_its_baseline_after_thousands_of_connections_close() {
    let n = connections_allowed();
    each_driver(|d| {
        let mock = MockUpstream::start();
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let pid = gw.pid();
        // What start-up left is given back within a second or two too.
        std::thread::sleep(Duration::from_millis(300));
        let baseline = rss_kib(pid);

        let mut clients: Vec<TcpStream> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = TcpStream::connect(gw.addr).expect("connect");
            // Half a head: the gateway reads it into a buffer and waits.
            c.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
            clients.push(c);
        }
        // Every connection holds at least an 8 KiB share of buffers.
        let loaded = baseline + n as u64 * 8;
        let peak = rss_until(pid, Duration::from_secs(10), |rss| rss >= loaded);
        assert!(
            peak >= loaded,
            "{n} connections took RSS only from {baseline} to {peak} KiB: the load did not register"
        );
        drop(clients);

        let growth = peak - baseline;
        let bound = baseline + (growth / 5).max(8 * 1024).min(growth);
        let after = rss_until(pid, Duration::from_secs(10), |rss| rss <= bound);
        eprintln!(
            "{d:?}: baseline {baseline} KiB, {n} connections {peak} KiB, after they closed {after} KiB"
        );
        assert!(
            after <= bound,
            "RSS stayed at {after} KiB after {n} connections closed \
             (baseline {baseline} KiB, peak {peak} KiB, bound {bound} KiB)"
        );
        gw.assert_healthy();
    });
}
