//! The client's connection as the proxy reads and writes it: a plain TCP
//! socket or a TLS session over one (`ClientIo`), counting the bytes
//! written to it, so that every response — relayed, translated or made by
//! the gateway, whole or cut — is logged with the bytes that actually went
//! out (`bytes_out`), counted in one place rather than at each of the
//! writes.
//!
//! Invariants: every write to the client goes through this type, and so
//! does every read of request bytes ([`ClientStream::read_when_readable`]
//! included: under TLS the socket's bytes are not the request's);
//! readiness and peeks (which read nothing, and mean the same under TLS:
//! bytes waiting, or the peer gone) use [`ClientStream::tcp`]. The proxy is
//! generic over the transport, so a plain connection runs exactly the code
//! it ran before TLS existed: no branch, no larger future.

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

/// A client transport: the socket itself, or TLS over it.
pub trait ClientIo: AsyncReadRent + AsyncWriteRent + 'static {
    /// The socket, for readiness, peeks and socket options.
    fn tcp(&self) -> &TcpStream;

    /// Reads request bytes into the empty `buf`, taking `capacity` bytes
    /// from the arena only once there is something to read (see
    /// `net::read_when_readable`). `Ok(0)` is the end of stream.
    fn read_when_readable<'a>(
        &'a mut self,
        buf: &'a mut PooledBuf,
        capacity: usize,
    ) -> impl Future<Output = io::Result<usize>> + 'a;

    /// The TLS session, on a TLS connection.
    fn tls_session(&self) -> Option<&rustls::ServerConnection> {
        None
    }
}

impl ClientIo for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }

    fn read_when_readable<'a>(
        &'a mut self,
        buf: &'a mut PooledBuf,
        capacity: usize,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        super::read_when_readable(self, buf, capacity)
    }
}

impl ClientIo for TlsStream {
    fn tcp(&self) -> &TcpStream {
        TlsStream::tcp(self)
    }

    fn read_when_readable<'a>(
        &'a mut self,
        buf: &'a mut PooledBuf,
        capacity: usize,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        TlsStream::read_when_readable(self, buf, capacity)
    }

    fn tls_session(&self) -> Option<&rustls::ServerConnection> {
        Some(self.session())
    }
}

pub struct ClientStream<S = TcpStream> {
    io: S,
    written: u64,
}

impl<S: ClientIo> ClientStream<S> {
    pub fn new(io: S) -> ClientStream<S> {
        ClientStream { io, written: 0 }
    }

    /// The socket, for readiness, peeks and socket options.
    pub fn tcp(&self) -> &TcpStream {
        self.io.tcp()
    }

    /// The TLS session, on a TLS connection.
    pub fn tls_session(&self) -> Option<&rustls::ServerConnection> {
        self.io.tls_session()
    }

    /// Bytes written since the last call.
    pub fn take_written(&mut self) -> u64 {
        std::mem::take(&mut self.written)
    }

    /// See [`ClientIo::read_when_readable`].
    pub fn read_when_readable<'a>(
        &'a mut self,
        buf: &'a mut PooledBuf,
        capacity: usize,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        self.io.read_when_readable(buf, capacity)
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

impl<S: ClientIo> AsyncReadRent for ClientStream<S> {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.io.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.io.readv(buf)
    }
}

impl<S: ClientIo> AsyncWriteRent for ClientStream<S> {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        Counted {
            write: self.io.write(buf),
            written: &mut self.written,
        }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        Counted {
            write: self.io.writev(buf),
            written: &mut self.written,
        }
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.io.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        self.io.shutdown()
    }
}
