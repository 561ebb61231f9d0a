//! The client's connection as the proxy reads and writes it: the TCP
//! stream, counting the bytes written to it, so that every response —
//! relayed, translated or made by the gateway, whole or cut — is logged
//! with the bytes that actually went out (`bytes_out`), counted in one
//! place rather than at each of the writes.
//!
//! Invariant: every write to the client goes through this type; readiness
//! and peeks (which write nothing) use [`ClientStream::tcp`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

pub struct ClientStream {
    tcp: TcpStream,
    written: u64,
}

impl ClientStream {
    pub fn new(tcp: TcpStream) -> ClientStream {
        ClientStream { tcp, written: 0 }
    }

    /// The socket, for readiness, peeks and socket options.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Bytes written since the last call.
    pub fn take_written(&mut self) -> u64 {
        std::mem::take(&mut self.written)
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
        self.tcp.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.tcp.readv(buf)
    }
}

impl AsyncWriteRent for ClientStream {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        Counted {
            write: self.tcp.write(buf),
            written: &mut self.written,
        }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        Counted {
            write: self.tcp.writev(buf),
            written: &mut self.written,
        }
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.tcp.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        self.tcp.shutdown()
    }
}
