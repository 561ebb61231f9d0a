//! The client's connection as the proxy reads and writes it: plain TCP or
//! TLS (terminated here, see `tls_stream`), counting the bytes written to
//! it, so that every response — relayed, translated or made by the gateway,
//! whole or cut — is logged with the bytes that actually went out
//! (`bytes_out`), counted in one place rather than at each of the writes.
//!
//! Invariants: every write to the client goes through this type, and so
//! does every read of request bytes ([`ClientStream::read_when_readable`]
//! included: on TLS the socket's bytes are not the request's); readiness
//! and peeks (which read nothing, and mean the same under TLS: bytes
//! waiting, or the peer gone) use [`ClientStream::tcp`]. A plain connection
//! pays one branch per operation for TLS existing; a TLS operation's future
//! is boxed, so a plain one's stays as small as the socket's own.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use super::tls_stream::TlsStream;
use crate::buf::PooledBuf;

pub struct ClientStream {
    io: Io,
    written: u64,
}

enum Io {
    Plain(TcpStream),
    // Boxed: a rustls session is about a kilobyte, and a plain
    // connection's state should not carry that much room for it.
    Tls(Box<TlsStream>),
}

impl ClientStream {
    pub fn new(tcp: TcpStream) -> ClientStream {
        ClientStream {
            io: Io::Plain(tcp),
            written: 0,
        }
    }

    /// A connection whose TLS handshake is done.
    pub fn tls(stream: TlsStream) -> ClientStream {
        ClientStream {
            io: Io::Tls(Box::new(stream)),
            written: 0,
        }
    }

    /// The socket, for readiness, peeks and socket options.
    pub fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(tcp) => tcp,
            Io::Tls(tls) => tls.tcp(),
        }
    }

    /// The TLS session, on a TLS connection.
    pub fn tls_session(&self) -> Option<&rustls::ServerConnection> {
        match &self.io {
            Io::Plain(_) => None,
            Io::Tls(tls) => Some(tls.session()),
        }
    }

    /// Bytes written since the last call.
    pub fn take_written(&mut self) -> u64 {
        std::mem::take(&mut self.written)
    }

    /// Reads request bytes into the empty `buf`, taking `capacity` bytes
    /// from the arena only once there is something to read (see
    /// `net::read_when_readable`). `Ok(0)` is the end of stream.
    pub fn read_when_readable<'a>(
        &'a mut self,
        buf: &'a mut PooledBuf,
        capacity: usize,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        match &mut self.io {
            Io::Plain(tcp) => Either::Plain(super::read_when_readable(tcp, buf, capacity)),
            Io::Tls(tls) => Either::Tls(Box::pin(tls.read_when_readable(buf, capacity))),
        }
    }
}

/// A plain socket's own future, or a TLS one behind a box.
enum Either<'a, F: Future> {
    Plain(F),
    Tls(Pin<Box<dyn Future<Output = F::Output> + 'a>>),
}

impl<F: Future> Future for Either<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the plain future is pinned where `self` is and never
        // moved out of it; the boxed one is pinned by its box.
        match unsafe { self.get_unchecked_mut() } {
            Either::Plain(f) => unsafe { Pin::new_unchecked(f) }.poll(cx),
            Either::Tls(f) => f.as_mut().poll(cx),
        }
    }
}

/// A write to the socket that adds what it wrote to the count. A named
/// future, not an `async fn`: an async wrapper would carry the buffer
/// argument beside the socket's own future (which holds it too), and the
/// larger future is copied at each await on the hot path.
pub struct Counted<'a, F> {
    write: F,
    written: &'a mut u64,
}

impl<F: Future<Output = BufResult<usize, T>>, T> Future for Counted<'_, F> {
    type Output = BufResult<usize, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `write` is pinned where `self` is and never moved out of
        // it; `written` is a plain reference, not structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let write = unsafe { Pin::new_unchecked(&mut this.write) };
        let out = std::task::ready!(write.poll(cx));
        if let Ok(n) = out.0 {
            *this.written += n as u64;
        }
        Poll::Ready(out)
    }
}

impl AsyncReadRent for ClientStream {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match &mut self.io {
            Io::Plain(tcp) => Either::Plain(tcp.read(buf)),
            Io::Tls(tls) => Either::Tls(Box::pin(tls.read(buf))),
        }
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match &mut self.io {
            Io::Plain(tcp) => Either::Plain(tcp.readv(buf)),
            Io::Tls(tls) => Either::Tls(Box::pin(tls.readv(buf))),
        }
    }
}

impl AsyncWriteRent for ClientStream {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        let write = match &mut self.io {
            Io::Plain(tcp) => Either::Plain(tcp.write(buf)),
            Io::Tls(tls) => Either::Tls(Box::pin(tls.write(buf))),
        };
        Counted {
            write,
            written: &mut self.written,
        }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        let write = match &mut self.io {
            Io::Plain(tcp) => Either::Plain(tcp.writev(buf)),
            Io::Tls(tls) => Either::Tls(Box::pin(tls.writev(buf))),
        };
        Counted {
            write,
            written: &mut self.written,
        }
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        match &mut self.io {
            Io::Plain(tcp) => Either::Plain(tcp.flush()),
            Io::Tls(tls) => Either::Tls(Box::pin(tls.flush())),
        }
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        match &mut self.io {
            Io::Plain(tcp) => Either::Plain(tcp.shutdown()),
            Io::Tls(tls) => Either::Tls(Box::pin(tls.shutdown())),
        }
    }
}
