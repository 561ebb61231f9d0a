//! The upstream response path as a client of the upstream, without sockets:
//! the property the `upstream_response` fuzz target checks (see
//! tests/fuzz/fuzz_targets/upstream_pipeline.rs), run in the normal suite on
//! generated upstream responses: well-formed heads with chunked,
//! length-delimited or close-delimited SSE bodies in every dialect, then
//! corrupted (a malformed chunk, a flipped byte, a line that never ends, a
//! cut) and split into reads at arbitrary points, plus bare random bytes.

#[path = "fuzz/fuzz_targets/upstream_pipeline.rs"]
mod upstream_pipeline;

use proptest::prelude::*;
use upstream_pipeline::{run, run_split, End, Mode, Translate};

/// One SSE event an upstream might send.
fn event() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}"#.to_string()),
        Just(r#"data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#.to_string()),
        Just(r#"data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_string()),
        Just(r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#.to_string()),
        Just("data: [DONE]".to_string()),
        Just("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}".to_string()),
        Just("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}".to_string()),
        Just("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}".to_string()),
        Just("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}".to_string()),
        Just("event: message_stop\ndata: {\"type\":\"message_stop\"}".to_string()),
        Just(": keep-alive".to_string()),
        Just("data: not json".to_string()),
        "[ -~]{0,80}".prop_map(|s| format!("data: {s}")),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Framing {
    Chunked,
    Length,
    Close,
}

#[derive(Clone, Debug)]
enum Corruption {
    None,
    /// A chunk size of `zz` before chunk `n` (mod the count).
    BadChunk(usize),
    /// One byte of the whole response replaced.
    Flip(usize, u8),
    /// A data line that never ends, this long, before event `n`.
    EndlessLine(usize, usize),
    /// The response cut after this many bytes.
    Cut(usize),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        2 => Just(Corruption::None),
        2 => any::<usize>().prop_map(Corruption::BadChunk),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Corruption::Flip(at, b)),
        2 => (1usize..600, any::<usize>()).prop_map(|(len, at)| Corruption::EndlessLine(len, at)),
        1 => any::<usize>().prop_map(Corruption::Cut),
    ]
}

/// A whole upstream response: an optional interim response, a head, then
/// `events` framed as `framing`, each chunk carrying `per_chunk` events
/// split at `split` bytes, corrupted as said.
fn response(
    interim: bool,
    status: u16,
    framing: Framing,
    events: &[String],
    split: usize,
    corruption: &Corruption,
) -> Vec<u8> {
    let mut stream: Vec<Vec<u8>> = events
        .iter()
        .map(|e| format!("{e}\n\n").into_bytes())
        .collect();
    if let Corruption::EndlessLine(len, at) = corruption {
        let at = at % (stream.len() + 1);
        stream.insert(at, [b"data: ".to_vec(), vec![b'x'; *len]].concat());
        stream.truncate(at + 1);
    }
    let body: Vec<u8> = stream.concat();
    let mut out = Vec::new();
    if interim {
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    out.extend_from_slice(
        format!("HTTP/1.1 {status} OK\r\ncontent-type: text/event-stream\r\n").as_bytes(),
    );
    match framing {
        Framing::Chunked => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            let pieces: Vec<&[u8]> = body.chunks(split.max(1)).collect();
            let bad = match corruption {
                Corruption::BadChunk(n) => Some(n % (pieces.len() + 1)),
                _ => None,
            };
            for (i, piece) in pieces.iter().enumerate() {
                if bad == Some(i) {
                    out.extend_from_slice(b"zz\r\n");
                }
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            if bad == Some(pieces.len()) {
                out.extend_from_slice(b"zz\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Framing::Length => {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
        }
        Framing::Close => {
            out.extend_from_slice(b"connection: close\r\n\r\n");
            out.extend_from_slice(&body);
        }
    }
    match corruption {
        Corruption::Flip(at, b) => {
            let at = at % out.len();
            out[at] = *b;
        }
        Corruption::Cut(at) => out.truncate(at % (out.len() + 1)),
        _ => {}
    }
    out
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        4 => Just(Framing::Chunked),
        1 => Just(Framing::Length),
        1 => Just(Framing::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Generated responses, corrupted, in any split, in every mode.
    #[test]
    fn generated_upstream_responses_hold_the_invariants(
        mode in any::<u8>(),
        interim in any::<bool>(),
        status in prop_oneof![6 => Just(200u16), 1 => Just(101u16), 1 => Just(500u16)],
        framing in framing(),
        events in prop::collection::vec(event(), 0..12),
        split in 1usize..300,
        corruption in corruption(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let input = response(interim, status, framing, &events, split, &corruption);
        run_split(&Mode::from_byte(mode), &input, &cuts);
    }

    /// Bare random bytes after a plausible head.
    #[test]
    fn random_bodies_hold_the_invariants(
        mode in any::<u8>(),
        framing in framing(),
        body in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let head: &[u8] = match framing {
            Framing::Chunked => b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            Framing::Length => b"HTTP/1.1 200 OK\r\ncontent-length: 200\r\n\r\n",
            Framing::Close => b"HTTP/1.1 200 OK\r\n\r\n",
        };
        let input = [head, &body].concat();
        run_split(&Mode::from_byte(mode), &input, &cuts);
        // And the bytes alone, head and all.
        run_split(&Mode::from_byte(mode), &body, &cuts);
    }
}

/// The properties reach the cases they are for: a cut between chunks after
/// a malformed chunk, the cut at a chunk boundary once a line outgrows the
/// usage scanner, and a 101 refused.
#[test]
fn the_pipeline_reaches_the_cuts_it_checks() {
    let small = Mode::from_byte(0x80);
    assert_eq!(small.translate, Translate::None);
    let events = vec![
        "data: {\"choices\":[]}".to_string(),
        "data: {\"choices\":[]}".to_string(),
    ];
    let bad = response(
        false,
        200,
        Framing::Chunked,
        &events,
        10,
        &Corruption::BadChunk(3),
    );
    let End::Cut(at) = run(&small, &[&bad]).end else {
        panic!("a malformed chunk cuts the stream")
    };
    assert!(at.between_chunks);

    let endless = response(
        false,
        200,
        Framing::Chunked,
        &events,
        50,
        &Corruption::EndlessLine(500, 1),
    );
    let pieces: Vec<&[u8]> = endless.chunks(7).collect();
    let out = run(&small, &pieces);
    let End::Cut(at) = out.end else {
        panic!("an endless line cuts the stream: {:?}", out.end)
    };
    assert!(at.between_chunks && at.mid_event, "{at:?}");

    let upgrade = response(false, 101, Framing::Length, &events, 10, &Corruption::None);
    assert_eq!(run(&small, &[&upgrade]).end, End::Refused);

    let whole = response(true, 200, Framing::Chunked, &events, 10, &Corruption::None);
    assert_eq!(run(&Mode::from_byte(2), &[&whole]).end, End::Complete);
}
