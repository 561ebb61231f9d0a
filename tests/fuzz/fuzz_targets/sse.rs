//! Any bytes, any split: the SSE scanner reports the same events and the
//! same verdict as when fed the whole stream at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::sse::{SseError, SseScanner};

type Events = Vec<(Vec<u8>, Vec<u8>)>;

fn scan(limit: usize, pieces: &[&[u8]]) -> (Events, Option<SseError>) {
    let mut scanner = SseScanner::new(limit);
    let mut events = Vec::new();
    for piece in pieces {
        let fed = scanner.feed(piece, |e| events.push((e.event.to_vec(), e.data.to_vec())));
        if let Err(e) = fed {
            return (events, Some(e));
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    // First byte: a small event-size limit, or none to speak of; next two:
    // where the two cuts fall.
    let [limit, cut_a, cut_b, stream @ ..] = data else {
        return;
    };
    let limit = if *limit < 128 {
        usize::from(*limit)
    } else {
        usize::MAX
    };
    let whole = scan(limit, &[stream]);
    let mut cuts = [
        usize::from(*cut_a) % (stream.len() + 1),
        usize::from(*cut_b) % (stream.len() + 1),
    ];
    cuts.sort_unstable();
    let (head, rest) = stream.split_at(cuts[0]);
    let (middle, tail) = rest.split_at(cuts[1] - cuts[0]);
    assert_eq!(scan(limit, &[head, middle, tail]), whole);
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(scan(limit, &bytewise), whole);
});
