//! The gateway's own blocking HTTP/1.1 exchanges, made from threads of
//! their own (never a shard): a form POST to an OAuth 2.0 token endpoint
//! (Vertex AI's tokens), a provider's model list, and the OTLP exporter's
//! POSTs of spans. Over TLS for `https`
//! (with the trust the caller gives: the platform's roots, or a provider's
//! own), plain TCP otherwise.
//!
//! Invariants: every step is bounded in time (connect, each read and
//! write) and the answer in size; what is sent (a signed assertion, a key
//! in a header) and what comes back (a token) never reach a log or an
//! error message.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::http1::chunked::{ChunkLimits, ChunkedDecoder};
use crate::http1::framing::{response_framing, BodyKind};
use crate::http1::parse::{parse_response, HeadLimits, Parsed, ResponseHead};
use crate::upstream::tls::{self, Trust};
use crate::upstream::UpstreamUrl;

/// The most of a token endpoint's answer read: a token response is well
/// under 4 KiB.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// Where an exchange goes: the addresses to try in turn, and for TLS the
/// client config and the server's name.
pub struct Peer<'a> {
    pub addrs: &'a [SocketAddr],
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// POSTs `body` (`application/x-www-form-urlencoded`) to `url`; the
/// answer's status and body. Each step is bounded by `timeout`.
pub fn post_form(url: &str, body: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    let target = UpstreamUrl::parse(url)?;
    let addrs = target
        .resolve()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?;
    let tls = if target.tls {
        let config = tls::client_config(Trust::Default, "token endpoint")?;
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| format!("bad TLS server name: {e}"))?;
        Some((config, name))
    } else {
        None
    };
    let path = if target.path_prefix.is_empty() {
        "/"
    } else {
        &target.path_prefix
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         accept: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        target.host_header,
        body.len()
    );
    let peer = Peer { addrs: &addrs, tls };
    send(&peer, request.as_bytes(), timeout, MAX_TOKEN_ANSWER)
}

/// The OTLP/HTTP exporter's POST (`telemetry::trace::Post`): each export's
/// protobuf body to `<endpoint>/v1/traces` (an endpoint that already ends
/// so is used as it is), with the configured `headers`; each step bounded
/// by `timeout`. The connection is kept alive from export to export while
/// the collector keeps it (HTTP/1.1's default); one the collector closed
/// while idle (it fails before any byte of an answer, and not by a
/// timeout) is replaced once, at once, so an export waits at most one
/// `timeout` per step on a connection that answers nothing. The
/// collector's address is resolved for each new connection, on the
/// exporter's thread, so a collector that moves is followed.
pub fn otlp_post(
    endpoint: &str,
    headers: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
) -> Result<crate::telemetry::trace::Post, String> {
    let target = UpstreamUrl::parse(endpoint)?;
    let tls = if target.tls {
        let config = tls::client_config(Trust::Default, "OTLP collector")?;
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| format!("bad TLS server name: {e}"))?;
        Some((config, name))
    } else {
        None
    };
    let path = if target.path_prefix.ends_with("/v1/traces") {
        target.path_prefix.clone()
    } else {
        format!("{}/v1/traces", target.path_prefix)
    };
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-protobuf\r\n",
        target.host_header
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut kept: Option<Conn> = None;
    Ok(Box::new(move |body: &[&[u8]]| {
        let length: usize = body.iter().map(|part| part.len()).sum();
        let head = format!("{head}content-length: {length}\r\n\r\n");
        let mut parts = Vec::with_capacity(1 + body.len());
        parts.push(head.as_bytes());
        parts.extend_from_slice(body);
        // A collector's answer is an (often empty) ExportTraceServiceResponse.
        if let Some(mut conn) = kept.take() {
            match exchange_kept(&mut conn, &parts, MAX_TOKEN_ANSWER) {
                Ok((status, _, keep)) => {
                    kept = keep.then_some(conn);
                    return Ok(status);
                }
                Err(Failure { message, stale }) if !stale => return Err(message),
                // Closed by the collector while idle: a new connection.
                Err(_) => {}
            }
        }
        let addrs = target
            .resolve()
            .map_err(|e| format!("cannot resolve {}: {e}", target.host))?;
        let peer = Peer {
            addrs: &addrs,
            tls: tls.clone(),
        };
        let mut conn = connect(&peer, timeout)?;
        let (status, _, keep) =
            exchange_kept(&mut conn, &parts, MAX_TOKEN_ANSWER).map_err(|f| f.message)?;
        kept = keep.then_some(conn);
        Ok(status)
    }))
}

/// A connection to a peer, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Connects to the first of `peer`'s addresses that answers, every step
/// bounded by `timeout`.
fn connect(peer: &Peer<'_>, timeout: Duration) -> Result<Conn, String> {
    let mut last = "no address".to_string();
    let tcp = peer
        .addrs
        .iter()
        .find_map(|a| {
            TcpStream::connect_timeout(a, timeout)
                .map_err(|e| last = format!("cannot connect to {a}: {e}"))
                .ok()
        })
        .ok_or(last)?;
    tcp.set_read_timeout(Some(timeout)).map_err(io)?;
    tcp.set_write_timeout(Some(timeout)).map_err(io)?;
    // Parts go as they are written: Nagle would hold a body behind its
    // head until the head's ACK, which the peer delays.
    tcp.set_nodelay(true).map_err(io)?;
    Ok(match &peer.tls {
        Some((config, name)) => {
            let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                .map_err(|e| e.to_string())?;
            Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
        None => Conn::Plain(tcp),
    })
}

/// Sends `request` (a whole HTTP/1.1 request that says `connection:
/// close`) to `peer`; the answer's status and body, at most `max_answer`
/// bytes of it.
pub fn send(
    peer: &Peer<'_>,
    request: &[u8],
    timeout: Duration,
    max_answer: usize,
) -> Result<(u16, Vec<u8>), String> {
    send_parts(peer, &[request], timeout, max_answer)
}

/// [`send`] for a request given in parts, written one after another (a
/// large body is not copied behind its head).
pub fn send_parts(
    peer: &Peer<'_>,
    request: &[&[u8]],
    timeout: Duration,
    max_answer: usize,
) -> Result<(u16, Vec<u8>), String> {
    let mut conn = connect(peer, timeout)?;
    exchange_kept(&mut conn, request, max_answer)
        .map(|(status, body, _)| (status, body))
        .map_err(|f| f.message)
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// Why an exchange failed; `stale`: the connection was closed or reset
/// before any byte of an answer came (not a timeout), as a kept-alive
/// connection the server closed while idle is.
struct Failure {
    message: String,
    stale: bool,
}

impl Failure {
    fn new(message: String) -> Failure {
        Failure {
            message,
            stale: false,
        }
    }
}

fn closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    )
}

/// Writes the request and reads until the answer is whole by its framing
/// (or, for one delimited by the close, until the server closes); the
/// status, the body, and whether the connection may carry another request.
fn exchange_kept(
    stream: &mut (impl Read + Write),
    request: &[&[u8]],
    max_answer: usize,
) -> Result<(u16, Vec<u8>, bool), Failure> {
    request
        .iter()
        .try_for_each(|part| stream.write_all(part))
        .and_then(|()| stream.flush())
        .map_err(|e| Failure {
            message: format!("cannot send the request: {e}"),
            stale: closed(&e),
        })?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: what arrived is
            // judged by its framing.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => {
                return Err(Failure {
                    message: format!("cannot read the answer: {e}"),
                    stale: answer.is_empty() && closed(&e),
                })
            }
        };
        answer.extend_from_slice(&chunk[..n]);
        if let Some(whole) = whole_answer_kept(&answer, n == 0).map_err(Failure::new)? {
            return Ok(whole);
        }
        if n == 0 {
            return Err(Failure {
                message: "the answer ended early".into(),
                stale: answer.is_empty(),
            });
        }
        if answer.len() > max_answer {
            return Err(Failure::new(format!(
                "the answer is larger than {max_answer} bytes"
            )));
        }
    }
}

/// The status and body of an HTTP/1.1 answer once it is whole; `None`
/// while more is to come (`closed`: the server has closed, which ends a
/// close-delimited body).
#[cfg(test)]
fn whole_answer(answer: &[u8], closed: bool) -> Result<Option<(u16, Vec<u8>)>, String> {
    whole_answer_kept(answer, closed).map(|w| w.map(|(status, body, _)| (status, body)))
}

/// [`whole_answer`], and whether the connection may be used again (the
/// answer did not say `connection: close` nor end with the close).
fn whole_answer_kept(answer: &[u8], closed: bool) -> Result<Option<(u16, Vec<u8>, bool)>, String> {
    let mut head = ResponseHead::default();
    match parse_response(answer, &HeadLimits::default(), &mut head) {
        Ok(Parsed::Complete) => {}
        Ok(Parsed::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad answer head: {e:?}")),
    }
    let framing =
        response_framing(answer, &head, false).map_err(|e| format!("bad answer framing: {e:?}"))?;
    let rest = &answer[head.head_len..];
    let body = match framing.body {
        BodyKind::Empty => Vec::new(),
        BodyKind::Length(n) => match usize::try_from(n).ok().and_then(|n| rest.get(..n)) {
            Some(body) => body.to_vec(),
            None => return Ok(None),
        },
        BodyKind::Chunked => {
            let mut decoder = ChunkedDecoder::new(ChunkLimits::default());
            let mut body = Vec::new();
            let progress = decoder
                .feed(rest, |data| body.extend_from_slice(data))
                .map_err(|e| format!("bad chunked answer: {e:?}"))?;
            if !progress.done {
                return Ok(None);
            }
            body
        }
        BodyKind::CloseDelimited if closed => rest.to_vec(),
        BodyKind::CloseDelimited => return Ok(None),
    };
    let reusable = framing.keep_alive && !closed && framing.body != BodyKind::CloseDelimited;
    Ok(Some((head.status, body, reusable)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_whole_by_length_chunks_or_close() {
        let by_length = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{\"a\"";
        let whole = Some((200, b"{\"a\"".to_vec()));
        assert_eq!(whole_answer(by_length, false).unwrap(), whole);
        let chunked =
            b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n1\r\n \r\n0\r\n\r\n";
        let whole = Some((400, b"{} ".to_vec()));
        assert_eq!(whole_answer(chunked, false).unwrap(), whole);
        let closed = b"HTTP/1.1 200 OK\r\n\r\nbody";
        assert_eq!(whole_answer(closed, false).unwrap(), None);
        assert_eq!(
            whole_answer(closed, true).unwrap(),
            Some((200, b"body".to_vec()))
        );
    }

    #[test]
    fn partial_answers_wait_and_broken_ones_are_errors() {
        for partial in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\ncontent-le",
        ] {
            assert_eq!(whole_answer(partial, false).unwrap(), None);
        }
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                whole_answer(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn otlp_posts_keep_the_connection_and_replace_one_the_collector_closed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Answers two POSTs on its first connection, then closes it; one
        // more on the second.
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answers in [2, 1] {
                let (mut s, _) = listener.accept().unwrap();
                for _ in 0..answers {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !got.ends_with(b"BODY") {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0);
                        got.extend_from_slice(&buf[..n]);
                    }
                    seen.push(String::from_utf8(got).unwrap());
                    s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            }
            seen
        });
        let endpoint = format!("http://{addr}");
        let mut post = otlp_post(&endpoint, &Default::default(), Duration::from_secs(5)).unwrap();
        for _ in 0..3 {
            assert_eq!(post(&[b"BO", b"DY"]), Ok(200));
        }
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen[0].starts_with("POST /v1/traces HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(!seen[0].contains("connection: close"), "{}", seen[0]);
    }

    #[test]
    fn posts_the_form_and_reads_the_answer_over_tcp() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"a=1") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let url = format!("http://{addr}/token");
        let answer = post_form(&url, "a=1", Duration::from_secs(5)).unwrap();
        assert_eq!(answer, (200, b"ok".to_vec()));
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /token HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("content-type: application/x-www-form-urlencoded\r\n"));
        assert!(request.contains("content-length: 3\r\n"));
    }
}
