//! Request smuggling and malformed requests against the real gateway, over
//! raw sockets, under both drivers: CL.TE, TE.CL and TE.TE obfuscations,
//! header injection, oversize heads, bodies that are not UTF-8 or nest too
//! deep, bad chunk sizes and bare LFs in chunked framing.
//!
//! Every case carries a smuggled request (`…/SMUGGLED…`) behind the
//! attack. The invariants checked for each: the client gets the expected
//! status (an OpenAI-shaped JSON error for a refusal), the connection is
//! closed where the framing can no longer be trusted, the upstream never
//! receives the smuggled bytes nor a head with a stray CR, LF or NUL, and
//! the gateway keeps serving.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;

/// A mock upstream that records every byte it receives, per connection,
/// and answers each request (heads framed by Content-Length, as the
/// gateway always sends) with a small chat completion.
#[derive(Clone)]
struct RawUpstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawUpstream {
    fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let rec = received.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let rec = rec.clone();
                let slot = {
                    let mut r = rec.lock().unwrap();
                    r.push(Vec::new());
                    r.len() - 1
                };
                thread::spawn(move || serve_raw(stream, &rec, slot));
            }
        });
        RawUpstream { addr, received }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn all_bytes(&self) -> Vec<u8> {
        self.received.lock().unwrap().concat()
    }
}

fn serve_raw(mut stream: TcpStream, rec: &Mutex<Vec<Vec<u8>>>, slot: usize) {
    use std::io::Write;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut pending: Vec<u8> = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        rec.lock().unwrap()[slot].extend_from_slice(&tmp[..n]);
        pending.extend_from_slice(&tmp[..n]);
        // Answer each complete Content-Length request.
        while let Some(end) = complete_request(&pending) {
            pending.drain(..end);
            let body = br#"{"id":"chatcmpl-raw","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err() {
                return;
            }
        }
    }
}

/// The length of the first request in `buf` if it is complete.
fn complete_request(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
    (buf.len() >= head_end + len).then_some(head_end + len)
}

const SMUGGLED: &str = "GET /v1/SMUGGLED HTTP/1.1\r\nhost: t\r\n\r\n";
const CHAT: &str = "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\n";
const JSON: &str = r#"{"model":"gpt-4o","messages":[]}"#;

/// What the first response must be.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A refusal with this status and an OpenAI error; the connection closes.
    RefuseAndClose(u16),
    /// A refusal with this status and an OpenAI error; the connection may
    /// stay open (the framing was sound).
    Refuse(u16),
    /// Served (200); any following bytes are the gateway's to parse as the
    /// next request, which is then the gateway's own 404, never forwarded.
    Served,
}

struct Case {
    name: &'static str,
    request: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, request: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        request: request.into(),
        expect,
    }
}

/// A chunked body holding `JSON`, then the smuggled request.
fn chunked_json() -> String {
    format!("{:x}\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}", JSON.len())
}

fn corpus() -> Vec<Case> {
    use Expect::*;
    let ch = chunked_json();
    let mut cases = vec![
        // CL.TE: a front end that reads Content-Length would forward the
        // smuggled request as body; a back end reading chunked stops at 0.
        case(
            "CL.TE",
            format!("{CHAT}content-length: {}\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}", 5 + SMUGGLED.len()),
            RefuseAndClose(400),
        ),
        // TE.CL: the reverse.
        case(
            "TE.CL",
            format!("{CHAT}transfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n{ch}"),
            RefuseAndClose(400),
        ),
        case(
            "TE.CL, CL first and TE list",
            format!("{CHAT}content-length: 4\r\ntransfer-encoding: identity, chunked\r\n\r\n{ch}"),
            RefuseAndClose(400),
        ),
        case("TE xchunked", format!("{CHAT}transfer-encoding: xchunked\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE chunked-false", format!("{CHAT}transfer-encoding: chunked-false\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE chunked, identity", format!("{CHAT}transfer-encoding: chunked, identity\r\n\r\n{ch}"), RefuseAndClose(400)),
        case(
            "TE duplicated, chunked then identity",
            format!("{CHAT}transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n\r\n{ch}"),
            RefuseAndClose(400),
        ),
        case(
            "TE duplicated, bogus then chunked",
            format!("{CHAT}transfer-encoding: bogus\r\ntransfer-encoding: chunked\r\n\r\n{ch}"),
            RefuseAndClose(400),
        ),
        case("TE: space before colon", format!("{CHAT}transfer-encoding : chunked\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE: tab before colon", format!("{CHAT}transfer-encoding\t: chunked\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE: obs-fold value", format!("{CHAT}transfer-encoding:\r\n chunked\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE: folded onto another header", format!("{CHAT}x-a: b\r\n transfer-encoding: chunked\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE: NUL after chunked", format!("{CHAT}transfer-encoding: chunked\0\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE: vertical tab", format!("{CHAT}transfer-encoding: \x0bchunked\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("TE: quoted", format!("{CHAT}transfer-encoding: \"chunked\"\r\n\r\n{ch}"), RefuseAndClose(400)),
        // Optional whitespace and case are legal: real chunked, and the
        // bytes after the last chunk are the client's next request.
        case("TE: tab after colon", format!("{CHAT}transfer-encoding:\tchunked\r\n\r\n{ch}"), Served),
        case("TE: leading space", format!("{CHAT}transfer-encoding:  chunked\r\n\r\n{ch}"), Served),
        case("TE: trailing whitespace", format!("{CHAT}transfer-encoding: chunked \t\r\n\r\n{ch}"), Served),
        case("TE: upper case", format!("{CHAT}Transfer-Encoding: CHUNKED\r\n\r\n{ch}"), Served),
        case(
            "CL body then pipelined request",
            format!("{CHAT}content-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()),
            Served,
        ),
        // Header injection.
        case("bare CR in a value", format!("{CHAT}x-a: a\rtransfer-encoding: chunked\r\n\r\n{ch}"), RefuseAndClose(400)),
        case("NUL in a value", format!("{CHAT}x-a: a\0b\r\ncontent-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()), RefuseAndClose(400)),
        case("NUL in a name", format!("{CHAT}x-\0a: b\r\ncontent-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()), RefuseAndClose(400)),
        case("space in a name", format!("{CHAT}x a: b\r\ncontent-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()), RefuseAndClose(400)),
        case("empty name", format!("{CHAT}: b\r\ncontent-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()), RefuseAndClose(400)),
        case("CRLF in the target", format!("POST /v1/chat/completions\r\nx: HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()), RefuseAndClose(400)),
        case("space in the target", format!("POST /v1/chat/completions HTTP/1.1 HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()), RefuseAndClose(400)),
        // A bare LF ends a line (RFC 9112 §2.2 allows it), so this is two
        // headers, not one value holding an LF; what goes upstream is CRLF.
        case(
            "bare LF between headers",
            format!("{CHAT}x-a: a\nx-injected: 1\r\ncontent-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len()),
            Served,
        ),
        // Oversize heads.
        case("one 64 KiB header", format!("{CHAT}x-big: {}\r\ncontent-length: 2\r\n\r\n{{}}{SMUGGLED}", "a".repeat(64 * 1024)), RefuseAndClose(431)),
        case("1000 headers", format!("{CHAT}{}content-length: 2\r\n\r\n{{}}{SMUGGLED}", "x-h: 1\r\n".repeat(1000)), RefuseAndClose(431)),
        case("64 KiB request line", format!("POST /v1/chat/completions?{} HTTP/1.1\r\nhost: t\r\n\r\n{SMUGGLED}", "q".repeat(64 * 1024)), RefuseAndClose(431)),
        // Bodies.
        case("chunk size -1", format!("{CHAT}transfer-encoding: chunked\r\n\r\n-1\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}"), RefuseAndClose(400)),
        case("chunk size 0x10", format!("{CHAT}transfer-encoding: chunked\r\n\r\n0x10\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}"), RefuseAndClose(400)),
        case("chunk size with inner space", format!("{CHAT}transfer-encoding: chunked\r\n\r\n1 0\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}"), RefuseAndClose(400)),
        case("chunk size overflowing u64", format!("{CHAT}transfer-encoding: chunked\r\n\r\n1{}\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}", "0".repeat(20)), RefuseAndClose(400)),
        case("chunk size empty", format!("{CHAT}transfer-encoding: chunked\r\n\r\n\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}"), RefuseAndClose(400)),
        case("chunk data longer than its size", format!("{CHAT}transfer-encoding: chunked\r\n\r\n2\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}"), RefuseAndClose(400)),
        case(
            "bare LF after chunk data",
            format!("{CHAT}transfer-encoding: chunked\r\n\r\n{:x}\r\n{JSON}\n0\r\n\r\n{SMUGGLED}", JSON.len()),
            RefuseAndClose(400),
        ),
        case(
            "bare LF after chunk size",
            format!("{CHAT}transfer-encoding: chunked\r\n\r\n{:x}\n{JSON}\r\n0\r\n\r\n{SMUGGLED}", JSON.len()),
            RefuseAndClose(400),
        ),
        case(
            "bare LF ending the last chunk",
            format!("{CHAT}transfer-encoding: chunked\r\n\r\n{:x}\r\n{JSON}\r\n0\n\n{SMUGGLED}", JSON.len()),
            RefuseAndClose(400),
        ),
        case(
            "smuggled request in a chunk extension",
            format!("{CHAT}transfer-encoding: chunked\r\n\r\n{:x};x=\"\r\n{SMUGGLED}\"\r\n{JSON}\r\n0\r\n\r\n", JSON.len()),
            RefuseAndClose(400),
        ),
    ];
    // Bodies whose framing is sound but whose JSON is not: refused, and
    // the connection is still in sync, so it may stay open.
    let bad_utf8 = b"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\xc0\xaf\"}]}".to_vec();
    let nested_open = format!(r#"{{"model":"gpt-4o","messages":{}"#, "[".repeat(100_000));
    let nested_balanced = format!(
        r#"{{"model":"gpt-4o","messages":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let nested_objects = format!(
        r#"{{"model":"gpt-4o","x":{}1{}}}"#,
        r#"{"a":"#.repeat(50_000),
        "}".repeat(50_000)
    );
    for (name, body) in [
        ("invalid UTF-8 in a string", bad_utf8),
        ("100k unclosed [", nested_open.into_bytes()),
        ("100k nested arrays", nested_balanced.into_bytes()),
        ("50k nested objects", nested_objects.into_bytes()),
        (
            "lone surrogate escape",
            br#"{"model":"gpt-4o","messages":"\ud800"}"#.to_vec(),
        ),
        (
            "duplicate model",
            br#"{"model":"gpt-4o","model":"SMUGGLED","messages":[]}"#.to_vec(),
        ),
    ] {
        let mut req = format!("{CHAT}content-length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(&body);
        req.extend_from_slice(SMUGGLED.as_bytes());
        cases.push(case(name, req, Refuse(400)));
    }
    cases
}

/// True when every CR in `head` starts a CRLF, every LF ends one, and no NUL.
fn head_is_clean(head: &[u8]) -> bool {
    head.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => head.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && head[i - 1] == b'\r',
        0 => false,
        _ => true,
    })
}

/// The heads (up to each blank line) in an upstream byte stream of
/// Content-Length requests.
fn heads(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some(end) = complete_request(stream) {
        let head_end = stream.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        out.push(&stream[..head_end]);
        stream = &stream[end..];
    }
    out
}

fn run_case(gw: &Gateway, mock: &RawUpstream, c: &Case) {
    let name = c.name;
    let mut client = gw.connect();
    // The gateway may answer and close before it has read the whole
    // attack; a failed write then is fine, the response is what counts.
    let _ = client.send(&c.request);
    let r = client
        .read_response()
        .unwrap_or_else(|e| panic!("{name}: no response: {e}\n{}", gw.log()));
    match c.expect {
        Expect::RefuseAndClose(status) | Expect::Refuse(status) => {
            let e = r.assert_openai_error(status);
            assert_eq!(e["type"], "invalid_request_error", "{name}");
        }
        Expect::Served => assert_eq!(r.status, 200, "{name}: {}", r.text()),
    }
    match c.expect {
        Expect::RefuseAndClose(_) => {
            assert_eq!(r.header("connection"), Some("close"), "{name}");
            assert!(
                client.is_closed(Duration::from_secs(5)),
                "{name}: left open"
            );
        }
        // The smuggled request is the client's next one: the gateway's own 404.
        Expect::Served | Expect::Refuse(_) => {
            let next = client
                .read_response()
                .unwrap_or_else(|e| panic!("{name}: the follow-up got no response: {e}"));
            let e = next.assert_openai_error(404);
            assert!(
                e["message"].as_str().unwrap().contains("SMUGGLED"),
                "{name}"
            );
        }
    }
    let upstream = mock.all_bytes();
    assert!(
        !contains(&upstream, b"SMUGGLED"),
        "{name}: the upstream received the smuggled bytes:\n{}",
        String::from_utf8_lossy(&upstream)
    );
    for head in heads(&upstream) {
        assert!(
            head_is_clean(head),
            "{name}: malformed head upstream: {:?}",
            String::from_utf8_lossy(head)
        );
    }
    gw.assert_healthy();
}

#[test]
fn smuggling_and_malformed_requests_are_refused_and_never_reach_the_upstream() {
    let mock = RawUpstream::start();
    let corpus = corpus();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts {
            driver: d,
            config: None,
            base_url: Some(mock.base_url()),
            api_key: Some("x".into()),
            shards: 1,
        });
        let served_before = heads(&mock.all_bytes()).len();
        for c in &corpus {
            run_case(&gw, &mock, c);
        }
        let served = heads(&mock.all_bytes()).len() - served_before;
        let expected = corpus
            .iter()
            .filter(|c| matches!(c.expect, Expect::Served))
            .count();
        assert_eq!(served, expected, "only the sound requests went upstream");
        // And it still proxies.
        let r = gw.post("/v1/chat/completions", JSON);
        assert_eq!(r.status, 200, "{}", r.text());
    });
}
