//! A client's TLS connection over the shard's own I/O: rustls'
//! `ServerConnection` (a sans-IO state machine) fed from, and drained to,
//! the connection's socket by the same reads and writes a plain connection
//! uses. Nothing here runs off the shard.
//!
//! Why not monoio-rustls' stream (which the upstream side uses): it keeps
//! two 16 KiB buffers per connection for the connection's whole life and
//! hides the session, so the gateway could neither wait for a request
//! holding no buffer nor tell whether decrypted bytes were already waiting
//! (a pipelined request) before it waited on the socket; and a read it
//! cancels (a keep-alive wait that times out) leaves it unusable.
//!
//! Invariants:
//! - Ciphertext is read with [`read_when_readable`]: while a connection
//!   waits for bytes it holds no buffer, and a wait cut short (a timeout)
//!   loses nothing, because bytes are taken off the socket only by a
//!   non-blocking recv that is never interrupted half way.
//! - Bytes read off the socket and not yet handed to rustls stay in
//!   `cipher_in` (from `fed`); it goes back to the arena once all are fed.
//! - Plaintext waiting inside rustls is always handed out before the socket
//!   is waited on, so a pipelined request is never stuck behind a wait.
//! - Every write is encrypted and sent before it reports success; writes
//!   are copied once into records (rustls) and once into an arena buffer
//!   that the socket write owns.
//! - A protocol error ends the connection: the alert rustls queued is sent
//!   (best effort) and the error returned; the caller closes.
//! - Dropping the stream sends close_notify (one non-blocking send, never
//!   a wait), so a client reading a close-delimited body to its end can
//!   tell the end from a cut.

use std::future::Future;
use std::io::{self, BufRead, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ServerConfig, ServerConnection};

use super::read_when_readable;
use crate::buf::{write_all, PooledBuf};

/// Ciphertext read at once: one full TLS record and its overhead fits.
const CIPHER_READ_BYTES: usize = 16 * 1024 + 512;
/// Room taken for records to send; it grows when more are pending.
const CIPHER_WRITE_BYTES: usize = 16 * 1024 + 512;

pub struct TlsStream {
    tcp: TcpStream,
    conn: ServerConnection,
    cipher_in: PooledBuf,
    fed: usize,
}

impl TlsStream {
    /// Runs the server side of the handshake on `tcp`. The caller bounds
    /// it in time; dropping the future drops the connection.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut s = TlsStream {
            tcp,
            conn,
            cipher_in: PooledBuf::empty(),
            fed: 0,
        };
        while s.conn.is_handshaking() {
            if s.conn.wants_write() {
                s.send_pending().await?;
            } else if s.feed().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection during the TLS handshake",
                ));
            }
        }
        // The last flight (TLS 1.2's Finished, TLS 1.3's session tickets).
        s.send_pending().await?;
        Ok(s)
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The negotiated protocol version and ALPN protocol (for logs, tests).
    pub fn session(&self) -> &ServerConnection {
        &self.conn
    }

    /// Reads ciphertext (waiting holding no buffer) and hands it to rustls.
    /// Returns how many bytes rustls took; 0 at the end of the stream.
    async fn feed(&mut self) -> io::Result<usize> {
        if self.fed == self.cipher_in.len() {
            self.cipher_in.clear();
            self.fed = 0;
            let n = read_when_readable(&self.tcp, &mut self.cipher_in, CIPHER_READ_BYTES).await?;
            if n == 0 {
                self.cipher_in = PooledBuf::empty();
                // Tells rustls the transport ended (it then reports an
                // unclean end unless close_notify came first).
                self.conn.read_tls(&mut io::empty())?;
                return Ok(0);
            }
        }
        let n = self.conn.read_tls(&mut &self.cipher_in[self.fed..])?;
        self.fed += n;
        if self.fed == self.cipher_in.len() {
            self.cipher_in = PooledBuf::empty();
            self.fed = 0;
        }
        if let Err(e) = self.conn.process_new_packets() {
            let _ = self.send_pending().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        // A read can owe the peer something (a key update's answer).
        if self.conn.wants_write() {
            self.send_pending().await?;
        }
        Ok(n)
    }

    /// Encrypts nothing new: sends the records rustls has queued.
    async fn send_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut out = PooledBuf::take(CIPHER_WRITE_BYTES);
            self.conn.write_tls(&mut *out)?;
            let (res, _) = write_all(&mut self.tcp, out).await;
            res?;
        }
        Ok(())
    }

    /// Whether decrypted bytes (or the end of the stream) are waiting, so
    /// that a read would not wait on the socket.
    fn plaintext_ready(&mut self) -> bool {
        !matches!(self.conn.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Copies decrypted bytes waiting in rustls to `dst` (room for `room`):
    /// `Some(n)`, 0 at the end of the stream (clean or not: HTTP framing
    /// tells a cut request itself); `None` when nothing is waiting.
    ///
    /// # Safety
    /// `dst` must be valid for writes of `room` bytes.
    unsafe fn take_plaintext(&mut self, dst: *mut u8, room: usize) -> io::Result<Option<usize>> {
        let mut reader = self.conn.reader();
        let mut n = 0;
        while n < room {
            let k = match reader.fill_buf() {
                Ok([]) => break,
                Ok(chunk) => {
                    let k = chunk.len().min(room - n);
                    // SAFETY: `dst + n .. dst + n + k` is within `room`.
                    std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.add(n), k);
                    k
                }
                Err(_) if n > 0 => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            };
            reader.consume(k);
            n += k;
        }
        Ok(Some(n))
    }

    /// Reads into the empty `buf` as `net::read_when_readable` does for a
    /// plain socket: a buffer is taken (`capacity` bytes) only once
    /// decrypted bytes are there.
    pub async fn read_when_readable(
        &mut self,
        buf: &mut PooledBuf,
        capacity: usize,
    ) -> io::Result<usize> {
        loop {
            if self.plaintext_ready() {
                if buf.capacity() == 0 {
                    *buf = PooledBuf::take(capacity);
                }
                let len = buf.len();
                let room = buf.capacity() - len;
                // SAFETY: the spare capacity of `buf`, of `room` bytes; only
                // the bytes copied are marked initialised.
                let n = unsafe { self.take_plaintext(buf.as_mut_ptr().add(len), room)? };
                let n = n.unwrap_or(0);
                unsafe { buf.set_len(len + n) };
                return Ok(n);
            }
            self.feed().await?;
        }
    }

    async fn read_inner<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            // SAFETY: the buffer's writable region, as the trait defines it.
            match unsafe { self.take_plaintext(buf.write_ptr(), buf.bytes_total()) } {
                Ok(Some(n)) => {
                    unsafe { buf.set_init(n) };
                    return (Ok(n), buf);
                }
                Ok(None) => {}
                Err(e) => return (Err(e), buf),
            }
            if let Err(e) = self.feed().await {
                return (Err(e), buf);
            }
        }
    }

    async fn readv_inner<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            let iovs =
                unsafe { std::slice::from_raw_parts(buf.write_iovec_ptr(), buf.write_iovec_len()) };
            let mut total = 0;
            let mut waiting = false;
            for iov in iovs {
                // SAFETY: each iovec is writable for its length.
                match unsafe { self.take_plaintext(iov.iov_base.cast(), iov.iov_len) } {
                    Ok(Some(n)) => {
                        total += n;
                        if n < iov.iov_len {
                            break;
                        }
                    }
                    Ok(None) => {
                        waiting = total == 0;
                        break;
                    }
                    Err(e) if total == 0 => return (Err(e), buf),
                    Err(_) => break,
                }
            }
            if !waiting {
                unsafe { buf.set_init(total) };
                return (Ok(total), buf);
            }
            if let Err(e) = self.feed().await {
                return (Err(e), buf);
            }
        }
    }

    async fn write_inner<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the buffer's initialised bytes, as the trait defines them.
        let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = match self.conn.writer().write(src) {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match self.send_pending().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    /// Every segment is encrypted (as far as rustls takes them) and the
    /// records go out in one socket write.
    async fn writev_inner<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let iovs =
            unsafe { std::slice::from_raw_parts(buf.read_iovec_ptr(), buf.read_iovec_len()) };
        let mut n = 0;
        for iov in iovs {
            // SAFETY: each iovec is readable for its length.
            let src = unsafe { std::slice::from_raw_parts(iov.iov_base as *const u8, iov.iov_len) };
            match self.conn.writer().write(src) {
                Ok(k) => {
                    n += k;
                    if k < src.len() {
                        break;
                    }
                }
                Err(e) if n == 0 => return (Err(e), buf),
                Err(_) => break,
            }
        }
        match self.send_pending().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    async fn flush_inner(&mut self) -> io::Result<()> {
        self.send_pending().await
    }

    /// close_notify, then the socket's write side.
    async fn shutdown_inner(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.send_pending().await?;
        self.tcp.shutdown().await
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        self.conn.send_close_notify();
        let mut out = Vec::new();
        if self.conn.write_tls(&mut out).is_ok() && !out.is_empty() {
            // SAFETY: a send from a live buffer on the socket we still own
            // (its fd closes after this, when `tcp` drops). If the socket
            // buffer is full the alert is dropped: the client is gone or
            // not reading, and waiting for it is what a close must not do.
            unsafe {
                libc::send(
                    self.tcp.as_raw_fd(),
                    out.as_ptr().cast(),
                    out.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
        }
    }
}

impl AsyncReadRent for TlsStream {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.read_inner(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.readv_inner(buf)
    }
}

impl AsyncWriteRent for TlsStream {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.write_inner(buf)
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.writev_inner(buf)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.flush_inner()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        self.shutdown_inner()
    }
}
