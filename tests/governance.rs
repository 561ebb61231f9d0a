//! Virtual keys, limits and budgets as a client and an operator meet them,
//! over real sockets: keys made through the admin API and used at once;
//! 401/403/429 in both dialects (and through the official SDKs); the
//! `x-ratelimit-*` headers; 200 simultaneous first requests on a fresh key
//! whose budget covers 10; a revoked key refused on every shard at once;
//! spend kept across a clean stop and a SIGKILL; the loopback-only rule.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123";

/// A gateway with keys on: one provider at `mock`, an admin listener with
/// the token, and a price of exactly $1 per output token for `metered`
/// (input free), so a budget in dollars counts output tokens.
struct Governed {
    gw: Gateway,
    admin: SocketAddr,
}

fn governed_config(mock: &MockUpstream, admin: SocketAddr, extra: &str) -> String {
    config_for(
        mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
             [[prices]]\nmodel = \"metered\"\ninput = 0.0\noutput = 1000000.0\n\n{extra}"
        ),
    )
}

fn start(mock: &MockUpstream, shards: usize, extra: &str) -> Governed {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut opts = GatewayOpts::config(Driver::IoUring, governed_config(mock, admin, extra));
    opts.shards = shards;
    Governed {
        gw: Gateway::start(opts),
        admin,
    }
}

/// One admin call: status and JSON body.
fn admin_call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: a\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let text = out.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(text).unwrap_or(Value::Null))
}

impl Governed {
    fn admin(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        admin_call(self.admin, method, path, Some(ADMIN_TOKEN), &body)
    }

    /// Creates a key; its secret and id.
    fn key(&self, fields: Value) -> (String, String) {
        let (status, v) = self.admin("POST", "/admin/keys", fields);
        assert_eq!(status, 201, "{v}");
        (
            v["key"].as_str().unwrap().to_string(),
            v["id"].as_str().unwrap().to_string(),
        )
    }

    /// Key `id` once no request of it is in flight: a response reaches the
    /// client just before its shard settles it.
    fn settled_key(&self, id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let (status, v) = self.admin("GET", &format!("/admin/keys/{id}"), Value::Null);
            assert_eq!(status, 200, "{v}");
            if v["in_flight"] == 0 || std::time::Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn chat(&self, secret: Option<&str>, model: &str, max_tokens: u64) -> Response {
        let body = json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]});
        let auth = secret.map_or(String::new(), |s| format!("authorization: Bearer {s}\r\n"));
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.to_string().len()
        );
        self.gw.connect().request(req).unwrap()
    }
}

#[test]
fn keys_from_the_admin_api_are_required_checked_and_metered() {
    let mock = MockUpstream::start();
    let g = start(&mock, 2, "");
    // Keys on (an admin token is set), none made yet: every model route is a 401.
    let r = g.chat(None, "metered", 7);
    let e = r.assert_openai_error(401);
    assert_eq!(e["code"], "invalid_api_key");
    assert_eq!(e["type"], "authentication_error");
    assert_eq!(g.gw.get("/health").status, 200, "/health needs no key");
    assert_eq!(g.gw.get("/v1/models").status, 401, "/v1/models needs one");

    // The admin API: token required, wrong token refused.
    let (status, _) = admin_call(g.admin, "GET", "/admin/keys", None, &Value::Null);
    assert_eq!(status, 401);
    let (status, _) = admin_call(
        g.admin,
        "GET",
        "/admin/keys",
        Some("wrong-token-wrong-token"),
        &Value::Null,
    );
    assert_eq!(status, 401);
    let (status, v) = g.admin("POST", "/admin/keys", json!({"name": "x", "rpm": 0}));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("rpm"),
        "{v}"
    );

    let (secret, id) = g.key(json!({"name": "ci", "metadata": {"owner": "qa"}}));
    assert!(secret.starts_with("sk-sg-"), "{secret}");
    let r = g.chat(Some(&secret), "metered", 7);
    assert_eq!(r.status, 200, "{}", r.text());
    // The client's key never goes upstream: the provider's does.
    let up = mock.last();
    assert_eq!(
        up.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert!(!format!("{:?}", up.header_all("authorization")).contains(&secret));

    // Anthropic's header works too, on the messages route.
    let body = r#"{"model":"metered","max_tokens":7,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: t\r\nx-api-key: {secret}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(g.gw.connect().request(req).unwrap().status, 200);
    assert!(
        mock.last().header("x-api-key").is_none(),
        "the client's x-api-key is not forwarded"
    );

    // Usage: two requests, the mock's 5 + 7 tokens each, 7 output tokens at $1.
    let v = g.settled_key(&id);
    assert_eq!(v["requests"], 2, "{v}");
    assert_eq!(v["input_tokens"], 10, "{v}");
    assert_eq!(v["output_tokens"], 14, "{v}");
    assert_eq!(v["spend_usd"], 14.0, "{v}");
    assert_eq!(v["budget_period"], "total");
    assert_eq!(v["metadata"]["owner"], "qa");
    assert!(v.get("key").is_none(), "the secret is shown only once");
    let (_, list) = g.admin("GET", "/admin/keys", Value::Null);
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert!(!list.to_string().contains(&secret));
    assert_eq!(g.admin("GET", "/admin/keys/key_nope", Value::Null).0, 404);

    // An unknown key in Anthropic's shape on its route.
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: t\r\nx-api-key: sk-sg-unknown\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = g.gw.connect().request(req).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    // Neither the secret nor the admin token ever reaches the log.
    let log = g.gw.log();
    assert!(
        !log.contains(&secret) && !log.contains(ADMIN_TOKEN),
        "{log}"
    );
}

#[test]
fn allow_lists_limits_and_their_headers() {
    let mock = MockUpstream::start();
    let g = start(&mock, 2, "[[models]]\nname = \"allowed-model\"\nprovider = \"openai\"\nupstream_model = \"metered\"\n");
    let (restricted, _) = g.key(json!({"name": "r", "models": ["allowed-*"]}));
    let r = g.chat(Some(&restricted), "other-model", 7);
    assert_eq!(r.assert_openai_error(403)["code"], "model_not_allowed");
    assert_eq!(g.chat(Some(&restricted), "allowed-model", 7).status, 200);
    // The resolved provider/model form matches too.
    let (by_provider, _) = g.key(json!({"name": "p", "models": ["openai/*"]}));
    assert_eq!(g.chat(Some(&by_provider), "allowed-model", 7).status, 200);
    // /v1/models lists only what the key may use.
    let models = {
        let req = format!(
            "GET /v1/models HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {restricted}\r\n\r\n"
        );
        g.gw.connect().request(req).unwrap().json()
    };
    let ids: Vec<_> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("allowed-model")]);

    // rpm 3: three pass with the count going down, the fourth is a 429.
    let (limited, id) = g.key(json!({"name": "lim", "rpm": 3, "tpm": 10000}));
    for remaining in ["2", "1", "0"] {
        let r = g.chat(Some(&limited), "metered", 7);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some(remaining));
        assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("10000"));
        assert!(r
            .header("x-ratelimit-reset-requests")
            .unwrap()
            .ends_with('s'));
    }
    let r = g.chat(Some(&limited), "metered", 7);
    let e = r.assert_openai_error(429);
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("rate_limit_error"), Some("rate_limit_exceeded"))
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    // A PATCH lifts the limit at once, keeping the usage.
    let (status, v) = g.admin("PATCH", &format!("/admin/keys/{id}"), json!({"rpm": null}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["requests"], 3, "{v}");
    assert_eq!(g.chat(Some(&limited), "metered", 7).status, 200);

    // tpm: a request whose input and max_tokens cannot fit is refused.
    let (small, _) = g.key(json!({"name": "small", "tpm": 100}));
    let r = g.chat(Some(&small), "metered", 500);
    assert_eq!(r.assert_openai_error(429)["code"], "rate_limit_exceeded");
    assert_eq!(g.chat(Some(&small), "metered", 7).status, 200);

    // A budget: refused with OpenAI's insufficient_quota and no retry.
    let (broke, _) = g.key(json!({"name": "broke", "budget_usd": 0}));
    let r = g.chat(Some(&broke), "metered", 7);
    let e = r.assert_openai_error(429);
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("insufficient_quota"), Some("budget_exceeded"))
    );
    assert_eq!(r.header("x-should-retry"), Some("false"));

    // Teams share their budget: two keys, one $7 team budget, one request.
    let (status, team) = g.admin(
        "POST",
        "/admin/teams",
        json!({"name": "ml", "budget_usd": 7}),
    );
    assert_eq!(status, 201, "{team}");
    let team_id = team["id"].as_str().unwrap();
    let (a, _) = g.key(json!({"name": "a", "team": team_id}));
    let (b, _) = g.key(json!({"name": "b", "team": team_id}));
    assert_eq!(g.chat(Some(&a), "metered", 7).status, 200);
    let r = g.chat(Some(&b), "metered", 7);
    assert_eq!(
        r.assert_openai_error(429)["code"],
        "budget_exceeded",
        "the team's budget is spent"
    );
    let (_, t) = g.admin("GET", &format!("/admin/teams/{team_id}"), Value::Null);
    assert_eq!(
        (t["spend_usd"].as_f64(), t["budget_remaining_usd"].as_f64()),
        (Some(7.0), Some(0.0)),
        "{t}"
    );
    assert_eq!(
        g.admin("DELETE", &format!("/admin/teams/{team_id}"), Value::Null)
            .0,
        409,
        "keys still belong to it"
    );
}

#[test]
fn two_hundred_simultaneous_first_requests_on_a_budget_for_ten() {
    let mock = MockUpstream::start();
    let g = start(&mock, 2, "");
    // Each request reserves and spends exactly 7 output tokens at $1: $70
    // covers ten of them.
    let (secret, id) = g.key(json!({"name": "burst", "budget_usd": 70}));
    let n = 200;
    let barrier = Arc::new(Barrier::new(n));
    let addr = g.gw.addr;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (barrier, secret) = (barrier.clone(), secret.clone());
                s.spawn(move || {
                    let body = r#"{"model":"metered","max_tokens":7,"messages":[{"role":"user","content":"hi"}]}"#;
                    let req = format!(
                        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {secret}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let mut c = Client::connect(addr).unwrap();
                    barrier.wait();
                    c.request(req).unwrap().status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(ok, 10, "{statuses:?}");
    assert_eq!(refused, n - 10, "{statuses:?}");
    let v = g.settled_key(&id);
    assert_eq!(v["spend_usd"], 70.0, "{v}");
    assert_eq!(v["budget_remaining_usd"], 0.0, "{v}");
    assert_eq!(mock.requests().len(), 10, "only the admitted went upstream");
}

#[test]
fn a_revoked_key_is_refused_on_every_shard_at_once() {
    let mock = MockUpstream::start();
    let g = start(&mock, 2, "");
    let (secret, id) = g.key(json!({"name": "gone"}));
    // Keep-alive connections (spread over both shards) that used the key.
    let body = r#"{"model":"metered","max_tokens":7,"messages":[]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {secret}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conns: Vec<Client> = (0..8).map(|_| g.gw.connect()).collect();
    for c in &mut conns {
        assert_eq!(c.request(&req).unwrap().status, 200);
    }
    let (status, v) = g.admin("DELETE", &format!("/admin/keys/{id}"), Value::Null);
    assert_eq!((status, v["deleted"].as_bool()), (200, Some(true)), "{v}");
    for c in &mut conns {
        assert_eq!(
            c.request(&req).unwrap().status,
            401,
            "refused right after the DELETE answered"
        );
    }
    assert_eq!(
        g.admin("GET", &format!("/admin/keys/{id}"), Value::Null).0,
        404
    );
}

#[test]
fn the_official_sdks_raise_their_documented_errors() {
    if !python_modules_available(
        "the_official_sdks_raise_their_documented_errors",
        "openai, anthropic",
    ) {
        return;
    }
    let mock = MockUpstream::start();
    let g = start(&mock, 2, "[[models]]\nname = \"allowed-model\"\nprovider = \"openai\"\nupstream_model = \"metered\"\n");
    let (plain, _) = g.key(json!({"name": "plain"}));
    let (restricted, _) = g.key(json!({"name": "restricted", "models": ["allowed-*"]}));
    let (one_rpm, _) = g.key(json!({"name": "one", "rpm": 1}));
    let (broke, _) = g.key(json!({"name": "broke", "budget_usd": 0}));
    let out = run_python(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/governance_sdk.py"),
        &[
            &format!("http://{}", g.gw.addr),
            &plain,
            &restricted,
            &one_rpm,
            &broke,
        ],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Spend of key `id` as the admin API reports it.
fn spend(g: &Governed, id: &str) -> f64 {
    g.settled_key(id)["spend_usd"].as_f64().unwrap()
}

#[test]
fn keys_and_spend_survive_a_clean_stop_and_a_sigkill() {
    let mock = MockUpstream::start();
    let state = TempDir::new("state");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let text = governed_config(&mock, admin, "[state]\nflush_interval_ms = 200\n");
    let run = || {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let state_dir = state.0.to_str().unwrap();
        let mut opts = GatewayOpts::config(Driver::IoUring, text.clone());
        opts.shards = 2;
        Governed {
            gw: Gateway::spawn_at(&opts, addr, &[], &[("STATE_DIRECTORY", state_dir)]).unwrap(),
            admin,
        }
    };
    let mut g = run();
    let (secret, id) = g.key(json!({"name": "durable", "budget_usd": 30}));
    for _ in 0..2 {
        assert_eq!(g.chat(Some(&secret), "metered", 7).status, 200);
    }
    assert_eq!(spend(&g, &id), 14.0);
    // A clean stop writes everything.
    g.gw.signal(libc::SIGTERM);
    assert!(g.gw.wait_exit(Duration::from_secs(10)).is_some());
    drop(g);
    let mut g = run();
    assert_eq!(spend(&g, &id), 14.0, "spend resumed after a clean stop");
    assert_eq!(
        g.chat(Some(&secret), "metered", 7).status,
        200,
        "the key is still valid"
    );
    // SIGKILL after more than a flush interval loses nothing either.
    std::thread::sleep(Duration::from_millis(600));
    g.gw.signal(libc::SIGKILL);
    assert!(g.gw.wait_exit(Duration::from_secs(10)).is_some());
    drop(g);
    let g = run();
    assert_eq!(spend(&g, &id), 21.0, "spend resumed after a SIGKILL");
    // $21 of $30: one more request (7) fits, the next does not.
    assert_eq!(g.chat(Some(&secret), "metered", 7).status, 200);
    assert_eq!(
        g.chat(Some(&secret), "metered", 7).assert_openai_error(429)["code"],
        "budget_exceeded"
    );
}

#[test]
fn without_keys_only_loopback_is_served() {
    let mock = MockUpstream::start();
    let port = free_port();
    let text = config_for(&mock, "", "");
    let dir = TempDir::new("exposed");
    let out = gateway_command()
        .args([
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--admin-listen",
            "off",
            "--config",
        ])
        .arg(dir.write("shardgate.toml", &text))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without authentication") && err.contains("allow_unauthenticated"),
        "{err}"
    );
    // Saying so explicitly starts it.
    let text = config_for(&mock, "", "[auth]\nallow_unauthenticated = true\n");
    let addr: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let opts = GatewayOpts::config(Driver::IoUring, text);
    let g = Gateway::spawn_at(&opts, addr, &[], &[]);
    assert!(g.is_ok(), "{:?}", g.err());
}

#[test]
fn keys_declared_in_the_config_file() {
    let mock = MockUpstream::start();
    // printf %s sk-hashed-secret | sha256sum
    let sha = "d6845fbe9f665eab6ec3592d5b20814a2a12f11b6cd7f94f7362e05c863c2345";
    let g = {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let extra = format!(
            "[[teams]]\nid = \"core\"\nrpm = 100\n\n\
             [[keys]]\nname = \"from-env\"\nkey_env = \"GOV_TEST_KEY\"\nteam = \"core\"\nmodels = [\"metered\"]\n\n\
             [[keys]]\nname = \"hashed\"\nkey_sha256 = \"{sha}\"\nexpires_at = \"2001-01-01T00:00:00Z\"\n"
        );
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let opts = GatewayOpts::config(Driver::IoUring, governed_config(&mock, admin, &extra));
        Governed {
            gw: Gateway::spawn_at(
                &opts,
                addr,
                &[],
                &[("GOV_TEST_KEY", "sk-from-the-environment")],
            )
            .unwrap(),
            admin,
        }
    };
    assert_eq!(
        g.chat(Some("sk-from-the-environment"), "metered", 7).status,
        200
    );
    assert_eq!(
        g.chat(Some("sk-from-the-environment"), "other", 7).status,
        403
    );
    let (_, v) = g.admin("GET", "/admin/keys/cfg_from-env", Value::Null);
    assert_eq!(
        (v["origin"].as_str(), v["team"].as_str()),
        (Some("config"), Some("core")),
        "{v}"
    );
    assert_eq!(
        g.admin("DELETE", "/admin/keys/cfg_from-env", Value::Null).0,
        409,
        "the file owns it"
    );
    // An expired key is a 401 that says so.
    let (_, v) = g.admin("GET", "/admin/keys/cfg_hashed", Value::Null);
    assert_eq!(v["expires_at"], "2001-01-01T00:00:00Z", "{v}");
    let r = g.chat(Some("sk-hashed-secret"), "metered", 7);
    assert!(r.assert_openai_error(401)["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

/// A chat stream request (no max_tokens) on one connection; the raw bytes
/// up to the end of the response.
fn stream_chat(g: &Governed, secret: &str) -> String {
    let body = r#"{"model":"metered","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {secret}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut c = g.gw.connect();
    let r = c.request(req).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[test]
fn a_long_stream_is_cut_by_its_budget_and_pays_for_what_it_relayed() {
    let mock = MockUpstream::with(|_| Reply::Sse {
        events: 120,
        delay: Duration::from_millis(2),
        framing: SseFraming::Chunked,
    });
    // Each reservation (and each growth) is 20 output tokens, $20.
    let g = start(&mock, 2, "[governance]\ndefault_max_output_tokens = 20\n");
    let (secret, id) = g.key(json!({"name": "streamer", "budget_usd": 30}));
    let text = stream_chat(&g, &secret);
    let events = sse_data(text.as_bytes());
    let last = events.last().unwrap();
    assert!(last.contains("\"code\":\"budget_exceeded\""), "{last}");
    let relayed = events.iter().filter(|e| e.contains("tok")).count();
    assert!(
        (10..=25).contains(&relayed),
        "{relayed} events before the cut"
    );
    assert!(
        !text.contains("[DONE]"),
        "a cut stream does not look complete"
    );
    // It pays for what it relayed (the mock sends no usage: the estimate).
    let spent = spend(&g, &id);
    assert!((20.0..=30.0).contains(&spent), "{spent}");
    // The upstream was let go at once: it sent far fewer than its 120.
    std::thread::sleep(Duration::from_millis(100));
    assert!(mock.events_sent() < 60, "{}", mock.events_sent());
    // $30 - spent cannot hold another $20 reservation.
    assert_eq!(
        g.chat(Some(&secret), "metered", 20)
            .assert_openai_error(429)["code"],
        "budget_exceeded"
    );

    // With room for it, the same stream grows its reservation and ends whole.
    let (rich, id) = g.key(json!({"name": "rich", "budget_usd": 1000}));
    let text = stream_chat(&g, &rich);
    assert!(text.contains("[DONE]"), "{text}");
    assert_eq!(
        sse_data(text.as_bytes())
            .iter()
            .filter(|e| e.contains("tok"))
            .count(),
        120
    );
    let spent = spend(&g, &id);
    // 120 events of "tokN": 10 of 1 token, 110 of 2 (5-6 bytes / 4).
    assert_eq!(spent, 230.0, "the stream's own estimate, charged");
}

#[test]
fn metrics_and_the_access_log_name_the_key_and_team() {
    let mock = MockUpstream::start();
    let log_dir = TempDir::new("gov-log");
    let log_path = log_dir.0.join("access.log");
    let g = start(
        &mock,
        1,
        &format!(
            "[access_log]\ntarget = \"file\"\npath = \"{}\"\n",
            log_path.display()
        ),
    );
    let (status, team) = g.admin("POST", "/admin/teams", json!({"name": "research"}));
    assert_eq!(status, 201);
    let (secret, id) = g.key(json!({"name": "nightly", "team": team["id"], "rpm": 1}));
    assert_eq!(g.chat(Some(&secret), "metered", 7).status, 200);
    assert_eq!(g.chat(Some(&secret), "metered", 7).status, 429);
    g.settled_key(&id);
    let metrics = {
        let mut s = TcpStream::connect(g.admin).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    for line in [
        "shardgate_key_spend_usd_total{key=\"nightly\",team=\"research\"} 7\n",
        "shardgate_key_requests_total{key=\"nightly\",team=\"research\",outcome=\"admitted\"} 1\n",
        "shardgate_key_requests_total{key=\"nightly\",team=\"research\",outcome=\"rate_limited\"} 1\n",
        "shardgate_key_tokens_total{key=\"nightly\",team=\"research\",direction=\"output\"} 7\n",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    // The access log line carries the key's id and team, never its secret.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.matches("chat_completions").count() >= 2 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let first: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["route"] == "chat_completions")
        .unwrap();
    assert_eq!(first["key_id"], id.as_str());
    assert_eq!(first["team"], team["id"]);
    assert!(!text.contains(&secret));
}

#[test]
fn an_unknown_caller_is_refused_before_its_body_is_read() {
    let mock = MockUpstream::start();
    let g = start(&mock, 1, "");
    // Announces 32 MiB and sends none of it: the 401 comes at once, and the
    // connection closes (the body was never read).
    let mut c = g.gw.connect();
    c.send("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 33554432\r\n\r\n")
        .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed(Duration::from_secs(2)));
    // Without a body the connection goes on.
    let mut c = g.gw.connect();
    let r = c
        .request("GET /v1/models HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        c.request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap()
            .status,
        200
    );
    assert!(mock.requests().is_empty());
}

#[test]
fn pass_through_routes_serve_only_keys_with_nothing_to_check() {
    let mock = MockUpstream::start();
    let g = start(&mock, 1, "");
    let (free, _) = g.key(json!({"name": "free"}));
    let (limited, _) = g.key(json!({"name": "limited", "budget_usd": 5.0}));
    let (listed, _) = g.key(json!({"name": "listed", "models": ["gpt-4o*"]}));
    let files = |secret: &str| {
        g.gw.connect()
            .request(format!(
                "GET /v1/fine_tuning/jobs HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: openai\r\nauthorization: Bearer {secret}\r\n\r\n"
            ))
            .unwrap()
    };
    let r = files(&free);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.last().target, "/v1/fine_tuning/jobs");
    // Metered by nothing, a pass-through would let these past their checks.
    for secret in [&limited, &listed] {
        let err = files(secret).assert_openai_error(403);
        assert!(
            err["message"].as_str().unwrap().contains("pass-through"),
            "{err}"
        );
    }
    files("sk-sg-unknown").assert_openai_error(401);
    assert_eq!(mock.requests().len(), 1);
}
