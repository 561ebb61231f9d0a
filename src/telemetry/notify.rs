//! The systemd notify protocol (`sd_notify(3)`), without libsystemd.
//!
//! A state is a newline-separated list of `KEY=VALUE` assignments sent as one
//! datagram to the `AF_UNIX` socket named by `$NOTIFY_SOCKET`: a filesystem
//! path, or an abstract-namespace name written with a leading `@`. Without
//! `$NOTIFY_SOCKET` (not started by systemd, or `Type=` is not `notify`) every
//! call is a no-op that returns `Ok(false)`.
//!
//! Invariants: nothing here reads or changes the environment except
//! [`notify`] and [`watchdog_interval`], which only read it; the inner
//! functions take the socket and variables as parameters so tests never
//! mutate the process environment. Calls are cheap (one socket, one
//! datagram) but are syscalls: make them from the main thread or a tick, not
//! per request.
//!
//! Why not the `sd-notify` crate (checked at 0.5.0): it connects to
//! `$NOTIFY_SOCKET` as a plain path, so an abstract `@name` socket is never
//! reached; it ends every assignment with a newline (`READY=1\n`), where we
//! send exactly `READY=1`, `STOPPING=1` and `RELOADING=1\nMONOTONIC_USEC=N`,
//! the bytes the operations tests and any listener matching whole datagrams
//! expect; it only ever reads `$NOTIFY_SOCKET` from the environment, so the
//! socket tests here would have to mutate the process environment under a
//! multi-threaded test harness; and it answers `Ok(())` whether or not
//! anyone listens. What it would replace is [`notify_to`]'s ten lines.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` to `$NOTIFY_SOCKET`. `Ok(false)` when the variable is unset
/// or empty (nobody is listening), `Ok(true)` when the datagram was sent.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` as one datagram to `socket`: a path, or `@name` for an
/// abstract socket.
pub fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?
    } else {
        sock.send_to(state.as_bytes(), socket)?
    };
    // A datagram is sent whole or not at all; anything else is a kernel bug
    // we would rather report than hide.
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write on the notify socket",
        ));
    }
    Ok(())
}

/// Start-up is complete: the listeners accept.
pub fn ready() -> io::Result<bool> {
    notify("READY=1")
}

/// Shutdown (drain) has begun.
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1")
}

/// A reload has begun; send [`ready`] when it is done. systemd ≥ 253
/// (`Type=notify-reload`) requires `MONOTONIC_USEC` beside `RELOADING=1` to
/// tell this reload from an earlier one.
pub fn reloading() -> io::Result<bool> {
    notify(&reloading_state(monotonic_usec()))
}

/// Keep-alive ping for `WatchdogSec=`; send at least every
/// [`watchdog_interval`] / 2.
pub fn watchdog() -> io::Result<bool> {
    notify("WATCHDOG=1")
}

/// A free-form status line shown by `systemctl status`. Newlines would start
/// a new assignment, so they are replaced by spaces.
pub fn status(text: &str) -> io::Result<bool> {
    notify(&status_state(text))
}

/// How often systemd expects [`watchdog`] (`$WATCHDOG_USEC`), when the
/// watchdog is enabled for this process (`$WATCHDOG_PID` unset or ours).
/// Ping at half this interval.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    // systemd sets WATCHDOG_PID so a child that inherits the environment
    // does not think the watchdog is its own.
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

fn reloading_state(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
}

fn status_state(text: &str) -> String {
    let mut s = String::with_capacity(7 + text.len());
    s.push_str("STATUS=");
    s.extend(text.chars().map(|c| if c == '\n' { ' ' } else { c }));
    s
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares against.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_socket() -> (UnixDatagram, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "shardgate-notify-{}-{}.sock",
            std::process::id(),
            monotonic_usec()
        ));
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (sock, path)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let (sock, path) = temp_socket();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
        notify_to(path.as_os_str(), &status_state("draining\n3 left")).unwrap();
        assert_eq!(recv(&sock), "STATUS=draining 3 left");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("shardgate-notify-test-{}", monotonic_usec());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn reloading_carries_a_monotonic_timestamp() {
        let (sock, path) = temp_socket();
        let before = monotonic_usec();
        notify_to(path.as_os_str(), &reloading_state(monotonic_usec())).unwrap();
        let msg = recv(&sock);
        let (first, second) = msg.split_once('\n').unwrap();
        assert_eq!(first, "RELOADING=1");
        let usec: u64 = second
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec >= before && usec <= monotonic_usec());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_socket_is_an_error() {
        let err = notify_to(OsStr::new("/nonexistent/shardgate.sock"), "READY=1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn watchdog_interval_rules() {
        let f = watchdog_interval_from;
        assert_eq!(f(None, None, 7), None);
        assert_eq!(f(Some("0"), None, 7), None);
        assert_eq!(f(Some("junk"), None, 7), None);
        assert_eq!(f(Some("30000000"), None, 7), Some(Duration::from_secs(30)));
        assert_eq!(
            f(Some("2500000"), Some("7"), 7),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(f(Some("2500000"), Some("8"), 7), None);
        assert_eq!(f(Some("2500000"), Some("x"), 7), None);
    }
}
