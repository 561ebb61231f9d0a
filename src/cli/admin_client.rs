//! A small blocking HTTP/1.1 client for a running gateway's admin listener,
//! over `std::net::TcpStream`, for the command line's chores (`shardgate
//! status`, `shardgate keys`): one request per connection (`Connection:
//! close`), a deadline on the connect and on every read and write, and
//! errors that say which step failed against which address.
//!
//! The admin listener answers with a Content-Length and closes, so the
//! answer is read to its length (or to the close) and parsed by
//! [`parse_response`], which touches no socket.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest answer read (a long key list is far below it).
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// A running gateway's admin listener.
pub struct AdminClient {
    addr: SocketAddr,
    token: Option<String>,
    timeout: Duration,
}

/// What the admin listener answered.
#[derive(Debug, PartialEq, Eq)]
pub struct AdminResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why no answer came back.
#[derive(Debug)]
pub enum AdminError {
    /// `--admin` is not an address (or does not resolve).
    Address { given: String, why: String },
    /// The connection was refused, or did not open in time.
    Connect { addr: SocketAddr, source: io::Error },
    /// Connected, then sending or reading the answer failed (or timed out).
    Exchange { addr: SocketAddr, source: io::Error },
    /// An answer that is not the HTTP/1.1 the admin listener speaks.
    Malformed { addr: SocketAddr, why: String },
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timed_out = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            )
        };
        match self {
            AdminError::Address { given, why } => {
                write!(f, "`{given}` is not an admin address (HOST:PORT): {why}")
            }
            AdminError::Connect { addr, source } if timed_out(source) => write!(
                f,
                "cannot reach the admin listener at {addr}: no answer to the connect in time"
            ),
            AdminError::Connect { addr, source } => {
                write!(f, "cannot reach the admin listener at {addr}: {source}")
            }
            AdminError::Exchange { addr, source } if timed_out(source) => {
                write!(f, "the admin listener at {addr} did not answer in time")
            }
            AdminError::Exchange { addr, source } => {
                write!(
                    f,
                    "the exchange with the admin listener at {addr} failed: {source}"
                )
            }
            AdminError::Malformed { addr, why } => {
                write!(
                    f,
                    "the admin listener at {addr} answered something unexpected: {why}"
                )
            }
        }
    }
}

impl std::error::Error for AdminError {}

impl AdminError {
    /// Nothing listens there, or nothing answered the connect.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, AdminError::Connect { .. })
    }
}

/// `HOST:PORT`, `http://HOST:PORT[/]` or `[V6]:PORT`; an unspecified host
/// (`0.0.0.0`, `::`: what a listener binds) is reached on loopback.
pub fn resolve_admin(given: &str) -> Result<SocketAddr, AdminError> {
    let bad = |why: &str| AdminError::Address {
        given: given.to_string(),
        why: why.to_string(),
    };
    let rest = given.trim();
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    if rest.starts_with("https://") {
        return Err(bad("the admin listener speaks plain HTTP"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') {
        return Err(bad("expected HOST:PORT, like 127.0.0.1:9090"));
    }
    let mut addr = rest
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("the name resolves to no address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

impl AdminClient {
    pub fn new(addr: SocketAddr, token: Option<String>, timeout: Duration) -> AdminClient {
        AdminClient {
            addr,
            token,
            timeout,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Sends `method path` (with a JSON `body`, if any) and reads the answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<AdminResponse, AdminError> {
        let addr = self.addr;
        let mut stream = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|source| AdminError::Connect { addr, source })?;
        let exchange = |source| AdminError::Exchange { addr, source };
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|_| stream.set_write_timeout(Some(self.timeout)))
            .map_err(exchange)?;
        let request = render_request(method, path, &addr, self.token.as_deref(), body);
        stream.write_all(&request).map_err(exchange)?;
        let mut answer = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(complete) = complete_len(&answer) {
                answer.truncate(complete);
                break;
            }
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                // A reset after the whole answer came is still the answer.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !answer.is_empty() => 0,
                Err(e) => return Err(exchange(e)),
            };
            if n == 0 {
                break;
            }
            if answer.len() + n > MAX_RESPONSE {
                return Err(AdminError::Malformed {
                    addr,
                    why: format!("an answer over {} MiB", MAX_RESPONSE >> 20),
                });
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        parse_response(&answer).map_err(|why| AdminError::Malformed { addr, why })
    }
}

/// The request's bytes.
fn render_request(
    method: &str,
    path: &str,
    host: &SocketAddr,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: shardgate-cli/{}\r\naccept: application/json\r\nconnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    if let Some(token) = token {
        out.extend_from_slice(format!("authorization: Bearer {token}\r\n").as_bytes());
    }
    if let Some(body) = body {
        out.extend_from_slice(
            format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    out
}

/// The length of a whole answer in `bytes` when its head is in and gives a
/// Content-Length that has all arrived; `None` otherwise (read on).
fn complete_len(bytes: &[u8]) -> Option<usize> {
    let head_end = find_head_end(bytes)?;
    let length = content_length(&bytes[..head_end]).ok()??;
    let total = head_end.checked_add(length)?;
    (bytes.len() >= total).then_some(total)
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The head's Content-Length: `Ok(None)` without one.
fn content_length(head: &[u8]) -> Result<Option<usize>, String> {
    let head = std::str::from_utf8(head).map_err(|_| "a head that is not text".to_string())?;
    let mut found = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            return Err("a chunked answer (the admin listener sends a Content-Length)".into());
        }
        if name.trim().eq_ignore_ascii_case("content-length") {
            let n = value
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("a Content-Length of `{}`", value.trim()))?;
            if found.is_some_and(|f| f != n) {
                return Err("two different Content-Lengths".into());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Status and body of a whole answer (read to its end).
pub fn parse_response(bytes: &[u8]) -> Result<AdminResponse, String> {
    if bytes.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    let head_end = find_head_end(bytes).ok_or_else(|| {
        if bytes.starts_with(b"HTTP/") {
            "the answer ended inside its head".to_string()
        } else {
            "an answer that is not HTTP (is this the admin address, not the gateway's?)".to_string()
        }
    })?;
    let status_line = bytes[..head_end]
        .split(|&b| b == b'\r')
        .next()
        .unwrap_or_default();
    let status = match status_line {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', a, b, c, ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit()) =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err("a status line that is not HTTP/1.x".into()),
    };
    let body = &bytes[head_end..];
    let body = match content_length(&bytes[..head_end])? {
        Some(n) if body.len() < n => {
            return Err(format!(
                "the answer ended after {} of its {n} body bytes",
                body.len()
            ))
        }
        Some(n) => &body[..n],
        None => body,
    };
    Ok(AdminResponse {
        status,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_the_forms_an_operator_types() {
        let loopback: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        for given in [
            "127.0.0.1:9090",
            "http://127.0.0.1:9090",
            "http://127.0.0.1:9090/",
            "0.0.0.0:9090",
        ] {
            assert_eq!(resolve_admin(given).unwrap(), loopback, "{given}");
        }
        assert_eq!(
            resolve_admin("[::]:9090").unwrap(),
            "[::1]:9090".parse::<SocketAddr>().unwrap()
        );
        for bad in ["", "9090", "https://127.0.0.1:9090", "127.0.0.1:9090/admin"] {
            let e = resolve_admin(bad).unwrap_err().to_string();
            assert!(e.contains("not an admin address"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_request_carries_the_token_and_its_body() {
        let addr: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let r = render_request("POST", "/admin/keys", &addr, Some("t0k"), Some(b"{}"));
        let r = String::from_utf8(r).unwrap();
        assert!(r.starts_with("POST /admin/keys HTTP/1.1\r\nhost: 127.0.0.1:9090\r\n"));
        assert!(r.contains("\r\nauthorization: Bearer t0k\r\n"));
        assert!(r.contains("\r\nconnection: close\r\n"));
        assert!(r.ends_with("content-length: 2\r\n\r\n{}"));
        let r = render_request("GET", "/admin/status", &addr, None, None);
        let r = String::from_utf8(r).unwrap();
        assert!(!r.contains("authorization") && !r.contains("content-length"));
    }

    #[test]
    fn answers_by_content_length_or_to_the_close() {
        let a = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
        assert_eq!(complete_len(a), Some(a.len()));
        assert_eq!(complete_len(&a[..a.len() - 1]), None);
        let r = parse_response(a).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
    }

    #[test]
    fn malformed_answers_say_what_was_wrong() {
        for (bytes, says) in [
            (&b""[..], "closed without an answer"),
            (b"SSH-2.0-OpenSSH\r\n", "not HTTP"),
            (b"HTTP/1.1 200 OK\r\ncontent-le", "inside its head"),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", "status line"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}",
                "2 of its 9",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
                "Content-Length of `x`",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                "chunked",
            ),
        ] {
            let e = parse_response(bytes).unwrap_err();
            assert!(e.contains(says), "{e} lacks {says}");
        }
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_names_the_address() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let client = AdminClient::new(addr, None, Duration::from_secs(2));
        let e = client.request("GET", "/admin/status", None).unwrap_err();
        assert!(e.is_unreachable());
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
