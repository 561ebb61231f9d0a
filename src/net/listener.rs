//! One SO_REUSEPORT listening socket per shard, all on the same address, so
//! the kernel spreads connections across shards with no shared accept queue.
//!
//! Invariant: unless `share_port` is set (a deliberate zero-downtime
//! upgrade), we refuse to start when anything already listens on the port:
//! SO_REUSEPORT would otherwise silently split traffic with a stray instance.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const BACKLOG: i32 = 4096;

/// Binds `count` listeners on `addr` (port 0 picks one port for all).
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    share_port: bool,
) -> io::Result<Vec<std::net::TcpListener>> {
    if !share_port && addr.port() != 0 {
        // A plain bind (no SO_REUSEPORT) fails if any socket listens there,
        // including one of ours from another process.
        let probe = new_socket(addr, false)?;
        if let Err(e) = probe.bind(&SockAddr::from(addr)) {
            return Err(if e.kind() == io::ErrorKind::AddrInUse {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{addr} is already in use by another process (set server.share_port only for a zero-downtime upgrade)"),
                )
            } else {
                e
            });
        }
    }
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = new_socket(addr, true)?;
        socket.bind(&SockAddr::from(addr))?;
        socket.listen(BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?; // later shards join the port the first one got
        listeners.push(listener);
    }
    Ok(listeners)
}

fn new_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_shards_share_one_port() {
        let ls = bind_listeners("127.0.0.1:0".parse().unwrap(), 3, false).unwrap();
        let port = ls[0].local_addr().unwrap().port();
        assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == port));
    }

    #[test]
    fn refuses_a_port_held_by_someone_else() {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = other.local_addr().unwrap();
        let err = bind_listeners(addr, 2, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("already in use"));
    }

    #[test]
    fn refuses_a_port_held_by_another_reuseport_instance() {
        let first = bind_listeners("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
        let addr = first[0].local_addr().unwrap();
        assert!(bind_listeners(addr, 1, false).is_err());
        // ...unless sharing is asked for explicitly (upgrade).
        assert!(bind_listeners(addr, 1, true).is_ok());
    }
}
