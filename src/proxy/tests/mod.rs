//! The proxy's I/O layer over scripted in-memory streams: an upstream that
//! answers with the bytes (and ends: EOF, an error, a stall) a test lays
//! out, and a client that takes bytes until told to fail. The relays, the
//! head and held-body reads run on them unchanged (they are generic over
//! monoio's owned-buffer read/write traits), inside a real monoio runtime
//! with its timer, so each decision that only the end-to-end tests reached
//! is pinned down here alone.

mod exchange;
mod forward;
mod relay;
mod translated;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

use super::exchange::{ClientFacts, UpstreamSide};
use crate::buf::PooledBuf;
use crate::http1::parse::{HeadLimits, Parsed};
use crate::providers::Dialect;
use crate::upstream::timeouts::{AttemptClock, Timeouts};

/// One step of a scripted upstream's answer.
pub(super) enum Step {
    /// These bytes, over as many reads as the reader's buffer needs.
    Bytes(Vec<u8>),
    /// A read that fails.
    Fail(io::ErrorKind),
    /// A read that never completes.
    Stall,
}

/// An upstream connection that answers as scripted, then EOF; what is
/// written to it is kept.
pub(super) struct Scripted {
    steps: VecDeque<Step>,
    pub written: Vec<u8>,
    /// Every write fails, taking nothing (a connection the peer reset).
    pub refuse_writes: bool,
}

impl Scripted {
    pub fn new(steps: Vec<Step>) -> Scripted {
        Scripted {
            steps: steps.into(),
            written: Vec::new(),
            refuse_writes: false,
        }
    }

    /// Adds a step after those laid out.
    pub fn steps_push(&mut self, step: Step) {
        self.steps.push_back(step);
    }

    /// Answers with `bytes`, in reads of at most `split` bytes each.
    pub fn in_pieces(bytes: &[u8], split: usize) -> Scripted {
        Scripted::new(
            bytes
                .chunks(split)
                .map(|c| Step::Bytes(c.to_vec()))
                .collect(),
        )
    }
}

impl crate::upstream::AckPromptly for Scripted {
    fn ack_promptly(&self) {}
}

impl AsyncReadRent for Scripted {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        match self.steps.pop_front() {
            None => (Ok(0), buf),
            Some(Step::Fail(kind)) => (Err(kind.into()), buf),
            Some(Step::Stall) => std::future::pending().await,
            Some(Step::Bytes(mut bytes)) => {
                let n = bytes.len().min(buf.bytes_total());
                // SAFETY: `n` bytes fit the buffer's capacity from its pointer.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.write_ptr(), n);
                    buf.set_init(n);
                }
                if n < bytes.len() {
                    self.steps.push_front(Step::Bytes(bytes.split_off(n)));
                }
                (Ok(n), buf)
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::ErrorKind::Unsupported.into()), buf)
    }
}

impl AsyncWriteRent for Scripted {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let room = if self.refuse_writes { 0 } else { usize::MAX };
        take_bytes(&mut self.written, room, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let room = if self.refuse_writes { 0 } else { usize::MAX };
        take_iovecs(&mut self.written, room, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A client that takes up to `room` bytes, then fails every write (a
/// client that went away mid-response).
pub(super) struct Client {
    pub got: Vec<u8>,
    room: usize,
}

impl Client {
    pub fn new() -> Client {
        Client::with_room(usize::MAX)
    }

    pub fn with_room(room: usize) -> Client {
        Client {
            got: Vec::new(),
            room,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.got).into_owned()
    }
}

impl AsyncWriteRent for Client {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let room = self.room - self.got.len().min(self.room);
        take_bytes(&mut self.got, room, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let room = self.room - self.got.len().min(self.room);
        take_iovecs(&mut self.got, room, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn take_bytes<T: IoBuf>(into: &mut Vec<u8>, room: usize, buf: T) -> BufResult<usize, T> {
    if room == 0 {
        return (Err(io::ErrorKind::BrokenPipe.into()), buf);
    }
    // SAFETY: the buffer's initialised bytes, read while it is held.
    let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
    let n = bytes.len().min(room);
    into.extend_from_slice(&bytes[..n]);
    (Ok(n), buf)
}

fn take_iovecs<T: IoVecBuf>(into: &mut Vec<u8>, mut room: usize, buf: T) -> BufResult<usize, T> {
    if room == 0 {
        return (Err(io::ErrorKind::BrokenPipe.into()), buf);
    }
    // SAFETY: the iovecs and the bytes they point at are the buffer's, and
    // live while it is held.
    let iovecs = unsafe { std::slice::from_raw_parts(buf.read_iovec_ptr(), buf.read_iovec_len()) };
    let mut n = 0;
    for v in iovecs {
        let bytes = unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
        let take = bytes.len().min(room);
        into.extend_from_slice(&bytes[..take]);
        (n, room) = (n + take, room - take);
        if room == 0 {
            break;
        }
    }
    (Ok(n), buf)
}

/// Runs `f` on a monoio runtime with its timer, as a shard would.
pub(super) fn run<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("a monoio runtime")
        .block_on(f)
}

/// An attempt's clock with generous limits (tests that need a limit to run
/// out set their own).
pub(super) fn clock() -> AttemptClock {
    clock_with(Duration::from_secs(5))
}

pub(super) fn clock_with(limit: Duration) -> AttemptClock {
    AttemptClock::start(
        Timeouts {
            connect: limit,
            first_byte: limit,
            idle: limit,
            total: Some(limit),
        },
        Instant::now(),
    )
}

/// A keep-alive HTTP/1.1 client of `dialect`.
pub(super) fn facts(dialect: Dialect) -> ClientFacts {
    ClientFacts {
        http10: false,
        keep_alive: true,
        is_head: false,
        dialect,
        write_timeout: Duration::from_secs(5),
        rate: None,
        cache: None,
    }
}

/// Reads the response head from `up` into a fresh buffer, as `forward`
/// does before it relays: the upstream side with the head parsed, and the
/// buffer (the head and whatever body bytes came with it).
pub(super) async fn head_of(up: &mut Scripted) -> (UpstreamSide, PooledBuf) {
    let mut side = UpstreamSide::default();
    let mut urbuf = PooledBuf::take(16 * 1024);
    let limits = HeadLimits {
        max_head_bytes: 64 * 1024,
        max_headers: 256,
    };
    loop {
        match side.scanner.response(&urbuf, &limits, &mut side.head) {
            Ok(Parsed::Complete) => return (side, urbuf),
            Ok(Parsed::Partial) => {}
            Err(e) => panic!("scripted head does not parse: {e:?}"),
        }
        let n = super::downstream::read_more(up, &mut urbuf).await.unwrap();
        assert!(n > 0, "the script ended inside the head");
    }
}

/// A response with `head` lines and a Content-Length body.
pub(super) fn length_response(status: &str, head: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{head}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A chunked response carrying `chunks`, ended (the last chunk) or not.
pub(super) fn chunked_response(head: &str, chunks: &[&str], ended: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\n{head}transfer-encoding: chunked\r\n\r\n");
    for c in chunks {
        out.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
    }
    if ended {
        out.push_str("0\r\n\r\n");
    }
    out.into_bytes()
}

/// How many times `needle` occurs in `hay`.
pub(super) fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}
