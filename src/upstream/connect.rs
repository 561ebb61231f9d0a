//! Opening upstream connections: TCP with a deadline, TCP_NODELAY, and TLS
//! (rustls over monoio's owned buffers, SNI from the provider's host) when
//! the provider's URL is https. `UpstreamConn` hides which of the two a
//! connection is. A failed handshake says why (see `tls`), and a rejected
//! certificate is not marked retryable: another attempt would fail the same.
//! [`UpstreamConn::ack_promptly`] keeps a stream from a Nagle-on upstream
//! from waiting on this side's delayed ACKs.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::pki_types::ServerName;

use crate::error::{Error, Kind};

/// A connection to an upstream, plain or TLS.
pub enum UpstreamConn {
    Plain(TcpStream),
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>, RawFd),
}

impl AsRawFd for UpstreamConn {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            UpstreamConn::Plain(s) => s.as_raw_fd(),
            UpstreamConn::Tls(_, fd) => *fd,
        }
    }
}

impl UpstreamConn {
    /// Acknowledges what arrives at once for the rest of this response.
    ///
    /// An upstream that leaves Nagle on holds each small write until the
    /// previous one is acknowledged; after the gateway wrote a request on
    /// a reused connection, the kernel delays its ACKs (its "ping-pong"
    /// mode, up to 40 ms), so a stream's first events arrive bunched.
    /// `TCP_QUICKACK` sends the ACK pending for the head now and leaves
    /// that mode; nothing re-enters it until the gateway writes on the
    /// connection again (its next request). One call per stream, after
    /// the head: plain responses are not charged the syscall.
    pub fn ack_promptly(&self) {
        let on: libc::c_int = 1;
        // SAFETY: a valid fd for the connection's life and a c_int option
        // of the size given. A failure only leaves the default behaviour.
        unsafe {
            libc::setsockopt(
                self.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Connects to the first address that answers within `timeout`, then runs
/// the TLS handshake when `tls` is given (SNI `server_name`).
pub async fn connect(
    addrs: &[SocketAddr],
    tls: Option<(&monoio_rustls::TlsConnector, &ServerName<'static>)>,
    timeout: Duration,
) -> Result<UpstreamConn, Error> {
    let mut last_err = None;
    for &addr in addrs {
        match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Ok(Ok(stream)) => {
                // Streams must leave as they arrive: no Nagle delay on small writes.
                let _ = stream.set_nodelay(true);
                return match tls {
                    None => Ok(UpstreamConn::Plain(stream)),
                    Some((connector, name)) => {
                        let fd = stream.as_raw_fd();
                        match monoio::time::timeout(
                            timeout,
                            connector.connect(name.clone(), stream),
                        )
                        .await
                        {
                            Ok(Ok(tls)) => Ok(UpstreamConn::Tls(Box::new(tls), fd)),
                            Ok(Err(e)) => {
                                let peer = format!("{} ({addr})", name.to_str());
                                let (message, bad_cert) =
                                    super::tls::describe_handshake_error(&e, &peer);
                                Err(Error::upstream(Kind::UpstreamConnect, !bad_cert, message))
                            }
                            Err(_) => Err(Error::upstream(
                                Kind::UpstreamTimeout,
                                true,
                                format!("TLS handshake with {} ({addr}) timed out", name.to_str()),
                            )),
                        }
                    }
                };
            }
            Ok(Err(e)) => last_err = Some(format!("connect to {addr} failed: {e}")),
            Err(_) => last_err = Some(format!("connect to {addr} timed out after {timeout:?}")),
        }
    }
    Err(Error::upstream(
        Kind::UpstreamConnect,
        true,
        last_err.unwrap_or_else(|| "no upstream address".into()),
    ))
}

impl AsyncReadRent for UpstreamConn {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.read(buf).await,
            UpstreamConn::Tls(s, _) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.readv(buf).await,
            UpstreamConn::Tls(s, _) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpstreamConn {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.write(buf).await,
            UpstreamConn::Tls(s, _) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.writev(buf).await,
            UpstreamConn::Tls(s, _) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpstreamConn::Plain(s) => s.flush().await,
            UpstreamConn::Tls(s, _) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpstreamConn::Plain(s) => s.shutdown().await,
            UpstreamConn::Tls(s, _) => s.shutdown().await,
        }
    }
}
