//! The AWS event-stream decoder: encoded messages come back under any
//! split, arbitrary bytes never panic and get the same verdict however
//! they are cut, and no corruption of a valid stream goes unnoticed.

use proptest::prelude::*;
use shardgate::api::eventstream::{
    encode, DecodeError, Decoder, Header, HeaderValue, Message, MIN_MESSAGE_LEN,
};

/// Feeds `input` in pieces ending at `ends` (sorted); the messages and the
/// first error, and whether the decoder ended on a message boundary.
fn decode_split(
    input: &[u8],
    ends: &[usize],
    max: u32,
) -> (Vec<Message>, Result<bool, DecodeError>) {
    let mut decoder = Decoder::new(max);
    let mut out = Vec::new();
    let mut start = 0;
    for &end in ends.iter().chain([&input.len()]) {
        let end = end.clamp(start, input.len());
        if let Err(e) = decoder.feed(&input[start..end], |m| out.push(m)) {
            return (out, Err(e));
        }
        start = end;
    }
    (out, Ok(decoder.is_idle()))
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        any::<bool>().prop_map(HeaderValue::Bool),
        any::<i8>().prop_map(HeaderValue::Byte),
        any::<i16>().prop_map(HeaderValue::Short),
        any::<i32>().prop_map(HeaderValue::Int),
        any::<i64>().prop_map(HeaderValue::Long),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(HeaderValue::Bytes),
        ".{0,12}".prop_map(HeaderValue::String),
        any::<i64>().prop_map(HeaderValue::Timestamp),
        any::<[u8; 16]>().prop_map(HeaderValue::Uuid),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let header = ("[:a-z-]{1,16}", header_value()).prop_map(|(name, value)| Header { name, value });
    (
        prop::collection::vec(header, 0..5),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(headers, payload)| Message { headers, payload })
}

proptest! {
    #[test]
    fn encoded_messages_decode_under_any_split(
        messages in prop::collection::vec(message(), 0..5),
        ends in prop::collection::vec(0usize..600, 0..12),
    ) {
        let input: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
        let mut ends = ends;
        ends.sort_unstable();
        prop_assert_eq!(decode_split(&input, &ends, u32::MAX), (messages.clone(), Ok(true)));
        let every_byte: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(decode_split(&input, &every_byte, u32::MAX), (messages, Ok(true)));
    }

    #[test]
    fn a_cut_off_stream_is_not_idle(message in message(), cut in 1usize..1000) {
        let input = encode(&message).unwrap();
        let cut = 1 + cut % (input.len() - 1);
        let (got, verdict) = decode_split(&input[..cut], &[], u32::MAX);
        prop_assert!(got.is_empty());
        prop_assert_eq!(verdict, Ok(false));
    }

    #[test]
    fn any_flipped_bit_is_an_error(message in message(), bit in any::<usize>()) {
        let mut input = encode(&message).unwrap();
        let bit = bit % (input.len() * 8);
        input[bit / 8] ^= 1 << (bit % 8);
        let (got, verdict) = decode_split(&input, &[], u32::MAX);
        // A flip in the length can make the message look longer (it waits
        // for more) but never yields a message.
        prop_assert!(got.is_empty(), "{:?}", got);
        prop_assert_ne!(verdict, Ok(true));
    }

    #[test]
    fn the_limit_holds_for_every_message(message in message(), slack in 0u32..3) {
        let input = encode(&message).unwrap();
        let len = input.len() as u32;
        let max = len.saturating_sub(slack).max(MIN_MESSAGE_LEN as u32);
        let (got, verdict) = decode_split(&input, &[12], max);
        if len <= max {
            prop_assert_eq!((got, verdict), (vec![message], Ok(true)));
        } else {
            prop_assert!(got.is_empty());
            prop_assert_eq!(verdict, Err(DecodeError::TooLarge { total: len, max }));
        }
    }

    #[test]
    fn random_bytes_get_one_verdict_under_any_split(
        input in prop::collection::vec(any::<u8>(), 0..200),
        ends in prop::collection::vec(0usize..200, 0..8),
        max in 0u32..256,
    ) {
        let mut ends = ends;
        ends.sort_unstable();
        let whole = decode_split(&input, &[], max);
        prop_assert_eq!(decode_split(&input, &ends, max), whole.clone());
        let every_byte: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(decode_split(&input, &every_byte, max), whole);
    }

    #[test]
    fn a_valid_prelude_over_random_bytes_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..120),
        headers_len in 0u32..140,
    ) {
        // Random bytes rarely pass the prelude CRC; this puts random headers
        // and payload behind a correct one, so header parsing is exercised.
        let total = (MIN_MESSAGE_LEN + body.len()) as u32;
        let mut input = total.to_be_bytes().to_vec();
        input.extend_from_slice(&headers_len.to_be_bytes());
        let crc = shardgate::api::eventstream::crc32(&input);
        input.extend_from_slice(&crc.to_be_bytes());
        input.extend_from_slice(&body);
        let crc = shardgate::api::eventstream::crc32(&input);
        input.extend_from_slice(&crc.to_be_bytes());
        let (got, verdict) = decode_split(&input, &[5, 13, 20], u32::MAX);
        match verdict {
            Ok(idle) => {
                prop_assert!(idle);
                prop_assert_eq!(got.len(), 1);
                // What decoded encodes back to the same bytes.
                prop_assert_eq!(encode(&got[0]).unwrap(), input);
            }
            Err(e) => prop_assert!(matches!(e, DecodeError::BadHeader | DecodeError::BadLength), "{e:?}"),
        }
    }
}
