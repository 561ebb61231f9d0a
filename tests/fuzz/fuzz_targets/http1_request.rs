//! Any bytes: the request parser and framing never panic, agree with
//! httparse on the verdict and every span, and the incremental scanner fed
//! in two pieces reaches the one-shot result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::http1::framing::request_framing;
use shardgate::http1::parse::{
    parse_request, HeadError, HeadLimits, HeadScanner, Parsed, RequestHead,
};

const MAX_HEADERS: usize = 16;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the scanner's first read ends.
    let Some((&split, buf)) = data.split_first() else {
        return;
    };
    let limits = HeadLimits {
        max_head_bytes: usize::MAX,
        max_headers: MAX_HEADERS,
    };
    let mut head = RequestHead::default();
    let ours = parse_request(buf, &limits, &mut head);

    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut theirs = httparse::Request::new(&mut slots);
    match (ours, theirs.parse(buf)) {
        (Ok(Parsed::Complete), Ok(httparse::Status::Complete(len))) => {
            assert_eq!(head.head_len, len);
            assert_eq!(head.method.get(buf), theirs.method.unwrap().as_bytes());
            assert_eq!(head.target.get(buf), theirs.path.unwrap().as_bytes());
            assert_eq!(head.minor_version, theirs.version.unwrap());
            assert_eq!(head.headers.len(), theirs.headers.len());
            for (o, t) in head.headers.iter().zip(theirs.headers.iter()) {
                assert_eq!(o.name.get(buf), t.name.as_bytes());
                assert_eq!(o.value.get(buf), t.value);
            }
            let _ = request_framing(buf, &head);
        }
        (Ok(Parsed::Partial), Ok(httparse::Status::Partial)) => {}
        (Err(HeadError::TooManyHeaders), Err(httparse::Error::TooManyHeaders)) => {}
        (Err(HeadError::Invalid(_)), Err(e)) if e != httparse::Error::TooManyHeaders => {}
        (ours, theirs) => panic!("disagree: ours {ours:?}, httparse {theirs:?}"),
    }

    let first = usize::from(split).min(buf.len());
    let mut scanner = HeadScanner::default();
    let mut scanned = RequestHead::default();
    let mut result = scanner.request(&buf[..first], &limits, &mut scanned);
    if result == Ok(Parsed::Partial) {
        result = scanner.request(buf, &limits, &mut scanned);
    }
    assert_eq!(result, ours);
    if ours == Ok(Parsed::Complete) {
        assert_eq!(scanned.headers, head.headers);
        assert_eq!(scanned.head_len, head.head_len);
    }
});
