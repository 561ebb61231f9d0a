//! A stream from an upstream that leaves Nagle on arrives as it is made.
//!
//! Such an upstream (many small Python model servers) sends one small
//! segment and holds the next until the first is acknowledged. On a reused
//! connection the gateway's kernel is in delayed-ACK ("ping-pong") mode
//! after it wrote the request, so each acknowledgement waits for the
//! delayed-ACK timer (40 ms on Linux) and the events arrive bunched ~40 ms
//! apart. The gateway leaves that mode on the upstream socket while it
//! relays a stream (TCP_QUICKACK); this test measures each event's delay
//! from the upstream's write to the client's read, on a pooled connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const EVENTS: usize = 12;
const GAP: Duration = Duration::from_millis(8);

/// A stream of `EVENTS` chunked SSE events, each its own small write
/// `GAP` apart, with Nagle left on; each write's instant is noted.
fn nagle_stream(written: Arc<Mutex<Vec<Instant>>>) -> Writer {
    Writer::new(move |s: &mut TcpStream, _| {
        s.set_nodelay(false)?;
        s.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )?;
        let mut at = Vec::with_capacity(EVENTS);
        for i in 0..EVENTS {
            thread::sleep(GAP);
            let data = mock_event("/v1/chat/completions", "gpt-4o-mini", i);
            let event = format!("data: {data}\n\n");
            at.push(Instant::now());
            s.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())?;
        }
        let done = "data: [DONE]\n\n";
        s.write_all(format!("{:x}\r\n{done}\r\n0\r\n\r\n", done.len()).as_bytes())?;
        *written.lock().unwrap() = at;
        Ok(true)
    })
}

/// Sends one stream request on `client` and notes when each event's text
/// (`tok<i>`) first arrived.
fn stream_arrivals(client: &mut TcpStream) -> Vec<Instant> {
    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(req.as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut arrived = Vec::with_capacity(EVENTS);
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !contains(&seen, b"0\r\n\r\n") {
        assert!(Instant::now() < deadline, "the stream did not end");
        let n = client.read(&mut buf).expect("read from the gateway");
        assert!(n > 0, "the gateway closed mid-stream");
        let now = Instant::now();
        seen.extend_from_slice(&buf[..n]);
        while arrived.len() < EVENTS
            && contains(&seen, format!("\"tok{}\"", arrived.len()).as_bytes())
        {
            arrived.push(now);
        }
    }
    assert_eq!(arrived.len(), EVENTS, "{}", String::from_utf8_lossy(&seen));
    arrived
}

#[test]
fn a_nagle_on_upstream_streams_without_delayed_ack_stalls() {
    let written = Arc::new(Mutex::new(Vec::new()));
    let w = written.clone();
    let mock = MockUpstream::with(move |_| Reply::Scripted(nagle_stream(w.clone())));
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let before = mock.connections();
        let mut client = TcpStream::connect(gw.addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // The first stream opens the pooled connection; the next ones reuse
        // it, as a busy gateway does, after a request was written on it.
        stream_arrivals(&mut client);
        // Each stream's slowest event, over three: a delayed ACK stalls
        // every stream on a reused connection, a scheduling hiccup on a
        // busy machine only some.
        let mut worst = Vec::new();
        for _ in 0..3 {
            let arrived = stream_arrivals(&mut client);
            let at = written.lock().unwrap().clone();
            let delays: Vec<Duration> = at
                .iter()
                .zip(&arrived)
                .map(|(w, a)| a.saturating_duration_since(*w))
                .collect();
            eprintln!("{d:?}: write-to-client delays {delays:?}");
            worst.push(delays.into_iter().max().unwrap());
        }
        assert_eq!(
            mock.connections() - before,
            1,
            "the streams did not reuse the upstream connection"
        );
        let best = worst.iter().min().unwrap();
        // Held for a delayed ACK, an event waits 25-40 ms (the timer's 40
        // less the gap); relayed as it comes, well under a millisecond.
        assert!(
            *best < Duration::from_millis(20),
            "every stream had an event wait for a delayed ACK: slowest events {worst:?}"
        );
    });
}
