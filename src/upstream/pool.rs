//! A shard's idle keep-alive connections to one upstream.
//!
//! Invariants: last in, first out (the warmest connection is reused, cold
//! ones age out); never more than `max_idle` kept; a connection goes in
//! only after a complete, well-framed response with nothing read past its
//! end (the relay decides, see `UpstreamSide::set_reusable`), and comes out
//! only if a non-blocking peek, taken as it is handed out, finds nothing
//! waiting on it: the end of stream, a reset, or any byte at all (a
//! response nobody asked for, which would be the next client's answer)
//! and it is closed, and the next one tried. One syscall per reused
//! request buys that; the caller writes its request with no await between
//! [`UpstreamPool::take`] and the write, so the peek is as late as it gets.
//! What is left is the race no HTTP/1.1 client escapes: bytes that arrive
//! after the peek, while the request is on its way.
//! Shard-local (`RefCell`, no locks): pools never cross threads.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::UpstreamConn;
use crate::net::{peek, Peeked};
use crate::runtime::loop_now;

pub struct UpstreamPool {
    idle: RefCell<Vec<(UpstreamConn, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl UpstreamPool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> UpstreamPool {
        UpstreamPool {
            idle: RefCell::new(Vec::with_capacity(max_idle.min(1024))),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently returned connection that is still open, quiet and
    /// within the idle timeout, if any; the ones passed over are closed.
    /// Take it right before writing a request on it.
    pub fn take(&self) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        let now = loop_now();
        while let Some((conn, since)) = idle.pop() {
            if now.duration_since(since) < self.idle_timeout && is_clean(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after a complete exchange.
    pub fn put(&self, conn: UpstreamConn) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.max_idle {
            idle.push((conn, loop_now()));
        }
    }

    /// Closes connections idle past the timeout (called periodically so idle
    /// sockets do not linger on a quiet shard).
    pub fn sweep(&self) {
        let now = Instant::now();
        self.idle
            .borrow_mut()
            .retain(|(_, since)| now.duration_since(*since) < self.idle_timeout);
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().len()
    }
}

/// A pooled connection may carry a request if reading it would block: no
/// end of stream, no error, and no stray bytes (an upstream that sent data
/// unasked is out of step with its requests). For TLS this sees records
/// still on the socket, not plaintext rustls already decrypted: bytes past
/// a response that came in the same read are the relay's to see (its
/// `extra`), but plaintext rustls still holds after a read that ended
/// exactly at the response's end is seen by neither (monoio-rustls offers
/// no way to ask for it).
fn is_clean(conn: &UpstreamConn) -> bool {
    peek(conn.as_raw_fd()) == Peeked::Quiet
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pool_with(conns: Vec<UpstreamConn>) -> UpstreamPool {
        let pool = UpstreamPool::new(8, Duration::from_secs(60));
        for c in conns {
            pool.put(c);
        }
        pool
    }

    /// A connected pair: the pool's side, and the upstream's.
    fn pair(listener: &std::net::TcpListener) -> (UpstreamConn, std::net::TcpStream) {
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let theirs = listener.accept().unwrap().0;
        let conn = UpstreamConn::Plain(monoio::net::TcpStream::from_std(ours).unwrap());
        (conn, theirs)
    }

    /// Bytes nobody asked for, a close and a reset each disqualify a
    /// pooled connection, however briefly it idled; a quiet one is taken.
    async fn only_quiet_connections_are_taken() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (quiet, _quiet_peer) = pair(&listener);
        let quiet_fd = quiet.as_raw_fd();
        let (stray, mut stray_peer) = pair(&listener);
        let (closed, closed_peer) = pair(&listener);
        let (reset, reset_peer) = pair(&listener);
        // The warmest last: each of these is tried before `quiet`.
        let pool = pool_with(vec![quiet, stray, closed, reset]);
        stray_peer.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        drop(closed_peer);
        socket2::SockRef::from(&reset_peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(reset_peer);
        monoio::time::sleep(Duration::from_millis(20)).await;

        let taken = pool.take().expect("the quiet connection");
        assert_eq!(taken.as_raw_fd(), quiet_fd);
        assert_eq!(pool.idle_count(), 0, "the others were closed");
        assert!(pool.take().is_none());
    }

    #[test]
    fn only_quiet_connections_are_taken_on_io_uring() {
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(only_quiet_connections_are_taken()),
            Err(e) => eprintln!("SKIP: io_uring unavailable here: {e}"),
        }
    }

    #[test]
    fn only_quiet_connections_are_taken_on_epoll() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(only_quiet_connections_are_taken());
    }
}
