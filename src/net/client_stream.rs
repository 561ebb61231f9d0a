//! The client's connection as the proxy reads and writes it: the TCP
//! stream, counting the bytes written to it, so that every response —
//! relayed, translated or made by the gateway, whole or cut — is logged
//! with the bytes that actually went out (`bytes_out`), counted in one
//! place rather than at each of the writes.
//!
//! Invariant: every write to the client goes through this type; readiness
//! and peeks (which write nothing) use [`ClientStream::tcp`].

use std::io;

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

    fn count<T>(&mut self, result: BufResult<usize, T>) -> BufResult<usize, T> {
        if let Ok(n) = result.0 {
            self.written += n as u64;
        }
        result
    }
}

impl AsyncReadRent for ClientStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.tcp.read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.tcp.readv(buf).await
    }
}

impl AsyncWriteRent for ClientStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let result = self.tcp.write(buf).await;
        self.count(result)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let result = self.tcp.writev(buf).await;
        self.count(result)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.tcp.shutdown().await
    }
}
