//! `GET /admin/stats` (what the dashboard polls) and `GET /` (the page)
//! over real sockets: the document's shape, counters that add up to the
//! requests sent, a deployment's breaker as the shards see it, no secret,
//! and polls that stay cheap while load runs (each answered within a
//! scrape tick or so, the load unaffected: every request still answered).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ADMIN_TOKEN: &str = "adm-stats-secret-4410";
const KEY_SECRET: &str = "sk-sg-stats-config-key-77aa";

/// One request to the admin listener: status, head and body.
fn admin_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn stats(addr: SocketAddr) -> Value {
    let (status, head, body) = admin_get(addr, "/admin/stats");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    serde_json::from_str(&body).unwrap()
}

fn config(mock: &MockUpstream, admin: SocketAddr, dead: u16) -> String {
    format!(
        "[admin]\nlisten = \"{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
         [resilience]\nbreaker_consecutive_failures = 1\nmax_retries = 0\n\n\
         [providers.mockai]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [providers.gone]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{dead}/v1\"\napi_key_env = \"GONE_KEY\"\n\n\
         [[models]]\nname = \"fast\"\nprovider = \"mockai\"\nupstream_model = \"mock-fast\"\n\n\
         [[models]]\nname = \"broken\"\nprovider = \"gone\"\nupstream_model = \"nothing\"\n\n\
         [[prices]]\nmodel = \"mock-fast\"\ninput = 1.0\noutput = 2.0\n\n\
         [[keys]]\nname = \"load\"\nkey_env = \"STATS_TEST_KEY\"\n",
        mock.base_url()
    )
}

fn chat(gw: &Gateway, model: &str) -> u16 {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let auth = format!("authorization: Bearer {KEY_SECRET}");
    gw.connect()
        .request(post("/v1/chat/completions", &body, &[&auth]))
        .map(|r| r.status)
        .unwrap_or(0)
}

#[test]
fn stats_add_up_stay_cheap_under_load_and_show_no_secret() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dead = free_port();
        let mut opts = GatewayOpts::config(d, config(&mock, admin, dead));
        opts.shards = 2;
        let gw = Gateway::start_with_env(
            &opts,
            &[
                ("STATS_TEST_KEY", KEY_SECRET),
                ("GONE_KEY", "sk-gone-upstream-secret"),
            ],
        );

        // Before any traffic (only the start-up's `/health`): the shape,
        // zeros, the running config.
        let s = stats(admin);
        let base = s["requests"]["total"].as_u64().unwrap();
        assert_eq!(
            s["requests"]["by_route"].as_object().unwrap().len() as u64,
            base.min(1),
            "{s}"
        );
        assert_eq!(s["shards"].as_array().unwrap().len(), 2, "{s}");
        assert_eq!(s["latency"]["bounds_us"].as_array().unwrap().len(), 48);
        for series in ["upstream", "ttft", "overhead"] {
            let h = &s["latency"][series];
            assert_eq!(h["count"], 0, "{series}");
            assert_eq!(h["le"].as_array().unwrap().len(), 48, "{series}");
        }
        assert_eq!(s["config"]["models"][0]["name"], "fast");
        assert_eq!(s["config"]["providers"][0]["key"], "env GONE_KEY");
        assert_eq!(s["admin_api"], true);
        assert!(s["version"].is_string() && s["time_ms"].as_u64().unwrap() > 0);
        let deployments = s["deployments"].as_array().unwrap();
        assert_eq!(deployments.len(), 2, "{s}");
        assert!(deployments.iter().all(|d| d["state"] == "closed"), "{s}");
        assert_eq!(s["keys"][0]["key"], "load");

        // Load from two threads while the document is polled ten times a
        // second: every poll answers quickly, every request is answered,
        // and the counters only grow.
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let gw = Arc::new(gw);
        let load: Vec<_> = (0..2)
            .map(|_| {
                let (stop, sent, gw) = (stop.clone(), sent.clone(), gw.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        assert_eq!(chat(&gw, "fast"), 200);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut last = 0;
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now();
            let s = stats(admin);
            slowest = slowest.max(t.elapsed());
            let total = s["requests"]["total"].as_u64().unwrap();
            assert!(total >= last, "{total} < {last}");
            last = total;
            thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().unwrap();
        }
        eprintln!("slowest /admin/stats under load: {slowest:?}");
        // A scrape waits for the shards' next housekeeping tick (50 ms);
        // a loaded two-core machine may add to that, never seconds.
        assert!(slowest < Duration::from_secs(2), "{slowest:?}");
        assert!(last > 0, "the counter moved while polled");

        // After the load: the counters add up to what was sent.
        let sent = sent.load(Ordering::Relaxed);
        let s = stats(admin);
        assert_eq!(s["requests"]["total"], base + sent, "{s}");
        assert_eq!(s["requests"]["by_model"]["fast"], sent);
        assert_eq!(s["requests"]["by_class"]["2xx"], base + sent);
        assert_eq!(s["latency"]["request"]["count"], base + sent);
        assert_eq!(s["latency"]["overhead"]["count"], sent);
        let le = s["latency"]["request"]["le"].as_array().unwrap();
        assert!(le.last().unwrap().as_u64().unwrap() <= base + sent);
        assert!(s["latency"]["request"]["p99_us"].as_u64().unwrap() > 0);
        let usage = &s["usage"][0];
        assert_eq!(usage["model"], "fast");
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{s}");
        assert!(usage["cost_usd"].as_f64().unwrap() > 0.0, "{s}");
        assert_eq!(s["keys"][0]["requests"], sent);
        let fast = &s["deployments"][1];
        assert_eq!(fast["model"], "fast");
        assert!(fast["latency_us"].as_u64().unwrap() > 0, "{s}");

        // A deployment that refuses connections: ejected on the shard that
        // tried it, and counted as an error by kind.
        assert_eq!(chat(&gw, "broken"), 502);
        let s = stats(admin);
        let broken = &s["deployments"][0];
        assert_eq!(broken["model"], "broken", "{s}");
        assert_eq!(broken["ejected_shards"], 1, "{s}");
        assert_eq!(
            broken["state"], "degraded",
            "ejected on one of two shards: {s}"
        );
        assert!(s["errors"]["total"].as_u64().unwrap() >= 1, "{s}");
        assert_eq!(s["requests"]["by_status"]["502"], 1, "{s}");

        // No secret, in the document or the page; the page is HTML with a
        // policy that lets it reach nothing but this listener.
        let (_, _, text) = admin_get(admin, "/admin/stats");
        let (status, head, page) = admin_get(admin, "/");
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/html"), "{head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{head}"
        );
        assert!(page.contains("/admin/stats"));
        for secret in [
            ADMIN_TOKEN,
            KEY_SECRET,
            PROVIDER_KEY,
            "sk-gone-upstream-secret",
        ] {
            assert!(!text.contains(secret), "{secret} in /admin/stats");
            assert!(!page.contains(secret), "{secret} in the page");
        }
    });
}
