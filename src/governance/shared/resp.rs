//! A small RESP2 client over a blocking `std::net::TcpStream`, for the
//! `state-sync` thread only: commands as arrays of bulk strings, replies
//! parsed whole, every read and write under a deadline.
//!
//! Why not the `redis` crate: the thread needs a handful of commands
//! (`EVALSHA`, `SCRIPT LOAD`, `MGET`, `HSET`, …), pipelining, and one hard
//! rule (no call outlives its timeout, so an unreachable server is noticed
//! in bounded time); the crate's sync client brings `url`, `combine`,
//! `sha1` and more for that, on two shared build cores. This file is the
//! whole protocol we use.
//!
//! Invariant: after any error the connection is dropped by the caller (a
//! reply may be half read), never reused.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) => Some(b),
            Reply::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(a)) => a,
            _ => &[],
        }
    }
}

/// A connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
}

fn other(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// The `host:port` of a `redis://[user:password@]host[:port][/db]` URL,
/// the password (and user) if any, and the database number.
pub struct Target {
    pub addr: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("`{url}` is not a redis:// URL (rediss:// is not supported)"))?;
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let (hostport, db) = match hostpart.split_once('/') {
        Some((h, d)) if !d.is_empty() => (
            h,
            d.parse()
                .map_err(|_| format!("`{d}` is not a database number"))?,
        ),
        Some((h, _)) => (h, 0),
        None => (hostpart, 0),
    };
    if hostport.is_empty() {
        return Err(format!("`{url}` names no host"));
    }
    let addr = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !hostport.ends_with(']')
    {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    let (user, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
            None => (None, Some(a.to_string())),
        },
    };
    Ok(Target {
        addr,
        user,
        password,
        db,
    })
}

impl Conn {
    /// Connects to `target` within `timeout`, authenticates and selects
    /// its database; every later read and write has `timeout` too.
    pub fn open(target: &Target, timeout: Duration) -> io::Result<Conn> {
        let addr = target
            .addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| other("the Redis host resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            reader: BufReader::new(stream),
            out: Vec::new(),
        };
        if let Some(p) = &target.password {
            let r = match &target.user {
                Some(u) => conn.call(&[b"AUTH", u.as_bytes(), p.as_bytes()])?,
                None => conn.call(&[b"AUTH", p.as_bytes()])?,
            };
            if let Reply::Error(e) = r {
                return Err(other(format!("AUTH: {e}")));
            }
        }
        if target.db != 0 {
            if let Reply::Error(e) = conn.call(&[b"SELECT", target.db.to_string().as_bytes()])? {
                return Err(other(format!("SELECT: {e}")));
            }
        }
        Ok(conn)
    }

    /// Queues one command (sent by [`Conn::flush`]).
    pub fn queue(&mut self, args: &[&[u8]]) {
        encode(&mut self.out, args);
    }

    /// Sends what was queued and reads `n` replies.
    pub fn flush(&mut self, n: usize) -> io::Result<Vec<Reply>> {
        let out = std::mem::take(&mut self.out);
        self.reader.get_mut().write_all(&out)?;
        (0..n).map(|_| read_reply(&mut self.reader)).collect()
    }

    /// One command and its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.queue(args);
        Ok(self.flush(1)?.remove(0))
    }
}

/// Appends `args` as a RESP array of bulk strings.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The most elements or bytes one reply may announce: a damaged stream
/// must not make us allocate gigabytes.
const MAX_LEN: i64 = 512 << 20;

fn line(r: &mut impl BufRead) -> io::Result<String> {
    let mut s = String::new();
    if r.read_line(&mut s)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "Redis closed the connection",
        ));
    }
    if !s.ends_with("\r\n") {
        return Err(other("a reply line without CRLF"));
    }
    s.truncate(s.len() - 2);
    Ok(s)
}

fn length(s: &str) -> io::Result<i64> {
    let n: i64 = s.parse().map_err(|_| other(format!("bad length `{s}`")))?;
    if n > MAX_LEN {
        return Err(other("a reply too long"));
    }
    Ok(n)
}

/// Reads one whole reply.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let l = line(r)?;
    let (kind, rest) = l.split_at(l.len().min(1));
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(rest.parse().map_err(|_| other("bad integer"))?),
        "$" => match length(rest)? {
            n if n < 0 => Reply::Bulk(None),
            n => {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                if !buf.ends_with(b"\r\n") {
                    return Err(other("a bulk string without CRLF"));
                }
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
        },
        "*" => match length(rest)? {
            n if n < 0 => Reply::Array(None),
            n => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?,
            )),
        },
        _ => return Err(other(format!("unknown reply type in `{l}`"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_parses() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"v\r\n"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n");
        let wire = b"+OK\r\n-ERR no\r\n:42\r\n$-1\r\n$3\r\nabc\r\n*2\r\n:1\r\n$0\r\n\r\n*-1\r\n";
        let mut r = &wire[..];
        let got: Vec<Reply> = (0..7).map(|_| read_reply(&mut r).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR no".into()),
                Reply::Int(42),
                Reply::Bulk(None),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(Some(vec![]))])),
                Reply::Array(None),
            ]
        );
        assert_eq!(got[4].bytes(), Some(&b"abc"[..]));
        assert!(read_reply(&mut &b"$5\r\nab\r\n"[..]).is_err(), "short bulk");
        assert!(read_reply(&mut &b"$99999999999\r\n"[..]).is_err(), "huge");
        assert!(read_reply(&mut &b""[..]).is_err());
    }

    #[test]
    fn urls() {
        let t = parse_url("redis://127.0.0.1:7000").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.password, t.db),
            ("127.0.0.1:7000", None, 0)
        );
        let t = parse_url("redis://:pw@cache.internal/2").unwrap();
        assert_eq!(t.addr, "cache.internal:6379");
        assert_eq!((t.user, t.password.as_deref(), t.db), (None, Some("pw"), 2));
        let t = parse_url("redis://u:p@h:1/").unwrap();
        assert_eq!((t.user.as_deref(), t.addr.as_str()), (Some("u"), "h:1"));
        assert!(parse_url("http://h").is_err());
        assert!(parse_url("redis://").is_err());
    }
}
