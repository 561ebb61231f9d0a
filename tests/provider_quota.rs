//! Provider quotas end to end: the real `shardgate` binary (two shards,
//! so the counters are shown to be shared between them) in front of two
//! mock upstreams, one per provider, under both monoio drivers. Which
//! deployment answered is read from the mock that received the request.
//!
//! Covers: a deployment at its rpm passed over for the other (and counted
//! in `shardgate_quota_passed_over_total`); every deployment at quota
//! answered 429 with `Retry-After` and the OpenAI error shape, and in the
//! Anthropic shape for an Anthropic client; a model at quota falling back
//! to its fallback model first; a tpm quota filled by the tokens the
//! responses reported; a provider-level quota on a direct
//! `provider/model` request, and a deployment's quota on a `provider/model`
//! name that pins it; the counts surviving a reload (SIGHUP), with the new
//! limits.

mod common;

use common::*;

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

const MESSAGES: &str =
    r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;

/// Providers `a` and `b` (with `a_extra`/`b_extra` lines in their tables)
/// at the mocks' URLs, then `models`.
fn config(
    a: &MockUpstream,
    b: &MockUpstream,
    a_extra: &str,
    b_extra: &str,
    models: &str,
) -> String {
    let admin = free_port();
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [resilience]\nbackoff_base_ms = 1\nbackoff_cap_ms = 5\n\n\
         [providers.a]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n{a_extra}\n\n\
         [providers.b]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n{b_extra}\n\n{models}\n",
        a.base_url(),
        b.base_url()
    )
}

fn start(d: Driver, toml: String) -> Gateway {
    let mut opts = GatewayOpts::config(d, toml);
    opts.shards = 2;
    Gateway::start(opts)
}

/// The metric samples whose line starts with `prefix` (labels included),
/// summed; 0 when absent.
fn metric(gw: &Gateway, prefix: &str) -> u64 {
    let text = std::fs::read_to_string(gw.config_path()).unwrap();
    let admin = text
        .lines()
        .skip_while(|l| *l != "[admin]")
        .nth(1)
        .and_then(|l| l.split('"').nth(1))
        .unwrap()
        .to_string();
    let mut c = Client::connect(admin.parse().unwrap()).unwrap();
    let r = c
        .request("GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().parse::<u64>().unwrap())
        .sum()
}

fn retry_after(r: &Response) -> u32 {
    let v = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", r.headers));
    let secs: u32 = v.parse().unwrap_or_else(|_| panic!("Retry-After {v:?}"));
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    secs
}

#[test]
fn a_deployment_at_its_rpm_is_passed_over_for_the_other() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    let models = r#"
[[models]]
name = "m"
deployments = [
  { provider = "a", upstream_model = "a-m", rpm = 5 },
  { provider = "b", upstream_model = "b-m" },
]
"#;
    each_driver(|d| {
        let gw = start(d, config(&a, &b, "", "", models));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        // Each on a new connection: the kernel spreads them over both
        // shards, which share the one count.
        for i in 0..20 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
        assert_eq!(a.requests().len() - a0, 5, "a's quota is 5 a minute");
        assert_eq!(b.requests().len() - b0, 15);
        // A name pinning the deployment (`a/m`) counts against its quota
        // too: it is full, so 429 (a pinned request has nowhere else to go).
        let r = gw.post("/v1/chat/completions", &chat("a/m"));
        r.assert_openai_error(429);
        assert_eq!(a.requests().len() - a0, 5);
        assert_eq!(gw.post("/v1/chat/completions", &chat("b/m")).status, 200);
        let passed = metric(
            &gw,
            "shardgate_quota_passed_over_total{model=\"m\",provider=\"a\",deployment=\"0\"} ",
        );
        assert!((1..=15).contains(&passed), "passed over {passed} times");
        assert_eq!(
            metric(
                &gw,
                "shardgate_quota_passed_over_total{model=\"m\",provider=\"b\""
            ),
            0
        );
    });
}

#[test]
fn every_deployment_at_quota_is_a_429_with_retry_after_in_the_callers_dialect() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    let models = r#"
[[models]]
name = "m"
deployments = [
  { provider = "a", upstream_model = "a-m", rpm = 2 },
  { provider = "b", upstream_model = "b-m", rpm = 2 },
]
"#;
    each_driver(|d| {
        let gw = start(d, config(&a, &b, "", "", models));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        for i in 0..4 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
        let r = gw.post("/v1/chat/completions", &chat("m"));
        let e = r.assert_openai_error(429);
        assert_eq!(e["type"], "rate_limit_error", "{e}");
        assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
        assert!(e["message"].as_str().unwrap().contains("`m`"), "{e}");
        // Until the oldest second of the window frees: the four went in
        // the last moment, so close to a whole minute.
        let wait = retry_after(&r);
        assert!(wait >= 55, "Retry-After {wait}");
        // An Anthropic client (translated to these OpenAI providers) gets
        // Anthropic's shape.
        let r = gw.post("/v1/messages", MESSAGES);
        assert_eq!(r.status, 429, "{}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
        retry_after(&r);
        // Nothing went upstream for the refused ones.
        assert_eq!(a.requests().len() - a0, 2);
        assert_eq!(b.requests().len() - b0, 2);
        // The connection that got the 429 stays usable.
        let mut c = gw.connect();
        let r = c
            .request(post("/v1/chat/completions", &chat("m"), &[]))
            .unwrap();
        assert_eq!(r.status, 429);
        let r = c
            .request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            metric(
                &gw,
                "shardgate_errors_total{provider=\"none\",kind=\"rate_limit_exceeded\"} "
            ),
            3
        );
    });
}

#[test]
fn a_model_at_quota_falls_back_to_its_fallback_before_answering_429() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    let models = r#"
[[models]]
name = "m"
deployments = [{ provider = "a", upstream_model = "a-m", rpm = 1 }]
fallbacks = ["n"]

[[models]]
name = "n"
deployments = [{ provider = "b", upstream_model = "b-n", rpm = 2 }]
"#;
    each_driver(|d| {
        let gw = start(d, config(&a, &b, "", "", models));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        let r = gw.post("/v1/chat/completions", &chat("m"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["model"], "a-m");
        for _ in 0..2 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["model"], "b-n", "the fallback answered");
        }
        // The fallback at its quota too: 429.
        let r = gw.post("/v1/chat/completions", &chat("m"));
        r.assert_openai_error(429);
        retry_after(&r);
        assert_eq!(a.requests().len() - a0, 1);
        assert_eq!(b.requests().len() - b0, 2);
        assert!(gw.log().contains("falling back to model n"), "{}", gw.log());
    });
}

#[test]
fn a_tpm_quota_filled_by_the_usage_responses_report_passes_the_deployment_over() {
    // The mock reports 5 + 7 = 12 tokens per chat completion: a deployment
    // with 20 tokens a minute takes two requests, then is full.
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    let models = r#"
[[models]]
name = "m"
deployments = [
  { provider = "a", upstream_model = "a-m", tpm = 20 },
  { provider = "b", upstream_model = "b-m" },
]
"#;
    each_driver(|d| {
        let gw = start(d, config(&a, &b, "", "", models));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        // One keep-alive connection: each request is settled (its tokens
        // counted) before the next is read.
        let mut c = gw.connect();
        for i in 0..12 {
            let r = c
                .request(post("/v1/chat/completions", &chat("m"), &[]))
                .unwrap();
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.json()["usage"]["total_tokens"], 12);
        }
        assert_eq!(a.requests().len() - a0, 2, "12 + 12 tokens fill 20");
        assert_eq!(b.requests().len() - b0, 10);
        let passed = metric(
            &gw,
            "shardgate_quota_passed_over_total{model=\"m\",provider=\"a\",deployment=\"0\"} ",
        );
        assert!(passed >= 8, "passed over {passed} times");
    });
}

#[test]
fn a_provider_quota_counts_every_request_sent_to_it_and_refuses_direct_ones_at_it() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    // Provider b's quota is shared by model m's deployment on it and by
    // direct `b/...` requests.
    let models = r#"
[[models]]
name = "m"
deployments = [{ provider = "b", upstream_model = "b-m" }]
"#;
    each_driver(|d| {
        let gw = start(d, config(&a, &b, "", "rpm = 3", models));
        let b0 = b.requests().len();
        for i in 0..2 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
        let r = gw.post("/v1/chat/completions", &chat("b/direct"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["model"], "direct");
        let r = gw.post("/v1/chat/completions", &chat("b/direct"));
        let e = r.assert_openai_error(429);
        assert_eq!(e["code"], "rate_limit_exceeded");
        assert!(e["message"].as_str().unwrap().contains("`b`"), "{e}");
        retry_after(&r);
        let r = gw.post("/v1/chat/completions", &chat("m"));
        r.assert_openai_error(429);
        assert_eq!(b.requests().len() - b0, 3);
        // Provider a has no quota.
        let r = gw.post("/v1/chat/completions", &chat("a/x"));
        assert_eq!(r.status, 200, "{}", r.text());
    });
}

#[test]
fn a_reload_keeps_the_last_minute_s_counts_and_applies_the_new_limits() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    let models = |rpm: u32| {
        format!(
            "[[models]]\nname = \"m\"\ndeployments = [{{ provider = \"a\", upstream_model = \"a-m\", rpm = {rpm} }}]\n"
        )
    };
    let gw = start(Driver::IoUring, config(&a, &b, "", "", &models(3)));
    let toml = std::fs::read_to_string(gw.config_path()).unwrap();
    for _ in 0..3 {
        assert_eq!(gw.post("/v1/chat/completions", &chat("m")).status, 200);
    }
    gw.post("/v1/chat/completions", &chat("m"))
        .assert_openai_error(429);
    // The same quota after a reload: still full.
    gw.rewrite_config(&toml);
    gw.signal(libc::SIGHUP);
    assert!(
        gw.wait_log(
            "configuration reloaded",
            1,
            std::time::Duration::from_secs(5)
        ),
        "{}",
        gw.log()
    );
    gw.post("/v1/chat/completions", &chat("m"))
        .assert_openai_error(429);
    // A larger one: room for exactly the difference.
    gw.rewrite_config(&toml.replace(&models(3), &models(5)));
    gw.signal(libc::SIGHUP);
    assert!(
        gw.wait_log(
            "configuration reloaded",
            2,
            std::time::Duration::from_secs(5)
        ),
        "{}",
        gw.log()
    );
    for _ in 0..2 {
        let r = gw.post("/v1/chat/completions", &chat("m"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    gw.post("/v1/chat/completions", &chat("m"))
        .assert_openai_error(429);
    assert_eq!(a.requests().len(), 5);
}
