//! Proves the pass-through hot path allocates nothing per request: a shard
//! runs on a thread whose heap allocations are counted, a real upstream and
//! a real keep-alive client talk to it over loopback, and after warm-up
//! (buffers pooled, pools and slabs grown) thousands of non-streaming chat
//! requests, with the `model` value patched, its usage read and its metrics
//! recorded, cause zero allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardgate::config::Config;
use shardgate::proxy::route::Router;
use shardgate::proxy::ROUTE_NAMES;
use shardgate::shard::{run_shard_thread, Control, Gateway, ShardSetup};
use shardgate::telemetry::LabelTable;

struct CountingAlloc;

static SHARD_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(|c| c.get()).unwrap_or(false) {
        SHARD_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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

#[test]
fn steady_state_pass_through_allocates_nothing_per_request() {
    let upstream = mock_upstream();
    let mut config = Config::from_toml(&format!(
        "[providers.openai]\nbase_url = \"http://127.0.0.1:{upstream}/v1\"\napi_key = \"sk-up\"\n\
         [[models]]\nname = \"fast\"\nprovider = \"openai\"\nupstream_model = \"gpt-4o-mini\"\n"
    ))
    .unwrap();
    config.server.listen = "127.0.0.1:0".into();
    config.validate().unwrap();
    let router = Router::new(&config).unwrap();
    let labels = Arc::new(LabelTable::from_config(&config, &ROUTE_NAMES));
    let gateway = Arc::new(Gateway { config, router });
    let listener = shardgate::net::bind_listeners("127.0.0.1:0".parse().unwrap(), 1, false)
        .unwrap()
        .remove(0);
    let addr = listener.local_addr().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        run_shard_thread(
            0,
            Control::new(gateway, 1),
            ShardSetup {
                labels,
                access_log: None,
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

    // A ~500-byte chat body whose model ("fast") is patched to "gpt-4o-mini".
    let body = format!(
        r#"{{"model":"fast","messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{}"}}],"temperature":0.2}}"#,
        "word ".repeat(80)
    );
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer client\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut exchange = |n: usize| {
        for _ in 0..n {
            client.write_all(request.as_bytes()).unwrap();
            let head = read_message(&mut client, &mut buf).expect("response");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
    };

    exchange(2_000); // warm-up: arena, pools, slabs, timer wheel reach steady state
    let before = SHARD_ALLOCATIONS.load(Ordering::Relaxed);
    const MEASURED: u64 = 5_000;
    exchange(MEASURED as usize);
    let allocations = SHARD_ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        allocations,
        0,
        "{allocations} heap allocations on the shard thread over {MEASURED} requests ({:.3}/request)",
        allocations as f64 / MEASURED as f64
    );
}
