//! Reading a client socket without parking a buffer on it while it is idle.
//! An io_uring read owns its buffer from submission to completion, so a
//! connection waiting for its next request with a read in flight pins that
//! buffer for as long as the client stays quiet; here a buffer is filled
//! only when bytes are already there, and the wait holds none.
//!
//! Invariants: while waiting, `buf` holds no storage (it is back in the
//! arena); bytes that are there are read at once by one non-blocking recv,
//! with no readiness wait first (a request that arrived while the previous
//! one was being answered costs what a read would). Only a connection that
//! would otherwise sit on a buffer pays for the wait: the failed recv, then
//! a PollAdd on io_uring, or on the epoll driver a poll(2) check on each
//! side of the epoll wait. Works under both monoio drivers.
//!
//! Also here, the non-blocking looks at a socket that the gateway takes
//! without reading from it: [`peek`] (is anything, or the end, waiting?)
//! and [`peer_gone`] (wait, holding no buffer, until the peer has left).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::net::TcpStream;

use crate::buf::PooledBuf;

/// Reads into the empty `buf`, taking `capacity` bytes from the arena when
/// it has none; waits for readability (with `buf` handed back) only when
/// nothing is there yet. `Ok(0)` is end of stream.
pub async fn read_when_readable(
    stream: &TcpStream,
    buf: &mut PooledBuf,
    capacity: usize,
) -> io::Result<usize> {
    debug_assert!(buf.is_empty(), "only whole requests are read this way");
    loop {
        if buf.capacity() == 0 {
            *buf = PooledBuf::take(capacity);
        }
        match recv_now(stream, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *buf = PooledBuf::empty();
                // Not relaxed: the epoll driver's readiness is not cleared by
                // our own reads, and a stale "ready" would spin this loop.
                stream.readable(false).await?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            read => return read,
        }
    }
}

/// What a non-blocking one-byte peek at a socket found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// Nothing to read: the peer is there and has said nothing.
    Quiet,
    /// Bytes are waiting (left where they are).
    Bytes,
    /// The end of stream, or an error (a reset): the peer has gone.
    Closed,
}

/// Peeks at socket `fd` without blocking and without consuming anything:
/// one `recv(MSG_PEEK | MSG_DONTWAIT)` of one byte.
pub fn peek(fd: RawFd) -> Peeked {
    let mut byte = 0u8;
    loop {
        // SAFETY: a one-byte peek into a valid stack byte.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        return match n {
            0 => Peeked::Closed,
            n if n > 0 => Peeked::Bytes,
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::WouldBlock => Peeked::Quiet,
                io::ErrorKind::Interrupted => continue,
                _ => Peeked::Closed,
            },
        };
    }
}

/// Whether the peer has closed or reset its side of `stream`, by a
/// non-blocking peek: the end of stream, or an error. Bytes waiting (a
/// pipelined request) or none yet both mean it is still there.
pub fn peer_closed(stream: &TcpStream) -> bool {
    peek(stream.as_raw_fd()) == Peeked::Closed
}

/// Resolves once the peer of `stream` has closed or reset its side (a
/// half-close counts: a client that shut its side down is taken as gone,
/// as [`peer_closed`] takes it). Meanwhile it holds no buffer and reads
/// nothing: it waits for readability (`readable(false)`: a PollAdd on
/// io_uring, the epoll readiness confirmed by a poll(2) on the epoll
/// driver), then peeks. A peer that sent bytes instead (a pipelined
/// request) keeps the socket readable until they are read, so readiness
/// can tell no more without spinning: from then on a poll(2) for
/// `POLLRDHUP`, which sees a close even behind unread bytes, every
/// `recheck`.
pub async fn peer_gone(stream: &TcpStream, recheck: Duration) {
    loop {
        if stream.readable(false).await.is_err() {
            // Readiness cannot be waited for: fall back to the timer.
            break;
        }
        match peek(stream.as_raw_fd()) {
            Peeked::Closed => return,
            Peeked::Bytes => break,
            Peeked::Quiet => {}
        }
    }
    while !hung_up(stream.as_raw_fd()) {
        monoio::time::sleep(recheck).await;
    }
}

/// Whether the peer of socket `fd` has shut down its side or reset it,
/// whatever unread bytes are waiting: one non-blocking poll(2).
fn hung_up(fd: RawFd) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: poll(2) on one valid pollfd, without waiting.
    let n = unsafe { libc::poll(&mut pollfd, 1, 0) };
    n > 0 && pollfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// One non-blocking recv into the spare capacity of `buf`.
fn recv_now(stream: &TcpStream, buf: &mut PooledBuf) -> io::Result<usize> {
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    // SAFETY: recv writes at most `spare.len()` bytes into the buffer's
    // spare capacity, and only the `n` it reports are marked initialised.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above; `n` bytes past `len` were written by the kernel.
    unsafe { buf.set_len(len + n as usize) };
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::arena_stats;
    use std::io::Write;
    use std::time::Duration;

    /// Bytes already there are read at once; with none, the wait holds no
    /// buffer (it is back in the arena); later bytes and the end of stream
    /// are read after the wait.
    async fn reads_without_parking_a_buffer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let stream = TcpStream::from_std(listener.accept().unwrap().0).unwrap();
        let mut buf = PooledBuf::empty();

        client.write_all(b"abc").unwrap();
        assert_eq!(read_when_readable(&stream, &mut buf, 64).await.unwrap(), 3);
        assert_eq!(&buf[..], b"abc");

        buf.clear();
        let (_, _, free_before) = arena_stats();
        let waited = monoio::time::timeout(
            Duration::from_millis(50),
            read_when_readable(&stream, &mut buf, 64),
        )
        .await;
        assert!(waited.is_err(), "nothing was sent: it waits");
        assert_eq!(buf.capacity(), 0);
        assert_eq!(
            arena_stats().2,
            free_before + 1,
            "the buffer waited in the arena"
        );

        client.write_all(b"de").unwrap();
        assert_eq!(read_when_readable(&stream, &mut buf, 64).await.unwrap(), 2);
        assert_eq!(&buf[..], b"de");

        buf.clear();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_when_readable(&stream, &mut buf, 64).await.unwrap(), 0);
    }

    /// Resolves `peer_gone` within `within`, or says it did not.
    async fn gone_within(stream: &TcpStream, within: Duration) -> bool {
        monoio::time::timeout(within, peer_gone(stream, Duration::from_millis(20)))
            .await
            .is_ok()
    }

    /// A quiet peer and one with bytes waiting (a pipelined request) are
    /// there; a close is seen on readiness, or behind unread bytes by the
    /// recheck; a reset is seen too. The bytes stay where they are.
    async fn sees_a_peer_leave_but_not_one_that_pipelined() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let accept = || {
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let ours = TcpStream::from_std(listener.accept().unwrap().0).unwrap();
            (client, ours)
        };
        let short = Duration::from_millis(100);
        let (client, ours) = accept();
        assert!(!gone_within(&ours, short).await, "quiet");
        assert_eq!(peek(ours.as_raw_fd()), Peeked::Quiet);
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(gone_within(&ours, short).await, "closed");

        let (mut client, ours) = accept();
        client.write_all(b"POST /next").unwrap();
        assert!(!gone_within(&ours, short).await, "pipelined");
        assert_eq!(peek(ours.as_raw_fd()), Peeked::Bytes);
        drop(client);
        assert!(gone_within(&ours, short).await, "closed behind bytes");

        let (client, ours) = accept();
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        assert!(gone_within(&ours, short).await, "reset");
        assert!(peer_closed(&ours));
    }

    #[test]
    fn sees_a_peer_leave_but_not_one_that_pipelined_on_io_uring() {
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(sees_a_peer_leave_but_not_one_that_pipelined()),
            Err(e) => eprintln!("SKIP: io_uring unavailable here: {e}"),
        }
    }

    #[test]
    fn sees_a_peer_leave_but_not_one_that_pipelined_on_epoll() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(sees_a_peer_leave_but_not_one_that_pipelined());
    }

    #[test]
    fn reads_without_parking_a_buffer_on_io_uring() {
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(reads_without_parking_a_buffer()),
            Err(e) => eprintln!("SKIP: io_uring unavailable here: {e}"),
        }
    }

    #[test]
    fn reads_without_parking_a_buffer_on_epoll() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(reads_without_parking_a_buffer());
    }
}
