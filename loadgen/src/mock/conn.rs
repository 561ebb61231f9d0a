//! One mock connection: read requests (keep-alive, pipelined requests answered
//! in order), route, apply the drawn fault and latency, write the response.
//! Invariant: a request's bytes are consumed only after its response is
//! written, so pipelined bytes behind it are never lost or reordered.

use super::bodies::{self, Endpoint, Reply};
use super::faults::Fault;
use super::MockConfig;
use crate::readbuf::ReadBuf;
use crate::rng::Rng;
use crate::wire::{self, BodyKind, ChunkedDecoder, RequestHead};
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::sync::Arc;

const MAX_HEAD: usize = 64 * 1024;

/// Per-executor state every connection on it shares.
struct Shard {
    config: Arc<MockConfig>,
    rng: RefCell<Rng>,
    embedding: String,
    next_id: Cell<u64>,
}

pub async fn accept_loop(config: Arc<MockConfig>, index: usize, ready: Sender<Result<(), String>>) {
    let listener = match TcpListener::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("bind {}: {e}", config.listen)));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let shard = Rc::new(Shard {
        rng: RefCell::new(Rng::new(config.seed.wrapping_add(index as u64))),
        embedding: bodies::embedding_json(config.embedding_dims),
        next_id: Cell::new(0),
        config,
    });
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve(stream, shard.clone())).detach();
            }
            // Out of descriptors or a connection aborted while queued: back off briefly.
            Err(_) => glommio::timer::sleep(std::time::Duration::from_millis(1)).await,
        }
    }
}

/// What happens to the connection after a response.
enum After {
    KeepAlive,
    Close,
    Reset,
}

struct Buffers {
    out: Vec<u8>,
    body: Vec<u8>,
    ends: Vec<usize>,
    chunked: Vec<u8>,
}

async fn serve(mut stream: TcpStream, shard: Rc<Shard>) {
    let _ = stream.set_nodelay(true);
    let mut input = ReadBuf::new(16 * 1024);
    let mut head = RequestHead::default();
    let mut bufs = Buffers { out: Vec::with_capacity(16 * 1024), body: Vec::new(), ends: Vec::new(), chunked: Vec::new() };
    loop {
        loop {
            match wire::parse_request(input.bytes(), &mut head) {
                Ok(true) => break,
                Ok(false) if input.bytes().len() < MAX_HEAD => {}
                _ => {
                    let _ = write_simple(&mut stream, &mut bufs, 400, "malformed or oversized request head", None, false).await;
                    return;
                }
            }
            if !matches!(input.fill(&mut stream).await, Ok(n) if n > 0) {
                return;
            }
        }
        let consumed = match head.body {
            Some(BodyKind::Length(n)) => {
                let total = head.head_len + n as usize;
                while input.bytes().len() < total {
                    if !matches!(input.fill(&mut stream).await, Ok(n) if n > 0) {
                        return;
                    }
                }
                total
            }
            Some(BodyKind::Chunked) => {
                let mut decoder = ChunkedDecoder::default();
                let mut pos = head.head_len;
                bufs.chunked.clear();
                loop {
                    let chunked = &mut bufs.chunked;
                    match decoder.feed(&input.bytes()[pos..], |d| chunked.extend_from_slice(d)) {
                        Ok(p) => {
                            pos += p.consumed;
                            if p.done {
                                break pos;
                            }
                        }
                        Err(_) => {
                            let _ = write_simple(&mut stream, &mut bufs, 400, "bad chunked body", None, false).await;
                            return;
                        }
                    }
                    if !matches!(input.fill(&mut stream).await, Ok(n) if n > 0) {
                        return;
                    }
                }
            }
            _ => head.head_len,
        };
        let chunked_body = std::mem::take(&mut bufs.chunked);
        let body = match head.body {
            Some(BodyKind::Chunked) => &chunked_body[..],
            _ => &input.bytes()[head.head_len..consumed],
        };
        let after = respond(&mut stream, input.bytes(), &head, body, &shard, &mut bufs).await;
        bufs.chunked = chunked_body;
        match after {
            After::KeepAlive => input.consume(consumed),
            After::Close => return,
            After::Reset => {
                reset_on_close(&stream);
                return;
            }
        }
    }
}

/// Makes the coming close send RST instead of FIN (SO_LINGER with zero timeout).
fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid, open socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[derive(serde::Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

async fn respond(
    stream: &mut TcpStream,
    buf: &[u8],
    head: &RequestHead,
    body: &[u8],
    shard: &Shard,
    bufs: &mut Buffers,
) -> After {
    let keep_alive = head.keep_alive;
    let target = &buf[head.target.clone()];
    if head.header(buf, "x-mock-echo-body") == Some(b"1") || target.starts_with(b"/mock/echo") {
        echo(buf, head, body, &mut bufs.body);
        return write_body(stream, bufs, 200, "application/json", None, keep_alive).await;
    }
    let Some(endpoint) = Endpoint::route(&buf[head.method.clone()], target) else {
        return write_simple(stream, bufs, 404, "no such endpoint on the mock", None, keep_alive).await;
    };
    let params = if endpoint == Endpoint::Models {
        Params { model: None, stream: false, stream_options: None, input: None }
    } else {
        match serde_json::from_slice::<Params<'_>>(body) {
            Ok(p) => p,
            Err(_) => return write_simple(stream, bufs, 400, "request body is not a JSON object", Some(endpoint), keep_alive).await,
        }
    };
    let config = &shard.config;
    let (fault, latency) = {
        let mut rng = shard.rng.borrow_mut();
        (config.faults.draw(&mut rng), config.latency.sample(&mut rng))
    };
    match fault {
        Some(Fault::Reset) => return After::Reset,
        Some(Fault::Stall) => {
            glommio::timer::sleep(config.faults.stall_for).await;
            return After::Close;
        }
        Some(Fault::TooManyRequests) => {
            return write_simple(stream, bufs, 429, "mock rate limit", Some(endpoint), keep_alive).await
        }
        Some(Fault::InternalError) => {
            return write_simple(stream, bufs, 500, "mock internal error", Some(endpoint), keep_alive).await
        }
        Some(Fault::Unavailable) => {
            return write_simple(stream, bufs, 503, "mock overloaded", Some(endpoint), keep_alive).await
        }
        Some(Fault::Truncate) | None => {}
    }
    if !latency.is_zero() {
        glommio::timer::sleep(latency).await;
    }
    let mut model_json = Vec::with_capacity(32);
    let _ = serde_json::to_writer(&mut model_json, params.model.as_deref().unwrap_or("mock-model"));
    let id = shard.next_id.get();
    shard.next_id.set(id + 1);
    let reply = Reply {
        model_json: &model_json,
        id,
        tokens: config.tokens,
        prompt_tokens: (body.len() / 4).max(1),
        include_usage: params.stream_options.is_some_and(|o| o.include_usage),
        inputs: match &params.input {
            Some(serde_json::Value::Array(items)) if !items.iter().all(|v| v.is_number()) => items.len(),
            _ => 1,
        },
        embedding: &shard.embedding,
    };
    let truncate = fault == Some(Fault::Truncate);
    bufs.body.clear();
    if params.stream && endpoint.can_stream() {
        bufs.ends.clear();
        bodies::sse_events(endpoint, &reply, &mut bufs.body, &mut bufs.ends);
        return write_stream(stream, bufs, config.chunk_interval, truncate, keep_alive).await;
    }
    let anthropic_models = head.header(buf, "anthropic-version").is_some();
    bodies::json_body(endpoint, &reply, anthropic_models, &mut bufs.body);
    if truncate {
        bufs.out.clear();
        push_head(&mut bufs.out, 200, "application/json", Some(bufs.body.len()), None, true);
        bufs.out.extend_from_slice(&bufs.body[..bufs.body.len() / 2]);
        let _ = stream.write_all(&bufs.out).await;
        return After::Close;
    }
    write_body(stream, bufs, 200, "application/json", None, keep_alive).await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response head; `length: None` means chunked.
fn push_head(out: &mut Vec<u8>, status: u16, content_type: &str, length: Option<usize>, extra: Option<&str>, keep_alive: bool) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n", reason(status));
    match length {
        Some(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        None => out.extend_from_slice(b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"),
    }
    if let Some(extra) = extra {
        out.extend_from_slice(extra.as_bytes());
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

async fn write_simple(
    stream: &mut TcpStream,
    bufs: &mut Buffers,
    status: u16,
    message: &str,
    endpoint: Option<Endpoint>,
    keep_alive: bool,
) -> After {
    bufs.body.clear();
    bodies::error_body(endpoint, status, message, &mut bufs.body);
    let extra = (status == 429).then_some("retry-after: 1\r\n");
    write_body(stream, bufs, status, "application/json", extra, keep_alive).await
}

/// Writes `bufs.body` with a content-length head, in one write.
async fn write_body(
    stream: &mut TcpStream,
    bufs: &mut Buffers,
    status: u16,
    content_type: &str,
    extra: Option<&str>,
    keep_alive: bool,
) -> After {
    bufs.out.clear();
    push_head(&mut bufs.out, status, content_type, Some(bufs.body.len()), extra, keep_alive);
    bufs.out.extend_from_slice(&bufs.body);
    match stream.write_all(&bufs.out).await {
        Ok(()) if keep_alive => After::KeepAlive,
        _ => After::Close,
    }
}

fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes the SSE events in `bufs.body` (boundaries in `bufs.ends`) as a
/// chunked stream: all at once when `interval` is zero, else one chunk per
/// event with `interval` between them. A truncated stream stops after half
/// its events, without the last chunk, and closes.
async fn write_stream(
    stream: &mut TcpStream,
    bufs: &mut Buffers,
    interval: std::time::Duration,
    truncate: bool,
    keep_alive: bool,
) -> After {
    let events = if truncate { bufs.ends.len() / 2 } else { bufs.ends.len() };
    let end = if events == 0 { 0 } else { bufs.ends[events - 1] };
    bufs.out.clear();
    push_head(&mut bufs.out, 200, "text/event-stream", None, None, keep_alive && !truncate);
    if interval.is_zero() {
        push_chunk(&mut bufs.out, &bufs.body[..end]);
    } else {
        let mut start = 0;
        for &event_end in &bufs.ends[..events] {
            push_chunk(&mut bufs.out, &bufs.body[start..event_end]);
            start = event_end;
            if stream.write_all(&bufs.out).await.is_err() {
                return After::Close;
            }
            bufs.out.clear();
            glommio::timer::sleep(interval).await;
        }
    }
    if truncate {
        let _ = stream.write_all(&bufs.out).await;
        return After::Close;
    }
    bufs.out.extend_from_slice(b"0\r\n\r\n");
    match stream.write_all(&bufs.out).await {
        Ok(()) if keep_alive => After::KeepAlive,
        _ => After::Close,
    }
}

/// The echo envelope: what arrived, so integration tests can assert on it.
fn echo(buf: &[u8], head: &RequestHead, body: &[u8], out: &mut Vec<u8>) {
    let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&buf[r]).into_owned();
    let headers: Vec<[String; 2]> = head.headers.iter().map(|(n, v)| [text(n.clone()), text(v.clone())]).collect();
    let envelope = serde_json::json!({
        "method": text(head.method.clone()),
        "target": text(head.target.clone()),
        "headers": headers,
        "body": String::from_utf8_lossy(body),
    });
    let _ = serde_json::to_writer(out, &envelope);
}
