//! The soak with faults, short (the minutes-long one is `scripts/soak.sh`):
//! two scripted upstreams behind one model's two deployments, each injecting
//! about 6% faults — 429 with `retry-after-ms`, 500, 503, a close before
//! responding, a stall past the first-byte timeout, a body or a stream cut
//! half-way — under concurrent load in both dialects, plain and streaming,
//! under both drivers.
//!
//! Every request must end in a success or a well-formed error in its
//! dialect (an error status with the dialect's error body, or a stream
//! ending with the dialect's error event): never a dropped connection, a
//! cut body or a stream that just stops. The gateway's open descriptors
//! return to where they were after warm-up and its RSS stays within a small
//! bound of the post-warm-up figure.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const CLIENTS: usize = 8;
const WARM_UP: Duration = Duration::from_secs(1);
const LOAD: Duration = Duration::from_secs(4);
/// Past the pool's idle timeout (300 ms) and its next sweep (every 500 ms).
const SETTLE: Duration = Duration::from_millis(1200);

/// A fault (or none) for request `seq`, drawn from a fixed hash of it so a
/// failure replays. About 6% of requests get one.
fn faulty(seq: usize, streamed: bool, salt: u64) -> Reply {
    let mut x = (seq as u64 ^ salt).wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let error = |status, headers: Vec<(String, String)>| Reply::Error {
        status,
        message: "injected".into(),
        headers,
    };
    match (x ^ (x >> 31)) % 1000 {
        0..=9 => error(429, vec![("retry-after-ms".into(), "10".into())]),
        10..=19 => error(500, vec![]),
        20..=29 => error(503, vec![]),
        30..=39 => Reply::CloseBeforeResponse,
        40..=44 => Reply::Stall(Duration::from_millis(1500)),
        45..=59 if streamed => Reply::SseCut { events: 2 },
        45..=59 => Reply::PartialThenClose,
        _ => Reply::Auto,
    }
}

fn faulty_mock(salt: u64) -> MockUpstream {
    MockUpstream::with(move |r| {
        let streamed = contains(r.body, b"\"stream\":true");
        faulty(r.seq, streamed, salt)
    })
}

#[derive(Clone, Copy, Debug)]
enum Call {
    OpenAi { stream: bool },
    Anthropic { stream: bool },
}

impl Call {
    const ALL: [Call; 4] = [
        Call::OpenAi { stream: false },
        Call::OpenAi { stream: true },
        Call::Anthropic { stream: false },
        Call::Anthropic { stream: true },
    ];

    fn request(self) -> String {
        let messages = r#""messages":[{"role":"user","content":"hi"}]"#;
        match self {
            Call::OpenAi { stream } => post(
                "/v1/chat/completions",
                &format!(r#"{{"model":"m","stream":{stream},{messages}}}"#),
                &[],
            ),
            Call::Anthropic { stream } => post(
                "/v1/messages",
                &format!(r#"{{"model":"m","max_tokens":16,"stream":{stream},{messages}}}"#),
                &["anthropic-version: 2023-06-01"],
            ),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Success,
    ErrorStatus,
    StreamError,
}

/// How a response ended, or why it is not acceptable.
fn judge(call: Call, r: &Response) -> Result<Ending, String> {
    let text = || format!("{call:?} {}: {}", r.status, r.text());
    if r.status != 200 {
        let v: Value = serde_json::from_slice(&r.body).map_err(|_| text())?;
        let well_formed = match call {
            Call::OpenAi { .. } => {
                v["error"]["message"].is_string() && v["error"]["type"].is_string()
            }
            Call::Anthropic { .. } => {
                v["type"] == "error"
                    && v["error"]["type"].is_string()
                    && v["error"]["message"].is_string()
            }
        };
        return if well_formed {
            Ok(Ending::ErrorStatus)
        } else {
            Err(text())
        };
    }
    match call {
        Call::OpenAi { stream: false } => {
            let v: Value = serde_json::from_slice(&r.body).map_err(|_| text())?;
            v["choices"].is_array().then_some(Ending::Success)
        }
        Call::Anthropic { stream: false } => {
            let v: Value = serde_json::from_slice(&r.body).map_err(|_| text())?;
            v["content"].is_array().then_some(Ending::Success)
        }
        Call::OpenAi { stream: true } => {
            let data = sse_data(&r.body);
            match data.last().map(String::as_str) {
                Some("[DONE]") => Some(Ending::Success),
                Some(last) => serde_json::from_str::<Value>(last)
                    .ok()
                    .filter(|v| v["error"]["message"].is_string())
                    .map(|_| Ending::StreamError),
                None => None,
            }
        }
        Call::Anthropic { stream: true } => {
            let body = r.text();
            let last = body.trim_end().rsplit("\n\n").next().unwrap_or("");
            if last.starts_with("event: message_stop") {
                Some(Ending::Success)
            } else if last.starts_with("event: error") {
                Some(Ending::StreamError)
            } else {
                None
            }
        }
    }
    .ok_or_else(text)
}

#[derive(Default)]
struct Tally {
    success: AtomicUsize,
    error_status: AtomicUsize,
    stream_error: AtomicUsize,
}

/// `CLIENTS` keep-alive clients, each cycling through every call, for `run`.
fn load(gw: &Gateway, run: Duration, tally: &Tally) {
    let until = Instant::now() + run;
    thread::scope(|s| {
        for client in 0..CLIENTS {
            s.spawn(move || {
                let mut c = gw.connect();
                let mut i = client;
                while Instant::now() < until {
                    let call = Call::ALL[i % Call::ALL.len()];
                    i += 1;
                    let r = c.request(call.request()).unwrap_or_else(|e| {
                        panic!("{call:?}: the connection failed: {e}\n{}", gw.log())
                    });
                    let counter = match judge(call, &r) {
                        Ok(Ending::Success) => &tally.success,
                        Ok(Ending::ErrorStatus) => &tally.error_status,
                        Ok(Ending::StreamError) => &tally.stream_error,
                        Err(why) => panic!("not a success nor a well-formed error: {why}"),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if r.header("connection") == Some("close") {
                        c = gw.connect();
                    }
                }
            });
        }
    });
}

#[test]
fn every_request_ends_in_success_or_a_well_formed_error_under_faults() {
    let (a, b) = (faulty_mock(1), faulty_mock(2));
    each_driver(|d| {
        let admin = free_port();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
             [upstream]\nfirst_byte_timeout_ms = 200\nidle_timeout_ms = 1000\n\
             pool_idle_timeout_ms = 300\n\n\
             [resilience]\nbackoff_base_ms = 1\nbackoff_cap_ms = 20\n\n\
             [providers.a]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
             [providers.b]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
             [[models]]\nname = \"m\"\n\
             deployments = [{{ provider = \"a\" }}, {{ provider = \"b\" }}]\n",
            a.base_url(),
            b.base_url()
        );
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let warm = Tally::default();
        load(&gw, WARM_UP, &warm);
        // Counted once idle pooled connections have timed out, so a leaked
        // descriptor cannot hide behind the pool's size.
        thread::sleep(SETTLE);
        let (rss0, fds0) = (rss_kib(gw.pid()), fd_count(gw.pid()));
        let sent0 = a.requests().len() + b.requests().len();

        let tally = Tally::default();
        load(&gw, LOAD, &tally);
        thread::sleep(SETTLE);
        let (rss1, fds1) = (rss_kib(gw.pid()), fd_count(gw.pid()));
        let sent = a.requests().len() + b.requests().len() - sent0;
        let (ok, errors, cut) = (
            tally.success.load(Ordering::Relaxed),
            tally.error_status.load(Ordering::Relaxed),
            tally.stream_error.load(Ordering::Relaxed),
        );
        let total = ok + errors + cut;
        eprintln!(
            "{d:?}: {total} requests ({sent} upstream attempts): {ok} ok, {errors} error \
             statuses, {cut} stream errors; RSS {rss0} → {rss1} KiB, fds {fds0} → {fds1}"
        );
        // About 6% of attempts fail: enough faults that a leak per fault shows.
        assert!(sent >= 1000, "too little load to judge: {sent} attempts");
        // Retries and fail-overs absorb every fault that struck before the
        // client had a byte; what is left is streams cut after they began.
        assert!(
            ok * 100 >= total * 97,
            "{ok} of {total} succeeded\n{}",
            gw.log()
        );
        assert_eq!(fds1, fds0, "descriptors leaked");
        assert!(rss1 <= rss0 + 4096, "RSS {rss0} → {rss1} KiB");
        gw.assert_healthy();
    });
}
