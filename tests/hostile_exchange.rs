//! The hostile-upstream corpus for the upstream exchange: a scripted
//! upstream (`Reply::Scripted`) that misbehaves around the keep-alive pool
//! and the wait for a response head, against the real gateway, under both
//! drivers.
//!
//! Covers: a second, unsolicited response written 150 ms after a correct
//! one on the idle connection, and bytes right after a response in the same
//! write, on native and translated routes (no later client, each on its own
//! connection, sees them); an upstream that closes its idle keep-alive
//! connections (not reused, and nothing re-sent); clients that leave before
//! the response head (the upstream request abandoned at once, its in-flight
//! slot freed, 499 logged) or inside a held error body, and one that
//! pipelined its next request meanwhile (not taken for gone); and the
//! re-send rule: a POST that the upstream read on a
//! reused connection and closed without answering reaches it once (502),
//! while a GET there is re-sent once on a fresh connection.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A chat request whose answer echoes `tag` (`"echo: TAG"`).
fn chat(tag: &str) -> String {
    format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{tag}"}}]}}"#)
}

/// An Anthropic request for the OpenAI provider (translated both ways),
/// whose answer echoes `tag`.
fn message(tag: &str) -> String {
    post(
        "/v1/messages",
        &format!(
            r#"{{"model":"gpt-4o-mini","max_tokens":16,"messages":[{{"role":"user","content":"{tag}"}}]}}"#
        ),
        &["anthropic-version: 2023-06-01"],
    )
}

/// What the answer to request `rec` says back, whichever dialect it came in.
fn echoed(r: &Response) -> String {
    let v = r.json();
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .or_else(|| v["content"][0]["text"].as_str());
    text.unwrap_or_else(|| panic!("no answer text: {v}"))
        .to_string()
}

/// The mock's own answer to `rec`, as `Reply::Auto` writes it.
fn auto_response(rec: &Recorded) -> Vec<u8> {
    let req: Value = serde_json::from_slice(&rec.body).unwrap_or(Value::Null);
    let path = rec.target.split('?').next().unwrap_or("");
    let model = req["model"].as_str().unwrap_or("");
    response_bytes(&mock_json(path, model, &req))
}

fn response_bytes(body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A well-formed chat completion nobody asked for.
fn unsolicited() -> Vec<u8> {
    response_bytes(&json!({
        "id": "chatcmpl-unsolicited", "object": "chat.completion", "created": CREATED,
        "model": "openai/UNSOLICITED",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "echo: UNSOLICITED"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }))
}

/// How many requests the upstream received whose body carries `tag`.
fn received(mock: &MockUpstream, tag: &str) -> usize {
    mock.requests()
        .iter()
        .filter(|r| contains(&r.body, tag.as_bytes()))
        .count()
}

/// Sends requests `ids`, each on a connection of its own and one after the
/// other; each must get its own answer, and reach the upstream once.
fn each_on_its_own_connection(
    gw: &Gateway,
    mock: &MockUpstream,
    ids: std::ops::Range<usize>,
    translated: bool,
) {
    for i in ids {
        // Fixed width: no tag is part of another.
        let tag = format!("client-{i:03}");
        let req = if translated {
            message(&tag)
        } else {
            post("/v1/chat/completions", &chat(&tag), &[])
        };
        let r = gw.connect().request(req).unwrap();
        assert_eq!(r.status, 200, "client {i}: {}", r.text());
        assert!(
            !contains(&r.body, b"UNSOLICITED"),
            "client {i}: {}",
            r.text()
        );
        assert_eq!(echoed(&r), format!("echo: {tag}"), "client {i}");
        assert_eq!(received(mock, &tag), 1, "client {i}'s request upstream");
    }
}

/// The upstream answers the first request on its first connection, then
/// 150 ms later writes a second response nobody asked for on the idle
/// connection; every other request gets the mock's own answer.
fn poisons_its_first_connection_later() -> MockUpstream {
    MockUpstream::with(|info| {
        if info.conn != 0 || info.index_in_conn != 0 {
            return Reply::Auto;
        }
        Reply::Scripted(Writer::new(|s, rec| {
            s.write_all(&auto_response(rec))?;
            thread::sleep(Duration::from_millis(150));
            s.write_all(&unsolicited())?;
            Ok(true)
        }))
    })
}

#[test]
fn an_unsolicited_response_on_an_idle_connection_reaches_no_client() {
    each_driver(|d| {
        for translated in [false, true] {
            let mock = poisons_its_first_connection_later();
            let gw = Gateway::start(GatewayOpts::env(d, &mock));
            each_on_its_own_connection(&gw, &mock, 0..1, translated);
            // Well within the pool's idle limits, after the stray response.
            thread::sleep(Duration::from_millis(350));
            each_on_its_own_connection(&gw, &mock, 1..13, translated);
            assert_eq!(mock.connections(), 2, "the poisoned connection was dropped");
        }
    });
}

#[test]
fn bytes_right_after_a_response_in_the_same_write_reach_no_client() {
    each_driver(|d| {
        for translated in [false, true] {
            let mock = MockUpstream::with(|info| {
                if info.conn != 0 || info.index_in_conn != 0 {
                    return Reply::Auto;
                }
                Reply::Scripted(Writer::new(|s, rec| {
                    let mut both = auto_response(rec);
                    both.extend_from_slice(&unsolicited());
                    s.write_all(&both)?;
                    Ok(true)
                }))
            });
            let gw = Gateway::start(GatewayOpts::env(d, &mock));
            each_on_its_own_connection(&gw, &mock, 0..13, translated);
            assert_eq!(mock.connections(), 2, "the poisoned connection was dropped");
        }
    });
}

/// An upstream that closes each connection right after its response (with
/// no `connection: close`): the gateway pools it, finds it closed before
/// the next request and sends that on a fresh one, once.
#[test]
fn a_connection_closed_while_idle_is_not_used_and_nothing_is_resent() {
    let mock = MockUpstream::with(|_| {
        Reply::Scripted(Writer::new(|s, rec| {
            s.write_all(&auto_response(rec))?;
            Ok(false)
        }))
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut c = gw.connect();
        for i in 0..4 {
            let tag = format!("{d:?}-idle-close-{i}");
            let r = c
                .request(post("/v1/chat/completions", &chat(&tag), &[]))
                .unwrap();
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(echoed(&r), format!("echo: {tag}"));
            assert_eq!(received(&mock, &tag), 1, "request {i} upstream");
            // The upstream's FIN is in before the next request.
            thread::sleep(Duration::from_millis(50));
        }
    });
}

/// On every upstream connection, the first request is answered and the
/// second is read and then dropped without a byte of response.
fn reads_then_drops_the_second_request() -> MockUpstream {
    MockUpstream::with(|info| {
        if info.index_in_conn == 0 {
            Reply::Auto
        } else {
            Reply::CloseBeforeResponse
        }
    })
}

#[test]
fn a_post_read_and_dropped_on_a_reused_connection_is_not_sent_twice() {
    each_driver(|d| {
        let mock = reads_then_drops_the_second_request();
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut c = gw.connect();
        let r = c
            .request(post("/v1/chat/completions", &chat("first"), &[]))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        // On the pooled connection, which the upstream reads and drops: it
        // may have done (and billed) the work, so it is not sent again.
        let r = c
            .request(post("/v1/chat/completions", &chat("second"), &[]))
            .unwrap();
        let e = r.assert_openai_error(502);
        assert_eq!(e["code"], "upstream_closed", "{e}");
        assert_eq!(received(&mock, "second"), 1, "the POST was re-sent");
        assert_eq!(mock.connections(), 1);
        // The client connection carries on, on a fresh upstream connection.
        let r = c
            .request(post("/v1/chat/completions", &chat("third"), &[]))
            .unwrap();
        assert_eq!(echoed(&r), "echo: third");
        gw.assert_healthy();
    });
}

#[test]
fn a_get_read_and_dropped_on_a_reused_connection_is_resent_once() {
    each_driver(|d| {
        let mock = reads_then_drops_the_second_request();
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut c = gw.connect();
        for i in 0..3 {
            let r = c
                .request("GET /v1/models HTTP/1.1\r\nhost: t\r\n\r\n")
                .unwrap();
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.json()["data"][0]["id"], "mock-model-a");
        }
        // 0: fresh; 1, 2: the pooled connection drops it, re-sent fresh.
        assert_eq!(mock.connections(), 3);
        assert_eq!(mock.requests().len(), 5);
    });
}

/// When each upstream connection whose request carries `stall` saw its peer
/// close (`None`: it did not within 10 s).
type Closings = Arc<Mutex<Vec<Option<Instant>>>>;

/// Requests whose body carries `stall` get no answer: the mock waits (up to
/// 10 s) for the gateway to close the connection and notes when it did.
fn stalls_until_closed() -> (MockUpstream, Closings) {
    let closings: Closings = Arc::default();
    let noted = closings.clone();
    let mock = MockUpstream::with(move |info| {
        if !contains(info.body, b"stall") {
            return Reply::Auto;
        }
        let noted = noted.clone();
        Reply::Scripted(Writer::new(move |s, _| {
            noted.lock().unwrap().push(wait_for_close(s));
            Ok(false)
        }))
    });
    (mock, closings)
}

/// When the peer closed or reset `s` (`None`: not within 10 s).
fn wait_for_close(s: &mut TcpStream) -> Option<Instant> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => Some(Instant::now()),
        Err(e) if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::TimedOut => {
            Some(Instant::now())
        }
        _ => None,
    }
}

#[test]
fn clients_that_leave_before_the_head_release_their_upstream_at_once() {
    each_driver(|d| {
        let (mock, closings) = stalls_until_closed();
        let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let extra =
            format!("[limits]\nmax_in_flight_per_upstream = 4\n\n[admin]\nlisten = \"{admin}\"\n");
        let gw = Gateway::start(GatewayOpts::config(d, config_for(&mock, "", &extra)));
        let mut clients: Vec<Client> = (0..12)
            .map(|i| {
                let mut c = gw.connect();
                c.send(post(
                    "/v1/chat/completions",
                    &chat(&format!("stall {i}")),
                    &[],
                ))
                .unwrap();
                c
            })
            .collect();
        // The first four hold the provider's slots (the rest were refused).
        let deadline = Instant::now() + Duration::from_secs(2);
        while mock.requests().len() < 4 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(mock.requests().len(), 4);
        thread::sleep(Duration::from_millis(1000));
        clients.clear();
        let left = Instant::now();

        // A new request gets through within a couple of seconds...
        let served = loop {
            let r = gw.post("/v1/chat/completions", &chat("after"));
            if r.status == 200 {
                break left.elapsed();
            }
            assert_eq!(r.status, 503, "{}", r.text());
            assert!(
                left.elapsed() < Duration::from_secs(2),
                "the slots are still held: {}",
                r.text()
            );
            thread::sleep(Duration::from_millis(50));
        };
        eprintln!("{d:?}: served {served:?} after the clients left");
        // ...and every abandoned upstream connection was closed promptly.
        let deadline = Instant::now() + Duration::from_secs(2);
        while closings.lock().unwrap().len() < 4 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let closings = closings.lock().unwrap().clone();
        assert_eq!(closings.len(), 4, "{closings:?}");
        for at in closings {
            let at = at.expect("an abandoned upstream connection was never closed");
            let after = at.saturating_duration_since(left);
            assert!(after < Duration::from_secs(1), "closed {after:?} after");
        }
        assert_eq!(received(&mock, "stall"), 4, "nothing was re-sent");
        // Each is logged as the client's own close (499, as nginx has it).
        let deadline = Instant::now() + Duration::from_secs(2);
        while requests_with_status(admin, "499") < 4 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(requests_with_status(admin, "499"), 4);
        gw.assert_healthy();
    });
}

/// A configured model's error response is held back (a retry may replace
/// it) while its body is read ahead; a client that leaves meanwhile has the
/// upstream let go at once, not when the body's idle limit runs out.
#[test]
fn a_client_that_leaves_inside_a_held_error_body_releases_its_upstream() {
    let closings: Closings = Arc::default();
    let noted = closings.clone();
    let mock = MockUpstream::with(move |_| {
        let noted = noted.clone();
        Reply::Scripted(Writer::new(move |s, _| {
            s.write_all(
                b"HTTP/1.1 503 Mock\r\ncontent-type: application/json\r\n\
                  content-length: 100\r\n\r\n{\"error\":",
            )?;
            noted.lock().unwrap().push(wait_for_close(s));
            Ok(false)
        }))
    });
    each_driver(|d| {
        closings.lock().unwrap().clear();
        let models = "[[models]]\nname = \"m\"\nprovider = \"openai\"\n";
        let gw = Gateway::start(GatewayOpts::config(d, config_for(&mock, "", models)));
        let mut c = gw.connect();
        let body = r#"{"model":"m","messages":[{"role":"user","content":"held"}]}"#;
        c.send(post("/v1/chat/completions", body, &[])).unwrap();
        thread::sleep(Duration::from_millis(300));
        drop(c);
        let left = Instant::now();
        let deadline = left + Duration::from_secs(2);
        while closings.lock().unwrap().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let at = closings.lock().unwrap().first().copied().flatten();
        let at = at.expect("the upstream connection was not closed");
        let after = at.saturating_duration_since(left);
        assert!(after < Duration::from_secs(1), "closed {after:?} after");
        gw.assert_healthy();
    });
}

/// The sum of `shardgate_requests_total` samples with this status, from
/// the admin listener at `admin`.
fn requests_with_status(admin: std::net::SocketAddr, status: &str) -> u64 {
    let r = Client::connect(admin)
        .unwrap()
        .request("GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 200);
    let label = format!("status=\"{status}\"");
    r.text()
        .lines()
        .filter(|l| l.starts_with("shardgate_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A client that pipelined its next request while the first waits for a
/// slow head makes its socket readable, but it is still there: both
/// requests are answered, in order.
#[test]
fn a_client_that_pipelined_its_next_request_is_not_taken_for_gone() {
    let mock = MockUpstream::with(|info| {
        if contains(info.body, b"slow") {
            thread::sleep(Duration::from_millis(300));
        }
        Reply::Auto
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut c = gw.connect();
        let first = post("/v1/chat/completions", &chat("slow one"), &[]);
        c.send(first + &post("/v1/chat/completions", &chat("two"), &[]))
            .unwrap();
        let r = c.read_response().unwrap();
        assert_eq!(echoed(&r), "echo: slow one");
        let r = c.read_response().unwrap();
        assert_eq!(echoed(&r), "echo: two");
        // And the same with the pipelined request arriving during the wait.
        c.send(post("/v1/chat/completions", &chat("slow three"), &[]))
            .unwrap();
        thread::sleep(Duration::from_millis(100));
        c.send(post("/v1/chat/completions", &chat("four"), &[]))
            .unwrap();
        assert_eq!(echoed(&c.read_response().unwrap()), "echo: slow three");
        assert_eq!(echoed(&c.read_response().unwrap()), "echo: four");
    });
}
