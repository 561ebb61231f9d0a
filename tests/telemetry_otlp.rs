//! OpenTelemetry traces end to end: the gateway exports over OTLP/HTTP to
//! a receiver here (a plain TCP server that keeps each POST's body), and
//! the bodies are decoded with the official definitions
//! (`opentelemetry-proto`'s prost messages), so the hand-written encoder
//! is checked against the real schema, not against itself.
//!
//! What is pinned down: one server span per request with the GenAI
//! attributes, a client span per upstream attempt (a retry: two, and an
//! event), the client's `traceparent` continued and the attempt's sent
//! upstream, a sample ratio of 0 exporting nothing, and a collector that
//! is down or stuck never slowing a request (its spans dropped, counted).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use prost::Message;

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Export {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A local OTLP/HTTP receiver: answers each POST 200 (an empty
/// `ExportTraceServiceResponse`), or, while `stuck`, reads nothing and
/// says nothing.
struct Receiver {
    addr: SocketAddr,
    exports: Arc<Mutex<Vec<Export>>>,
}

impl Receiver {
    fn start(stuck: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let kept = exports.clone();
        let stuck = Arc::new(AtomicBool::new(stuck));
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (kept, stuck) = (kept.clone(), stuck.clone());
                thread::spawn(move || {
                    if stuck.load(Ordering::Relaxed) {
                        // Hold the connection, read nothing, answer nothing.
                        thread::sleep(Duration::from_secs(60));
                        drop(conn);
                        return;
                    }
                    let _ = serve(conn, &kept);
                });
            }
        });
        Receiver { addr, exports }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn exports(&self) -> Vec<Export> {
        self.exports.lock().unwrap().clone()
    }

    /// Every span received so far, decoded, but the start-up's `/health`
    /// probes' (each request is a span, those too).
    fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for e in self.exports() {
            let req = ExportTraceServiceRequest::decode(&e.body[..])
                .unwrap_or_else(|err| panic!("not an ExportTraceServiceRequest: {err}"));
            for rs in req.resource_spans {
                let resource = rs.resource.expect("a resource");
                let service = resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.clone()?.value);
                assert_eq!(service, Some(Any::StringValue("gw-under-test".into())));
                for ss in rs.scope_spans {
                    assert_eq!(ss.scope.expect("a scope").name, "shardgate");
                    spans.extend(ss.spans.into_iter().filter(|s| s.name != "health"));
                }
            }
        }
        spans
    }

    /// Waits until at least `n` spans have arrived; all of them.
    fn wait_spans(&self, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

/// Reads one HTTP/1.1 request with a Content-Length body, keeps it, answers.
fn serve(mut conn: TcpStream, kept: &Mutex<Vec<Export>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    kept.lock().unwrap().push(Export {
        path,
        headers,
        body: buf[head_end..head_end + len].to_vec(),
    });
    conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
}

/// A gateway config: provider `a` at `upstream`, model `m` on it as
/// `up-m`, tracing to `endpoint` with these extra `[tracing]` lines.
fn config(upstream: &str, endpoint: &str, admin: u16, tracing: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [resilience]\nbackoff_base_ms = 1\nbackoff_cap_ms = 5\n\n\
         [tracing]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"gw-under-test\"\n\
         flush_interval_ms = 50\nheaders = {{ authorization = \"Bearer collector-secret\" }}\n{tracing}\n\n\
         [providers.a]\nbase_url = \"{upstream}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [[models]]\nname = \"m\"\nprovider = \"a\"\nupstream_model = \"up-m\"\n"
    )
}

fn chat(stream: bool) -> String {
    format!(r#"{{"model":"m","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#)
}

fn attrs(span: &Span) -> HashMap<String, Any> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
        .collect()
}

fn s(v: &str) -> Any {
    Any::StringValue(v.into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server span and the client spans of one trace.
fn split(spans: &[Span], trace_id: &[u8]) -> (Span, Vec<Span>) {
    let of_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let servers: Vec<_> = of_trace
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(
        servers.len(),
        1,
        "one server span per request: {of_trace:#?}"
    );
    let server = (*servers[0]).clone();
    let mut clients: Vec<Span> = of_trace
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .map(|s| (*s).clone())
        .collect();
    clients.sort_by_key(|s| s.start_time_unix_nano);
    (server, clients)
}

fn metric(admin: u16, name: &str) -> u64 {
    let text = scrape(format!("127.0.0.1:{admin}").parse().unwrap());
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn each_request_is_a_server_span_with_the_genai_attributes_and_a_span_per_attempt() {
    let usage_stream = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-m\",",
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-m\",",
        "\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":13,\"total_tokens\":24}}\n\n",
        "data: [DONE]\n\n"
    );
    let upstream = MockUpstream::with(move |r| {
        if r.body.windows(13).any(|w| w == b"\"stream\":true") {
            Reply::Raw {
                status: 200,
                content_type: "text/event-stream".into(),
                headers: vec![],
                body: usage_stream.as_bytes().to_vec(),
            }
        } else {
            Reply::Auto
        }
    });
    each_driver(|d| {
        let receiver = Receiver::start(false);
        let admin = free_port();
        let toml = config(&upstream.base_url(), &receiver.endpoint(), admin, "");
        let gw = Gateway::start(GatewayOpts::config(d, toml));

        let r = gw.post("/v1/chat/completions", &chat(false));
        assert_eq!(r.status, 200, "{}", r.text());
        let sent = upstream.last();
        let r = gw.post("/v1/chat/completions", &chat(true));
        assert_eq!(r.status, 200, "{}", r.text());
        let spans = receiver.wait_spans(4);
        assert_eq!(spans.len(), 4, "{spans:#?}");

        let e = &receiver.exports()[0];
        assert_eq!(e.path, "/v1/traces");
        let header = |n: &str| {
            e.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-type"), Some("application/x-protobuf"));
        assert_eq!(header("authorization"), Some("Bearer collector-secret"));

        // The plain request.
        let tp = sent.header("traceparent").expect("a traceparent upstream");
        let (trace_hex, span_hex) = (&tp[3..35], &tp[36..52]);
        let trace_id = spans
            .iter()
            .find(|s| hex(&s.trace_id) == trace_hex)
            .expect("the upstream's trace was exported")
            .trace_id
            .clone();
        let (server, clients) = split(&spans, &trace_id);
        assert!(server.parent_span_id.is_empty(), "a new trace is a root");
        assert_eq!(server.name, "chat m");
        let a = attrs(&server);
        assert_eq!(a["gen_ai.operation.name"], s("chat"));
        assert_eq!(a["gen_ai.provider.name"], s("openai"));
        assert_eq!(a["gen_ai.request.model"], s("m"));
        assert_eq!(a["gen_ai.response.model"], s("up-m"));
        assert_eq!(a["gen_ai.usage.input_tokens"], Any::IntValue(5));
        assert_eq!(a["gen_ai.usage.output_tokens"], Any::IntValue(7));
        assert_eq!(a["http.response.status_code"], Any::IntValue(200));
        assert!(!a.contains_key("gen_ai.response.time_to_first_chunk"));
        // What the client span or the name already says is not repeated.
        for redundant in ["shardgate.route", "shardgate.provider", "server.address"] {
            assert!(!a.contains_key(redundant), "{redundant} on the server span");
        }
        assert!(server.end_time_unix_nano > server.start_time_unix_nano);
        assert_eq!(server.flags & 0xff, 1, "sampled");
        assert_eq!(clients.len(), 1);
        let c = &clients[0];
        assert_eq!(c.parent_span_id, server.span_id);
        assert_eq!(
            hex(&c.span_id),
            span_hex,
            "the upstream got the attempt's span"
        );
        assert_eq!(&tp[53..], "01");
        assert_eq!(c.name, "chat up-m");
        let ca = attrs(c);
        assert_eq!(ca["gen_ai.request.model"], s("up-m"));
        assert_eq!(ca["http.response.status_code"], Any::IntValue(200));
        assert_eq!(ca["shardgate.provider"], s("a"));
        assert_eq!(ca["gen_ai.provider.name"], s("openai"));
        assert_eq!(ca["gen_ai.operation.name"], s("chat"));
        assert_eq!(ca["server.address"], s("127.0.0.1"));
        for redundant in ["server.port", "shardgate.attempt"] {
            assert!(
                !ca.contains_key(redundant),
                "{redundant} on the client span"
            );
        }
        assert!(c.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(c.end_time_unix_nano <= server.end_time_unix_nano);

        // The stream: its usage and its time to first chunk.
        let stream_server = spans
            .iter()
            .find(|s| s.kind == SpanKind::Server as i32 && s.trace_id != trace_id)
            .unwrap();
        let a = attrs(stream_server);
        assert_eq!(a["gen_ai.usage.input_tokens"], Any::IntValue(11));
        assert_eq!(a["gen_ai.usage.output_tokens"], Any::IntValue(13));
        match a["gen_ai.response.time_to_first_chunk"] {
            Any::DoubleValue(t) => assert!(t > 0.0 && t < 5.0, "{t}"),
            ref other => panic!("{other:?}"),
        }
        // The four, and the start-up's health probe's.
        assert!(metric(admin, "shardgate_trace_spans_exported_total") >= 4);
        assert_eq!(metric(admin, "shardgate_trace_spans_dropped_total"), 0);
    });
}

#[test]
fn a_retry_is_two_attempt_spans_with_the_decision_as_an_event() {
    let upstream = MockUpstream::start();
    let receiver = Receiver::start(false);
    let first = upstream.requests().len();
    upstream.set_script(move |r| {
        if r.seq == first {
            Reply::Error {
                status: 503,
                message: "overloaded".into(),
                headers: vec![],
            }
        } else {
            Reply::Auto
        }
    });
    let toml = config(&upstream.base_url(), &receiver.endpoint(), free_port(), "");
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, toml));
    let r = gw.post("/v1/chat/completions", &chat(false));
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = receiver.wait_spans(3);
    let (server, clients) = split(&spans, &spans[0].trace_id);
    assert_eq!(clients.len(), 2, "{spans:#?}");
    let (failed, ok) = (&clients[0], &clients[1]);
    assert_eq!(
        attrs(failed)["http.response.status_code"],
        Any::IntValue(503)
    );
    assert_eq!(attrs(failed)["error.type"], s("503"));
    assert_eq!(
        failed.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    let retry = failed
        .events
        .iter()
        .find(|e| e.name == "retry")
        .unwrap_or_else(|| panic!("no retry event: {failed:#?}"));
    assert!(retry
        .attributes
        .iter()
        .any(|kv| kv.key == "shardgate.backoff_ms"));
    assert!(retry.time_unix_nano >= failed.end_time_unix_nano);
    assert_eq!(attrs(ok)["http.response.status_code"], Any::IntValue(200));
    // The attempts' order is their spans' start times (no attempt number).
    assert!(!attrs(ok).contains_key("shardgate.attempt"));
    assert!(ok.start_time_unix_nano >= failed.end_time_unix_nano);
    for c in &clients {
        assert_eq!(c.parent_span_id, server.span_id);
    }
    // Each attempt sent its own span upstream.
    let sent: Vec<_> = upstream.requests()[first..]
        .iter()
        .map(|r| r.header("traceparent").unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(&sent[0][36..52], hex(&failed.span_id));
    assert_eq!(&sent[1][36..52], hex(&ok.span_id));
    assert_eq!(
        attrs(&server)["http.response.status_code"],
        Any::IntValue(200)
    );
}

#[test]
fn a_clients_traceparent_is_continued_and_its_sampled_flag_followed() {
    let upstream = MockUpstream::start();
    let receiver = Receiver::start(false);
    let toml = config(&upstream.base_url(), &receiver.endpoint(), free_port(), "");
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, toml));
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let header = format!("traceparent: 00-{trace}-{parent}-01");
    let r = gw
        .connect()
        .request(post(
            "/v1/chat/completions",
            &chat(false),
            &[&header, "tracestate: vendor=opaque"],
        ))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = upstream.last();
    let spans = receiver.wait_spans(2);
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let (server, clients) = split(&spans, &trace_id);
    assert_eq!(hex(&server.parent_span_id), parent);
    assert_eq!(server.trace_state, "vendor=opaque");
    assert_eq!(server.flags & 0x300, 0x300, "the parent is remote");
    let tp = sent.header("traceparent").unwrap();
    assert_eq!(tp, format!("00-{trace}-{}-01", hex(&clients[0].span_id)));
    assert_eq!(
        sent.header_all("traceparent").len(),
        1,
        "the client's is replaced"
    );
    assert_eq!(sent.header("tracestate"), Some("vendor=opaque"));

    // Not sampled by the client: the trace goes on upstream, nothing is
    // exported. A malformed one: a new trace.
    let header = format!("traceparent: 00-{trace}-{parent}-00");
    let before = receiver.spans().len();
    let r = gw
        .connect()
        .request(post("/v1/chat/completions", &chat(false), &[&header]))
        .unwrap();
    assert_eq!(r.status, 200);
    let tp = upstream.last().header("traceparent").unwrap().to_string();
    assert!(
        tp.starts_with(&format!("00-{trace}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    let bad = format!("traceparent: 00-{}-{parent}-01", trace.to_uppercase());
    let r = gw
        .connect()
        .request(post("/v1/chat/completions", &chat(false), &[&bad]))
        .unwrap();
    assert_eq!(r.status, 200);
    let tp = upstream.last().header("traceparent").unwrap().to_string();
    assert!(!tp.contains(trace) && tp.ends_with("-01"), "{tp}");
    let spans = receiver.wait_spans(before + 2);
    assert_eq!(spans.len(), before + 2, "only the new trace's two spans");
    assert!(spans[before..]
        .iter()
        .all(|s| hex(&s.trace_id) == tp[3..35]));
}

#[test]
fn a_sample_ratio_of_zero_exports_nothing() {
    let upstream = MockUpstream::start();
    let receiver = Receiver::start(false);
    let admin = free_port();
    let toml = config(
        &upstream.base_url(),
        &receiver.endpoint(),
        admin,
        "sample_ratio = 0.0",
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, toml));
    for _ in 0..20 {
        assert_eq!(gw.post("/v1/chat/completions", &chat(false)).status, 200);
    }
    // Unsampled, the trace still goes on upstream.
    let tp = upstream.last().header("traceparent").unwrap().to_string();
    assert!(tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
    thread::sleep(Duration::from_millis(400));
    assert!(receiver.exports().is_empty());
    assert_eq!(metric(admin, "shardgate_trace_spans_exported_total"), 0);
}

#[test]
fn a_collector_that_is_down_or_stuck_never_stalls_requests() {
    let upstream = MockUpstream::start();
    let stuck = Receiver::start(true);
    let down = format!("http://127.0.0.1:{}", free_port());
    for endpoint in [down, stuck.endpoint()] {
        let admin = free_port();
        // One span a batch, one batch queued: the queue is full at once.
        let toml = config(
            &upstream.base_url(),
            &endpoint,
            admin,
            "shard_batch_spans = 1\nqueue_batches = 1\nexport_timeout_ms = 30000",
        );
        let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, toml));
        let mut client = gw.connect();
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        for _ in 0..300 {
            let t = Instant::now();
            let r = client
                .request(post("/v1/chat/completions", &chat(false), &[]))
                .unwrap();
            assert_eq!(r.status, 200);
            slowest = slowest.max(t.elapsed());
        }
        assert!(
            slowest < Duration::from_millis(500) && started.elapsed() < Duration::from_secs(15),
            "{endpoint}: slowest {slowest:?}, all {:?}",
            started.elapsed()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let dropped = loop {
            let dropped = metric(admin, "shardgate_trace_spans_dropped_total");
            if dropped > 0 || Instant::now() > deadline {
                break dropped;
            }
            thread::sleep(Duration::from_millis(50));
        };
        assert!(dropped > 0, "{endpoint}: nothing counted as dropped");
        assert_eq!(metric(admin, "shardgate_trace_spans_exported_total"), 0);
    }
}
