//! A shard's idle keep-alive connections to one upstream.
//!
//! Invariants: last in, first out (the warmest connection is reused, cold
//! ones age out); never more than `max_idle` kept; a connection idle longer
//! than `idle_timeout`, or idle over `PROBE_AFTER` and found closed by a
//! peek, is dropped, not reused. A warmer one is not probed (a syscall per
//! request): if its peer closed it after all, the request fails before any
//! response byte and is re-sent once on a fresh connection.
//! Shard-local (`RefCell`, no locks): pools never cross threads.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::UpstreamConn;

/// Connections idle at least this long are peeked at before reuse: upstream
/// servers close idle keep-alive connections after seconds, not sooner.
const PROBE_AFTER: Duration = Duration::from_secs(1);

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

    /// The most recently returned live connection, if any.
    pub fn take(&self) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        while let Some((conn, since)) = idle.pop() {
            let idle_for = now.duration_since(since);
            if idle_for < self.idle_timeout && (idle_for < PROBE_AFTER || is_alive(&conn)) {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after a complete exchange.
    pub fn put(&self, conn: UpstreamConn) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.max_idle {
            idle.push((conn, Instant::now()));
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

/// A pooled connection is alive if reading would block: no EOF, no error,
/// and no stray bytes (an upstream that sent data unasked is out of sync).
fn is_alive(conn: &UpstreamConn) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a valid stack byte on an open socket.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            &mut byte as *mut u8 as *mut _,
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
