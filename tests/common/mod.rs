//! Shared helpers for the gateway integration tests: a scriptable mock
//! upstream on std threads (parsing with `shardgate::http1`, recording every
//! request byte for byte), a launcher for the real `shardgate` binary under
//! either monoio driver, and a raw-socket HTTP/1.1 client with deadlines.
//!
//! Every socket read here has a timeout, so no test can hang on a stuck peer.

#![allow(dead_code)]

pub mod answers;
pub mod redis;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shardgate::http1::{
    parse_request, parse_response, request_framing, response_framing, BodyKind, ChunkLimits,
    ChunkedDecoder, HeadLimits, Parsed, RequestHead, ResponseHead,
};

pub mod embed;

/// Default deadline for one response read by the tests.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The key the gateway is configured to send upstream.
pub const PROVIDER_KEY: &str = "sk-provider-test-key";
/// A fixed `created` so mock responses are deterministic.
pub const CREATED: u64 = 1_700_000_000;

// ---------------------------------------------------------------------------
// Mock upstream
// ---------------------------------------------------------------------------

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Index of the upstream connection (0-based, in accept order).
    pub conn: usize,
    /// Index of this request on its connection.
    pub index_in_conn: usize,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The body exactly as received (dechunked if it was chunked).
    pub body: Vec<u8>,
}

impl Recorded {
    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream body is JSON")
    }
}

/// How an SSE response is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseFraming {
    Chunked,
    ContentLength,
    CloseDelimited,
}

/// What the mock answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// OpenAI-shaped JSON for the path (or the default SSE stream when the
    /// body asks for `"stream": true`), echoing the request's `model`.
    Auto,
    /// An SSE stream of `events` data events then `[DONE]`, `delay` apart.
    Sse {
        events: usize,
        delay: Duration,
        framing: SseFraming,
    },
    /// This status with an OpenAI error body, plus extra headers.
    Error {
        status: u16,
        message: String,
        headers: Vec<(String, String)>,
    },
    /// This status, content type, extra headers and body, verbatim, with a
    /// content-length (an Anthropic-shaped answer, a whole SSE stream).
    Raw {
        status: u16,
        content_type: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request, then close without a byte of response.
    CloseBeforeResponse,
    /// Send a head announcing a body, part of it, then close.
    PartialThenClose,
    /// A chunked SSE stream of `events` data events, then close (no
    /// `[DONE]`, no last chunk).
    SseCut { events: usize },
    /// Send this status with a head announcing a body, part of it, then
    /// say nothing more for this long (then close).
    PartialThenStall(u16, Duration),
    /// Read the request and say nothing for this long (then close).
    Stall(Duration),
    /// A chunked SSE stream of `events` data events of about 1 KiB each,
    /// then `[DONE]`, written as fast as the peer takes them: a response
    /// larger than any socket buffer, never held whole in memory.
    SseBulk { events: usize },
    /// A hostile upstream's turn: the writer gets the connection (the
    /// request already read whole) and writes, waits or shuts down as it
    /// likes. `Ok(true)`: read the next request on this connection;
    /// `Ok(false)` or `Err`: close it.
    Scripted(Writer),
}

/// What a [`Reply::Scripted`] does with the connection.
pub type WriterFn = dyn Fn(&mut TcpStream, &Recorded) -> io::Result<bool> + Send + Sync;

/// A [`Reply::Scripted`] writer.
#[derive(Clone)]
pub struct Writer(pub Arc<WriterFn>);

impl Writer {
    pub fn new(
        f: impl Fn(&mut TcpStream, &Recorded) -> io::Result<bool> + Send + Sync + 'static,
    ) -> Writer {
        Writer(Arc::new(f))
    }

    /// Writes `bytes` verbatim, then reads the next request (`keep`) or
    /// closes.
    pub fn bytes(bytes: impl Into<Vec<u8>>, keep: bool) -> Writer {
        let bytes = bytes.into();
        Writer::new(move |s, _| {
            s.write_all(&bytes)?;
            Ok(keep)
        })
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer(..)")
    }
}

/// Facts the script sees to choose a reply.
pub struct RequestInfo<'a> {
    pub conn: usize,
    pub index_in_conn: usize,
    pub seq: usize,
    pub path: &'a str,
    pub body: &'a [u8],
}

type Script = Arc<dyn Fn(&RequestInfo) -> Reply + Send + Sync>;

struct MockState {
    requests: Mutex<Vec<Recorded>>,
    /// The gateway's own fetches of the model list (its `user-agent`
    /// says so), kept apart so a test's count of proxied requests is not
    /// raced by them.
    list_fetches: Mutex<Vec<Recorded>>,
    /// Whether the script answers the list fetches too (else they get the
    /// mock's model list, whatever the script does to other requests).
    script_list_fetches: AtomicBool,
    connections: AtomicUsize,
    events_sent: AtomicUsize,
    script: Mutex<Script>,
}

/// A mock OpenAI-compatible upstream on loopback, one thread per connection.
#[derive(Clone)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    state: Arc<MockState>,
}

impl MockUpstream {
    /// A mock answering every request with [`Reply::Auto`].
    pub fn start() -> MockUpstream {
        MockUpstream::with(|_| Reply::Auto)
    }

    /// A mock answering per `script`.
    pub fn with(script: impl Fn(&RequestInfo) -> Reply + Send + Sync + 'static) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock upstream");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(MockState {
            requests: Mutex::new(Vec::new()),
            list_fetches: Mutex::new(Vec::new()),
            script_list_fetches: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            events_sent: AtomicUsize::new(0),
            script: Mutex::new(Arc::new(script)),
        });
        let st = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let conn = st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                thread::spawn(move || {
                    let _ = serve_mock_connection(stream, conn, &st);
                });
            }
        });
        MockUpstream { addr, state }
    }

    /// Replaces the script for the requests that follow.
    pub fn set_script(&self, script: impl Fn(&RequestInfo) -> Reply + Send + Sync + 'static) {
        *self.state.script.lock().unwrap() = Arc::new(script);
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// SSE data events written so far (all requests).
    pub fn events_sent(&self) -> usize {
        self.state.events_sent.load(Ordering::SeqCst)
    }

    /// The last recorded request.
    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the mock received a request")
    }

    /// The gateway's own fetches of this provider's model list.
    pub fn list_fetches(&self) -> Vec<Recorded> {
        self.state.list_fetches.lock().unwrap().clone()
    }

    /// Lets the script answer the gateway's list fetches too.
    pub fn script_list_fetches(self) -> MockUpstream {
        self.state.script_list_fetches.store(true, Ordering::SeqCst);
        self
    }
}

/// The `user-agent` of the gateway's own model-list requests.
pub const LIST_FETCH_AGENT: &str = "shardgate (model list)";

fn serve_mock_connection(mut stream: TcpStream, conn: usize, st: &MockState) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::new();
    let limits = HeadLimits {
        max_head_bytes: 1 << 20,
        max_headers: 1000,
    };
    for index_in_conn in 0.. {
        // Head.
        let mut head = RequestHead::default();
        loop {
            match parse_request(&buf, &limits, &mut head) {
                Ok(Parsed::Complete) => break,
                Ok(Parsed::Partial) => {}
                Err(_) => return Ok(()),
            }
            if read_some(&mut stream, &mut buf)? == 0 {
                return Ok(());
            }
        }
        let framing =
            request_framing(&buf, &head).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let head_len = head.head_len;
        let (body, consumed) = match framing.body {
            BodyKind::Length(n) => {
                let end = head_len + n as usize;
                while buf.len() < end {
                    if read_some(&mut stream, &mut buf)? == 0 {
                        return Ok(());
                    }
                }
                (buf[head_len..end].to_vec(), end)
            }
            BodyKind::Chunked => {
                let mut dec = ChunkedDecoder::new(ChunkLimits::default());
                let mut body = Vec::new();
                let mut fed = head_len;
                loop {
                    let p = dec
                        .feed(&buf[fed..], |d| body.extend_from_slice(d))
                        .map_err(|e| io::Error::other(format!("{e:?}")))?;
                    fed += p.consumed;
                    if p.done {
                        break;
                    }
                    if read_some(&mut stream, &mut buf)? == 0 {
                        return Ok(());
                    }
                }
                (body, fed)
            }
            _ => (Vec::new(), head_len),
        };
        let s = |sp: shardgate::http1::Span| String::from_utf8_lossy(sp.get(&buf)).into_owned();
        let rec = Recorded {
            conn,
            index_in_conn,
            method: s(head.method),
            target: s(head.target),
            headers: head
                .headers
                .iter()
                .map(|h| (s(h.name), s(h.value)))
                .collect(),
            body,
        };
        buf.drain(..consumed);
        let list_fetch = rec.header("user-agent") == Some(LIST_FETCH_AGENT);
        let seq = if list_fetch {
            st.list_fetches.lock().unwrap().push(rec.clone());
            usize::MAX
        } else {
            let mut reqs = st.requests.lock().unwrap();
            reqs.push(rec.clone());
            reqs.len() - 1
        };
        let path = rec.target.split('?').next().unwrap_or("").to_string();
        let script = st.script.lock().unwrap().clone();
        let reply = if list_fetch && !st.script_list_fetches.load(Ordering::SeqCst) {
            Reply::Auto
        } else {
            script(&RequestInfo {
                conn,
                index_in_conn,
                seq,
                path: &path,
                body: &rec.body,
            })
        };
        if !answer(&mut stream, &rec, &path, reply, st)? {
            return Ok(());
        }
    }
    Ok(())
}

fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut tmp = [0u8; 16 * 1024];
    let n = stream.read(&mut tmp)?;
    buf.extend_from_slice(&tmp[..n]);
    Ok(n)
}

/// Writes the reply; false when the connection must end.
fn answer(
    stream: &mut TcpStream,
    rec: &Recorded,
    path: &str,
    reply: Reply,
    st: &MockState,
) -> io::Result<bool> {
    let form = form_fields(rec);
    let req: Value = match &form {
        Some(fields) => {
            // An upload: the fields as JSON, each file as its size.
            let object = fields.iter().map(|f| {
                let value = match &f.filename {
                    Some(_) => json!(f.value.len()),
                    None => json!(String::from_utf8_lossy(&f.value)),
                };
                (f.name.clone(), value)
            });
            Value::Object(object.collect())
        }
        None => serde_json::from_slice(&rec.body).unwrap_or(Value::Null),
    };
    let model = req["model"].as_str().unwrap_or("").to_string();
    let reply = match reply {
        Reply::Auto if req["stream"] == json!(true) => Reply::Sse {
            events: 3,
            delay: Duration::ZERO,
            framing: SseFraming::Chunked,
        },
        r => r,
    };
    match reply {
        Reply::Scripted(w) => (w.0)(stream, rec),
        Reply::Auto => {
            let body = mock_json(path, &model, &req).to_string();
            write_simple(stream, 200, &[], body.as_bytes())?;
            Ok(true)
        }
        Reply::Error {
            status,
            message,
            headers,
        } => {
            let body = json!({"error": {"message": message, "type": "mock_error", "param": null, "code": "mock_code"}})
                .to_string();
            write_simple(stream, status, &headers, body.as_bytes())?;
            Ok(true)
        }
        Reply::Sse {
            events,
            delay,
            framing,
        } => {
            let evs: Vec<String> = (0..events)
                .map(|i| format!("data: {}\n\n", mock_event(path, &model, i)))
                .chain(std::iter::once("data: [DONE]\n\n".to_string()))
                .collect();
            let mut head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                    .to_string();
            match framing {
                SseFraming::Chunked => head.push_str("transfer-encoding: chunked\r\n"),
                SseFraming::ContentLength => head.push_str(&format!(
                    "content-length: {}\r\n",
                    evs.iter().map(|e| e.len()).sum::<usize>()
                )),
                SseFraming::CloseDelimited => head.push_str("connection: close\r\n"),
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            for (i, ev) in evs.iter().enumerate() {
                if i > 0 && !delay.is_zero() {
                    thread::sleep(delay);
                }
                match framing {
                    SseFraming::Chunked => {
                        stream.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())?
                    }
                    _ => stream.write_all(ev.as_bytes())?,
                }
                if i < events {
                    st.events_sent.fetch_add(1, Ordering::SeqCst);
                }
            }
            if framing == SseFraming::Chunked {
                stream.write_all(b"0\r\n\r\n")?;
            }
            Ok(framing != SseFraming::CloseDelimited)
        }
        Reply::Raw {
            status,
            content_type,
            mut headers,
            body,
        } => {
            headers.insert(0, ("content-type".into(), content_type));
            write_head_and_body(stream, status, &headers, &body)?;
            Ok(true)
        }
        Reply::CloseBeforeResponse => {
            let _ = stream.shutdown(Shutdown::Both);
            Ok(false)
        }
        Reply::PartialThenClose => {
            stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"partial\":",
            )?;
            thread::sleep(Duration::from_millis(50));
            let _ = stream.shutdown(Shutdown::Both);
            Ok(false)
        }
        Reply::SseCut { events } => {
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")?;
            for i in 0..events {
                let ev = format!("data: {}\n\n", mock_event(path, &model, i));
                stream.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())?;
                st.events_sent.fetch_add(1, Ordering::SeqCst);
            }
            thread::sleep(Duration::from_millis(50));
            let _ = stream.shutdown(Shutdown::Both);
            Ok(false)
        }
        Reply::PartialThenStall(status, d) => {
            stream.write_all(
                format!("HTTP/1.1 {status} Mock\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"error\":").as_bytes(),
            )?;
            thread::sleep(d);
            Ok(false)
        }
        Reply::Stall(d) => {
            thread::sleep(d);
            Ok(false)
        }
        Reply::SseBulk { events } => {
            // One event, chunk-framed once, written in blocks of 64.
            const BLOCK: usize = 64;
            let mut ev = mock_event(path, &model, 0);
            ev["choices"][0]["delta"]["content"] = json!("x".repeat(900));
            let ev = format!("data: {ev}\n\n");
            let chunk = format!("{:x}\r\n{ev}\r\n", ev.len());
            let block = chunk.repeat(BLOCK);
            // A small send buffer: once the peer stops taking the stream,
            // it blocks here after little data, not megabytes of kernel memory.
            socket2::SockRef::from(&*stream).set_send_buffer_size(64 * 1024)?;
            stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            )?;
            let mut left = events;
            while left > 0 {
                let n = left.min(BLOCK);
                stream.write_all(&block.as_bytes()[..n * chunk.len()])?;
                st.events_sent.fetch_add(n, Ordering::SeqCst);
                left -= n;
            }
            stream.write_all(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")?;
            Ok(true)
        }
    }
}

fn write_simple(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut all = vec![("content-type".to_string(), "application/json".to_string())];
    all.extend_from_slice(headers);
    write_head_and_body(stream, status, &all, body)
}

fn write_head_and_body(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} Mock\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)
}

fn usage() -> Value {
    json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12})
}

/// The deterministic JSON answer for a path.
pub fn mock_json(path: &str, model: &str, req: &Value) -> Value {
    let api = path.strip_prefix("/v1").unwrap_or(path);
    match api {
        "/chat/completions" => {
            let last = req["messages"]
                .as_array()
                .and_then(|m| m.last())
                .and_then(|m| m["content"].as_str())
                .unwrap_or("");
            json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED,
                "model": model, "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("echo: {last}"), "refusal": null},
                             "logprobs": null, "finish_reason": "stop"}],
                "usage": usage(),
            })
        }
        "/completions" => json!({
            "id": "cmpl-mock", "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"text": "mock completion", "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage(),
        }),
        "/embeddings" => json!({
            "object": "list", "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 1.0]}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        }),
        "/responses" => json!({
            "id": "resp_mock", "object": "response", "created_at": CREATED, "status": "completed",
            "model": model, "error": null, "incomplete_details": null, "instructions": null,
            "metadata": {}, "parallel_tool_calls": true, "temperature": 1.0, "top_p": 1.0,
            "tool_choice": "auto", "tools": [],
            "output": [{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "mock response", "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }),
        "/images/generations" => json!({
            "created": CREATED,
            "data": [{"b64_json": "aW1hZ2U=", "revised_prompt": req["prompt"]}],
            "usage": {"input_tokens": 9, "output_tokens": 272, "total_tokens": 281,
                      "input_tokens_details": {"text_tokens": 9, "image_tokens": 0}},
        }),
        "/audio/transcriptions" | "/audio/translations" => json!({
            "text": format!("mock transcript of {} bytes by {model}", req["file"]),
            "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 5, "total_tokens": 19,
                      "input_token_details": {"text_tokens": 0, "audio_tokens": 14}},
        }),
        "/images/edits" | "/images/variations" => json!({
            "created": CREATED,
            "data": [{"b64_json": "aW1hZ2U="}],
            "usage": {"input_tokens": 50, "output_tokens": 272, "total_tokens": 322,
                      "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}},
        }),
        "/moderations" => json!({
            "id": "modr-mock", "model": model,
            "results": [{"flagged": false, "categories": {"violence": false},
                         "category_scores": {"violence": 0.001}}],
        }),
        "/rerank" => json!({
            "id": "rerank-mock", "model": model,
            "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
            "meta": {"billed_units": {"search_units": 1}},
        }),
        p if p.starts_with("/responses/") => json!({
            "id": p.trim_start_matches("/responses/").split('/').next().unwrap_or(""),
            "object": "response", "created_at": CREATED, "status": "completed",
            "model": "gpt-4o-mini", "output": [], "path": p,
        }),
        "/models" => json!({
            "object": "list",
            "data": [
                {"id": "mock-model-a", "object": "model", "created": CREATED, "owned_by": "mock"},
                {"id": "mock-model-b", "object": "model", "created": CREATED, "owned_by": "mock"},
            ],
        }),
        _ => {
            json!({"error": {"message": format!("mock: no route {path}"), "type": "invalid_request_error", "param": null, "code": null}})
        }
    }
}

/// One field of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct FormField {
    pub name: String,
    pub filename: Option<String>,
    pub value: Vec<u8>,
}

/// The fields of a request's `multipart/form-data` body, parsed here
/// independently of the gateway's reader: split on the boundary line, each
/// part's head cut at its empty line. `None` for a body of another type.
pub fn form_fields(rec: &Recorded) -> Option<Vec<FormField>> {
    let ct = rec.header("content-type")?;
    let boundary = ct
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"')
        .to_string();
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    let delimiter = format!("--{boundary}");
    let body = &rec.body;
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let find = |from: usize| finder.find(&body[from..]).map(|i| i + from);
    let mut fields = Vec::new();
    let mut at = find(0)? + delimiter.len();
    while body[at..].starts_with(b"\r\n") {
        let next = find(at)?;
        // The part is between the CRLF after one delimiter and the CRLF
        // before the next.
        let part = &body[at + 2..next - 2];
        let split = memchr::memmem::find(part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let param = |key: &str| {
            head.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(&format!("{key}=\"")))
                .map(|v| v.split('"').next().unwrap_or("").to_string())
        };
        fields.push(FormField {
            name: param("name")?,
            filename: param("filename"),
            value: part[split + 4..].to_vec(),
        });
        at = next + delimiter.len();
    }
    Some(fields)
}

/// Data of stream event `i`.
pub fn mock_event(path: &str, model: &str, i: usize) -> Value {
    if path.ends_with("/completions") && !path.ends_with("/chat/completions") {
        json!({"id": "cmpl-mock", "object": "text_completion", "created": CREATED, "model": model,
               "choices": [{"text": format!("tok{i}"), "index": 0, "logprobs": null, "finish_reason": null}]})
    } else {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
               "system_fingerprint": "fp_mock",
               "choices": [{"index": 0, "delta": {"content": format!("tok{i}")}, "logprobs": null, "finish_reason": null}]})
    }
}

// ---------------------------------------------------------------------------
// Gateway launcher
// ---------------------------------------------------------------------------

/// The monoio driver a gateway runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Legacy,
}

pub const DRIVERS: [Driver; 2] = [Driver::IoUring, Driver::Legacy];

/// Runs `body` once per driver, naming the driver if it panics.
pub fn each_driver(body: impl Fn(Driver)) {
    for d in DRIVERS {
        eprintln!("--- driver {d:?}");
        body(d);
    }
}

/// How to start a gateway.
#[derive(Clone, Debug)]
pub struct GatewayOpts {
    pub driver: Driver,
    /// TOML config; when `None` the zero-config environment is used.
    pub config: Option<String>,
    /// `OPENAI_BASE_URL` (zero-config only); `None` leaves it unset.
    pub base_url: Option<String>,
    /// `OPENAI_API_KEY` (zero-config only).
    pub api_key: Option<String>,
    pub shards: usize,
}

impl GatewayOpts {
    /// Zero-config, pointing the `openai` provider at `mock`.
    pub fn env(driver: Driver, mock: &MockUpstream) -> GatewayOpts {
        GatewayOpts {
            driver,
            config: None,
            base_url: Some(mock.base_url()),
            api_key: Some(PROVIDER_KEY.into()),
            shards: 1,
        }
    }

    /// With a config file of this text.
    pub fn config(driver: Driver, toml: impl Into<String>) -> GatewayOpts {
        GatewayOpts {
            driver,
            config: Some(toml.into()),
            base_url: None,
            api_key: None,
            shards: 1,
        }
    }
}

/// A unique scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "shardgate-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `shardgate` process, killed on drop.
pub struct Gateway {
    pub addr: SocketAddr,
    child: Child,
    dir: TempDir,
    pub driver: Driver,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `Command` for the gateway binary with a clean provider environment:
/// every variable that enables a zero-config provider is removed, so a
/// developer's own keys cannot add providers to a test.
pub fn gateway_command() -> Command {
    use shardgate::providers::catalog::CATALOG;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardgate"));
    for entry in CATALOG {
        if let Some(key) = entry.key_var {
            cmd.env_remove(key);
        }
        for v in entry.url_vars {
            cmd.env_remove(v.var());
        }
    }
    for v in [
        "OPENAI_API_VERSION",
        "MONOIO_FORCE_LEGACY_DRIVER",
        "SHARDGATE_ADMIN_TOKEN",
        "SHARDGATE_REDIS_URL",
    ] {
        cmd.env_remove(v);
    }
    // Each gateway keeps its keys and spend in a directory of its own (a
    // test that restarts one on the same state passes STATE_DIRECTORY).
    static STATES: AtomicUsize = AtomicUsize::new(0);
    cmd.env(
        "STATE_DIRECTORY",
        std::env::temp_dir().join(format!(
            "shardgate-it-state-{}-{}",
            std::process::id(),
            STATES.fetch_add(1, Ordering::SeqCst)
        )),
    );
    cmd
}

impl Gateway {
    pub fn start(opts: GatewayOpts) -> Gateway {
        // The free port may be taken between the probe and the bind: retry.
        let mut last = String::new();
        for _ in 0..3 {
            match Gateway::try_start(&opts) {
                Ok(g) => return g,
                Err(e) => last = e,
            }
        }
        panic!("gateway did not start: {last}");
    }

    fn try_start(opts: &GatewayOpts) -> Result<Gateway, String> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Gateway::spawn_at(opts, addr, &[], &[])
    }

    /// Starts a gateway on `addr` with extra command-line `args` and
    /// environment `env` (e.g. `--share-port` beside a running instance,
    /// `NOTIFY_SOCKET`), and waits until it answers `/health` and has logged
    /// that it listens. No retry: the caller chose the port.
    /// Starts one on a free port with these environment variables (the
    /// keys' `key_env` secrets, say).
    pub fn start_with_env(opts: &GatewayOpts, env: &[(&str, &str)]) -> Gateway {
        let addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Gateway::spawn_at(opts, addr, &[], env).unwrap()
    }

    pub fn spawn_at(
        opts: &GatewayOpts,
        addr: SocketAddr,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Gateway, String> {
        let dir = TempDir::new("gw");
        let mut cmd = gateway_command();
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--shards")
            .arg(opts.shards.to_string())
            .args(args);
        if let Some(text) = &opts.config {
            cmd.arg("--config").arg(dir.write("shardgate.toml", text));
        }
        // A taken admin address stops the start-up: a gateway whose test
        // does not give it one gets a port of its own, so that tests run
        // side by side.
        let admin_given = args.contains(&"--admin-listen")
            || opts.config.as_ref().is_some_and(|t| t.contains("[admin]"));
        if !admin_given {
            cmd.arg("--admin-listen").arg("127.0.0.1:0");
        }
        if let Some(u) = &opts.base_url {
            cmd.env("OPENAI_BASE_URL", u);
        }
        if let Some(k) = &opts.api_key {
            cmd.env("OPENAI_API_KEY", k);
        }
        if opts.driver == Driver::Legacy {
            cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
        }
        cmd.env("STATE_DIRECTORY", dir.0.join("state"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(dir.0.join("stderr.log")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let mut gw = Gateway {
            addr,
            child,
            dir,
            driver: opts.driver,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = gw.child.try_wait() {
                return Err(format!("exited with {status}: {}", gw.log()));
            }
            // Shards answer before the main thread logs their drivers: wait
            // for both. The log also tells this process from another one
            // answering on a shared port.
            if gw.log().contains("listening on") {
                if let Ok(mut c) = Client::connect(addr) {
                    if let Ok(r) = c.request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n") {
                        if r.status == 200 {
                            break;
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("/health never answered: {}", gw.log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
        if opts.driver == Driver::IoUring && !gw.log().contains("io_uring driver") {
            eprintln!("note: io_uring is unavailable here; the gateway fell back to epoll");
        }
        if opts.driver == Driver::Legacy {
            let log = gw.log();
            assert!(
                log.contains("epoll driver"),
                "MONOIO_FORCE_LEGACY_DRIVER=1 must give the epoll driver: {log}"
            );
        }
        Ok(gw)
    }

    /// What the gateway wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr).expect("connect to the gateway")
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Asserts the gateway still answers `/health` on a new connection.
    pub fn assert_healthy(&self) {
        let r = self
            .connect()
            .request("GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
            .expect("health after error");
        assert_eq!(r.status, 200, "gateway no longer healthy: {}", self.log());
    }

    /// One POST with a JSON body on a fresh connection.
    pub fn post(&self, path: &str, body: &str) -> Response {
        self.connect()
            .request(post(path, body, &[]))
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log()))
    }

    pub fn get(&self, path: &str) -> Response {
        self.connect()
            .request(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }
}

impl Gateway {
    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `sig` (e.g. `libc::SIGTERM`) to the gateway process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; it is not reaped until
        // `wait_exit` or drop, so the pid cannot have been reused.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.child.id());
    }

    /// The exit status if the process ends within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The config file the gateway was started with (config mode only).
    pub fn config_path(&self) -> PathBuf {
        self.dir.0.join("shardgate.toml")
    }

    /// Replaces the config file's text (the gateway rereads it on SIGHUP).
    /// Written to a temporary name and renamed, so a reload never reads a
    /// half-written file.
    pub fn rewrite_config(&self, text: &str) {
        let tmp = self.dir.0.join("shardgate.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    /// Waits until the stderr log contains `needle` `count` times or more.
    pub fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().matches(needle).count() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A POST request with a Content-Length body and extra header lines.
pub fn post(path: &str, body: &str, extra: &[&str]) -> String {
    let mut s = format!(
        "POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s
}

// ---------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------

/// A parsed response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, dechunked.
    pub body: Vec<u8>,
    /// The exact bytes of head and body as received.
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an OpenAI-shaped error body with exactly the four fields.
    pub fn assert_openai_error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        let e = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("no error object: {v}"));
        let mut keys: Vec<_> = e.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["code", "message", "param", "type"], "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
        v["error"].clone()
    }
}

/// A blocking client on one connection; every read has a deadline.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            eof: false,
        })
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Sends `req` and reads one response.
    pub fn request(&mut self, req: impl AsRef<[u8]>) -> io::Result<Response> {
        self.send(req)?;
        self.read_response()
    }

    /// Response bytes received and not yet consumed (after a failed read:
    /// whether the peer sent anything at all).
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Reads more bytes before `deadline`; 0 at EOF.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut tmp = [0u8; 16 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads until the received bytes contain `needle`; returns them all.
    pub fn read_until(&mut self, needle: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while !contains(&self.buf, needle) {
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF before {:?}", String::from_utf8_lossy(needle)),
                ));
            }
        }
        Ok(self.buf.clone())
    }

    /// Reads everything until the peer closes (a reset counts as closed).
    pub fn read_to_close(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(e),
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// True when the peer has closed the connection (EOF or reset) within `timeout`,
    /// with no further bytes sent.
    pub fn is_closed(&mut self, timeout: Duration) -> bool {
        matches!(self.read_to_close(timeout), Ok(rest) if rest.is_empty())
    }

    /// Reads one response (an interim 1xx is returned on its own).
    pub fn read_response(&mut self) -> io::Result<Response> {
        self.read_response_within(READ_TIMEOUT, false)
    }

    pub fn read_response_within(
        &mut self,
        timeout: Duration,
        to_head: bool,
    ) -> io::Result<Response> {
        let deadline = Instant::now() + timeout;
        let mut head = ResponseHead::default();
        let limits = HeadLimits {
            max_head_bytes: 1 << 20,
            max_headers: 1000,
        };
        loop {
            match parse_response(&self.buf, &limits, &mut head) {
                Ok(Parsed::Complete) => break,
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(io::Error::other(format!("bad response head: {e:?}"))),
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "EOF inside a response head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        }
        let s =
            |sp: shardgate::http1::Span, b: &[u8]| String::from_utf8_lossy(sp.get(b)).into_owned();
        let headers: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|h| (s(h.name, &self.buf), s(h.value, &self.buf)))
            .collect();
        let status = head.status;
        let head_len = head.head_len;
        let framing = response_framing(&self.buf, &head, to_head)
            .map_err(|e| io::Error::other(format!("bad response framing: {e:?}")))?;
        let (body, end) = match framing.body {
            BodyKind::Empty => (Vec::new(), head_len),
            BodyKind::Length(n) => {
                let end = head_len + n as usize;
                while self.buf.len() < end {
                    if self.fill(deadline)? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "EOF inside a content-length body",
                        ));
                    }
                }
                (self.buf[head_len..end].to_vec(), end)
            }
            BodyKind::Chunked => {
                let mut dec = ChunkedDecoder::new(ChunkLimits::default());
                let mut body = Vec::new();
                let mut fed = head_len;
                loop {
                    let p = dec
                        .feed(&self.buf[fed..], |d| body.extend_from_slice(d))
                        .map_err(|e| io::Error::other(format!("bad chunked response: {e:?}")))?;
                    fed += p.consumed;
                    if p.done {
                        break;
                    }
                    if self.fill(deadline)? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "EOF inside a chunked body",
                        ));
                    }
                }
                (body, fed)
            }
            BodyKind::CloseDelimited => {
                while self.fill(deadline)? != 0 {}
                (self.buf[head_len..].to_vec(), self.buf.len())
            }
        };
        let raw: Vec<u8> = self.buf.drain(..end).collect();
        Ok(Response {
            status,
            headers,
            body,
            raw,
        })
    }
}

/// A process's resident set (VmRSS), KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A process's open file descriptors.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: ").map(|d| d.to_string()))
        .collect()
}

/// A config with one provider `openai` at `mock` plus `extra` TOML (tables
/// go after; top-level keys must be in `top`).
pub fn config_for(mock: &MockUpstream, top: &str, extra: &str) -> String {
    format!(
        "{top}\n[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n[providers.openai]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n{extra}\n",
        mock.base_url()
    )
}

/// Runs a Python script (an official-SDK check) with `args`, with the SDKs'
/// own key and base-URL variables removed so only the arguments steer it;
/// killed after `timeout`.
pub fn run_python(script: &str, args: &[&str], timeout: Duration) -> std::process::Output {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).args(args);
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Runs a Node script of `tests/sdk/node` (an official-SDK check) with
/// `args`, as [`run_python`] runs Python's.
pub fn run_node(script: &str, args: &[&str], timeout: Duration) -> std::process::Output {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/node");
    let mut cmd = std::process::Command::new("node");
    cmd.current_dir(dir).arg(script).args(args);
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// True when `node` runs and the official Node SDKs are installed in
/// `tests/sdk/node` (`npm ci --prefix tests/sdk/node`, which `.ci/run`
/// does); otherwise a SKIP line for `test`, or a panic under
/// `SHARDGATE_REQUIRE_NODE_SDK=1` (set by `.ci/run` once they are).
pub fn node_sdks_available(test: &str) -> bool {
    let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/node/node_modules");
    let installed = ["openai", "@anthropic-ai/sdk"].iter().all(|m| {
        std::path::Path::new(modules)
            .join(m)
            .join("package.json")
            .exists()
    });
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !(installed && node) {
        if std::env::var("SHARDGATE_REQUIRE_NODE_SDK").as_deref() == Ok("1") {
            panic!("SHARDGATE_REQUIRE_NODE_SDK=1 but node or the Node SDKs in tests/sdk/node are missing");
        }
        println!("SKIP {test}: node or tests/sdk/node/node_modules missing (npm ci --prefix tests/sdk/node)");
    }
    installed && node
}

/// True when `python3` can import `modules` (e.g. "openai, anthropic"); when
/// it cannot, prints a SKIP line for `test`, or panics if
/// `SHARDGATE_REQUIRE_SDK=1` (CI installs the SDKs and sets it).
pub fn python_modules_available(test: &str, modules: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("SHARDGATE_REQUIRE_SDK").as_deref() == Ok("1") {
            panic!("SHARDGATE_REQUIRE_SDK=1 but `python3 -c \"import {modules}\"` fails");
        }
        println!("SKIP {test}: python3 cannot import {modules}");
    }
    ok
}

/// The admin listener's `/metrics` text.
pub fn scrape(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// One body-less call to the admin listener with extra `headers`: its
/// status and body.
pub fn admin_request(
    admin: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
) -> (u16, String) {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n{extra}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// The sum of the samples named `name` carrying every label in `labels`
/// (0 when there is none).
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// The JSON `data:` payloads of an SSE body (`[DONE]` left out).
pub fn data_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Runs the Python checker `tests/fixtures/{fixture}` (an independent
/// implementation: botocore's signer, `cryptography`'s RS256) with `case`
/// as JSON on stdin; the verdict it prints (`{"ok": …}`). Panics when the
/// checker itself fails.
pub fn python_verdict(fixture: &str, case: &Value) -> Value {
    let script = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    python_json(&[&script], case)
}

/// Runs `python3 args…` with `case` as JSON on stdin; the JSON it prints.
/// Panics when the script fails.
pub fn python_json(args: &[&str], case: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(case.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 {:?} failed: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
