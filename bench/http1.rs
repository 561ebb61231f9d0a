//! Head parsing cost: our parser against httparse on the head of a typical
//! chat-completions request (572 bytes, 15 fields) and on an nginx response
//! head (245 bytes, 8 fields; what the load generator and the upstream side
//! parse). Both parse into storage reused across iterations, as the server
//! does.
//!
//! Run: `cargo bench --bench http1`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shardgate::http1::parse::{
    parse_request, parse_response, HeadLimits, HeadScanner, Parsed, RequestHead, ResponseHead,
};

const CHAT_HEAD: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\n\
Host: gateway.internal.example.com\r\n\
User-Agent: OpenAI/Python 1.54.4\r\n\
Accept: application/json\r\n\
Accept-Encoding: gzip, deflate\r\n\
Content-Type: application/json\r\n\
Content-Length: 1874\r\n\
Authorization: Bearer sk-proj-3Jx9qTzL0vR8mWcY2nHbK5aPfUeD7sGi4oXl1tQy6rVz\r\n\
X-Stainless-Lang: python\r\n\
X-Stainless-Package-Version: 1.54.4\r\n\
X-Stainless-Runtime: CPython\r\n\
X-Stainless-Runtime-Version: 3.12.7\r\n\
X-Request-Id: 4f1c2b7e-9a3d-4c8e-b2f1-7d6a5e4c3b2a\r\n\
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
Connection: keep-alive\r\n\
\r\n";

const NGINX_RESPONSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Sun, 22 Nov 2026 00:16:05 GMT\r\n\
Content-Type: application/json\r\n\
Content-Length: 296\r\n\
Last-Modified: Sat, 21 Nov 2026 23:40:00 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6740c1a0-128\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n";

fn parse_heads(c: &mut Criterion) {
    let mut group = c.benchmark_group("chat_request_head");
    group.throughput(Throughput::Bytes(CHAT_HEAD.len() as u64));

    let limits = HeadLimits::default();
    let mut head = RequestHead::default();
    group.bench_function("shardgate::parse_request", |b| {
        b.iter(|| {
            let parsed = parse_request(black_box(CHAT_HEAD), &limits, &mut head);
            assert_eq!(parsed, Ok(Parsed::Complete));
            black_box(head.head_len)
        })
    });

    // The server's path: the head arrives in two reads.
    let mut scanner = HeadScanner::default();
    let split = CHAT_HEAD.len() / 2;
    group.bench_function("shardgate::HeadScanner (2 reads)", |b| {
        b.iter(|| {
            scanner.reset();
            let first = scanner.request(black_box(&CHAT_HEAD[..split]), &limits, &mut head);
            assert_eq!(first, Ok(Parsed::Partial));
            let second = scanner.request(black_box(CHAT_HEAD), &limits, &mut head);
            assert_eq!(second, Ok(Parsed::Complete));
            black_box(head.head_len)
        })
    });

    let mut slots = [httparse::EMPTY_HEADER; 100];
    group.bench_function("httparse::Request::parse", |b| {
        b.iter(|| {
            let mut request = httparse::Request::new(&mut slots);
            let parsed = request.parse(black_box(CHAT_HEAD));
            assert!(matches!(parsed, Ok(httparse::Status::Complete(_))));
            black_box(request.headers.len())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("nginx_response_head");
    group.throughput(Throughput::Bytes(NGINX_RESPONSE_HEAD.len() as u64));
    let mut head = ResponseHead::default();
    group.bench_function("shardgate::parse_response", |b| {
        b.iter(|| {
            let parsed = parse_response(black_box(NGINX_RESPONSE_HEAD), &limits, &mut head);
            assert_eq!(parsed, Ok(Parsed::Complete));
            black_box(head.head_len)
        })
    });
    group.bench_function("httparse::Response::parse", |b| {
        b.iter(|| {
            let mut response = httparse::Response::new(&mut slots);
            let parsed = response.parse(black_box(NGINX_RESPONSE_HEAD));
            assert!(matches!(parsed, Ok(httparse::Status::Complete(_))));
            black_box(response.headers.len())
        })
    });
    group.finish();
}

criterion_group!(benches, parse_heads);
criterion_main!(benches);
