//! The HTTP/1.1 wire as loadgen sees it: request heads (mock side), response
//! heads (generator side) and chunked bodies, reduced to the few facts the two
//! roles need. Spans are offsets into the caller's buffer; nothing is copied.
//!
//! Invariant: every parse works on a prefix of the buffer and reports
//! `Ok(None)` until a whole head is present, so callers can re-parse after each
//! read without losing pipelined bytes that follow the head.

use std::ops::Range;

const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    CloseDelimited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError(pub &'static str);

/// A request head: where its parts lie in the buffer and how its body is framed.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub method: Range<usize>,
    pub target: Range<usize>,
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    pub head_len: usize,
    pub body: Option<BodyKind>,
    pub keep_alive: bool,
}

impl RequestHead {
    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &buf[v.clone()])
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ResponseHead {
    pub status: u16,
    pub head_len: usize,
    pub body: BodyKind,
    pub keep_alive: bool,
}

fn offset(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, WireError> {
    let mut f = Framing { content_length: None, chunked: false, close: false };
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(WireError("bad content-length"))?;
            if f.content_length.is_some_and(|m| m != n) {
                return Err(WireError("conflicting content-length"));
            }
            f.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            f.chunked = h.value.eq_ignore_ascii_case(b"chunked");
            if !f.chunked {
                return Err(WireError("unsupported transfer-encoding"));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            f.close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(f)
}

/// Parses a request head at the start of `buf` into `head`.
pub fn parse_request(buf: &[u8], head: &mut RequestHead) -> Result<bool, WireError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(false),
        Err(_) => return Err(WireError("malformed request head")),
    };
    let f = framing(req.headers)?;
    head.method = offset(buf, req.method.unwrap_or("").as_bytes());
    head.target = offset(buf, req.path.unwrap_or("").as_bytes());
    head.headers.clear();
    head.headers.extend(
        req.headers.iter().map(|h| (offset(buf, h.name.as_bytes()), offset(buf, h.value))),
    );
    head.head_len = head_len;
    head.body = Some(match (f.chunked, f.content_length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(n)) => BodyKind::Length(n),
        (false, None) => BodyKind::Empty,
    });
    head.keep_alive = !f.close && req.version == Some(1);
    Ok(true)
}

/// Parses a response head at the start of `buf`.
pub fn parse_response(buf: &[u8], request_was_head: bool) -> Result<Option<ResponseHead>, WireError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(WireError("malformed response head")),
    };
    let status = resp.code.unwrap_or(0);
    let f = framing(resp.headers)?;
    let body = if request_was_head || status == 204 || status == 304 || (100..200).contains(&status) {
        BodyKind::Empty
    } else if f.chunked {
        BodyKind::Chunked
    } else if let Some(n) = f.content_length {
        BodyKind::Length(n)
    } else {
        BodyKind::CloseDelimited
    };
    let keep_alive = !f.close && resp.version == Some(1) && body != BodyKind::CloseDelimited;
    Ok(Some(ResponseHead { status, head_len, body, keep_alive }))
}

/// Incremental decoder for the chunked transfer coding.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    remaining_in_chunk: u64,
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data,
    DataEnd,
    Trailer,
    Done,
}

pub struct ChunkProgress {
    pub consumed: usize,
    pub done: bool,
}

impl ChunkedDecoder {
    /// Decodes as much of `input` as possible, handing payload to `on_data`.
    /// Unconsumed bytes (a partial size or trailer line) must be offered again
    /// with more data appended.
    pub fn feed(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<ChunkProgress, WireError> {
        let mut pos = 0;
        loop {
            match self.state {
                ChunkState::Done => return Ok(ChunkProgress { consumed: pos, done: true }),
                ChunkState::Size | ChunkState::Trailer | ChunkState::DataEnd => {
                    let Some(nl) = input[pos..].iter().position(|&b| b == b'\n') else {
                        return Ok(ChunkProgress { consumed: pos, done: false });
                    };
                    let line = input[pos..pos + nl].strip_suffix(b"\r").unwrap_or(&input[pos..pos + nl]);
                    pos += nl + 1;
                    self.state = match self.state {
                        ChunkState::Size => {
                            let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                            let size = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                                .ok_or(WireError("bad chunk size"))?;
                            self.remaining_in_chunk = size;
                            if size == 0 { ChunkState::Trailer } else { ChunkState::Data }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err(WireError("missing CRLF after chunk")),
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailer,
                    };
                }
                ChunkState::Data => {
                    let take = (input.len() - pos).min(self.remaining_in_chunk as usize);
                    if take == 0 {
                        return Ok(ChunkProgress { consumed: pos, done: false });
                    }
                    on_data(&input[pos..pos + take]);
                    pos += take;
                    self.remaining_in_chunk -= take as u64;
                    if self.remaining_in_chunk == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
            }
        }
    }
}
