//! Reading a response head and a held error body, as `forward` does:
//! what each way of failing is called (which the re-send decision reads).

use super::*;
use crate::proxy::forward::{read_error_body, read_response_head, HeadFailure};

fn read_head(up: &mut Scripted) -> (Result<(), HeadFailure>, UpstreamSide, PooledBuf) {
    run(async {
        let mut side = UpstreamSide::default();
        let mut urbuf = PooledBuf::take(16 * 1024);
        let r = read_response_head(up, &mut urbuf, &mut side).await;
        (r, side, urbuf)
    })
}

#[test]
fn interim_responses_are_skipped_for_the_real_head() {
    let mut bytes =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".to_vec();
    bytes.extend(length_response("200 OK", "", "{}"));
    let mut up = Scripted::in_pieces(&bytes, 10);
    let (r, side, urbuf) = read_head(&mut up);
    assert!(r.is_ok());
    assert_eq!(side.head.status, 200);
    assert!(
        urbuf.starts_with(b"HTTP/1.1 200 OK"),
        "the interim heads are gone"
    );
}

#[test]
fn a_close_before_any_response_byte_may_have_been_read_and_is_told_apart() {
    for end in [
        Step::Bytes(Vec::new()),
        Step::Fail(io::ErrorKind::ConnectionReset),
    ] {
        let mut up = Scripted::new(vec![end]);
        let (r, _, _) = read_head(&mut up);
        assert!(matches!(r, Err(HeadFailure::ClosedBeforeResponse(_))));
    }
}

#[test]
fn a_close_inside_the_head_is_a_malformed_response_not_a_safe_retry() {
    let mut up = Scripted::new(vec![Step::Bytes(b"HTTP/1.1 200 OK\r\ncontent-le".to_vec())]);
    let (r, _, _) = read_head(&mut up);
    assert!(matches!(r, Err(HeadFailure::Malformed(_))));
    let mut up = Scripted::new(vec![Step::Bytes(b"HTTP/1.1 two hundred\r\n\r\n".to_vec())]);
    let (r, _, _) = read_head(&mut up);
    assert!(matches!(r, Err(HeadFailure::Malformed(_))));
}

#[test]
fn a_held_error_body_is_read_ahead_whole_when_small_and_bounded_when_not() {
    // A small chunked 503: read to its last chunk.
    let body = "{\"error\":{\"message\":\"busy\"}}";
    let mut small = format!(
        "HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    )
    .into_bytes();
    let whole = small.len();
    // Then a long stall: the read-ahead must not wait for more.
    let mut up = Scripted::in_pieces(&std::mem::take(&mut small), 8);
    up.steps_push(Step::Stall);
    let got = run(async {
        let (side, mut urbuf) = head_of(&mut up).await;
        read_error_body(&mut up, &mut urbuf, &side, clock())
            .await
            .unwrap();
        urbuf.len()
    });
    assert_eq!(got, whole);

    // A Content-Length body far past the bound: read only up to it.
    let big = "e".repeat(200 * 1024);
    let mut up = Scripted::in_pieces(
        &length_response("500 Internal Server Error", "", &big),
        4096,
    );
    up.steps_push(Step::Stall);
    let (read, head_len) = run(async {
        let (side, mut urbuf) = head_of(&mut up).await;
        read_error_body(&mut up, &mut urbuf, &side, clock())
            .await
            .unwrap();
        (urbuf.len(), side.head.head_len)
    });
    assert!(
        read - head_len >= 16 * 1024 && read - head_len < 24 * 1024,
        "{read}"
    );
}

#[test]
fn a_held_error_body_that_stalls_runs_into_the_attempt_s_clock() {
    let mut up = Scripted::new(vec![
        Step::Bytes(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 100\r\n\r\n{".to_vec()),
        Step::Stall,
    ]);
    let expired = run(async {
        let (side, mut urbuf) = head_of(&mut up).await;
        read_error_body(
            &mut up,
            &mut urbuf,
            &side,
            clock_with(Duration::from_millis(50)),
        )
        .await
    });
    assert!(expired.is_err());
}
