//! Proves the pass-through hot path allocates nothing per request, and that
//! no path leaves memory behind per request: a shard runs on a thread whose
//! heap allocations and live bytes are counted, a real upstream and a real
//! keep-alive client talk to it over loopback, and after warm-up (buffers
//! pooled, pools and slabs grown) thousands of non-streaming chat requests,
//! with the `model` value patched, its usage read and its metrics recorded,
//! cause zero allocations; thousands of translated `/v1/messages` requests
//! (which do allocate) leave the shard's heap no larger than they found it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardgate::config::Config;
use shardgate::providers::router::Router;
use shardgate::proxy::ROUTE_NAMES;
use shardgate::server::run_shard_thread;
use shardgate::shard::{Control, Gateway, ShardSetup};
use shardgate::telemetry::LabelTable;

struct CountingAlloc;

static SHARD_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated minus bytes freed on shard threads (a shard's buffers
/// never leave its thread, so its frees are counted there too).
static SHARD_LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
/// The counters are global: one test's shard at a time.
static ONE_SHARD_AT_A_TIME: Mutex<()> = Mutex::new(());
/// The shard whose thread is counted (0: none). A test's shard outlives
/// the test, and an idle shard still allocates now and then (giving its
/// free buffers back), so only the current test's own shard counts.
static COUNTED_SHARD: AtomicU64 = AtomicU64::new(0);
static NEXT_SHARD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shard number (0: not a shard thread).
    static SHARD_NO: Cell<u64> = const { Cell::new(0) };
}

fn count(allocations: u64, bytes: i64) {
    let counted = COUNTED_SHARD.load(Ordering::Relaxed);
    if counted != 0 && SHARD_NO.try_with(|c| c.get()).unwrap_or(0) == counted {
        SHARD_ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
        SHARD_LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(1, layout.size() as i64);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(1, layout.size() as i64);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(1, new_size as i64 - layout.size() as i64);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, -(layout.size() as i64));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const RESPONSE_BODY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

/// Reads one HTTP/1.1 message with a Content-Length body; returns the head.
fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return Some(head);
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn mock_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{RESPONSE_BODY}",
                    RESPONSE_BODY.len()
                );
                while read_message(&mut stream, &mut buf).is_some() {
                    if stream.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A shard on its own counted thread (the one counted from now on),
/// routing model "fast" to a mock OpenAI upstream; returns its address.
fn start_shard() -> SocketAddr {
    let upstream = mock_upstream();
    let mut config = Config::from_toml(&format!(
        "[providers.openai]\nbase_url = \"http://127.0.0.1:{upstream}/v1\"\napi_key = \"sk-up\"\n\
         [[models]]\nname = \"fast\"\nprovider = \"openai\"\nupstream_model = \"gpt-4o-mini\"\n"
    ))
    .unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    shardgate::providers::validate(&config).unwrap();
    let router = Router::new(&config).unwrap();
    let labels = Arc::new(LabelTable::from_config(&config, &ROUTE_NAMES));
    let gateway = Arc::new(Gateway::new(config, router, None).unwrap());
    let listener = shardgate::net::bind_listeners("127.0.0.1:0".parse().unwrap(), 1, false)
        .unwrap()
        .sockets
        .remove(0);
    let addr = listener.local_addr().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let shard_no = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
    COUNTED_SHARD.store(shard_no, Ordering::Relaxed);
    std::thread::spawn(move || {
        SHARD_NO.with(|c| c.set(shard_no));
        run_shard_thread(
            0,
            Control::new(gateway, 1),
            ShardSetup {
                tracer: None,
                labels,
                access_log: None,
                tls: None,
            },
            listener,
            None,
            ready_tx,
        );
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .1
        .unwrap();
    addr
}

/// How long the gateway waits for a response head before it watches the
/// client for having left (`proxy::forward::WATCH_CLIENT_AFTER`).
const WATCH_CLIENT_AFTER: Duration = Duration::from_millis(10);

/// Sends `request` `n` times on `client`, expecting a 200 each time;
/// returns how many took at least [`WATCH_CLIENT_AFTER`] as the client saw
/// them (an upper bound on the requests whose client watch was armed).
fn exchange(client: &mut TcpStream, buf: &mut Vec<u8>, request: &str, n: usize) -> u64 {
    let mut slow = 0;
    for _ in 0..n {
        let sent = Instant::now();
        client.write_all(request.as_bytes()).unwrap();
        let head = read_message(client, buf).expect("response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        slow += u64::from(sent.elapsed() >= WATCH_CLIENT_AFTER);
    }
    slow
}

/// A keep-alive JSON POST with `headers` (CRLF-separated lines).
fn post(path: &str, headers: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\n{headers}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn client(addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
}

#[test]
fn steady_state_pass_through_allocates_nothing_per_request() {
    let _one = ONE_SHARD_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let addr = start_shard();

    // A ~500-byte chat body whose model ("fast") is patched to "gpt-4o-mini".
    let body = format!(
        r#"{{"model":"fast","messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{}"}}],"temperature":0.2}}"#,
        "word ".repeat(80)
    );
    let request = post(
        "/v1/chat/completions",
        "authorization: Bearer client",
        &body,
    );
    let mut client = client(addr);
    let mut buf = Vec::with_capacity(64 * 1024);
    // Warm-up: arena, pools, slabs, timer wheel reach steady state.
    exchange(&mut client, &mut buf, &request, 2_000);
    let before = SHARD_ALLOCATIONS.load(Ordering::Relaxed);
    const MEASURED: u64 = 5_000;
    let slow = exchange(&mut client, &mut buf, &request, MEASURED as usize);
    let allocations = SHARD_ALLOCATIONS.load(Ordering::Relaxed) - before;
    // The one allowed exception is off the hot path: a response head slower
    // than the watch arms a readiness poll on the client socket, and
    // cancelling that in-flight op when the head comes makes monoio box the
    // op's data (its `Lifecycle::Ignored`) until the kernel completes it.
    // A noisy machine makes a few requests that slow; each allocates once.
    assert!(
        allocations <= slow,
        "{allocations} heap allocations on the shard thread over {MEASURED} requests \
         ({:.3}/request), {slow} of them slower than {WATCH_CLIENT_AFTER:?}",
        allocations as f64 / MEASURED as f64
    );
}

#[test]
fn translated_requests_leave_the_shard_heap_as_they_found_it() {
    let _one = ONE_SHARD_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let addr = start_shard();
    // An Anthropic request for "fast", translated to OpenAI chat for the
    // upstream and its answer back: both directions allocate (the bodies
    // are rebuilt), and all of it must be freed or reused.
    let body = format!(
        r#"{{"model":"fast","max_tokens":64,"system":"You are terse.","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "word ".repeat(80)
    );
    let headers = "x-api-key: client\r\nanthropic-version: 2023-06-01";
    let request = post("/v1/messages", headers, &body);
    let mut client = client(addr);
    let mut buf = Vec::with_capacity(64 * 1024);
    // A short warm-up: the free list is bounded (4 MiB), so a leak into it
    // shows only before that bound is reached.
    exchange(&mut client, &mut buf, &request, 200);
    let before = SHARD_LIVE_BYTES.load(Ordering::Relaxed);
    const MEASURED: usize = 5_000;
    exchange(&mut client, &mut buf, &request, MEASURED);
    let grown = SHARD_LIVE_BYTES.load(Ordering::Relaxed) - before;
    assert!(
        grown < 64 * 1024,
        "the shard's heap grew by {grown} bytes over {MEASURED} translated requests \
         ({:.0} bytes/request)",
        grown as f64 / MEASURED as f64
    );
}
