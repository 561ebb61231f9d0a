//! One client connection and one exchange on it: send the pre-encoded
//! request, read and validate the response, time the stream's events.
//! Invariant: after any error the connection is dropped, so the next exchange
//! never reads a previous response's leftovers.

use crate::deadline::Deadline;
use crate::readbuf::ReadBuf;
use crate::validate::{check_json, ErrorClass, StreamCheck};
use crate::workload::{StreamEnd, UNIQUE_DIGITS};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use shardgate::http1::chunked::{ChunkLimits, ChunkedDecoder};
use shardgate::http1::framing::{response_framing, BodyKind, ResponseFraming};
use shardgate::http1::parse::{HeadLimits, HeadScanner, Parsed, ResponseHead};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What every exchange sends and expects.
pub struct Target {
    pub addr: SocketAddr,
    pub request: Vec<u8>,
    /// `--unique`: where each request's number goes in `request`
    /// ([`UNIQUE_DIGITS`] hex digits).
    pub unique_at: Option<usize>,
    pub stream: Option<StreamEnd>,
    pub timeout: Duration,
}

/// A successful exchange.
pub struct Exchange {
    pub bytes_in: u64,
    /// Streams: when the first complete event arrived.
    pub first_event: Option<Instant>,
}

pub struct Conn {
    stream: Option<TcpStream>,
    /// `--unique`: this connection's copy of the request, and the number
    /// the next one is sent with: the run's nonce in the top 32 bits, the
    /// connection's number in the next 24, a count in the last 40, so no two
    /// requests of a run, or of two runs, share one.
    request: Vec<u8>,
    next_number: u128,
    deadline: Rc<Deadline>,
    input: ReadBuf,
    head: ResponseHead,
    scanner: HeadScanner,
    chunked: ChunkedDecoder,
    body: Vec<u8>,
    /// The last plain body found well-formed: a byte-identical body has the
    /// same verdict, so repeated answers (a mock's, a static file's) are
    /// parsed once instead of on every request.
    validated: Vec<u8>,
    /// The last response head parsed, with its status and framing: a
    /// byte-identical head parses the same, so a server's repeated head
    /// costs a comparison instead of a parse.
    known_head: KnownHead,
    /// Streams: gaps between reads that completed events, for the last exchange.
    pub gaps: Vec<Duration>,
}

#[derive(Default)]
struct KnownHead {
    bytes: Vec<u8>,
    status: u16,
    framing: Option<ResponseFraming>,
}

impl KnownHead {
    /// Status and framing of the head at the start of `input`, if it is
    /// the known one.
    fn recognise(&self, input: &[u8]) -> Option<(u16, ResponseFraming, usize)> {
        let framing = self.framing?;
        let len = self.bytes.len();
        (input.get(..len)? == self.bytes).then_some((self.status, framing, len))
    }
}

/// Writes `number` into `digits` as lowercase hex, most significant first.
fn stamp(digits: &mut [u8], number: u128) {
    let mut n = number;
    for d in digits.iter_mut().rev() {
        *d = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
    }
}

/// A connection lost before its response: on a reused connection with
/// nothing read, the server may have closed it while idle (`Stale`).
fn lost(stream: &mut Option<TcpStream>, reused: bool, input_empty: bool) -> Failure {
    *stream = None;
    if reused && input_empty {
        Failure::Stale
    } else {
        Failure::Class(ErrorClass::Truncated)
    }
}

enum Failure {
    /// A kept-alive connection was found closed (FIN, no response byte):
    /// servers may close idle connections, so the request is retried once.
    Stale,
    Class(ErrorClass),
}

impl From<ErrorClass> for Failure {
    fn from(c: ErrorClass) -> Failure {
        Failure::Class(c)
    }
}

impl Conn {
    /// A connection whose exchanges the watchdog of `deadline` times out.
    pub fn new(deadline: Rc<Deadline>, nonce: u32, number: u64) -> Conn {
        Conn {
            deadline,
            stream: None,
            request: Vec::new(),
            next_number: (u128::from(nonce) << 64) | (u128::from(number & 0xff_ffff) << 40),
            input: ReadBuf::new(16 * 1024),
            head: ResponseHead::default(),
            scanner: HeadScanner::default(),
            chunked: ChunkedDecoder::new(ChunkLimits::default()),
            body: Vec::with_capacity(16 * 1024),
            validated: Vec::new(),
            known_head: KnownHead::default(),
            gaps: Vec::new(),
        }
    }

    /// One exchange, given up as a timeout at `deadline`.
    pub async fn exchange(
        &mut self,
        target: &Target,
        deadline: Instant,
    ) -> Result<Exchange, ErrorClass> {
        if let Some(at) = target.unique_at {
            if self.request.is_empty() {
                self.request.clone_from(&target.request);
            }
            stamp(&mut self.request[at..at + UNIQUE_DIGITS], self.next_number);
            self.next_number += 1;
        }
        let slot = self.deadline.clone();
        let attempt = async {
            match self.attempt(target).await {
                Err(Failure::Stale) => match self.attempt(target).await {
                    Err(Failure::Stale) => Err(ErrorClass::Truncated),
                    Err(Failure::Class(c)) => Err(c),
                    Ok(x) => Ok(x),
                },
                Err(Failure::Class(c)) => Err(c),
                Ok(x) => Ok(x),
            }
        };
        let result = slot
            .within(deadline, attempt)
            .await
            .unwrap_or(Err(ErrorClass::Timeout));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn check_body(&mut self) -> Result<(), ErrorClass> {
        if self.body != self.validated {
            check_json(&self.body)?;
            self.validated.clone_from(&self.body);
        }
        Ok(())
    }

    /// Reads a response head: its status, framing and length. A head that
    /// is not the known one is parsed, and becomes the known one.
    async fn read_head(&mut self, reused: bool) -> Result<(u16, ResponseFraming, usize), Failure> {
        self.scanner.reset();
        let limits = HeadLimits::default();
        loop {
            if let Some(known) = self.known_head.recognise(self.input.bytes()) {
                return Ok(known);
            }
            match self
                .scanner
                .response(self.input.bytes(), &limits, &mut self.head)
            {
                Ok(Parsed::Complete) => break,
                Ok(Parsed::Partial) => {}
                Err(_) => return Err(ErrorClass::Malformed.into()),
            }
            let stream = self.stream.as_mut().expect("connected");
            match self.input.fill(stream).await {
                Ok(0) => {
                    let empty = self.input.bytes().is_empty();
                    return Err(lost(&mut self.stream, reused, empty));
                }
                Ok(_) => {}
                // A reset (unlike a quiet close of an idle connection) is the server's answer.
                Err(_) => return Err(lost(&mut self.stream, reused, false)),
            }
        }
        let framing = response_framing(self.input.bytes(), &self.head, false)
            .map_err(|_| ErrorClass::Malformed)?;
        let (status, head_len) = (self.head.status, self.head.head_len);
        let known = &mut self.known_head;
        known.bytes.clear();
        known
            .bytes
            .extend_from_slice(&self.input.bytes()[..head_len]);
        (known.status, known.framing) = (status, Some(framing));
        Ok((status, framing, head_len))
    }

    async fn attempt(&mut self, target: &Target) -> Result<Exchange, Failure> {
        let reused = self.stream.is_some();
        if !reused {
            let stream = TcpStream::connect(target.addr)
                .await
                .map_err(|_| ErrorClass::Connect)?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
            self.input.clear();
        }
        let stream = self.stream.as_mut().expect("connected above");
        let request = match target.unique_at {
            Some(_) => &self.request,
            None => &target.request,
        };
        if stream.write_all(request).await.is_err() {
            return Err(lost(&mut self.stream, reused, true));
        }
        let (status, framing, head_len) = self.read_head(reused).await?;
        let mut bytes_in = head_len as u64;
        self.input.consume(head_len);
        self.body.clear();
        self.gaps.clear();
        let status_ok = (200..300).contains(&status);
        let mut check = target.stream.filter(|_| status_ok).map(StreamCheck::new);
        let (mut first_event, mut last_event) = (None, None);
        self.chunked.reset();
        let mut remaining = match framing.body {
            BodyKind::Length(n) => n,
            _ => 0,
        };
        loop {
            let available = self.input.bytes();
            let (consumed, done) = match framing.body {
                BodyKind::Empty => (0, true),
                BodyKind::Length(_) => {
                    let take = available.len().min(remaining as usize);
                    self.body.extend_from_slice(&available[..take]);
                    remaining -= take as u64;
                    (take, remaining == 0)
                }
                BodyKind::Chunked => {
                    let body = &mut self.body;
                    let p = self
                        .chunked
                        .feed(available, |d| body.extend_from_slice(d))
                        .map_err(|_| ErrorClass::Malformed)?;
                    (p.consumed, p.done)
                }
                BodyKind::CloseDelimited => {
                    self.body.extend_from_slice(available);
                    (available.len(), false)
                }
            };
            bytes_in += consumed as u64;
            self.input.consume(consumed);
            if let Some(check) = &mut check {
                if check.scan(&self.body)? > 0 {
                    let now = Instant::now();
                    if let Some(last) = last_event.replace(now) {
                        self.gaps.push(now - last);
                    }
                    first_event.get_or_insert(now);
                }
            }
            if done {
                break;
            }
            let stream = self.stream.as_mut().expect("connected above");
            if !matches!(self.input.fill(stream).await, Ok(n) if n > 0) {
                self.stream = None;
                if framing.body == BodyKind::CloseDelimited {
                    break;
                }
                return Err(ErrorClass::Truncated.into());
            }
        }
        if !framing.keep_alive {
            self.stream = None;
        }
        if !status_ok {
            // An error answer must still be well-formed (JSON, in any dialect).
            self.check_body()?;
            return Err(ErrorClass::Status.into());
        }
        match check {
            Some(check) if check.errored => Err(ErrorClass::StreamError.into()),
            Some(check) if !check.finished => Err(ErrorClass::Truncated.into()),
            Some(_) => Ok(Exchange {
                bytes_in,
                first_event,
            }),
            None => {
                self.check_body()?;
                Ok(Exchange {
                    bytes_in,
                    first_event,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_fixed_width_hex() {
        let mut d = [b'x'; super::UNIQUE_DIGITS];
        super::stamp(&mut d, (7 << 64) | (3 << 40) | 0x2a);
        assert_eq!(&d, b"00000007000003000000002a");
        super::stamp(&mut d, u128::MAX);
        assert_eq!(&d, b"ffffffffffffffffffffffff");
    }
}
