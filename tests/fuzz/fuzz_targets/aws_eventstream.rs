//! Any bytes, any split: the AWS event-stream decoder gives the same
//! messages and the same verdict as one feed, and what it decodes encodes
//! back to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::eventstream::{encode, DecodeError, Decoder, Message};

fn decode(max: u32, pieces: &[&[u8]]) -> (Vec<Message>, Result<bool, DecodeError>) {
    let mut decoder = Decoder::new(max);
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(e) = decoder.feed(piece, |m| out.push(m)) {
            return (out, Err(e));
        }
    }
    (out, Ok(decoder.is_idle()))
}

fuzz_target!(|data: &[u8]| {
    // First byte: a small message limit, or none to speak of; next two:
    // where the two cuts fall.
    let [limit, cut_a, cut_b, stream @ ..] = data else {
        return;
    };
    let max = if *limit < 128 {
        u32::from(*limit)
    } else {
        u32::MAX
    };
    let whole = decode(max, &[stream]);
    let mut cuts = [
        usize::from(*cut_a) % (stream.len() + 1),
        usize::from(*cut_b) % (stream.len() + 1),
    ];
    cuts.sort_unstable();
    let (head, rest) = stream.split_at(cuts[0]);
    let (middle, tail) = rest.split_at(cuts[1] - cuts[0]);
    assert_eq!(decode(max, &[head, middle, tail]), whole);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode(max, &bytes), whole);
    if let (messages, Ok(true)) = &whole {
        let again: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
        assert_eq!(again, stream);
    }
});
