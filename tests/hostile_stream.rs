//! The hostile-upstream corpus for responses already committed to the
//! client: a scripted upstream that misbehaves after the response head went
//! out (a malformed chunk inside a stream or past the held part of a plain
//! body, a cut inside a chunk, an SSE line that never ends), or answers with
//! an unsolicited `101 Switching Protocols`. Each runs under both drivers,
//! on every respond path: the native OpenAI stream (passed through with its
//! usage chunk, and with the usage chunk hidden), the Anthropic stream passed
//! through on `/v1/messages`, and the streams translated either way.
//!
//! The invariants checked for each: exactly one response head reaches the
//! client (never a second one inside the body); the response ends properly
//! (an in-band error event in the client's dialect, then the last chunk) or,
//! where it cannot say so (a plain body, a cut inside a chunk), the
//! connection closes; the request is logged as truncated with the usage
//! seen so far; the upstream connection is never reused; and the gateway
//! keeps serving, on the same client connection when it stayed open.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

/// The content of a request that follows a broken response.
const NEXT: &str = "the next request";

/// A short bounded wait for anything that should happen at once.
const SOON: Duration = Duration::from_secs(5);

/// The client's dialect, which shapes the error event it must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
}

/// One respond path: what the client sends and what the upstream speaks.
#[derive(Clone, Copy, Debug)]
struct Route {
    name: &'static str,
    path: &'static str,
    body: &'static str,
    client: Dialect,
    upstream: Dialect,
}

const NATIVE_WITH_USAGE: Route = Route {
    name: "native OpenAI stream, passed through",
    path: "/v1/chat/completions",
    body: r#"{"model":"oa/m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    client: Dialect::OpenAi,
    upstream: Dialect::OpenAi,
};

const NATIVE_HIDDEN_USAGE: Route = Route {
    name: "native OpenAI stream, usage chunk hidden",
    path: "/v1/chat/completions",
    body: r#"{"model":"oa/m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    client: Dialect::OpenAi,
    upstream: Dialect::OpenAi,
};

const ANTHROPIC_PASS_THROUGH: Route = Route {
    name: "Anthropic stream, passed through",
    path: "/v1/messages",
    body: r#"{"model":"an/claude-m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    client: Dialect::Anthropic,
    upstream: Dialect::Anthropic,
};

const OPENAI_TO_ANTHROPIC: Route = Route {
    name: "OpenAI stream translated for an Anthropic client",
    path: "/v1/messages",
    body: r#"{"model":"oa/m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    client: Dialect::Anthropic,
    upstream: Dialect::OpenAi,
};

const ANTHROPIC_TO_OPENAI: Route = Route {
    name: "Anthropic stream translated for an OpenAI client",
    path: "/v1/chat/completions",
    body: r#"{"model":"an/claude-m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    client: Dialect::OpenAi,
    upstream: Dialect::Anthropic,
};

const STREAM_ROUTES: [Route; 5] = [
    NATIVE_WITH_USAGE,
    NATIVE_HIDDEN_USAGE,
    ANTHROPIC_PASS_THROUGH,
    OPENAI_TO_ANTHROPIC,
    ANTHROPIC_TO_OPENAI,
];

/// Input tokens the Anthropic upstream reports in `message_start`: usage
/// the gateway has seen before the stream went wrong.
const EARLY_INPUT_TOKENS: u64 = 11;

/// The first events of a stream in the upstream's dialect, up to and
/// including a text delta `tok0`.
fn first_events(upstream: Dialect) -> String {
    match upstream {
        Dialect::OpenAi => format!("data: {}\n\n", mock_event("/v1/chat/completions", "m", 0)),
        Dialect::Anthropic => {
            let start = json!({"type": "message_start", "message": {"id": "msg_hostile", "type": "message",
                "role": "assistant", "content": [], "model": "claude-m", "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": EARLY_INPUT_TOKENS, "output_tokens": 1}}});
            let block = json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}});
            let delta = json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "tok0"}});
            format!(
                "event: message_start\ndata: {start}\n\n\
                 event: content_block_start\ndata: {block}\n\n\
                 event: content_block_delta\ndata: {delta}\n\n"
            )
        }
    }
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Lets the test hold the scripted upstream back until the client has seen
/// the start of its response, so what follows arrives in a later read.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    fn wait(&self) {
        let (lock, cv) = &*self.0;
        let open = lock.lock().unwrap();
        let _ = cv.wait_timeout_while(open, SOON, |open| !*open).unwrap();
    }
}

struct Bench {
    mock: MockUpstream,
    log_dir: TempDir,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            mock: MockUpstream::start(),
            log_dir: TempDir::new("hostile-stream"),
        }
    }

    fn gateway(&self, d: Driver) -> Gateway {
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
             [access_log]\ntarget = \"file\"\npath = \"{log}\"\n\n\
             [providers.oa]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
             [providers.an]\nkind = \"anthropic\"\nbase_url = \"http://{addr}\"\napi_key = \"{PROVIDER_KEY}\"\n",
            log = self.log_dir.0.join(format!("{d:?}.log")).display(),
            addr = self.mock.addr,
        );
        Gateway::start(GatewayOpts::config(d, toml))
    }

    /// The access-log record of request `id` (waits for the flush).
    fn record(&self, d: Driver, id: &str) -> Value {
        let path = self.log_dir.0.join(format!("{d:?}.log"));
        let needle = format!("\"request_id\":\"{id}\"");
        let deadline = Instant::now() + SOON;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(&needle)) {
                return serde_json::from_str(line).expect("access-log line is JSON");
            }
            assert!(Instant::now() < deadline, "no access-log record for {id}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Answers every request with `writer`, but the follow-up ones that
    /// [`assert_serves_on`] sends, which get the stock answer.
    fn hostile(&self, writer: Writer) {
        self.mock.set_script(move |info| {
            if contains(info.body, NEXT.as_bytes()) {
                Reply::Auto
            } else {
                Reply::Scripted(writer.clone())
            }
        });
    }

    /// The upstream connection the request `id` went out on.
    fn upstream_conn(&self, id: &str) -> usize {
        self.mock
            .requests()
            .iter()
            .rev()
            .find(|r| r.header("x-request-id") == Some(id))
            .unwrap_or_else(|| panic!("the upstream never got {id}"))
            .conn
    }
}

fn request(route: &Route, id: &str) -> String {
    let mut extra = vec![format!("x-request-id: {id}")];
    if route.client == Dialect::Anthropic {
        extra.push("anthropic-version: 2023-06-01".into());
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    post(route.path, route.body, &extra)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// A well-framed stream that ends with the client's dialect's error event
/// and not with the normal end.
fn assert_ends_with_error_event(route: &Route, res: &Response) {
    let what = route.name;
    assert_eq!(count(&res.raw, b"HTTP/1."), 1, "{what}: one head only");
    assert_eq!(res.status, 200, "{what}");
    assert_eq!(res.header("transfer-encoding"), Some("chunked"), "{what}");
    let body = &res.body;
    let tail = String::from_utf8_lossy(&body[body.len().saturating_sub(400)..]).into_owned();
    assert!(
        body.ends_with(b"\n\n"),
        "{what}: ends with a whole event: {tail}"
    );
    match route.client {
        Dialect::OpenAi => {
            let last = sse_data(body).pop().unwrap_or_default();
            let last: Value = serde_json::from_str(&last)
                .unwrap_or_else(|e| panic!("{what}: last event is not JSON ({e}): {tail}"));
            assert!(last["error"]["message"].is_string(), "{what}: {tail}");
            assert!(!contains(body, b"[DONE]"), "{what}: {tail}");
        }
        Dialect::Anthropic => {
            assert!(tail.contains("event: error\ndata: "), "{what}: {tail}");
            assert!(!contains(body, b"message_stop"), "{what}: {tail}");
        }
    }
}

/// The client connection still serves a request, and the upstream
/// connection the broken response came on was not reused for it.
fn assert_serves_on(bench: &Bench, c: &mut Client, broken_id: &str, next_id: &str) {
    let body = format!(r#"{{"model":"oa/m","messages":[{{"role":"user","content":"{NEXT}"}}]}}"#);
    let ok = c
        .request(post(
            "/v1/chat/completions",
            &body,
            &[&format!("x-request-id: {next_id}")],
        ))
        .expect("the client connection still serves");
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json()["choices"][0]["message"]["content"],
        format!("echo: {NEXT}")
    );
    assert_ne!(
        bench.upstream_conn(next_id),
        bench.upstream_conn(broken_id),
        "the broken upstream connection went back to the pool"
    );
}

fn id(tag: &str, route: &Route, d: Driver) -> String {
    format!("{tag}-{}-{d:?}", route.name.replace([' ', ','], "_"))
}

/// A 200 stream that began (the client read its first event), then a chunk
/// size of `zz`: the gateway must not answer a second time inside the body.
#[test]
fn a_malformed_chunk_inside_a_stream_ends_it_with_an_error_event() {
    let bench = Bench::new();
    each_driver(|d| {
        let gw = bench.gateway(d);
        for route in STREAM_ROUTES {
            let gate = Gate::default();
            let (g, first) = (gate.clone(), first_events(route.upstream));
            bench.hostile(Writer::new(move |s: &mut TcpStream, _| {
                s.write_all(SSE_HEAD)?;
                s.write_all(&chunk(first.as_bytes()))?;
                g.wait();
                s.write_all(b"zz\r\n")?;
                // Kept open: only the gateway can decide not to reuse it.
                Ok(true)
            }));
            let (broken, next) = (id("zz", &route, d), id("zz-next", &route, d));
            let mut c = gw.connect();
            c.send(request(&route, &broken)).unwrap();
            c.read_until(b"tok0", SOON).unwrap();
            gate.open();
            let res = c
                .read_response_within(SOON, false)
                .unwrap_or_else(|e| panic!("{}: {e}", route.name));
            assert_ends_with_error_event(&route, &res);
            let rec = bench.record(d, &broken);
            assert_eq!(rec["truncated"], true, "{}: {rec}", route.name);
            assert_eq!(rec["status"], 200, "{}: {rec}", route.name);
            assert_serves_on(&bench, &mut c, &broken, &next);
        }
        gw.assert_healthy();
    });
}

/// The upstream breaks off inside a chunk whose start the client already
/// has (a malformed chunk after the rest of its data, or a close): no event
/// can follow inside that chunk, so the connection closes.
#[test]
fn a_stream_broken_inside_a_chunk_closes_the_connection() {
    let bench = Bench::new();
    each_driver(|d| {
        let gw = bench.gateway(d);
        for then_close in [false, true] {
            let route = NATIVE_WITH_USAGE;
            let gate = Gate::default();
            let g = gate.clone();
            bench.hostile(Writer::new(move |s: &mut TcpStream, _| {
                let event = first_events(Dialect::OpenAi);
                let (start, rest) = event.as_bytes().split_at(event.len() - 10);
                s.write_all(SSE_HEAD)?;
                s.write_all(format!("{:x}\r\n", event.len()).as_bytes())?;
                s.write_all(start)?;
                g.wait();
                if then_close {
                    s.shutdown(std::net::Shutdown::Both)?;
                    return Ok(false);
                }
                s.write_all(rest)?;
                s.write_all(b"\r\nzz\r\n")?;
                Ok(true)
            }));
            let broken = id(if then_close { "mid-cut" } else { "mid-zz" }, &route, d);
            let mut c = gw.connect();
            c.send(request(&route, &broken)).unwrap();
            c.read_until(b"tok0", SOON).unwrap();
            gate.open();
            // Everything the client got, from the head on.
            let all = c
                .read_to_close(SOON)
                .expect("the connection closes after a chunk cut short");
            assert_eq!(
                count(&all, b"HTTP/1."),
                1,
                "{}",
                String::from_utf8_lossy(&all)
            );
            assert!(
                !contains(&all, b"\r\n0\r\n\r\n"),
                "no last chunk after a torn one"
            );
            assert_eq!(bench.record(d, &broken)["truncated"], true);
        }
        gw.assert_healthy();
    });
}

/// A plain (non-stream) chunked body larger than the part held back before
/// the client gets a byte, with a malformed chunk after that part: the
/// response cannot say it failed, so it is cut by closing the connection.
#[test]
fn a_malformed_chunk_past_the_held_part_of_a_plain_body_closes_the_connection() {
    let bench = Bench::new();
    each_driver(|d| {
        let gw = bench.gateway(d);
        let gate = Gate::default();
        let g = gate.clone();
        bench.hostile(Writer::new(move |s: &mut TcpStream, _| {
            let data = vec![b'a'; 300 * 1024];
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")?;
            s.write_all(&chunk(&data))?;
            g.wait();
            s.write_all(b"zz\r\n")?;
            Ok(true)
        }));
        let route = Route {
            name: "plain",
            path: "/v1/chat/completions",
            body: r#"{"model":"oa/m","messages":[{"role":"user","content":"hi"}]}"#,
            client: Dialect::OpenAi,
            upstream: Dialect::OpenAi,
        };
        let broken = id("plain-zz", &route, d);
        let mut c = gw.connect();
        c.send(request(&route, &broken)).unwrap();
        c.read_until(&[b'a'; 1024], SOON).unwrap();
        gate.open();
        // Everything the client got, from the head on.
        let all = c
            .read_to_close(SOON)
            .expect("the connection closes after the cut body");
        assert_eq!(count(&all, b"HTTP/1."), 1);
        assert!(
            !contains(&all, b"error"),
            "nothing but the body's own bytes"
        );
        let rec = bench.record(d, &broken);
        assert_eq!(rec["truncated"], true, "{rec}");
        gw.assert_healthy();
    });
}

/// The gateway never asks for an upgrade, so a `101 Switching Protocols` is
/// a broken upstream: a 502 before anything reaches the client, on the
/// native and the translated respond paths.
#[test]
fn an_unsolicited_101_from_the_upstream_is_a_502() {
    let bench = Bench::new();
    bench.hostile(Writer::bytes(
        &b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n\x81\x05hello"[..],
        true,
    ));
    let plain = |name, path, body, client| Route {
        name,
        path,
        body,
        client,
        upstream: Dialect::OpenAi,
    };
    let routes = [
        plain(
            "101 native",
            "/v1/chat/completions",
            r#"{"model":"oa/m","messages":[{"role":"user","content":"hi"}]}"#,
            Dialect::OpenAi,
        ),
        plain(
            "101 translated",
            "/v1/messages",
            r#"{"model":"oa/m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#,
            Dialect::Anthropic,
        ),
        plain(
            "101 stream",
            "/v1/chat/completions",
            r#"{"model":"oa/m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
            Dialect::OpenAi,
        ),
    ];
    each_driver(|d| {
        let gw = bench.gateway(d);
        for route in routes {
            let broken = id("101", &route, d);
            let mut c = gw.connect();
            let res = c
                .request(request(&route, &broken))
                .unwrap_or_else(|e| panic!("{}: {e}", route.name));
            assert_eq!(res.status, 502, "{}: {}", route.name, res.text());
            assert_eq!(res.header("upgrade"), None, "{}", route.name);
            let body = res.json();
            match route.client {
                Dialect::OpenAi => assert_eq!(body["error"]["code"], "upstream_protocol_error"),
                Dialect::Anthropic => assert_eq!(body["type"], "error", "{body}"),
            }
            assert!(
                body.to_string().contains("101"),
                "{}: the error names the status: {body}",
                route.name
            );
            assert_serves_on(&bench, &mut c, &broken, &id("101-next", &route, d));
        }
        gw.assert_healthy();
    });
}

/// The upstream starts a `data:` line and never ends it. Far past the
/// largest event the gateway reads, the stream ends with the error event
/// and the last chunk; the usage seen before it is kept.
#[test]
fn a_never_ending_sse_line_ends_the_stream_with_an_error_event() {
    let bench = Bench::new();
    each_driver(|d| {
        let gw = bench.gateway(d);
        for route in STREAM_ROUTES {
            let first = first_events(route.upstream);
            bench.hostile(Writer::new(move |s: &mut TcpStream, _| {
                s.write_all(SSE_HEAD)?;
                s.write_all(&chunk(format!("{first}data: {{\"x\":\"").as_bytes()))?;
                let block = chunk(&[b'x'; 64 * 1024]);
                // Far past any limit; an unbounded relay gets it all,
                // then a normal end it must not have reached.
                for _ in 0..(48 * 1024 / 64) {
                    if s.write_all(&block).is_err() {
                        return Ok(false);
                    }
                }
                let end = match route.upstream {
                    Dialect::OpenAi => "\"}\n\ndata: [DONE]\n\n",
                    Dialect::Anthropic => {
                        "\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
                    }
                };
                let _ = s.write_all(&chunk(end.as_bytes()));
                let _ = s.write_all(b"0\r\n\r\n");
                Ok(true)
            }));
            let (broken, next) = (id("long", &route, d), id("long-next", &route, d));
            let mut c = gw.connect();
            c.send(request(&route, &broken)).unwrap();
            let res = c
                .read_response_within(Duration::from_secs(10), false)
                .unwrap_or_else(|e| panic!("{}: {e}", route.name));
            assert_ends_with_error_event(&route, &res);
            assert!(
                res.body.len() < 32 << 20,
                "{}: cut well before the end",
                route.name
            );
            let rec = bench.record(d, &broken);
            assert_eq!(rec["truncated"], true, "{}: {rec}", route.name);
            if route.upstream == Dialect::Anthropic {
                assert_eq!(
                    rec["input_tokens"], EARLY_INPUT_TOKENS,
                    "{}: usage so far is kept: {rec}",
                    route.name
                );
            }
            assert_serves_on(&bench, &mut c, &broken, &next);
        }
        gw.assert_healthy();
    });
}
