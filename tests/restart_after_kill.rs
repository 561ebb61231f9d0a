//! A gateway killed with SIGKILL can be started again on the same ports at
//! once (as systemd's `Restart=` does), under both monoio drivers; while a
//! live instance holds the port, a second one without `--share-port` is
//! still refused.
//!
//! Why this needs a test: a killed process's io_uring rings are torn down
//! by the kernel after the process is gone, and until then they keep its
//! SO_REUSEPORT listening sockets open, so a restart that judged "in use"
//! by a plain bind of the port saw them and refused to start.

mod common;

use std::time::{Duration, Instant};

use common::*;

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// A gateway start (process spawn to `/health` answering) this long is
/// "at once"; a start that waited for a dead instance's sockets to go, or
/// retried, would take longer, and one that refused would fail.
const AT_ONCE: Duration = Duration::from_secs(2);

#[test]
fn a_restart_right_after_sigkill_binds_its_ports_at_once_and_a_live_one_still_refuses() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let mut opts = GatewayOpts::env(d, &mock);
        opts.shards = 2;
        let first = Gateway::start(opts.clone());
        let addr = first.addr;
        let admin = format!("127.0.0.1:{}", free_port());
        drop(first);
        let args = ["--admin-listen", admin.as_str()];
        let mut gw = Gateway::spawn_at(&opts, addr, &args, &[])
            .unwrap_or_else(|e| panic!("first start on {addr}: {e}"));
        for round in 0..5 {
            // Traffic first: connections accepted and answered, a scrape of
            // the admin port (its connection left in TIME_WAIT).
            assert_eq!(gw.post("/v1/chat/completions", CHAT).status, 200);
            let mut c = Client::connect(admin.parse().unwrap()).unwrap();
            let r = c
                .request("GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n")
                .unwrap();
            assert_eq!(r.status, 200);
            drop(c);
            gw.signal(libc::SIGKILL);
            gw.wait_exit(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("round {round}: SIGKILL did not end it"));
            let t = Instant::now();
            gw = Gateway::spawn_at(&opts, addr, &args, &[]).unwrap_or_else(|e| {
                panic!("round {round}: restart on {addr} right after SIGKILL: {e}")
            });
            let took = t.elapsed();
            // Whether the dead one's sockets were still there (timing-dependent:
            // printed, not asserted).
            let leftovers = gw.log().contains("no longer serves it");
            eprintln!("{d:?} round {round}: restarted in {took:?}; leftovers seen: {leftovers}");
            assert!(took < AT_ONCE, "round {round}: restart took {took:?}");
            let r = gw.post("/v1/chat/completions", CHAT);
            assert_eq!(r.status, 200, "round {round}: {}", r.text());
        }
        // A second live instance without --share-port is refused, on the
        // main port whatever its admin port.
        let err = match Gateway::spawn_at(&opts, addr, &[], &[]) {
            Ok(_) => panic!("a second gateway started on {addr} without --share-port"),
            Err(e) => e,
        };
        assert!(err.contains("already in use"), "{err}");
        gw.assert_healthy();
    });
}
