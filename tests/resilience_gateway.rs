//! Retries, fail-over, outlier ejection and fallbacks, end to end: the real
//! `shardgate` binary in front of scriptable mock upstreams, under both
//! monoio drivers.
//!
//! Covers: a deployment that always answers 503 (every request served by
//! the other), a refused connection (failed over), a 429's Retry-After
//! waited out, the breaker (a failing deployment stops getting traffic,
//! then gets exactly one probe after the cool-down), a fallback model when
//! the primary's deployments are exhausted, a context-length 400 going to
//! the context-window fallback, the retry budget bounding upstream attempts
//! (the client gets the upstream's own error), and no retry once a byte of
//! a response reached the client (the cut stream ends with an in-band
//! error); a body cut before it reached the client and a first-byte timeout
//! both failed over; a provider at its in-flight cap passed over for
//! another deployment; weights splitting healthy traffic; and the timeouts:
//! a provider's own first-byte limit over the global one, and the total
//! limit as a 504 before the response head (or inside a held error body)
//! and as a cut stream after it.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

/// A config with providers `a` and `b` at these base URLs, `resilience`
/// settings, and `models` (TOML `[[models]]` tables).
fn config(a: &str, b: &str, resilience: &str, models: &str) -> String {
    let admin = free_port();
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[resilience]\n{resilience}\n\n\
         [providers.a]\nbase_url = \"{a}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [providers.b]\nbase_url = \"{b}\"\napi_key = \"{PROVIDER_KEY}\"\n\n{models}\n"
    )
}

/// The value of the Prometheus sample `name{provider="PROVIDER"}` on the
/// gateway's admin listener (0 when absent).
fn counter(gw: &Gateway, name: &str, provider: &str) -> u64 {
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
    let prefix = format!("{name}{{provider=\"{provider}\"}} ");
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

const FAST: &str = "backoff_base_ms = 1\nbackoff_cap_ms = 5";

const TWO_DEPLOYMENTS: &str = r#"
[[models]]
name = "m"
deployments = [
  { provider = "a", upstream_model = "a-m" },
  { provider = "b", upstream_model = "b-m" },
]
"#;

/// `toml` with the `keys` lines added to its table `[table]`.
fn with_keys(toml: &str, table: &str, keys: &str) -> String {
    let header = format!("[{table}]\n");
    assert!(toml.contains(&header), "no [{table}] in {toml}");
    toml.replacen(&header, &format!("{header}{keys}\n"), 1)
}

/// Asserts `took` is within `[at_least, at_least + 2 s)`: the limit held,
/// and nothing waited for a longer one.
fn assert_took(took: Duration, at_least: Duration) {
    let slack = Duration::from_millis(50);
    assert!(
        took + slack >= at_least && took < at_least + Duration::from_secs(2),
        "took {took:?}, expected about {at_least:?}"
    );
}

fn error(status: u16, message: &str) -> Reply {
    Reply::Error {
        status,
        message: message.into(),
        headers: vec![],
    }
}

#[test]
fn a_deployment_that_always_fails_is_failed_over_every_time() {
    let a = MockUpstream::with(|_| error(503, "overloaded"));
    let b = MockUpstream::start();
    each_driver(|d| {
        let toml = config(&a.base_url(), &b.base_url(), FAST, TWO_DEPLOYMENTS);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        for i in 0..10 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.json()["model"], "b-m");
        }
        assert_eq!(b.requests().len() - b0, 10);
        assert!(a.requests().len() > a0, "a was never tried");
        assert_eq!(b.last().json()["model"], "b-m");
    });
}

#[test]
fn a_refused_connection_fails_over_to_another_deployment() {
    let b = MockUpstream::start();
    each_driver(|d| {
        let dead = format!("http://127.0.0.1:{}/v1", free_port());
        let res = format!("{FAST}\nmax_retries = 0");
        let toml = config(&dead, &b.base_url(), &res, TWO_DEPLOYMENTS);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        for i in 0..4 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
    });
}

#[test]
fn a_429_retry_after_is_waited_out_then_the_retry_succeeds() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    each_driver(|d| {
        let start_seq = a.requests().len();
        a.set_script(move |r| {
            if r.seq == start_seq {
                Reply::Error {
                    status: 429,
                    message: "slow down".into(),
                    headers: vec![("retry-after".into(), "1".into())],
                }
            } else {
                Reply::Auto
            }
        });
        let models = "[[models]]\nname = \"m\"\nprovider = \"a\"\n";
        let toml = config(&a.base_url(), &b.base_url(), FAST, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let t = Instant::now();
        let r = gw.post("/v1/chat/completions", &chat("m"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(a.requests().len() - start_seq, 2);
    });
}

/// An upstream that accepts the connection but never reads: the request
/// write is bounded by the first-byte limit, answered 504, the client
/// connection closed (the request's buffers went with the cancelled write),
/// and the deployment's breaker told.
#[test]
fn an_upstream_that_never_reads_the_request_is_a_504() {
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.set_recv_buffer_size(4096).unwrap();
    listener
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    listener.listen(16).unwrap();
    let deaf: std::net::TcpListener = listener.into();
    let deaf_url = format!("http://{}/v1", deaf.local_addr().unwrap());
    // Holds every accepted connection open, unread.
    std::thread::spawn(move || {
        let held: Vec<_> = deaf.incoming().collect();
        drop(held);
    });
    let b = MockUpstream::start();
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(12 * 1024 * 1024)
    );
    each_driver(|d| {
        let models = "[[models]]\nname = \"m\"\nprovider = \"a\"\n";
        let res = format!("{FAST}\nbreaker_consecutive_failures = 1");
        let toml = config(&deaf_url, &b.base_url(), &res, models)
            + "\n[upstream]\nfirst_byte_timeout_ms = 300\n";
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let mut c = gw.connect();
        let t = Instant::now();
        let r = c.request(post("/v1/chat/completions", &big, &[])).unwrap();
        let e = r.assert_openai_error(504);
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("did not take the request"),
            "{e}"
        );
        assert_eq!(r.header("connection"), Some("close"));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(c.is_closed(Duration::from_secs(2)));
        // The breaker heard of the timed-out write (a lost half-open probe
        // would otherwise block the deployment until the probe timeout).
        assert_eq!(counter(&gw, "shardgate_ejections_total", "a"), 1);
        gw.assert_healthy();
    });
}

#[test]
fn a_client_that_leaves_during_a_backoff_gets_no_resend() {
    let a = MockUpstream::with(|_| Reply::Error {
        status: 429,
        message: "slow down".into(),
        headers: vec![("retry-after".into(), "1".into())],
    });
    let b = MockUpstream::start();
    each_driver(|d| {
        let models = "[[models]]\nname = \"m\"\nprovider = \"a\"\n";
        let toml = config(&a.base_url(), &b.base_url(), FAST, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let a0 = a.requests().len();
        let mut c = gw.connect();
        c.send(post("/v1/chat/completions", &chat("m"), &[]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(a.requests().len() - a0, 1);
        drop(c); // gone while the gateway waits out the Retry-After
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(a.requests().len() - a0, 1, "re-sent for a client that left");
        gw.assert_healthy();
    });
}

#[test]
fn the_breaker_ejects_a_failing_deployment_then_sends_one_probe() {
    let a = MockUpstream::with(|_| error(500, "broken"));
    let b = MockUpstream::start();
    each_driver(|d| {
        let res = format!(
            "{FAST}\nmax_retries = 0\nbreaker_consecutive_failures = 2\n\
             breaker_base_ejection_ms = 1000\nbreaker_max_ejection_ms = 60000"
        );
        let toml = config(&a.base_url(), &b.base_url(), &res, TWO_DEPLOYMENTS);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let a0 = a.requests().len();
        // Round-robin sends a share of the requests to a until it is ejected.
        for i in 0..8 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
        assert_eq!(a.requests().len() - a0, 2, "ejected after 2 failures");
        for _ in 0..6 {
            assert_eq!(gw.post("/v1/chat/completions", &chat("m")).status, 200);
        }
        assert_eq!(a.requests().len() - a0, 2, "no traffic while ejected");
        assert!(gw.log().contains("Ejected"), "{}", gw.log());
        // After the cool-down: exactly one probe, which fails and ejects
        // again (for twice as long).
        std::thread::sleep(Duration::from_millis(1100));
        for _ in 0..6 {
            assert_eq!(gw.post("/v1/chat/completions", &chat("m")).status, 200);
        }
        assert_eq!(a.requests().len() - a0, 3, "one half-open probe");
        assert!(gw.log().contains("HalfOpen"), "{}", gw.log());
        assert!(gw.log().contains("ReEjected"), "{}", gw.log());
        assert_eq!(counter(&gw, "shardgate_ejections_total", "a"), 2);
        assert!(counter(&gw, "shardgate_retries_total", "a") >= 3);
    });
}

#[test]
fn an_ejection_survives_a_reload() {
    let a = MockUpstream::with(|_| error(500, "broken"));
    let b = MockUpstream::start();
    each_driver(|d| {
        let res = format!(
            "{FAST}\nmax_retries = 0\nbreaker_consecutive_failures = 2\n\
             breaker_base_ejection_ms = 30000"
        );
        let toml = config(&a.base_url(), &b.base_url(), &res, TWO_DEPLOYMENTS);
        let gw = Gateway::start(GatewayOpts::config(d, toml.clone()));
        let a0 = a.requests().len();
        for _ in 0..8 {
            assert_eq!(gw.post("/v1/chat/completions", &chat("m")).status, 200);
        }
        assert_eq!(a.requests().len() - a0, 2, "ejected after 2 failures");
        // A reload that adds a model keeps m's deployments as they were.
        gw.rewrite_config(&(toml + "\n[[models]]\nname = \"other\"\nprovider = \"b\"\n"));
        gw.signal(libc::SIGHUP);
        assert!(
            gw.wait_log("configuration reloaded", 1, Duration::from_secs(5)),
            "{}",
            gw.log()
        );
        for _ in 0..8 {
            assert_eq!(gw.post("/v1/chat/completions", &chat("m")).status, 200);
        }
        assert_eq!(
            a.requests().len() - a0,
            2,
            "the ejected deployment got traffic again after the reload"
        );
        assert_eq!(gw.post("/v1/chat/completions", &chat("other")).status, 200);
    });
}

#[test]
fn a_fallback_model_serves_when_the_primary_is_exhausted() {
    let a = MockUpstream::with(|_| error(503, "down"));
    let b = MockUpstream::start();
    each_driver(|d| {
        let models = r#"
[[models]]
name = "m"
provider = "a"
fallbacks = ["f"]

[[models]]
name = "f"
provider = "b"
upstream_model = "b-fallback"
"#;
        let res = format!("{FAST}\nmax_retries = 1");
        let toml = config(&a.base_url(), &b.base_url(), &res, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        let r = gw.post("/v1/chat/completions", &chat("m"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(a.requests().len() - a0, 2, "one try and one retry");
        assert_eq!(b.requests().len() - b0, 1);
        // The fallback got the body with its own upstream model name.
        let sent = b.last();
        assert_eq!(sent.json()["model"], "b-fallback");
        assert_eq!(sent.json()["messages"][0]["content"], "hi");
        assert_eq!(counter(&gw, "shardgate_fallbacks_total", "a"), 1);
        assert_eq!(counter(&gw, "shardgate_retries_total", "a"), 1);
    });
}

#[test]
fn a_context_length_error_goes_to_the_context_window_fallback() {
    let a = MockUpstream::with(|_| {
        error(
            400,
            "This model's maximum context length is 8192 tokens. (context_length_exceeded)",
        )
    });
    let b = MockUpstream::start();
    each_driver(|d| {
        let models = r#"
[[models]]
name = "small"
provider = "a"
context_window_fallbacks = ["big"]

[[models]]
name = "big"
provider = "b"
upstream_model = "big-128k"
"#;
        let toml = config(&a.base_url(), &b.base_url(), FAST, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        let r = gw.post("/v1/chat/completions", &chat("small"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(a.requests().len() - a0, 1, "a context error is not retried");
        assert_eq!(b.requests().len() - b0, 1);
        assert_eq!(b.last().json()["model"], "big-128k");

        // Any other 400 is the client's answer, as the upstream sent it.
        a.set_script(|_| error(400, "bad temperature"));
        let r = gw.post("/v1/chat/completions", &chat("small"));
        assert_eq!(r.status, 400);
        assert!(r.text().contains("bad temperature"), "{}", r.text());
        a.set_script(|_| {
            error(
                400,
                "This model's maximum context length is 8192 tokens. (context_length_exceeded)",
            )
        });
    });
}

#[test]
fn the_retry_budget_bounds_upstream_attempts_and_the_client_gets_the_upstream_error() {
    let a = MockUpstream::with(|_| error(500, "always broken"));
    let b = MockUpstream::start();
    each_driver(|d| {
        let res = format!(
            "{FAST}\nmax_retries = 5\nretry_budget_ratio = 0.0\nretry_budget_min_retries = 3\n\
             retry_budget_window_ms = 60000\nbreaker_consecutive_failures = 1000"
        );
        let models = "[[models]]\nname = \"m\"\nprovider = \"a\"\n";
        let toml = config(&a.base_url(), &b.base_url(), &res, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let a0 = a.requests().len();
        for _ in 0..6 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 500);
            assert!(r.text().contains("always broken"), "{}", r.text());
            assert_eq!(r.json()["error"]["code"], "mock_code");
        }
        // 6 requests + at most 3 re-sends, not 6 × 6.
        assert_eq!(a.requests().len() - a0, 6 + 3);
    });
}

#[test]
fn nothing_is_retried_after_a_byte_reached_the_client() {
    let a = MockUpstream::with(|_| Reply::SseCut { events: 2 });
    let b = MockUpstream::start();
    each_driver(|d| {
        let models = r#"
[[models]]
name = "m"
deployments = [
  { provider = "a", weight = 100 },
  { provider = "b", weight = 1 },
]
"#;
        let toml = config(&a.base_url(), &b.base_url(), FAST, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        // (stream_options given: the stream is passed through as it comes.)
        let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        let mut c = gw.connect();
        c.send(post("/v1/chat/completions", body, &[])).unwrap();
        let got = c
            .read_until(b"\r\n0\r\n\r\n", READ_TIMEOUT)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&got);
        assert!(got.starts_with(b"HTTP/1.1 200"), "{text}");
        // The cut is said in-band, and the stream is then ended properly.
        assert!(text.contains("\"code\":\"stream_truncated\""), "{text}");
        assert!(text.ends_with("\r\n0\r\n\r\n"), "{text}");
        assert_eq!(a.requests().len() - a0, 1);
        assert_eq!(
            b.requests().len() - b0,
            0,
            "no fail-over after bytes were sent"
        );
        gw.assert_healthy();
    });
}

#[test]
fn a_body_cut_before_it_reached_the_client_is_retried_elsewhere() {
    let a = MockUpstream::with(|_| Reply::PartialThenClose);
    let b = MockUpstream::start();
    each_driver(|d| {
        let res = format!("{FAST}\nmax_retries = 0");
        let toml = config(&a.base_url(), &b.base_url(), &res, TWO_DEPLOYMENTS);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        for i in 0..4 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.json()["model"], "b-m");
        }
        // Switched off, the cut body is answered with a well-formed 502.
        let res = format!("{FAST}\nmax_retries = 0\nretry_on_broken_response = false");
        let models = "[[models]]\nname = \"m\"\nprovider = \"a\"\n";
        let toml = config(&a.base_url(), &b.base_url(), &res, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let r = gw.post("/v1/chat/completions", &chat("m"));
        let e = r.assert_openai_error(502);
        assert_eq!(e["code"], "upstream_closed", "{}", r.text());
        gw.assert_healthy();
    });
}

#[test]
fn a_first_byte_timeout_fails_over_to_the_other_deployment() {
    let a = MockUpstream::with(|_| Reply::Stall(Duration::from_secs(3)));
    let b = MockUpstream::start();
    each_driver(|d| {
        let toml = config(&a.base_url(), &b.base_url(), FAST, TWO_DEPLOYMENTS)
            + "\n[upstream]\nfirst_byte_timeout_ms = 200\n";
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        for i in 0..2 {
            let t = Instant::now();
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.json()["model"], "b-m");
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        }
    });
}

#[test]
fn a_provider_at_its_in_flight_cap_fails_over_without_a_503() {
    let a = MockUpstream::with(|_| Reply::Stall(Duration::from_millis(1500)));
    let b = MockUpstream::start();
    each_driver(|d| {
        let models = r#"
[[models]]
name = "slow"
provider = "a"

[[models]]
name = "m"
deployments = [
  { provider = "a", upstream_model = "a-m", weight = 100 },
  { provider = "b", upstream_model = "b-m", weight = 1 },
]
"#;
        let toml = config(&a.base_url(), &b.base_url(), FAST, models)
            + "\n[limits]\nmax_in_flight_per_upstream = 1\n";
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        // One request holds provider a's only slot on the single shard...
        let mut holder = gw.connect();
        holder
            .send(post("/v1/chat/completions", &chat("slow"), &[]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // ...so the weighted pick of a is passed over for b at once.
        for i in 0..3 {
            let r = gw.post("/v1/chat/completions", &chat("m"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.json()["model"], "b-m");
        }
    });
}

#[test]
fn weights_split_traffic_between_healthy_deployments() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    each_driver(|d| {
        let models = r#"
[[models]]
name = "m"
deployments = [
  { provider = "a", weight = 3 },
  { provider = "b", weight = 1 },
]
"#;
        let toml = config(&a.base_url(), &b.base_url(), FAST, models);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let (a0, b0) = (a.requests().len(), b.requests().len());
        for _ in 0..12 {
            assert_eq!(gw.post("/v1/chat/completions", &chat("m")).status, 200);
        }
        // Smooth weighted round-robin: exactly 3:1 over whole cycles.
        assert_eq!(a.requests().len() - a0, 9);
        assert_eq!(b.requests().len() - b0, 3);
    });
}

#[test]
fn a_providers_first_byte_timeout_overrides_the_global_one() {
    // a never answers; b closes without answering after 800 ms.
    let a = MockUpstream::with(|_| Reply::Stall(Duration::from_secs(3)));
    let b = MockUpstream::with(|_| Reply::Stall(Duration::from_millis(800)));
    each_driver(|d| {
        let toml = config(&a.base_url(), &b.base_url(), FAST, "")
            + "\n[upstream]\nfirst_byte_timeout_ms = 60000\n";
        let toml = with_keys(&toml, "providers.a", "first_byte_timeout_ms = 300");
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let t = Instant::now();
        let e = gw
            .post("/v1/chat/completions", &chat("a/x"))
            .assert_openai_error(504);
        assert_took(t.elapsed(), Duration::from_millis(300));
        assert_eq!(e["code"], "upstream_timeout");
        assert!(e["message"].as_str().unwrap().contains("300ms"), "{e}");
        // b keeps the global limit: it is still waited on when it hangs up.
        let t = Instant::now();
        let e = gw
            .post("/v1/chat/completions", &chat("b/x"))
            .assert_openai_error(502);
        assert_took(t.elapsed(), Duration::from_millis(800));
        assert_eq!(e["code"], "upstream_closed");
        gw.assert_healthy();
    });
}

#[test]
fn the_total_timeout_cuts_a_stream_that_never_goes_quiet() {
    // An event every 100 ms (well inside the idle limit) for 5 s.
    let a = MockUpstream::with(|_| Reply::Sse {
        events: 50,
        delay: Duration::from_millis(100),
        framing: SseFraming::Chunked,
    });
    let b = MockUpstream::start();
    each_driver(|d| {
        let toml = config(&a.base_url(), &b.base_url(), FAST, "")
            + "\n[upstream]\nidle_timeout_ms = 2000\ntotal_timeout_ms = 700\n";
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let total = Duration::from_millis(700);

        // Passed through (stream_options given): cut as an idle upstream
        // cuts it, ending with the dialect's error event.
        let body = r#"{"model":"a/x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        let mut c = gw.connect();
        let t = Instant::now();
        c.send(post("/v1/chat/completions", body, &[])).unwrap();
        let got = c
            .read_until(b"\r\n0\r\n\r\n", Duration::from_secs(5))
            .unwrap();
        assert_took(t.elapsed(), total);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("tok2") && !text.contains("tok20"), "{text}");
        assert!(!text.contains("[DONE]"), "{text}");
        assert!(text.contains("stream_truncated"), "{text}");

        // Translated for an Anthropic client: the cut is said in-band.
        let body = r#"{"model":"a/x","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let mut c = gw.connect();
        let t = Instant::now();
        c.send(post(
            "/v1/messages",
            body,
            &["anthropic-version: 2023-06-01"],
        ))
        .unwrap();
        let got = c
            .read_until(b"\r\n0\r\n\r\n", Duration::from_secs(5))
            .unwrap();
        assert_took(t.elapsed(), total);
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("tok2") && !text.contains("tok20"), "{text}");
        assert!(text.contains("event: error"), "{text}");
        assert!(!text.contains("message_stop"), "{text}");
        gw.assert_healthy();
    });
}

#[test]
fn the_total_timeout_bounds_the_wait_for_a_response_head_as_a_504() {
    let a = MockUpstream::with(|_| Reply::Stall(Duration::from_secs(3)));
    let b = MockUpstream::start();
    each_driver(|d| {
        let toml = config(&a.base_url(), &b.base_url(), FAST, "")
            + "\n[upstream]\nfirst_byte_timeout_ms = 60000\n";
        let toml = with_keys(&toml, "providers.a", "total_timeout_ms = 500");
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let t = Instant::now();
        let e = gw
            .post("/v1/chat/completions", &chat("a/x"))
            .assert_openai_error(504);
        assert_took(t.elapsed(), Duration::from_millis(500));
        assert_eq!(e["code"], "upstream_timeout");
        assert!(
            e["message"].as_str().unwrap().contains("total timeout"),
            "{e}"
        );
        // b has no total of its own and the global one is an hour.
        assert_eq!(gw.post("/v1/chat/completions", &chat("b/x")).status, 200);
    });
}

#[test]
fn the_total_timeout_inside_a_held_error_body_is_a_504() {
    // A 503 (held back for a possible retry) whose body never completes.
    let a = MockUpstream::with(|_| Reply::PartialThenStall(503, Duration::from_secs(3)));
    let b = MockUpstream::start();
    each_driver(|d| {
        let models = "[[models]]\nname = \"m\"\nprovider = \"a\"\n";
        let toml = config(&a.base_url(), &b.base_url(), FAST, models);
        let toml = with_keys(&toml, "providers.a", "total_timeout_ms = 500");
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let t = Instant::now();
        let e = gw
            .post("/v1/chat/completions", &chat("m"))
            .assert_openai_error(504);
        assert_took(t.elapsed(), Duration::from_millis(500));
        assert_eq!(e["code"], "upstream_timeout");
        assert!(
            e["message"].as_str().unwrap().contains("total timeout"),
            "{e}"
        );
        gw.assert_healthy();
    });
}

/// One of two upstreams is killed (SIGKILL) mid-load: every request still
/// succeeds, the in-flight ones on the dead upstream by fail-over (a reset
/// before the response, or a body cut before it reached the client), the
/// later ones because its connections are refused, then it is ejected.
/// The killed upstream is a real process: a second gateway in front of a
/// mock.
#[test]
fn killing_one_of_two_upstreams_mid_load_loses_no_request() {
    let mock = MockUpstream::start();
    let b = MockUpstream::start();
    each_driver(|d| {
        let mut a = Gateway::start(GatewayOpts::env(d, &mock));
        let toml = config(&a.base_url(), &b.base_url(), FAST, TWO_DEPLOYMENTS);
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let until = Instant::now() + Duration::from_millis(2500);
        let served = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mut c = gw.connect();
                    while Instant::now() < until {
                        let r = c
                            .request(post("/v1/chat/completions", &chat("m"), &[]))
                            .expect("the client connection failed");
                        assert_eq!(r.status, 200, "{}", r.text());
                        assert!(r.json()["choices"].is_array(), "{}", r.text());
                        served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(800));
            a.signal(libc::SIGKILL);
            assert!(a.wait_exit(Duration::from_secs(5)).is_some());
        });
        let served = served.into_inner();
        assert!(served > 100, "too little load: {served}");
        eprintln!("{d:?}: {served} requests, all 200, across the kill");
        gw.assert_healthy();
    });
}
