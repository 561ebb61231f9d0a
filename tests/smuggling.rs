//! Request smuggling and malformed requests against the real gateway, over
//! raw sockets, under both drivers: CL.TE, TE.CL and TE.TE obfuscations,
//! header injection, oversize heads, bodies that are not UTF-8 or nest too
//! deep, bad chunk sizes and bare LFs in chunked framing, missing, repeated
//! and invalid Hosts, transfer codings other than a lone final chunked,
//! chunk extensions outside the grammar, and bodies on GET and HEAD (which
//! an upstream that ignores them would read as a second request).
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
        // Answer each complete Content-Length request, naming its model.
        while let Some(end) = complete_request(&pending) {
            let model = model_of(&pending[..end]);
            pending.drain(..end);
            let body = format!(
                r#"{{"id":"chatcmpl-raw","object":"chat.completion","created":0,"model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":"answer for {model}"}},"finish_reason":"stop"}}]}}"#
            );
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).is_err()
                || stream.write_all(body.as_bytes()).is_err()
            {
                return;
            }
        }
    }
}

/// The length of the first request in `buf` if it is complete. Like many
/// real upstreams, a GET or HEAD is taken to have no body whatever its
/// Content-Length says: bytes sent after its head are the next request.
fn complete_request(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let bodiless = head.starts_with("get ") || head.starts_with("head ");
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .filter(|_| !bodiless)
        .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
    (buf.len() >= head_end + len).then_some(head_end + len)
}

/// The `"model"` string of a request's JSON body, or `-` when it has none.
fn model_of(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    text.split_once(r#""model":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("-".into(), |(model, _)| model.to_string())
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
    /// Served (200), and the connection closes after it (HTTP/1.0 without
    /// keep-alive): any bytes after the request are never read.
    ServedAndClose,
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
            RefuseAndClose(501),
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
    cases.extend(host_cases());
    cases.extend(transfer_coding_cases());
    cases.extend(chunk_extension_cases());
    cases.extend(bodiless_method_cases());
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

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host, and any
/// Host has a valid value (`uri-host [ ":" port ]`).
fn host_cases() -> Vec<Case> {
    use Expect::*;
    let cl_json = format!("content-length: {}\r\n\r\n{JSON}{SMUGGLED}", JSON.len());
    let bare = "POST /v1/chat/completions HTTP/1.1\r\n";
    let http10 = "POST /v1/chat/completions HTTP/1.0\r\n";
    let with_host = |host: &str| format!("{bare}host: {host}\r\n{cl_json}");
    vec![
        case("no Host", format!("{bare}{cl_json}"), RefuseAndClose(400)),
        case(
            "two Hosts",
            format!("{CHAT}host: u\r\n{cl_json}"),
            RefuseAndClose(400),
        ),
        case(
            "two identical Hosts",
            format!("{CHAT}Host: t\r\n{cl_json}"),
            RefuseAndClose(400),
        ),
        case(
            "two Hosts in HTTP/1.0",
            format!("{http10}host: t\r\nhost: u\r\n{cl_json}"),
            RefuseAndClose(400),
        ),
        case("Host: a list", with_host("t, u"), RefuseAndClose(400)),
        case(
            "Host: a space inside",
            with_host("a b"),
            RefuseAndClose(400),
        ),
        case(
            "Host: a path",
            with_host("t/v1/SMUGGLED"),
            RefuseAndClose(400),
        ),
        case("Host: userinfo", with_host("user@t"), RefuseAndClose(400)),
        case(
            "Host: a port that is not digits",
            with_host("t:80x"),
            RefuseAndClose(400),
        ),
        case("Host: two ports", with_host("t:80:81"), RefuseAndClose(400)),
        case(
            "Host: an unbracketed IPv6 address",
            with_host("::1"),
            RefuseAndClose(400),
        ),
        case(
            "Host: an unclosed IPv6 literal",
            with_host("[::1"),
            RefuseAndClose(400),
        ),
        case(
            "Host: a bad percent escape",
            with_host("t%zz"),
            RefuseAndClose(400),
        ),
        case("Host: a quote", with_host("t\"x"), RefuseAndClose(400)),
        case("Host: obs-text", with_host("t\u{e9}"), RefuseAndClose(400)),
        case(
            "Host: name and port",
            with_host("api.example-1.com:8080"),
            Served,
        ),
        case(
            "Host: IPv6 literal and port",
            with_host("[::1]:8080"),
            Served,
        ),
        case("Host: percent-encoded reg-name", with_host("t%2Dx"), Served),
        case(
            "HTTP/1.0 without Host",
            format!("{http10}{cl_json}"),
            ServedAndClose,
        ),
    ]
}

/// RFC 9112 §6.1 and §6.3: the only transfer coding served is a single
/// final `chunked`. Another coding before it is not implemented (501); no
/// chunked at the end, or chunked twice, leaves the length unknowable (400).
fn transfer_coding_cases() -> Vec<Case> {
    use Expect::*;
    let ch = chunked_json();
    let te = |value: &str| format!("{CHAT}transfer-encoding: {value}\r\n\r\n{ch}");
    vec![
        case("TE gzip, chunked", te("gzip, chunked"), RefuseAndClose(501)),
        case(
            "TE deflate, chunked",
            te("deflate, chunked"),
            RefuseAndClose(501),
        ),
        case(
            "TE identity, chunked",
            te("identity, chunked"),
            RefuseAndClose(501),
        ),
        case(
            "TE GZIP , Chunked (case and OWS)",
            te("GZIP , Chunked"),
            RefuseAndClose(501),
        ),
        case(
            "TE gzip then chunked on two lines",
            format!("{CHAT}transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n{ch}"),
            RefuseAndClose(501),
        ),
        case("TE chunked, gzip", te("chunked, gzip"), RefuseAndClose(400)),
        case(
            "TE chunked, chunked",
            te("chunked, chunked"),
            RefuseAndClose(400),
        ),
        case(
            "TE chunked then chunked on two lines",
            format!("{CHAT}transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n{ch}"),
            RefuseAndClose(400),
        ),
        case("TE identity", te("identity"), RefuseAndClose(400)),
        case("TE gzip", te("gzip"), RefuseAndClose(400)),
        case("TE empty", te(""), RefuseAndClose(400)),
        case("TE only commas", te(" , ,"), RefuseAndClose(400)),
        case(
            "TE chunked with a parameter",
            te("chunked;q=1"),
            RefuseAndClose(400),
        ),
        // RFC 9110 §5.6.1: empty list elements are ignored.
        case(
            "TE empty elements around chunked",
            te(", chunked ,"),
            Served,
        ),
    ]
}

/// RFC 9112 §7.1.1: `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn chunk_extension_cases() -> Vec<Case> {
    use Expect::*;
    let with_ext = |ext: &str| {
        format!(
            "{CHAT}transfer-encoding: chunked\r\n\r\n{:x}{ext}\r\n{JSON}\r\n0\r\n\r\n{SMUGGLED}",
            JSON.len()
        )
    };
    vec![
        case("chunk ext: unterminated quoted string", with_ext(";a=\"abc"), RefuseAndClose(400)),
        case("chunk ext: quoted string ending in a backslash", with_ext(";a=\"abc\\\""), RefuseAndClose(400)),
        case(
            "chunk ext: unterminated quoted string on the last chunk",
            format!("{CHAT}transfer-encoding: chunked\r\n\r\n{:x}\r\n{JSON}\r\n0;a=\"x\r\n\r\n{SMUGGLED}", JSON.len()),
            RefuseAndClose(400),
        ),
        case("chunk ext: bare CR in a quoted string", with_ext(";a=\"x\ry\""), RefuseAndClose(400)),
        case("chunk ext: '@' in a name", with_ext(";a@b=1"), RefuseAndClose(400)),
        case("chunk ext: '\"' in a token value", with_ext(";a=b\"c"), RefuseAndClose(400)),
        case("chunk ext: space inside a token value", with_ext(";a=b c"), RefuseAndClose(400)),
        case("chunk ext: empty name", with_ext(";=1"), RefuseAndClose(400)),
        case("chunk ext: empty value", with_ext(";a="), RefuseAndClose(400)),
        case("chunk ext: no name after ';'", with_ext(";"), RefuseAndClose(400)),
        case("chunk ext: text after a quoted string", with_ext(";a=\"x\"y"), RefuseAndClose(400)),
        case("chunk ext: quoted-pair and BWS", with_ext(" ; a = \"q\\\"s;\" ;b;c=d"), Served),
    ]
}

/// RFC 9110 §9.3.1: content on a GET (or HEAD) has no defined meaning, and
/// upstreams that ignore it read it as the next request.
fn bodiless_method_cases() -> Vec<Case> {
    use Expect::*;
    let inner = smuggled_chat();
    vec![
        case(
            "GET /v1/models with a body holding a request",
            format!("GET /v1/models HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{inner}{SMUGGLED}", inner.len()),
            Refuse(400),
        ),
        case(
            "GET /v1/models with a chunked body",
            format!("GET /v1/models HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n{SMUGGLED}", inner.len()),
            Refuse(400),
        ),
        case(
            "HEAD /v1/models with a body",
            format!("HEAD /v1/models HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{inner}{SMUGGLED}", inner.len()),
            Refuse(400),
        ),
        case(
            "GET /health with a body",
            format!("GET /health HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{inner}{SMUGGLED}", inner.len()),
            Refuse(400),
        ),
        case(
            "GET /v1/models with content-length: 0",
            format!("GET /v1/models HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n{SMUGGLED}"),
            Served,
        ),
        case(
            "GET /v1/models with an empty chunked body",
            format!("GET /v1/models HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            Served,
        ),
    ]
}

/// A whole chat request for the smuggled model, to hide in another's body.
fn smuggled_chat() -> String {
    let body = r#"{"model":"openai/SMUGGLED","messages":[{"role":"user","content":"hi"}]}"#;
    format!(
        "{CHAT}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
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
    // A response to HEAD has no body, whatever its head announces.
    let is_head = c.request.starts_with(b"HEAD ");
    let r = client
        .read_response_within(READ_TIMEOUT, is_head)
        .unwrap_or_else(|e| panic!("{name}: no response: {e}\n{}", gw.log()));
    match c.expect {
        Expect::RefuseAndClose(status) | Expect::Refuse(status) if is_head => {
            assert_eq!(r.status, status, "{name}");
        }
        Expect::RefuseAndClose(status) | Expect::Refuse(status) => {
            let e = r.assert_openai_error(status);
            assert_eq!(e["type"], "invalid_request_error", "{name}");
        }
        Expect::Served | Expect::ServedAndClose => {
            assert_eq!(r.status, 200, "{name}: {}", r.text())
        }
    }
    match c.expect {
        Expect::ServedAndClose => {
            assert!(
                client.is_closed(Duration::from_secs(5)),
                "{name}: left open"
            );
        }
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
        let text = String::from_utf8_lossy(head).to_ascii_lowercase();
        if text.starts_with("get ") || text.starts_with("head ") {
            assert!(
                !text.contains("\r\ntransfer-encoding:")
                    && text
                        .lines()
                        .filter_map(|l| l.strip_prefix("content-length:"))
                        .all(|v| v.trim() == "0"),
                "{name}: a bodiless request went upstream framed with a body: {text:?}"
            );
        }
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
            .filter(|c| matches!(c.expect, Expect::Served | Expect::ServedAndClose))
            .count();
        assert_eq!(served, expected, "only the sound requests went upstream");
        // And it still proxies.
        let r = gw.post("/v1/chat/completions", JSON);
        assert_eq!(r.status, 200, "{}", r.text());
    });
}

/// A GET whose Content-Length body is a whole chat request: an upstream
/// that ignores GET bodies would answer that request too, and the answer
/// would wait on a pooled connection for the next client. The GET is
/// refused with its body read (the connection stays in sync), the hidden
/// request never reaches the upstream, and every later client, on its own
/// connection, gets the answer to its own request.
#[test]
fn a_get_body_holding_a_request_is_refused_and_no_later_client_gets_its_answer() {
    each_driver(|d| {
        let mock = RawUpstream::start();
        let gw = Gateway::start(GatewayOpts {
            driver: d,
            config: None,
            base_url: Some(mock.base_url()),
            api_key: Some("x".into()),
            shards: 1,
        });
        let inner = smuggled_chat();
        let mut attacker = gw.connect();
        let r = attacker
            .request(format!(
                "GET /v1/models HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{inner}",
                inner.len()
            ))
            .unwrap();
        r.assert_openai_error(400);
        assert_ne!(
            r.header("connection"),
            Some("close"),
            "the framing was sound"
        );
        // The same connection goes on with the attacker's next request.
        let models = attacker
            .request("GET /v1/models HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        assert_eq!(models.status, 200, "{}", models.text());
        for i in 0..12 {
            let body = format!(r#"{{"model":"openai/client-{i}","messages":[]}}"#);
            let r = gw.post("/v1/chat/completions", &body);
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(
                r.json()["choices"][0]["message"]["content"],
                format!("answer for client-{i}"),
                "client {i} got another request's answer"
            );
        }
        let upstream = mock.all_bytes();
        assert!(
            !contains(&upstream, b"SMUGGLED"),
            "the hidden request reached the upstream:\n{}",
            String::from_utf8_lossy(&upstream)
        );
    });
}
