//! The gateway's HTTP/1.1 front door over raw sockets, under both drivers:
//! heads trickling in a byte at a time, pipelining, chunked request bodies
//! (extensions, trailers), `Expect: 100-continue`, and the refusals — every
//! framing violation is a 400 that closes the connection, limits give
//! 413/431, bad JSON gives 400 — each with an OpenAI-shaped error body and
//! with the gateway still serving new connections afterwards.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const CHAT_PATH: &str = "/v1/chat/completions";

#[test]
fn a_request_arriving_one_byte_at_a_time_is_served() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let body = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"slow"}]}"#;
        let req = post(CHAT_PATH, body, &["User-Agent: trickle/1"]);
        let mut c = gw.connect();
        for b in req.as_bytes() {
            c.send([*b]).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["model"], "gpt-4o");
        let seen = mock.last();
        assert_eq!(
            seen.body,
            body.replacen("openai/gpt-4o", "gpt-4o", 1).as_bytes()
        );
        assert_eq!(seen.header("user-agent"), Some("trickle/1"));
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut batch = String::new();
        batch += &post(CHAT_PATH, r#"{"model":"first","messages":[]}"#, &[]);
        batch += "GET /health HTTP/1.1\r\nhost: t\r\n\r\n";
        batch += "POST /v1/embeddings HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n";
        for part in [r#"{"model":"#, r#""second","input":1}"#] {
            batch += &format!("{:x}\r\n{part}\r\n", part.len());
        }
        batch += "0\r\n\r\n";
        batch += "GET /v1/nope HTTP/1.1\r\nhost: t\r\n\r\n";
        batch += &post(CHAT_PATH, r#"{"model":"third","messages":[]}"#, &[]);
        let mut c = gw.connect();
        c.send(batch).unwrap();
        let r1 = c.read_response().unwrap();
        assert_eq!(
            (r1.status, r1.json()["model"].clone()),
            (200, "first".into())
        );
        let r2 = c.read_response().unwrap();
        assert_eq!((r2.status, r2.text()), (200, r#"{"status":"ok"}"#.into()));
        let r3 = c.read_response().unwrap();
        assert_eq!(r3.status, 200, "{}", r3.text());
        assert_eq!(r3.json()["object"], "list");
        assert_eq!(r3.json()["model"], "second");
        r4_not_found(c.read_response().unwrap());
        let r5 = c.read_response().unwrap();
        assert_eq!(
            (r5.status, r5.json()["model"].clone()),
            (200, "third".into())
        );
    });
}

fn r4_not_found(r: Response) {
    let e = r.assert_openai_error(404);
    assert_eq!(e["code"], "not_found");
}

#[test]
fn chunked_request_bodies_with_extensions_and_trailers_are_decoded() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let parts = [
            r#"{"model":"openai/"#,
            r#"gpt-4o","messages":[{"role":"user","#,
            r#""content":"chunked"}]}"#,
        ];
        let exts = [";a=1", " ; name=\"quoted value\"", ";flag"];
        let mut req = format!(
            "POST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        for (p, e) in parts.iter().zip(exts) {
            req += &format!("{:X}{e}\r\n{p}\r\n", p.len());
        }
        req += "0;last=yes\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
        let r = gw.connect().request(req).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "echo: chunked"
        );
        let seen = mock.last();
        let expected = parts.concat().replacen("openai/gpt-4o", "gpt-4o", 1);
        assert_eq!(String::from_utf8_lossy(&seen.body), expected);
        assert_eq!(
            seen.header("content-length"),
            Some(&*expected.len().to_string())
        );
        assert!(seen.header("transfer-encoding").is_none());
        assert!(
            seen.header("x-checksum").is_none(),
            "trailers are not headers"
        );
    });
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let body = r#"{"model":"gpt-4o","messages":[]}"#;
        for chunked in [false, true] {
            let framing = if chunked {
                "transfer-encoding: chunked".to_string()
            } else {
                format!("content-length: {}", body.len())
            };
            let mut c = gw.connect();
            c.send(format!(
                "POST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\nExpect: 100-continue\r\n{framing}\r\n\r\n"
            ))
            .unwrap();
            let interim = c
                .read_response_within(Duration::from_secs(5), false)
                .unwrap_or_else(|e| panic!("chunked={chunked}: no 100 Continue: {e}"));
            assert_eq!(interim.status, 100, "chunked={chunked}");
            assert!(interim.body.is_empty());
            if chunked {
                c.send(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()))
                    .unwrap();
            } else {
                c.send(body).unwrap();
            }
            let r = c.read_response().unwrap();
            assert_eq!(r.status, 200, "chunked={chunked}: {}", r.text());
            assert_eq!(mock.last().body, body.as_bytes());
            assert!(
                mock.last().header("expect").is_none(),
                "expect is hop-by-hop"
            );
        }
    });
}

/// Framing and syntax violations: each must be 400 and close the connection.
const VIOLATIONS: &[(&str, &str)] = &[
    (
        "CL and TE together",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "differing duplicate CL",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}x",
    ),
    (
        "differing CL in one list",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 2, 3\r\n\r\n{}x",
    ),
    (
        "signed CL (+)",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: +2\r\n\r\n{}",
    ),
    (
        "signed CL (-)",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: -2\r\n\r\n",
    ),
    (
        "non-numeric CL",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: two\r\n\r\n{}",
    ),
    (
        "hex CL",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 0x2\r\n\r\n{}",
    ),
    (
        "TE on HTTP/1.0",
        "POST /v1/chat/completions HTTP/1.0\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ),
    (
        "TE not ending in chunked",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
    ),
    (
        "unknown TE",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: bogus\r\n\r\n",
    ),
    (
        "bad chunk size",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    ),
    (
        "overflowing chunk size",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n1ffffffffffffffff\r\n{}\r\n0\r\n\r\n",
    ),
    (
        "chunk size line ending in bare LF",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n",
    ),
    (
        "whitespace before the colon",
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length : 2\r\n\r\n{}",
    ),
    (
        "obs-fold",
        "GET /health HTTP/1.1\r\nhost: t\r\nx-folded: a\r\n  b\r\n\r\n",
    ),
    (
        "control character in a name",
        "GET /health HTTP/1.1\r\nhost: t\r\nx-bad\x01name: a\r\n\r\n",
    ),
    (
        "control character in a value",
        "GET /health HTTP/1.1\r\nhost: t\r\nx-bad: a\x01b\r\n\r\n",
    ),
    (
        "NUL in a value",
        "GET /health HTTP/1.1\r\nhost: t\r\nx-bad: a\x00b\r\n\r\n",
    ),
    (
        "space in the target",
        "GET /he alth HTTP/1.1\r\nhost: t\r\n\r\n",
    ),
    ("bad version", "GET /health HTTP/2.7\r\nhost: t\r\n\r\n"),
];

#[test]
fn framing_violations_are_400_and_close_the_connection() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let before = mock.requests().len();
        for (name, req) in VIOLATIONS {
            let mut c = gw.connect();
            c.send(req).unwrap();
            let r = c
                .read_response()
                .unwrap_or_else(|e| panic!("{name}: no response: {e}"));
            assert_eq!(r.status, 400, "{name}: {}", r.text());
            let e = r.assert_openai_error(400);
            assert_eq!(e["type"], "invalid_request_error", "{name}");
            assert_eq!(r.header("connection"), Some("close"), "{name}");
            assert!(
                c.is_closed(Duration::from_secs(5)),
                "{name}: connection left open"
            );
            gw.assert_healthy();
        }
        assert_eq!(
            mock.requests().len(),
            before,
            "a refused request reached the upstream"
        );
    });
}

#[test]
fn bodies_over_the_limit_are_413() {
    let mock = MockUpstream::start();
    let cfg = config_for(&mock, "", "[limits]\nmax_body_bytes = 64\n");
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        // Exactly at the limit is fine.
        let at_limit = format!("{:<64}", r#"{"model":"gpt-4o","messages":[]}"#);
        assert_eq!(at_limit.len(), 64);
        let r = gw.post(CHAT_PATH, &at_limit);
        assert_eq!(r.status, 200, "{}", r.text());

        // A Content-Length over the limit is refused before the body is read.
        let mut c = gw.connect();
        c.send(format!(
            "POST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\ncontent-length: 65\r\n\r\n"
        ))
        .unwrap();
        let e = c.read_response().unwrap().assert_openai_error(413);
        assert_eq!(e["code"], "payload_too_large");
        assert!(c.is_closed(Duration::from_secs(5)));

        // A chunked body growing over the limit.
        let mut req =
            format!("POST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n");
        for _ in 0..3 {
            req += &format!("20\r\n{}\r\n", " ".repeat(32));
        }
        req += "0\r\n\r\n";
        let mut c = gw.connect();
        c.send(req).unwrap();
        c.read_response().unwrap().assert_openai_error(413);
        assert!(c.is_closed(Duration::from_secs(5)));
        gw.assert_healthy();
    });
}

#[test]
fn heads_over_the_byte_or_count_limit_are_431() {
    let mock = MockUpstream::start();
    let cfg = config_for(
        &mock,
        "",
        "[limits]\nmax_head_bytes = 1024\nmax_headers = 16\n",
    );
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        let headers = |n: usize, len: usize| -> String {
            (0..n)
                .map(|i| format!("x-h{i}: {}\r\n", "v".repeat(len)))
                .collect()
        };
        // (case, extra header lines, expected status)
        let table = [
            ("15 headers + host, small", headers(15, 8), 200),
            ("one 2 KiB header", headers(1, 2048), 431),
            ("17 headers + host", headers(17, 1), 431),
            ("40 headers + host", headers(40, 1), 431),
        ];
        for (name, extra, status) in table {
            let mut c = gw.connect();
            c.send(format!("GET /health HTTP/1.1\r\nhost: t\r\n{extra}\r\n"))
                .unwrap();
            let r = c.read_response().unwrap_or_else(|e| panic!("{name}: {e}"));
            if status == 200 {
                assert_eq!(r.status, 200, "{name}: {}", r.text());
            } else {
                let e = r.assert_openai_error(status);
                assert_eq!(e["code"], "headers_too_large", "{name}");
                assert!(c.is_closed(Duration::from_secs(5)), "{name}");
            }
            gw.assert_healthy();
        }
    });
}

#[test]
fn bad_json_bodies_are_400_and_keep_the_connection() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let before = mock.requests().len();
        // (case, body, expected code, expected param)
        let table: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            (
                "truncated",
                r#"{"model":"gpt-4o","messages":["#,
                Some("invalid_json"),
                None,
            ),
            ("not JSON", "model=gpt-4o", Some("invalid_json"), None),
            (
                "trailing garbage",
                r#"{"model":"gpt-4o"} x"#,
                Some("invalid_json"),
                None,
            ),
            ("empty body", "", Some("invalid_json"), None),
            (
                "duplicate model",
                r#"{"model":"gpt-4o","messages":[],"model":"other"}"#,
                Some("invalid_json"),
                Some("model"),
            ),
            ("no model", r#"{"messages":[]}"#, None, Some("model")),
        ];
        let mut c = gw.connect();
        for &(name, body, code, param) in table {
            let r = c
                .request(post(CHAT_PATH, body, &[]))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let e = r.assert_openai_error(400);
            assert_eq!(e["code"].as_str(), code, "{name}: {e}");
            if let Some(p) = param {
                assert_eq!(e["param"], p, "{name}: {e}");
            }
        }
        // The connection survived every refusal.
        let ok = c
            .request(post(CHAT_PATH, r#"{"model":"gpt-4o"}"#, &[]))
            .unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(mock.requests().len(), before + 1);
    });
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut c = gw.connect();
        let table = [
            ("GET /v1/nope HTTP/1.1\r\nhost: t\r\n\r\n", 404, "not_found"),
            (
                "GET /v1/chat/completions HTTP/1.1\r\nhost: t\r\n\r\n",
                405,
                "method_not_allowed",
            ),
            (
                "DELETE /v1/models HTTP/1.1\r\nhost: t\r\n\r\n",
                405,
                "method_not_allowed",
            ),
        ];
        for (req, status, code) in table {
            let e = c.request(req).unwrap().assert_openai_error(status);
            assert_eq!(e["code"], code);
        }
        let v: Value = c
            .request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap()
            .json();
        assert_eq!(v["status"], "ok");
    });
}

#[test]
fn lenient_but_unambiguous_framing_is_accepted() {
    let mock = MockUpstream::start();
    let body = r#"{"model":"gpt-4o"}"#;
    let n = body.len();
    // (case, request)
    let table = [
        (
            "identical duplicate CL",
            format!("POST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\ncontent-length: {n}\r\ncontent-length: {n}\r\n\r\n{body}"),
        ),
        (
            "TE in mixed case",
            format!("POST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\nTransfer-Encoding: Chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "empty line before the request line",
            format!("\r\nPOST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\ncontent-length: {n}\r\n\r\n{body}"),
        ),
        (
            "HTTP/1.0 with content-length",
            format!("POST {CHAT_PATH} HTTP/1.0\r\ncontent-length: {n}\r\n\r\n{body}"),
        ),
    ];
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        for (name, req) in &table {
            let r = gw
                .connect()
                .request(req)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            assert_eq!(mock.last().body, body.as_bytes(), "{name}");
        }
    });
}

#[test]
fn expect_100_continue_over_the_limit_gets_413_without_100() {
    let mock = MockUpstream::start();
    let cfg = config_for(&mock, "", "[limits]\nmax_body_bytes = 64\n");
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        let mut c = gw.connect();
        c.send(format!(
            "POST {CHAT_PATH} HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 1000\r\n\r\n"
        ))
        .unwrap();
        c.read_response().unwrap().assert_openai_error(413);
    });
}
