//! Arbitrary bytes through the multipart reader: never a panic; a field
//! found lies inside the input; a prefix of the input never says `Absent`
//! where the whole input finds the field (a reader streaming a body stops
//! only when it may).
//!
//! Input: the first byte splits the rest (the cut point, scaled), which is
//! read with boundary `b`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::multipart::{find_field, form_data_boundary, Scan};

fuzz_target!(|data: &[u8]| {
    let [cut, body @ ..] = data else {
        return;
    };
    let _ = form_data_boundary(body);
    let whole = find_field(body, b"b", b"model", true);
    if let Ok(Scan::Found(r)) = &whole {
        assert!(r.end <= body.len() && r.start <= r.end);
    }
    let at = body.len() * usize::from(*cut) / 255;
    match find_field(&body[..at], b"b", b"model", false) {
        Ok(Scan::Found(r)) => {
            assert!(r.end <= at);
            // What a prefix found, the whole body finds at the same place.
            assert_eq!(whole, Ok(Scan::Found(r)));
        }
        Ok(Scan::Absent) => assert!(!matches!(whole, Ok(Scan::Found(_)))),
        Ok(Scan::NeedMore) | Err(_) => {}
    }
});
