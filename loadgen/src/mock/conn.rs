//! One mock connection: read requests (keep-alive, pipelined requests answered
//! in order), route, apply the drawn fault and latency, write the response.
//! Invariant: a request's bytes are consumed only after its response is
//! written, so pipelined bytes behind it are never lost or reordered.

use super::bodies::{self, Endpoint, Reply};
use super::faults::Fault;
use super::MockConfig;
use crate::readbuf::ReadBuf;
use crate::rng::Rng;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use shardgate::http1::chunked::{ChunkLimits, ChunkedDecoder};
use shardgate::http1::framing::{request_framing, BodyKind};
use shardgate::http1::parse::{HeadLimits, HeadScanner, Parsed, RequestHead};
use shardgate::http1::write;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::sync::Arc;

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
    let mut scanner = HeadScanner::default();
    let limits = HeadLimits {
        max_head_bytes: 64 * 1024,
        max_headers: 128,
    };
    let mut bufs = Buffers {
        out: Vec::with_capacity(16 * 1024),
        body: Vec::new(),
        ends: Vec::new(),
        chunked: Vec::new(),
    };
    loop {
        scanner.reset();
        loop {
            match scanner.request(input.bytes(), &limits, &mut head) {
                Ok(Parsed::Complete) => break,
                Ok(Parsed::Partial) => {}
                Err(_) => {
                    let _ = write_simple(
                        &mut stream,
                        &mut bufs,
                        400,
                        "malformed or oversized request head",
                        None,
                        false,
                    )
                    .await;
                    return;
                }
            }
            if !matches!(input.fill(&mut stream).await, Ok(n) if n > 0) {
                return;
            }
        }
        let Ok(framing) = request_framing(input.bytes(), &head) else {
            let _ = write_simple(
                &mut stream,
                &mut bufs,
                400,
                "untrustworthy request framing",
                None,
                false,
            )
            .await;
            return;
        };
        let body_pending = input.bytes().len() == head.head_len && framing.body != BodyKind::Empty;
        if framing.expect_continue
            && body_pending
            && stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let consumed = match framing.body {
            BodyKind::Length(n) => {
                let total = head.head_len + n as usize;
                while input.bytes().len() < total {
                    if !matches!(input.fill(&mut stream).await, Ok(n) if n > 0) {
                        return;
                    }
                }
                total
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new(ChunkLimits::default());
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
                            let _ = write_simple(
                                &mut stream,
                                &mut bufs,
                                400,
                                "bad chunked body",
                                None,
                                false,
                            )
                            .await;
                            return;
                        }
                    }
                    if !matches!(input.fill(&mut stream).await, Ok(n) if n > 0) {
                        return;
                    }
                }
            }
            BodyKind::Empty | BodyKind::CloseDelimited => head.head_len,
        };
        let chunked_body = std::mem::take(&mut bufs.chunked);
        let body = match framing.body {
            BodyKind::Chunked => &chunked_body[..],
            _ => &input.bytes()[head.head_len..consumed],
        };
        let request = Request {
            buf: input.bytes(),
            head: &head,
            body,
            keep_alive: framing.keep_alive,
        };
        let after = respond(&mut stream, &request, &shard, &mut bufs).await;
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
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
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

/// A parsed request; its spans point into `buf`.
struct Request<'a> {
    buf: &'a [u8],
    head: &'a RequestHead,
    body: &'a [u8],
    keep_alive: bool,
}

async fn respond(
    stream: &mut TcpStream,
    req: &Request<'_>,
    shard: &Shard,
    bufs: &mut Buffers,
) -> After {
    let (buf, head, body, keep_alive) = (req.buf, req.head, req.body, req.keep_alive);
    let target = head.target.get(buf);
    if head.header(buf, b"x-mock-echo-body") == Some(b"1") || target.starts_with(b"/mock/echo") {
        bufs.body.clear();
        echo(req, &mut bufs.body);
        return write_body(stream, bufs, 200, "application/json", None, keep_alive).await;
    }
    let Some(endpoint) = Endpoint::route(head.method.get(buf), target) else {
        return write_simple(
            stream,
            bufs,
            404,
            "no such endpoint on the mock",
            None,
            keep_alive,
        )
        .await;
    };
    let params = if endpoint == Endpoint::Models {
        Params {
            model: None,
            stream: false,
            stream_options: None,
            input: None,
        }
    } else {
        match serde_json::from_slice::<Params<'_>>(body) {
            Ok(p) => p,
            Err(_) => {
                return write_simple(
                    stream,
                    bufs,
                    400,
                    "request body is not a JSON object",
                    Some(endpoint),
                    keep_alive,
                )
                .await
            }
        }
    };
    let config = &shard.config;
    let (fault, latency) = {
        let mut rng = shard.rng.borrow_mut();
        (
            config.faults.draw(&mut rng),
            config.latency.sample(&mut rng),
        )
    };
    match fault {
        Some(Fault::Reset) => return After::Reset,
        Some(Fault::Stall) => {
            glommio::timer::sleep(config.faults.stall_for).await;
            return After::Close;
        }
        Some(Fault::TooManyRequests) => {
            return write_simple(
                stream,
                bufs,
                429,
                "mock rate limit",
                Some(endpoint),
                keep_alive,
            )
            .await
        }
        Some(Fault::InternalError) => {
            return write_simple(
                stream,
                bufs,
                500,
                "mock internal error",
                Some(endpoint),
                keep_alive,
            )
            .await
        }
        Some(Fault::Unavailable) => {
            return write_simple(
                stream,
                bufs,
                503,
                "mock overloaded",
                Some(endpoint),
                keep_alive,
            )
            .await
        }
        Some(Fault::Truncate) | None => {}
    }
    if !latency.is_zero() {
        glommio::timer::sleep(latency).await;
    }
    let mut model_json = Vec::with_capacity(32);
    let _ = serde_json::to_writer(
        &mut model_json,
        params.model.as_deref().unwrap_or("mock-model"),
    );
    let id = shard.next_id.get();
    shard.next_id.set(id + 1);
    let reply = Reply {
        model_json: &model_json,
        id,
        tokens: config.tokens,
        prompt_tokens: (body.len() / 4).max(1),
        include_usage: params.stream_options.is_some_and(|o| o.include_usage),
        inputs: match &params.input {
            Some(serde_json::Value::Array(items)) if !items.iter().all(|v| v.is_number()) => {
                items.len()
            }
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
    let anthropic_models = head.header(buf, b"anthropic-version").is_some();
    bodies::json_body(endpoint, &reply, anthropic_models, &mut bufs.body);
    if truncate {
        bufs.out.clear();
        push_head(
            &mut bufs.out,
            200,
            "application/json",
            Some(bufs.body.len()),
            None,
            true,
        );
        bufs.out
            .extend_from_slice(&bufs.body[..bufs.body.len() / 2]);
        let _ = stream.write_all(&bufs.out).await;
        return After::Close;
    }
    write_body(stream, bufs, 200, "application/json", None, keep_alive).await
}

/// A response head; `length: None` means chunked.
fn push_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    length: Option<usize>,
    extra: Option<(&str, &str)>,
    keep_alive: bool,
) {
    write::push_status_line(out, status);
    write::push_header(out, b"content-type", content_type.as_bytes());
    match length {
        Some(n) => write::push_content_length(out, n as u64),
        None => {
            write::push_header(out, b"cache-control", b"no-cache");
            write::push_header(out, b"transfer-encoding", b"chunked");
        }
    }
    if let Some((name, value)) = extra {
        write::push_header(out, name.as_bytes(), value.as_bytes());
    }
    if !keep_alive {
        write::push_header(out, b"connection", b"close");
    }
    write::end_head(out);
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
    let extra = (status == 429).then_some(("retry-after", "1"));
    write_body(stream, bufs, status, "application/json", extra, keep_alive).await
}

/// Writes `bufs.body` with a content-length head, in one write.
async fn write_body(
    stream: &mut TcpStream,
    bufs: &mut Buffers,
    status: u16,
    content_type: &str,
    extra: Option<(&str, &str)>,
    keep_alive: bool,
) -> After {
    bufs.out.clear();
    push_head(
        &mut bufs.out,
        status,
        content_type,
        Some(bufs.body.len()),
        extra,
        keep_alive,
    );
    bufs.out.extend_from_slice(&bufs.body);
    match stream.write_all(&bufs.out).await {
        Ok(()) if keep_alive => After::KeepAlive,
        _ => After::Close,
    }
}

fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    write::push_chunk_size(out, data.len());
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
    let events = if truncate {
        bufs.ends.len() / 2
    } else {
        bufs.ends.len()
    };
    let end = if events == 0 {
        0
    } else {
        bufs.ends[events - 1]
    };
    bufs.out.clear();
    push_head(
        &mut bufs.out,
        200,
        "text/event-stream",
        None,
        None,
        keep_alive && !truncate,
    );
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
    bufs.out.extend_from_slice(write::LAST_CHUNK);
    match stream.write_all(&bufs.out).await {
        Ok(()) if keep_alive => After::KeepAlive,
        _ => After::Close,
    }
}

/// The echo envelope: what arrived, so integration tests can assert on it.
fn echo(req: &Request<'_>, out: &mut Vec<u8>) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let headers: Vec<[String; 2]> = req
        .head
        .headers
        .iter()
        .map(|h| [text(h.name.get(req.buf)), text(h.value.get(req.buf))])
        .collect();
    let envelope = serde_json::json!({
        "method": text(req.head.method.get(req.buf)),
        "target": text(req.head.target.get(req.buf)),
        "headers": headers,
        "body": text(req.body),
    });
    let _ = serde_json::to_writer(out, &envelope);
}
