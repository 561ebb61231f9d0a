//! The exact response cache over real sockets: a repeated request (its
//! JSON re-spaced and reordered) is answered from the cache, once, with
//! `x-shardgate-cache: hit` and `Age`; `Cache-Control` (`no-cache`,
//! `no-store`, `max-age` in seconds) and `x-shardgate-cache: bypass` are
//! honoured; another model, a model with `cache = false` and another
//! caller's namespace go upstream. (Streams: `cache_streams.rs`.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// A gateway with the cache on, its admin listener, and its access log.
fn gateway(mock: &MockUpstream) -> (Gateway, std::net::SocketAddr, TempDir) {
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TempDir::new("cache-log");
    let config = config_for(
        mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\n\n[access_log]\ntarget = \"file\"\npath = \"{}\"\n\n\
             [cache]\nenabled = true\nttl_s = 60\n\n\
             [[prices]]\nmodel = \"gpt-4o-mini\"\ninput = 1.0\noutput = 2.0\n\n\
             [[models]]\nname = \"fresh\"\nprovider = \"openai\"\ncache = false\n",
            dir.0.join("access.log").display()
        ),
    );
    (
        Gateway::start(GatewayOpts::config(Driver::IoUring, config)),
        admin,
        dir,
    )
}

fn send(gw: &Gateway, body: &str, headers: &[&str]) -> Response {
    gw.connect()
        .request(post("/v1/chat/completions", body, headers))
        .unwrap()
}

fn chat_requests(mock: &MockUpstream) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.target == "/v1/chat/completions")
        .count()
}

const BODY: &str = r#"{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"What is 2+2?"}]}"#;
const SAME: &str = "{ \"messages\" : [ {\"content\": \"What is 2+2?\", \"role\": \"user\"} ],\n  \"temperature\": 0, \"model\": \"gpt-4o-mini\", \"user\": \"someone-else\" }";

#[test]
fn a_repeated_request_is_answered_once_from_the_cache() {
    let mock = MockUpstream::start();
    let (gw, admin, dir) = gateway(&mock);
    let first = send(&gw, BODY, &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-shardgate-cache"), Some("miss"));
    let hit = send(&gw, SAME, &[]);
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("x-shardgate-cache"), Some("hit"));
    assert!(hit.header("age").is_some_and(|a| a.parse::<u64>().is_ok()));
    assert_eq!(hit.json(), first.json());
    assert_eq!(chat_requests(&mock), 1, "answered from the cache");

    // no-cache goes upstream and refreshes the entry; no-store neither
    // reads nor writes; bypass keeps the cache out altogether.
    let r = send(&gw, BODY, &["cache-control: no-cache"]);
    assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
    assert_eq!(chat_requests(&mock), 2);
    let r = send(&gw, BODY, &["x-shardgate-cache: bypass"]);
    assert_eq!(r.header("x-shardgate-cache"), Some("bypass"));
    assert_eq!(chat_requests(&mock), 3);
    let other = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Not stored"}]}"#;
    send(&gw, other, &["cache-control: no-store"]);
    let r = send(&gw, other, &[]);
    assert_eq!(
        r.header("x-shardgate-cache"),
        Some("miss"),
        "no-store kept nothing"
    );
    assert_eq!(chat_requests(&mock), 5);

    // max-age is in seconds: an entry a second old is too old for 0.
    std::thread::sleep(Duration::from_millis(1100));
    let r = send(&gw, BODY, &["cache-control: max-age=30"]);
    assert_eq!(r.header("x-shardgate-cache"), Some("hit"));
    let r = send(&gw, BODY, &["cache-control: max-age=0"]);
    assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
    assert_eq!(chat_requests(&mock), 6);

    // Its metrics: two hits, each saving the answer's 5 + 7 tokens at
    // $1 and $2 per million.
    let m = scrape(admin);
    assert_eq!(
        sample(&m, "shardgate_cache_lookups_total", &["result=\"hit\""]),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "shardgate_cache_saved_tokens_total",
            &["direction=\"input\""]
        ),
        10.0
    );
    assert_eq!(
        sample(
            &m,
            "shardgate_cache_saved_tokens_total",
            &["direction=\"output\""]
        ),
        14.0
    );
    let saved = m
        .lines()
        .find_map(|l| l.strip_prefix("shardgate_cache_saved_usd_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!((saved - 2.0 * (5.0 + 14.0) / 1e6).abs() < 1e-12, "{saved}");
    let entries = m
        .lines()
        .find_map(|l| l.strip_prefix("shardgate_cache_entries "))
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(entries, Some(2), "BODY's and the no-store-free request's");
    // The access log says which answers the cache gave.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let hits = loop {
        let log = std::fs::read_to_string(dir.0.join("access.log")).unwrap_or_default();
        let hits = log
            .lines()
            .filter(|l| l.contains("\"cache\":\"hit\""))
            .count();
        if hits >= 2 || std::time::Instant::now() > deadline {
            break hits;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.0.join("access.log")).unwrap_or_default();
    assert_eq!(hits, 2, "{log}");
}

#[test]
fn other_models_and_uncached_models_go_upstream() {
    let mock = MockUpstream::start();
    let (gw, _, _dir) = gateway(&mock);
    for model in ["gpt-4o", "fresh", "fresh"] {
        let body = BODY.replace("gpt-4o-mini", model);
        let r = send(&gw, &body, &[]);
        assert_eq!(r.status, 200);
        let want = if model == "fresh" { "bypass" } else { "miss" };
        assert_eq!(r.header("x-shardgate-cache"), Some(want), "{model}");
    }
    assert_eq!(chat_requests(&mock), 3);
    // An error answer is not kept.
    let failing = MockUpstream::with(|_| Reply::Error {
        status: 500,
        message: "boom".into(),
        headers: vec![],
    });
    let (gw, _, _dir) = gateway(&failing);
    for _ in 0..2 {
        let r = send(&gw, BODY, &[]);
        let v: Value = r.json();
        assert!(v["error"].is_object());
    }
    assert_eq!(chat_requests(&failing), 2);
}

/// Keys of one team share its answers; another team's identical request
/// is a miss, never another tenant's answer.
#[test]
fn each_team_reads_only_its_own_answers() {
    let mock = MockUpstream::start();
    let admin = format!("127.0.0.1:{}", free_port());
    let config = config_for(
        &mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\ntoken = \"admin-token-for-tests\"\n\n\
             [cache]\nenabled = true\n\n\
             [[teams]]\nid = \"red\"\n\n[[teams]]\nid = \"blue\"\n\n\
             [[keys]]\nname = \"red-1\"\nkey_env = \"RED_1\"\nteam = \"red\"\n\n\
             [[keys]]\nname = \"red-2\"\nkey_env = \"RED_2\"\nteam = \"red\"\n\n\
             [[keys]]\nname = \"blue-1\"\nkey_env = \"BLUE_1\"\nteam = \"blue\"\n"
        ),
    );
    let opts = GatewayOpts::config(Driver::IoUring, config);
    let env = [
        ("RED_1", "sk-red-one"),
        ("RED_2", "sk-red-two"),
        ("BLUE_1", "sk-blue-one"),
    ];
    let gw = Gateway::start_with_env(&opts, &env);
    let as_key = |secret: &str| send(&gw, BODY, &[&format!("authorization: Bearer {secret}")]);
    assert_eq!(
        as_key("sk-red-one").header("x-shardgate-cache"),
        Some("miss")
    );
    assert_eq!(
        as_key("sk-red-two").header("x-shardgate-cache"),
        Some("hit")
    );
    assert_eq!(
        as_key("sk-blue-one").header("x-shardgate-cache"),
        Some("miss")
    );
    assert_eq!(chat_requests(&mock), 2);
    // Without a key that may, the cache answers nothing.
    assert_eq!(as_key("sk-unknown").status, 401);
}

/// A hit spends nothing of its key's budget, unless `charge_hits` meters
/// it at its answer's usage: the mock's 5 input and 7 output tokens at $1
/// and $2 per million, 19 µ$ an answer.
#[test]
fn a_hit_is_charged_only_when_configured() {
    for (charge, answers_charged) in [(false, 1.0), (true, 3.0)] {
        let mock = MockUpstream::start();
        let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = config_for(
            &mock,
            "",
            &format!(
                "[admin]\nlisten = \"{admin}\"\n\n\
                 [cache]\nenabled = true\ncharge_hits = {charge}\n\n\
                 [[prices]]\nmodel = \"gpt-4o-mini\"\ninput = 1.0\noutput = 2.0\n\n\
                 [[keys]]\nname = \"payer\"\nkey_env = \"PAYER\"\nbudget_usd = 1.0\n"
            ),
        );
        let opts = GatewayOpts::config(Driver::IoUring, config);
        let gw = Gateway::start_with_env(&opts, &[("PAYER", "sk-payer")]);
        for want in ["miss", "hit", "hit"] {
            let r = send(&gw, BODY, &["authorization: Bearer sk-payer"]);
            assert_eq!(r.header("x-shardgate-cache"), Some(want));
        }
        assert_eq!(chat_requests(&mock), 1);
        let want = answers_charged * 19e-6;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let spent = loop {
            let m = scrape(admin);
            let spent = sample(&m, "shardgate_key_spend_usd_total", &["key=\"payer\""]);
            if (spent - want).abs() < 1e-12 || std::time::Instant::now() > deadline {
                break spent;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            (spent - want).abs() < 1e-12,
            "charge_hits={charge}: {spent}"
        );
    }
}

/// A reload keeps the cache's answers (its bounds follow the new
/// config); `DELETE /admin/cache` empties it, with the admin token when
/// one is set.
#[test]
fn a_reload_keeps_the_cache_and_a_purge_empties_it() {
    let mock = MockUpstream::start();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = |ttl: u64| {
        config_for(
            &mock,
            "",
            &format!(
                "[admin]\nlisten = \"{admin}\"\ntoken = \"admin-token-for-tests\"\n\n\
                 [cache]\nenabled = true\nttl_s = {ttl}\n\n\
                 [[keys]]\nname = \"k\"\nkey_env = \"K1\"\n"
            ),
        )
    };
    let opts = GatewayOpts::config(Driver::IoUring, config(60));
    let gw = Gateway::start_with_env(&opts, &[("K1", "sk-one")]);
    let ask = || {
        send(&gw, BODY, &["authorization: Bearer sk-one"])
            .header("x-shardgate-cache")
            .map(String::from)
    };
    assert_eq!(ask().as_deref(), Some("miss"));
    gw.rewrite_config(&config(120));
    let bearer = "authorization: Bearer admin-token-for-tests";
    let (status, body) = admin_request(admin, "POST", "/admin/reload", &[bearer]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(ask().as_deref(), Some("hit"));
    assert_eq!(chat_requests(&mock), 1);

    let (status, _) = admin_request(admin, "DELETE", "/admin/cache", &[]);
    assert_eq!(status, 401);
    assert_eq!(ask().as_deref(), Some("hit"));
    let (status, body) = admin_request(admin, "DELETE", "/admin/cache", &[bearer]);
    assert_eq!((status, body.as_str()), (200, "{\"purged\":1}"));
    assert_eq!(ask().as_deref(), Some("miss"));
    assert_eq!(chat_requests(&mock), 2);
}

/// A flood of unique prompts (every one a miss that is kept) holds the
/// cache to `max_bytes`, evicting, and the process's memory with it.
#[test]
fn a_flood_of_unique_prompts_stays_within_max_bytes() {
    const MAX_BYTES: f64 = 1024.0 * 1024.0;
    let mock = MockUpstream::start();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = config_for(
        &mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\n\n\
             [cache]\nenabled = true\nmax_bytes = {MAX_BYTES}\nmax_entry_bytes = 65536\n"
        ),
    );
    let gw = std::sync::Arc::new(Gateway::start(GatewayOpts::config(Driver::IoUring, config)));
    // Warm: the shard's buffers and pools at their working size.
    for i in 0..200 {
        send(&gw, &BODY.replace("2+2", &format!("warm {i}")), &[]);
    }
    let before = rss_kib(gw.pid());
    let flood: Vec<_> = (0..4)
        .map(|t| {
            let gw = gw.clone();
            std::thread::spawn(move || {
                let mut client = gw.connect();
                for i in 0..2000 {
                    let body = BODY.replace(
                        "2+2",
                        &format!("{t}-{i} and a longer prompt to make each entry weigh"),
                    );
                    let r = client
                        .request(post("/v1/chat/completions", &body, &[]))
                        .unwrap();
                    assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
                }
            })
        })
        .collect();
    for f in flood {
        f.join().unwrap();
    }
    let m = scrape(admin);
    let bytes = sample(&m, "shardgate_cache_size_bytes", &[]);
    let evictions = sample(&m, "shardgate_cache_evictions_total", &[]);
    assert!(bytes <= MAX_BYTES && bytes > MAX_BYTES / 2.0, "{bytes}");
    assert!(evictions > 1000.0, "{evictions}");
    let grown = rss_kib(gw.pid()).saturating_sub(before);
    assert!(grown < 4 * 1024, "RSS grew {grown} KiB over a 1 MiB cache");
}
