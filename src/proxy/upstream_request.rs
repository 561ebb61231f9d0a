//! Assembling an attempt's upstream request from its [`Plan`]: the head
//! (request line, host, the provider's auth, the client's allowed headers,
//! forwarding headers, Content-Length) and the edits `forward` makes to
//! the body on the way.
//!
//! Invariant: a pass-through body is never re-serialised; what changes is
//! carried as byte ranges of the head buffer that `forward` writes between
//! slices of the client's body.

use super::downstream::Body;
use super::endpoint::{api_path, split_target, Endpoint};
use super::exchange::OutgoingRequest;
use super::headers::{
    is_forwarded_request_header, push_accept_identity, push_forwarded_for, ConnectionOptions,
    PeerAddr,
};
use super::route::Plan;
use super::translated::{TranslatedCall, Translation};
use crate::buf::PooledBuf;
use crate::config::ServerConfig;
use crate::http1::parse::RequestHead;
use crate::http1::write::{end_head, push_content_length, push_header};
use crate::json::push_json_string;
use crate::providers::Provider;
use std::ops::Range;

/// Builds an attempt's upstream request, all but the body buffer (lent to it
/// afterwards), while the client's head (in `rbuf`) is at hand. Also
/// returns a translated body, which replaces the client's, and how the
/// gateway reads the response when it does. Everything `plan` borrowed
/// from the body (the model name) is used up here, before its buffer moves.
pub(super) fn upstream_request(
    source: &HeadSource<'_>,
    body: &Body,
    plan: Plan<'_>,
    endpoint: Endpoint,
) -> (OutgoingRequest, Option<Vec<u8>>, Option<TranslatedCall>) {
    let (body_len, body_offset) = match body {
        Body::Empty => (None, 0),
        Body::InPlace(r) => (Some(r.len() as u64), r.start),
        Body::Decoded(b) => (Some(b.len() as u64), 0),
        Body::Streamed(u) => (Some(body.len()), u.prefix.start),
    };
    let (head, head_range, value_range, patch, insert, translated, call) = match plan {
        Plan::PassThrough {
            upstream_model,
            patch,
            inject_usage,
        } => {
            let model = (!upstream_model.is_empty()).then_some(upstream_model.as_ref());
            let patch = patch.map(|span| span.start + body_offset..span.end + body_offset);
            let insert = inject_usage.map(|(at, comma)| {
                let member: &[u8] = if comma {
                    INCLUDE_USAGE
                } else {
                    &INCLUDE_USAGE[1..]
                };
                (at + body_offset, member)
            });
            let edits = BodyEdits {
                len: body_len,
                patch: patch.clone().map(|span| (span, upstream_model.as_ref())),
                patch_raw: endpoint.is_multipart(),
                insert: insert.map(|(_, member)| member),
            };
            let path = if endpoint.sends_client_path() {
                // Checked by `classify`: plain ASCII segments.
                let (path, _) = split_target(source.head.target.get(source.rbuf));
                std::str::from_utf8(api_path(path)).expect("classify admits ASCII only")
            } else {
                endpoint.upstream_path()
            };
            // Signing providers (Bedrock) speak no client dialect: never
            // passed through, so a signature never covers a patched body.
            debug_assert!(!source.provider.signs_requests());
            let (head, ranges) = build_head(source, path, model, edits, &[]);
            let insert = insert.map(|(at, _)| (at, ranges.insert.clone()));
            let call = inject_usage.map(|_| TranslatedCall {
                translation: Translation::HideUsageChunk,
                stream: true,
                client_model: String::new(),
            });
            (head, ranges.head, ranges.value, patch, insert, None, call)
        }
        Plan::Translate {
            body: new_body,
            api_path,
            upstream_model,
            call,
        } => {
            let new_body =
                new_body.expect("a large body is translated before its request is built");
            let edits = BodyEdits {
                len: Some(new_body.len() as u64),
                patch: None,
                patch_raw: false,
                insert: None,
            };
            let (head, ranges) =
                build_head(source, api_path, Some(&upstream_model), edits, &new_body);
            (
                head,
                ranges.head,
                ranges.value,
                None,
                None,
                Some(new_body),
                Some(call),
            )
        }
    };
    let req = OutgoingRequest {
        head,
        head_range,
        value_range,
        body: None,
        body_range: 0..0,
        patch,
        insert,
        upload: None,
    };
    (req, translated, call)
}

/// What an attempt's upstream head is made from: the client's request
/// (its head in `rbuf`, the query string's span of it, the request id
/// the gateway made for it) and the provider it goes to.
pub(super) struct HeadSource<'a> {
    pub server: &'a ServerConfig,
    /// The client connection's read buffer, its parsed head and address.
    pub rbuf: &'a PooledBuf,
    pub head: &'a RequestHead,
    pub peer: &'a PeerAddr,
    pub provider: &'a Provider,
    pub query: Range<usize>,
    /// The gateway's own request id, sent as `x-request-id`.
    pub request_id: Option<&'a str>,
    /// With tracing on: the attempt's own `traceparent`, sent in place of
    /// the client's (whose `tracestate` crosses as it came).
    pub traceparent: Option<&'a [u8]>,
}

/// What is done to the body on its way upstream, for the head's
/// Content-Length and the bytes the head buffer carries.
struct BodyEdits<'a> {
    /// The client's body length (`None`: no body).
    len: Option<u64>,
    /// The old `model` value span and the new model name.
    patch: Option<(Range<usize>, &'a str)>,
    /// The name goes in as it is (a form field's value), not as a JSON
    /// string.
    patch_raw: bool,
    /// Bytes inserted into the body.
    insert: Option<&'a [u8]>,
}

/// Where `build_head` put things in its buffer.
struct HeadRanges {
    head: Range<usize>,
    value: Range<usize>,
    insert: Range<usize>,
}

/// Whether the attempt's own `traceparent` (with tracing on) takes the
/// place of the client's header `name`.
fn replaces(traceparent: Option<&[u8]>, name: &[u8]) -> bool {
    traceparent.is_some() && name.eq_ignore_ascii_case(b"traceparent")
}

/// `,"stream_options":{"include_usage":true}` (without the comma when the
/// body's object is empty).
const INCLUDE_USAGE: &[u8] = b",\"stream_options\":{\"include_usage\":true}";

/// Assembles the upstream request head in a fresh buffer: the replacement
/// model value and any inserted bytes first (so the body's new length is
/// known for Content-Length), then the head. Of the client's headers only
/// those `headers` lets cross go (its allow-list, less what the client's
/// `Connection` names and what the provider sets itself); the response is
/// asked for uncompressed, as the gateway reads its usage. A signing
/// provider signs `body`, the whole body sent.
fn build_head(
    source: &HeadSource<'_>,
    api_path: &str,
    model: Option<&str>,
    edits: BodyEdits<'_>,
    body: &[u8],
) -> (PooledBuf, HeadRanges) {
    let &HeadSource {
        server,
        rbuf,
        head,
        peer,
        provider: p,
        ref query,
        request_id,
        traceparent,
    } = source;
    let mut out = PooledBuf::take(1024 + head.head_len);
    let mut content_length = edits.len;
    if let (Some((span, new_model)), Some(len)) = (edits.patch, edits.len) {
        if edits.patch_raw {
            out.extend_from_slice(new_model.as_bytes());
        } else {
            push_json_string(&mut out, new_model);
        }
        content_length = Some(len - span.len() as u64 + out.len() as u64);
    }
    let value = 0..out.len();
    if let (Some(bytes), Some(len)) = (edits.insert, content_length) {
        out.extend_from_slice(bytes);
        content_length = Some(len + bytes.len() as u64);
    }
    let insert = value.end..out.len();
    let head_start = out.len();
    out.extend_from_slice(head.method.get(rbuf));
    out.push(b' ');
    let target_start = out.len();
    p.write_request_target(&mut out, api_path, model, &rbuf[query.clone()]);
    let target = target_start..out.len();
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(&mut out, b"host", p.url.host_header.as_bytes());
    if p.signs_requests() {
        let signed = (head.method.get(rbuf), out[target].to_vec());
        p.write_auth_headers(&mut out, signed.0, &signed.1, body);
    } else {
        p.write_auth_headers(&mut out, b"", b"", b"");
    }
    if let Some(len) = content_length {
        push_content_length(&mut out, len);
    }
    if let Some(id) = request_id {
        push_header(&mut out, b"x-request-id", id.as_bytes());
    }
    if let Some(tp) = traceparent {
        push_header(&mut out, b"traceparent", tp);
    }
    push_accept_identity(&mut out);
    let headers = &head.headers;
    let connection = ConnectionOptions::of(headers, rbuf);
    for h in headers {
        let name = h.name.get(rbuf);
        if is_forwarded_request_header(name)
            && !connection.names(name)
            && !p.overrides_request_header(name)
            && !replaces(traceparent, name)
        {
            push_header(&mut out, name, h.value.get(rbuf));
        }
    }
    push_forwarded_for(&mut out, server, peer, headers, rbuf, &connection);
    end_head(&mut out);
    let head = head_start..out.len();
    (
        out,
        HeadRanges {
            head,
            value,
            insert,
        },
    )
}
