//! Any bytes, any split: the chunked decoder gives the same payload, the
//! same verdict and (when done) the same message end as one feed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::http1::chunked::{ChunkError, ChunkLimits, ChunkedDecoder};

/// Payload, then `Ok(Some(end))` when done, `Ok(None)` when more is needed.
fn decode(pieces: &[&[u8]]) -> (Vec<u8>, Result<Option<usize>, ChunkError>) {
    let limits = ChunkLimits {
        max_line_bytes: 64,
        max_trailer_bytes: 256,
        ..ChunkLimits::default()
    };
    let mut decoder = ChunkedDecoder::new(limits);
    let mut payload = Vec::new();
    let mut offset = 0;
    for piece in pieces {
        match decoder.feed(piece, |data| payload.extend_from_slice(data)) {
            Ok(progress) if progress.done => {
                return (payload, Ok(Some(offset + progress.consumed)))
            }
            Ok(progress) => {
                assert_eq!(progress.consumed, piece.len());
                offset += piece.len();
            }
            Err(e) => return (payload, Err(e)),
        }
    }
    (payload, Ok(None))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let whole = decode(&[input]);
    let at = usize::from(split).min(input.len());
    assert_eq!(decode(&[&input[..at], &input[at..]]), whole);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode(&bytes), whole);
});
