//! Which headers cross the gateway, in both directions, and what the
//! gateway says of the client to the upstream.
//!
//! Requests: **an allow-list.** A provider gets the headers the gateway
//! writes itself (host, its own auth, content-length, `x-request-id` when
//! it made one, `accept-encoding: identity`, `x-forwarded-for`) and, of the
//! client's, only those on [`FORWARDED_REQUEST_HEADERS`] (or with a prefix
//! on [`FORWARDED_REQUEST_PREFIXES`]). Everything else is dropped: the
//! client's credentials for this or any other provider (`Authorization`,
//! `x-api-key`, `api-key`, `x-goog-api-key`, `Ocp-Apim-Subscription-Key`,
//! AWS SigV4's `X-Amz-*`, `Cookie`, `Proxy-Authorization`, other gateways'
//! keys such as `Helicone-Auth`), account selectors that would let a client
//! pick which of the operator's organisations or projects pays
//! (`OpenAI-Organization`, `OpenAI-Project`, `x-goog-user-project`),
//! browser context (`Origin`, `Referer`, `Cookie`), spoofable client
//! addresses (`Forwarded`, `X-Real-IP`, `X-Forwarded-*`), codings of a body
//! the gateway already read as identity JSON (`Content-Encoding`), and any
//! header no provider documents. A deny-list would have to know every
//! credential header of every provider and every gateway in front of one;
//! an allow-list only has to know what providers use, listed here:
//!
//! - `content-type`, `accept`: the body's type, JSON or an event stream.
//! - `user-agent`, `x-stainless-*`: the official SDKs' identification and
//!   telemetry (language, package version, OS, runtime, retry count,
//!   timeout), which providers read for diagnostics; no identity in it.
//! - `x-request-id`, `x-client-request-id` (OpenAI),
//!   `x-ms-client-request-id` (Azure): correlation ids a provider logs and
//!   echoes, so a client can quote one in a support case.
//! - `idempotency-key`: what the SDKs send so a retried POST is not done
//!   twice.
//! - `openai-beta`, `anthropic-beta`, `anthropic-version`: API feature and
//!   version opt-ins (an Anthropic provider replaces `anthropic-version`
//!   with its configured one).
//! - `traceparent`, `tracestate`: W3C trace context, opaque ids (unlike
//!   `baggage`, which carries arbitrary data, and is dropped).
//! - `http-referer`, `x-title`: OpenRouter's app attribution, set on
//!   purpose by the client's developer.
//!
//! Responses: everything but framing and hop-by-hop headers, and two that
//! describe the provider's origin rather than the gateway's: `set-cookie`
//! (the provider's cookies, such as its CDN's bot-management session, are
//! the gateway's session with the provider, for a domain the client never
//! spoke to) and `alt-svc` (an HTTP/3 endpoint of the provider's host, which
//! a client would take for the gateway's).
//!
//! Both directions: headers a `Connection` header names are hop-by-hop
//! (RFC 9110 §7.6.1) and never cross, whatever the lists say
//! ([`ConnectionOptions`]). A response is refused before any byte reaches
//! the client if the gateway could not read it ([`response_head_refusal`]).
//!
//! Cost: nothing here allocates for a message whose `Connection` headers
//! name only `keep-alive`, `close` or headers dropped anyway, which is every
//! message but a curious one; the checks are byte comparisons against short
//! constant lists.

use std::net::IpAddr;

use crate::config::{ForwardedFor, ServerConfig};
use crate::error::{Error, Kind};
use crate::http1::framing::list_elements;
use crate::http1::parse::{HeaderSpan, ResponseHead};
use crate::http1::write::push_header;

/// Client headers forwarded to providers (compared ASCII case-insensitively;
/// see the module doc for why each is here).
pub const FORWARDED_REQUEST_HEADERS: &[&[u8]] = &[
    b"content-type",
    b"accept",
    b"user-agent",
    b"x-request-id",
    b"x-client-request-id",
    b"x-ms-client-request-id",
    b"idempotency-key",
    b"openai-beta",
    b"anthropic-beta",
    b"anthropic-version",
    b"traceparent",
    b"tracestate",
    b"http-referer",
    b"x-title",
];

/// Prefixes of client header names forwarded to providers.
pub const FORWARDED_REQUEST_PREFIXES: &[&[u8]] = &[b"x-stainless-"];

/// Headers that are hop-by-hop by definition (RFC 9110 §7.6.1, RFC 9112)
/// or frame the message, which each side frames itself: never copied in
/// either direction, whether or not a `Connection` header names them.
const HOP_BY_HOP: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
];

/// Upstream response headers about the provider's origin, not the
/// gateway's (see the module doc).
const PROVIDER_ORIGIN_ONLY: &[&[u8]] = &[b"set-cookie", b"alt-svc"];

fn is_one_of(name: &[u8], list: &[&[u8]]) -> bool {
    list.iter().any(|l| l.eq_ignore_ascii_case(name))
}

fn has_prefix_ignore_case(name: &[u8], prefix: &[u8]) -> bool {
    name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Whether a client request header of this name may go to a provider at
/// all (before `Connection` and the provider's own headers are applied).
pub fn is_forwarded_request_header(name: &[u8]) -> bool {
    is_one_of(name, FORWARDED_REQUEST_HEADERS)
        || FORWARDED_REQUEST_PREFIXES
            .iter()
            .any(|p| has_prefix_ignore_case(name, p))
}

/// Whether an upstream response header of this name is relayed to the
/// client (before `Connection` is applied).
pub fn is_forwarded_response_header(name: &[u8]) -> bool {
    !is_one_of(name, HOP_BY_HOP) && !is_one_of(name, PROVIDER_ORIGIN_ONLY)
}

/// The options a message's `Connection` headers name (RFC 9110 §7.6.1:
/// `Connection = #connection-option`), each of which is a hop-by-hop header
/// to remove. Built once per message; options that name no header to keep
/// anyway (`close`, `keep-alive`, the always hop-by-hop ones) are not
/// kept, so the common message holds an empty, unallocated list.
#[derive(Debug, Default)]
pub struct ConnectionOptions<'a> {
    /// Sorted ASCII case-insensitively, deduplicated.
    named: Vec<&'a [u8]>,
}

impl<'a> ConnectionOptions<'a> {
    /// The options of every `Connection` header among `headers` (spans
    /// into `buf`).
    pub fn of(headers: &[HeaderSpan], buf: &'a [u8]) -> ConnectionOptions<'a> {
        let mut named = Vec::new();
        for h in headers {
            if !h.name.get(buf).eq_ignore_ascii_case(b"connection") {
                continue;
            }
            for option in list_elements(h.value.get(buf)) {
                if !option.eq_ignore_ascii_case(b"close") && !is_one_of(option, HOP_BY_HOP) {
                    named.push(option);
                }
            }
        }
        // Only a message that names headers pays for the sort (and an
        // allocation); lookups are then logarithmic however many it names.
        if named.len() > 1 {
            named.sort_unstable_by(|a, b| cmp_ignore_case(a, b));
            named.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        }
        ConnectionOptions { named }
    }

    /// Whether the header `name` was named, so must not be forwarded.
    pub fn names(&self, name: &[u8]) -> bool {
        !self.named.is_empty()
            && self
                .named
                .binary_search_by(|o| cmp_ignore_case(o, name))
                .is_ok()
    }
}

fn cmp_ignore_case(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

/// Why a response whose head just arrived must not be relayed, if it must
/// not: an upstream protocol error (502, not retry-safe: the upstream did
/// the work), answered before any byte reaches the client.
///
/// - `101 Switching Protocols`: the gateway never asks for an upgrade (and
///   other 1xx are interim, skipped before this), so the upstream is broken
///   or confused.
/// - A `Content-Encoding` other than identity: the gateway asks every
///   upstream for identity, as it reads token usage (and translates bodies)
///   in the clear; a compressed answer could not be metered, nor does the
///   client necessarily accept its coding.
pub fn response_head_refusal(head: &ResponseHead, buf: &[u8]) -> Option<Error> {
    if head.status == 101 {
        return Some(Error::upstream(
            Kind::UpstreamProtocol,
            false,
            "upstream answered 101 Switching Protocols to a request that asked for no upgrade",
        ));
    }
    for h in &head.headers {
        if !h.name.get(buf).eq_ignore_ascii_case(b"content-encoding") {
            continue;
        }
        let value = h.value.get(buf);
        if list_elements(value).any(|c| !c.eq_ignore_ascii_case(b"identity")) {
            return Some(Error::upstream(
                Kind::UpstreamProtocol,
                false,
                format!(
                    "upstream answered with content-encoding {:?} although identity was asked for; \
                     its usage cannot be metered",
                    String::from_utf8_lossy(value)
                ),
            ));
        }
    }
    None
}

/// The client's address, noted once per connection (from `accept`), in
/// the form `X-Forwarded-For` carries it: an IPv4-mapped IPv6 address as
/// IPv4, IPv6 without brackets (as nginx's `$remote_addr`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr {
    ip: IpAddr,
    text: [u8; 39],
    len: u8,
}

impl PeerAddr {
    pub fn new(ip: IpAddr) -> PeerAddr {
        use std::io::Write;
        let ip = ip.to_canonical();
        let mut text = [0u8; 39];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        // The longest IPv6 text is 39 bytes, so this cannot fail.
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as u8;
        PeerAddr { ip, text, len }
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

/// Appends the `x-forwarded-for` header the upstream gets, as `server`
/// says: none when off; else the chain a trusted proxy sent (its
/// `X-Forwarded-For` lines in order, less any its `Connection` named), then
/// the peer's address; an untrusted peer's own chain is replaced by its
/// address, as it could say anything (nginx's `proxy_add_x_forwarded_for`
/// with `set_real_ip_from`, Envoy's `xff_num_trusted_hops`).
pub fn push_forwarded_for(
    out: &mut Vec<u8>,
    server: &ServerConfig,
    peer: &PeerAddr,
    headers: &[HeaderSpan],
    buf: &[u8],
    connection: &ConnectionOptions<'_>,
) {
    if server.forwarded_for == ForwardedFor::Off {
        return;
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    let trusted = server.trusted_proxies.iter().any(|n| n.contains(peer.ip()));
    if trusted && !connection.names(b"x-forwarded-for") {
        for h in headers {
            if h.name.get(buf).eq_ignore_ascii_case(b"x-forwarded-for") {
                let chain = h.value.get(buf).trim_ascii();
                if !chain.is_empty() {
                    out.extend_from_slice(chain);
                    out.extend_from_slice(b", ");
                }
            }
        }
    }
    out.extend_from_slice(peer.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `accept-encoding: identity`, which every upstream request carries (see
/// [`response_head_refusal`]).
pub fn push_accept_identity(out: &mut Vec<u8>) {
    push_header(out, b"accept-encoding", b"identity");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpNet;
    use crate::error::Retry;
    use crate::http1::parse::{parse_request, parse_response, HeadLimits, Parsed, RequestHead};

    fn request(head: &str) -> (Vec<u8>, RequestHead) {
        let buf = head.as_bytes().to_vec();
        let mut h = RequestHead::default();
        assert!(matches!(
            parse_request(&buf, &HeadLimits::default(), &mut h),
            Ok(Parsed::Complete)
        ));
        (buf, h)
    }

    #[test]
    fn only_allow_listed_request_headers_pass() {
        for h in [
            "Content-Type",
            "user-agent",
            "OpenAI-Beta",
            "anthropic-beta",
            "X-Request-Id",
            "X-Stainless-Retry-Count",
            "x-stainless-lang",
            "Idempotency-Key",
            "traceparent",
        ] {
            assert!(is_forwarded_request_header(h.as_bytes()), "{h}");
        }
        for h in [
            "Authorization",
            "Proxy-Authorization",
            "X-API-Key",
            "api-key",
            "x-goog-api-key",
            "Ocp-Apim-Subscription-Key",
            "OpenAI-Organization",
            "OpenAI-Project",
            "X-Amz-Security-Token",
            "X-Amz-Date",
            "Cookie",
            "Host",
            "Connection",
            "Transfer-Encoding",
            "Content-Length",
            "Expect",
            "Accept-Encoding",
            "Content-Encoding",
            "X-Forwarded-For",
            "Forwarded",
            "x-stainless",
            "baggage",
            "X-Custom",
        ] {
            assert!(!is_forwarded_request_header(h.as_bytes()), "{h}");
        }
    }

    #[test]
    fn response_headers_lose_framing_hop_by_hop_and_provider_origin_ones() {
        for h in [
            "Content-Length",
            "transfer-encoding",
            "Connection",
            "Keep-Alive",
            "Upgrade",
            "Set-Cookie",
            "alt-svc",
        ] {
            assert!(!is_forwarded_response_header(h.as_bytes()), "{h}");
        }
        for h in [
            "x-ratelimit-remaining-requests",
            "content-type",
            "retry-after",
            "openai-processing-ms",
        ] {
            assert!(is_forwarded_response_header(h.as_bytes()), "{h}");
        }
    }

    #[test]
    fn connection_options_are_case_insensitive_list_elements() {
        let (buf, head) = request(
            "GET / HTTP/1.1\r\nConnection: keep-alive , X-One,\t,x-TWO\r\nconnection: x-three\r\n\
             CONNECTION: X-one\r\n\r\n",
        );
        let c = ConnectionOptions::of(&head.headers, &buf);
        for h in ["x-one", "X-ONE", "x-two", "X-Three"] {
            assert!(c.names(h.as_bytes()), "{h}");
        }
        for h in ["x-on", "x-one-more", "keep-alive", "", "x-four"] {
            assert!(!c.names(h.as_bytes()), "{h}");
        }
        assert_eq!(c.named.len(), 3, "deduplicated: {:?}", c.named);
    }

    #[test]
    fn the_common_connection_header_allocates_nothing() {
        for head in [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: close, TE\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: Upgrade, keep-alive\r\n\r\n",
        ] {
            let (buf, h) = request(head);
            let c = ConnectionOptions::of(&h.headers, &buf);
            assert_eq!(c.named.capacity(), 0, "{head:?}");
            assert!(!c.names(b"user-agent"));
        }
    }

    fn response(head: &str) -> (Vec<u8>, ResponseHead) {
        let buf = head.as_bytes().to_vec();
        let mut h = ResponseHead::default();
        assert!(matches!(
            parse_response(&buf, &HeadLimits::default(), &mut h),
            Ok(Parsed::Complete)
        ));
        (buf, h)
    }

    #[test]
    fn only_an_identity_response_is_accepted() {
        for head in [
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Encoding: IDENTITY , identity\r\n\r\n",
            "HTTP/1.1 500 OK\r\nContent-Encoding:\r\n\r\n",
        ] {
            let (buf, h) = response(head);
            assert!(response_head_refusal(&h, &buf).is_none(), "{head:?}");
        }
        for head in [
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-encoding: identity, br\r\n\r\n",
            "HTTP/1.1 429 OK\r\nContent-Encoding: identity\r\nContent-Encoding: zstd\r\n\r\n",
        ] {
            let (buf, h) = response(head);
            let e = response_head_refusal(&h, &buf).expect(head);
            assert_eq!((e.status(), e.retry), (502, Retry::Never), "{head:?}");
        }
    }

    #[test]
    fn peer_addresses_are_written_as_x_forwarded_for_carries_them() {
        for (ip, text) in [
            ("127.0.0.1", "127.0.0.1"),
            ("::ffff:10.1.2.3", "10.1.2.3"),
            ("::1", "::1"),
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
        ] {
            let p = PeerAddr::new(ip.parse().unwrap());
            assert_eq!(p.as_bytes(), text.as_bytes());
        }
    }

    fn forwarded_for(server: &ServerConfig, peer: &str, head: &str) -> String {
        let (buf, h) = request(head);
        let c = ConnectionOptions::of(&h.headers, &buf);
        let peer = PeerAddr::new(peer.parse().unwrap());
        let mut out = Vec::new();
        push_forwarded_for(&mut out, server, &peer, &h.headers, &buf, &c);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn x_forwarded_for_trusts_only_configured_proxies() {
        let head =
            "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1 \r\nx-forwarded-for: 2.2.2.2\r\n\r\n";
        let mut server = ServerConfig::default();
        assert_eq!(
            forwarded_for(&server, "10.0.0.5", head),
            "x-forwarded-for: 10.0.0.5\r\n"
        );
        server.trusted_proxies = vec!["10.0.0.0/8".parse::<IpNet>().unwrap()];
        assert_eq!(
            forwarded_for(&server, "10.0.0.5", head),
            "x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.5\r\n"
        );
        assert_eq!(
            forwarded_for(&server, "::ffff:10.0.0.5", head),
            "x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.5\r\n"
        );
        assert_eq!(
            forwarded_for(&server, "11.0.0.5", head),
            "x-forwarded-for: 11.0.0.5\r\n"
        );
        let named =
            "GET / HTTP/1.1\r\nConnection: x-forwarded-for\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n";
        assert_eq!(
            forwarded_for(&server, "10.0.0.5", named),
            "x-forwarded-for: 10.0.0.5\r\n"
        );
        server.forwarded_for = ForwardedFor::Off;
        assert_eq!(forwarded_for(&server, "10.0.0.5", head), "");
    }
}
