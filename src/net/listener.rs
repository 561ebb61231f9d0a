//! One SO_REUSEPORT listening socket per shard, all on the same address, so
//! the kernel spreads connections across shards with no shared accept queue;
//! and the claim ([`PortClaim`]) by which one gateway process tells another
//! that it serves a port.
//!
//! Invariants:
//! - Unless `share_port` is set (a deliberate zero-downtime upgrade), we
//!   refuse to start when a live gateway already serves the port, or any
//!   socket we could not join listens there: SO_REUSEPORT would otherwise
//!   silently split traffic with a stray instance.
//! - "A live gateway serves the port" is decided by its [`PortClaim`], never
//!   by probing the port: a gateway killed with SIGKILL leaves its
//!   listening sockets open for a moment after it is gone (its io_uring
//!   rings, which hold them through their pending accepts, are torn down by
//!   the kernel's deferred work after the process exits; 10–20 ms here, up
//!   to seconds on busier or older kernels), and a restart must not trip on
//!   them. A claim is freed by the kernel the instant the process's
//!   descriptors close, which is before it can be reaped.
//! - Connections the kernel hashes to such a dead listener before it closes
//!   are reset when it does, unless `net.ipv4.tcp_migrate_req=1` (Linux
//!   5.14+), which moves them to a live listener of the same port. Binding
//!   at once is what keeps that loss smallest: from our bind on, new
//!   connections are spread over our listeners too, where waiting for the
//!   dead ones to go would leave them all the traffic. We say so in the log
//!   when it happens and the sysctl is off.

use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const BACKLOG: i32 = 4096;

/// The listening sockets for the shards and this process's claim on their
/// port; keep `claim` for as long as the process serves the port.
#[derive(Debug)]
pub struct Listeners {
    pub sockets: Vec<std::net::TcpListener>,
    pub claim: PortClaim,
}

/// This process's claim on a TCP port: an abstract-namespace unix socket
/// named after the port (`@shardgate/port/PORT`), bound and never used.
/// Abstract names belong to the network namespace, as ports do, need no
/// file to clean up, and are released by the kernel the moment the
/// socket's last descriptor closes: at exit, SIGKILL included. The name
/// holds the port only, not the address, so gateways on overlapping
/// addresses (`0.0.0.0:8080` and `127.0.0.1:8080`) see each other too.
#[derive(Debug)]
pub struct PortClaim {
    port: u16,
    socket: Option<UnixDatagram>,
    /// Claims cannot be made here (no unix sockets: a sandbox); the port
    /// was judged by probing it instead.
    unavailable: bool,
}

impl PortClaim {
    /// Claims `port`; the claim is not held (see [`PortClaim::is_held`])
    /// when another live process holds it.
    pub fn take(port: u16) -> io::Result<PortClaim> {
        let mut claim = PortClaim {
            port,
            socket: None,
            unavailable: false,
        };
        claim.try_again()?;
        Ok(claim)
    }

    /// Whether this process holds the claim.
    pub fn is_held(&self) -> bool {
        self.socket.is_some()
    }

    /// Whether the claim is worth trying again (it can be made here, and
    /// another process holds it).
    pub fn can_take_over(&self) -> bool {
        !self.unavailable && !self.is_held()
    }

    /// Takes the claim if it is free now (a gateway started with
    /// `share_port` beside an old one takes it over once that one exits);
    /// whether it is held afterwards.
    pub fn try_again(&mut self) -> io::Result<bool> {
        if self.can_take_over() {
            let name = format!("shardgate/port/{}", self.port);
            let addr = UnixAddr::from_abstract_name(name.as_bytes())?;
            match UnixDatagram::bind_addr(&addr) {
                Ok(s) => self.socket = Some(s),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.is_held())
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Binds `count` listeners on `addr` (port 0 picks one port for all) and
/// claims their port.
pub fn bind_listeners(addr: SocketAddr, count: usize, share_port: bool) -> io::Result<Listeners> {
    let in_use = || {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{addr} is already in use by another process (set server.share_port only for a zero-downtime upgrade)"),
        )
    };
    let claim = if addr.port() != 0 {
        let claim = PortClaim::take(addr.port()).unwrap_or_else(|e| {
            // Where no unix socket can be made, the port itself is all
            // there is to go by, with its false alarm after a SIGKILL.
            crate::telemetry::log_warn(format_args!(
                "cannot claim port {} (abstract unix socket: {e}); judging it by a probe \
                 instead, which a killed gateway's lingering sockets can fail for a moment",
                addr.port()
            ));
            PortClaim {
                port: addr.port(),
                socket: None,
                unavailable: true,
            }
        });
        let taken = if claim.unavailable {
            someone_listens(addr)
        } else {
            !claim.is_held()
        };
        if taken && !share_port {
            return Err(in_use());
        }
        Some(claim)
    } else {
        None
    };
    // Looked at before our own sockets are there to be seen.
    let leftovers = claim.as_ref().is_some_and(PortClaim::is_held) && someone_listens(addr);
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count.max(1) {
        let socket = new_socket(bound, true)?;
        // Fails when a socket that did not set SO_REUSEPORT (any other
        // program's, usually), or another user's, listens there.
        socket
            .bind(&SockAddr::from(bound))
            .map_err(|e| match e.kind() {
                io::ErrorKind::AddrInUse if !share_port => in_use(),
                _ => e,
            })?;
        socket.listen(BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        bound = listener.local_addr()?; // later shards join the port the first one got
        sockets.push(listener);
    }
    if leftovers {
        report_leftover_listeners(addr);
    }
    let claim = match claim {
        Some(c) => c,
        // A port the kernel just picked: free, so ours to claim.
        None => PortClaim::take(bound.port()).unwrap_or(PortClaim {
            port: bound.port(),
            socket: None,
            unavailable: true,
        }),
    };
    Ok(Listeners { sockets, claim })
}

/// Whether any socket listens on (or overlaps) `addr`: a plain bind, without
/// SO_REUSEPORT, fails.
fn someone_listens(addr: SocketAddr) -> bool {
    new_socket(addr, false).is_ok_and(|probe| probe.bind(&SockAddr::from(addr)).is_err())
}

/// With the port's claim ours and our SO_REUSEPORT listeners joined to
/// sockets already there, those are a gateway's that died without closing
/// them (or another program's that set SO_REUSEPORT): say what it means for
/// connections.
fn report_leftover_listeners(addr: SocketAddr) {
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .is_ok_and(|v| v.trim() == "1");
    let fate = if migrate {
        "the kernel moves connections queued on them to ours as they close (net.ipv4.tcp_migrate_req=1)"
    } else {
        "connections the kernel queues on them until they close are reset; \
         net.ipv4.tcp_migrate_req=1 would move them to ours instead"
    };
    crate::telemetry::log_warn(format_args!(
        "{addr}: sockets of a process that no longer serves it still listen there \
         (most likely a gateway that was killed; its kernel resources go within moments): \
         starting anyway; {fate}"
    ));
}

/// Asks the kernel to give the listening socket `fd` the connections whose
/// packets are received on `cpu` (`SO_INCOMING_CPU`; among SO_REUSEPORT
/// listeners the one whose CPU matches is chosen, since Linux 6.1; without
/// a match, the usual hash).
pub fn set_incoming_cpu(fd: std::os::fd::RawFd, cpu: usize) -> io::Result<()> {
    let cpu = libc::c_int::try_from(cpu).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: setsockopt on a socket fd we own, with a c_int option value.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_INCOMING_CPU,
            (&cpu as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
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

/// A blocking listener for the admin thread on `addr`, with SO_REUSEADDR so
/// a restart binds it while connections of the previous process linger in
/// TIME_WAIT.
pub fn bind_admin(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(128)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_shards_share_one_port() {
        let ls = bind_listeners("127.0.0.1:0".parse().unwrap(), 3, false).unwrap();
        let port = ls.sockets[0].local_addr().unwrap().port();
        assert!(ls
            .sockets
            .iter()
            .all(|l| l.local_addr().unwrap().port() == port));
        assert!(ls.claim.is_held());
        assert_eq!(ls.claim.port(), port);
    }

    #[test]
    fn each_listener_asks_for_its_cpu() {
        use std::os::fd::AsRawFd;
        let ls = bind_listeners("127.0.0.1:0".parse().unwrap(), 2, false).unwrap();
        for (cpu, l) in ls.sockets.iter().enumerate() {
            set_incoming_cpu(l.as_raw_fd(), cpu).unwrap();
            let mut got: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt into a c_int on a socket we own.
            let rc = unsafe {
                libc::getsockopt(
                    l.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_INCOMING_CPU,
                    (&mut got as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!((rc, got), (0, cpu as libc::c_int));
        }
        assert!(set_incoming_cpu(-1, 0).is_err());
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
        let addr = first.sockets[0].local_addr().unwrap();
        let err = bind_listeners(addr, 1, false).unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
        // Another address on the same port is the same port.
        let any: SocketAddr = format!("0.0.0.0:{}", addr.port()).parse().unwrap();
        assert!(bind_listeners(any, 1, false).is_err());
        // ...unless sharing is asked for explicitly (upgrade); the claim
        // stays the first one's until it lets go.
        let mut second = bind_listeners(addr, 1, true).unwrap();
        assert!(!second.claim.is_held());
        assert!(!second.claim.try_again().unwrap());
        drop(first);
        assert!(second.claim.try_again().unwrap(), "taken over");
        assert!(bind_listeners(addr, 1, false).is_err());
    }

    #[test]
    fn leftover_listeners_without_a_claim_do_not_block_a_start() {
        // Stands in for a killed gateway's sockets: listening with
        // SO_REUSEPORT, but no process holds the port's claim.
        let leftover = new_socket("127.0.0.1:0".parse().unwrap(), true).unwrap();
        leftover
            .bind(&SockAddr::from(
                "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            ))
            .unwrap();
        leftover.listen(16).unwrap();
        let addr = leftover.local_addr().unwrap().as_socket().unwrap();
        let ls = bind_listeners(addr, 2, false).unwrap();
        assert!(ls.claim.is_held());
        assert_eq!(ls.sockets[1].local_addr().unwrap(), addr);
    }

    #[test]
    fn the_admin_listener_binds_beside_time_wait_connections() {
        let l = bind_admin("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        // The server side closes first: its end goes to TIME_WAIT.
        drop(s);
        drop(c);
        drop(l);
        bind_admin(addr).expect("rebind with SO_REUSEADDR");
    }
}
