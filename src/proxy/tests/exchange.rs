//! Sending a request and reading its head over connections from a
//! scripted pool and dialer: when a request is sent again on a fresh
//! connection, and when it must not be (the upstream may have done it).

use std::cell::{Cell, RefCell};

use super::*;
use crate::error::{Kind, Retry};
use crate::proxy::exchange::OutgoingRequest;
use crate::proxy::forward::{exchange, ClientWatch, Dial, Exchanged};
use crate::upstream::timeouts::Timeouts;

/// Connections as laid out: pooled ones first (taken in order), then
/// fresh ones; each connection handed out is counted.
struct ScriptedDial {
    pooled: RefCell<VecDeque<Scripted>>,
    fresh: RefCell<VecDeque<Scripted>>,
    dialled: Cell<usize>,
}

impl ScriptedDial {
    fn new(pooled: Vec<Scripted>, fresh: Vec<Scripted>) -> ScriptedDial {
        ScriptedDial {
            pooled: RefCell::new(pooled.into()),
            fresh: RefCell::new(fresh.into()),
            dialled: Cell::new(0),
        }
    }
}

impl Dial for ScriptedDial {
    type Conn = Scripted;

    fn name(&self) -> &str {
        "scripted"
    }

    fn timeouts(&self) -> Timeouts {
        let limit = Duration::from_secs(5);
        Timeouts {
            connect: limit,
            first_byte: limit,
            idle: limit,
            total: Some(limit),
        }
    }

    fn pooled(&self) -> Option<Scripted> {
        self.pooled.borrow_mut().pop_front()
    }

    async fn dial(&self) -> Result<Scripted, crate::error::Error> {
        self.dialled.set(self.dialled.get() + 1);
        self.fresh.borrow_mut().pop_front().ok_or_else(|| {
            crate::error::Error::upstream(Kind::UpstreamConnect, true, "no more connections")
        })
    }
}

/// A client that stays (or has left) while the head is awaited.
struct Watch {
    left: bool,
}

impl ClientWatch for Watch {
    async fn gone(&self) {
        if !self.left {
            std::future::pending::<()>().await;
        }
    }
}

const STAYS: Watch = Watch { left: false };

fn request(method: &str) -> OutgoingRequest {
    let head = format!("{method} /v1/x HTTP/1.1\r\nhost: up\r\ncontent-length: 2\r\n\r\n");
    let mut buf = PooledBuf::take(head.len());
    buf.extend_from_slice(head.as_bytes());
    let mut body = PooledBuf::take(2);
    body.extend_from_slice(b"{}");
    OutgoingRequest {
        head: buf,
        head_range: 0..head.len(),
        value_range: 0..0,
        body: Some(body),
        body_range: 0..2,
        patch: None,
        insert: None,
        upload: None,
    }
}

/// A connection that takes the request and closes without a byte.
fn closes() -> Scripted {
    Scripted::new(vec![])
}

/// A connection the peer reset before the request: no write takes a byte.
fn refuses() -> Scripted {
    let mut c = Scripted::new(vec![]);
    c.refuse_writes = true;
    c
}

fn answers() -> Scripted {
    Scripted::in_pieces(&length_response("200 OK", "", "{}"), 4096)
}

fn send(dial: &ScriptedDial, method: &str, client: &Watch) -> (Exchanged<Scripted>, UpstreamSide) {
    run(async {
        let mut side = UpstreamSide::default();
        let mut req = request(method);
        let mut urbuf = PooledBuf::take(4096);
        let out = exchange(dial, &mut side, &mut req, &mut urbuf, client).await;
        (out, side)
    })
}

fn failed(out: Exchanged<Scripted>) -> crate::error::Error {
    match out {
        Exchanged::Failed(e) => e,
        _ => panic!("expected a failure"),
    }
}

#[test]
fn a_post_a_reused_connection_dropped_after_taking_it_is_not_sent_again() {
    let dial = ScriptedDial::new(vec![closes()], vec![answers()]);
    let (out, _) = send(&dial, "POST", &STAYS);
    let e = failed(out);
    // The upstream may have read and done it (and billed it): answered
    // as an error, and only the retry policy may try it again.
    assert_eq!((e.kind, e.retry), (Kind::UpstreamClosed, Retry::ReusedOnly));
    assert_eq!(dial.dialled.get(), 0, "no fresh connection for a POST");
}

#[test]
fn an_idempotent_request_is_sent_again_once_on_a_fresh_connection() {
    let dial = ScriptedDial::new(vec![closes()], vec![answers()]);
    let (out, side) = send(&dial, "GET", &STAYS);
    let Exchanged::Head(conn, _) = out else {
        panic!("expected the fresh connection's head");
    };
    assert_eq!(dial.dialled.get(), 1);
    assert_eq!(side.head.status, 200);
    assert!(conn.written.starts_with(b"GET /v1/x HTTP/1.1\r\n"));
    assert!(conn.written.ends_with(b"\r\n\r\n{}"));
}

#[test]
fn a_request_no_byte_of_which_was_taken_is_sent_again_whatever_its_method() {
    let dial = ScriptedDial::new(vec![refuses()], vec![answers()]);
    let (out, _) = send(&dial, "POST", &STAYS);
    assert!(matches!(out, Exchanged::Head(..)));
    assert_eq!(dial.dialled.get(), 1);
}

#[test]
fn a_fresh_connection_that_fails_is_the_retry_policy_s_to_judge() {
    for method in ["POST", "GET"] {
        let dial = ScriptedDial::new(vec![], vec![closes(), answers()]);
        let (out, _) = send(&dial, method, &STAYS);
        let e = failed(out);
        assert_eq!(
            (e.kind, e.retry),
            (Kind::UpstreamClosed, Retry::Never),
            "{method}"
        );
        assert_eq!(dial.dialled.get(), 1, "{method}: never re-sent at once");
    }
}

#[test]
fn a_request_is_sent_again_at_most_once() {
    let dial = ScriptedDial::new(vec![closes()], vec![closes(), answers()]);
    let (out, _) = send(&dial, "GET", &STAYS);
    assert!(matches!(out, Exchanged::Failed(_)));
    assert_eq!(dial.dialled.get(), 1);
}

#[test]
fn a_client_that_leaves_while_the_head_is_awaited_abandons_the_request() {
    let stalls = Scripted::new(vec![Step::Stall]);
    let dial = ScriptedDial::new(vec![], vec![stalls]);
    let (out, side) = send(&dial, "POST", &Watch { left: true });
    assert!(matches!(out, Exchanged::ClientLeft));
    assert!(side.report.client_left);
}
