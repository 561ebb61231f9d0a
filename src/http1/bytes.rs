//! Byte classes of the HTTP/1.1 grammar, exactly as httparse 1.10 draws
//! them, and the run scanner the head parser spends its time in.
//!
//! Invariant: `scan` returns the same index as a byte-by-byte walk over
//! `CLASS`; the word-at-a-time path is only a shortcut (tested below).

pub(crate) const TOKEN: u8 = 1; // RFC 9110 §5.6.2 tchar
pub(crate) const TARGET: u8 = 2; // %x21-7E / obs-text (httparse does not check URI syntax further)
pub(crate) const FIELD: u8 = 4; // HTAB / SP / VCHAR / obs-text: field values and reason phrases

const fn is_tchar_symbol(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    )
}

static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() || is_tchar_symbol(b) {
            class |= TOKEN;
        }
        if b >= 0x21 && b != 0x7f {
            class |= TARGET;
        }
        if b == b'\t' || (b >= 0x20 && b != 0x7f) {
            class |= FIELD;
        }
        table[i] = class;
        i += 1;
    }
    table
};

/// RFC 9110 §5.6.2 `tchar`.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    CLASS[b as usize] & TOKEN != 0
}

/// HTAB / SP / VCHAR / obs-text: what a field value may hold (RFC 9110 §5.5).
#[inline]
pub(crate) fn is_field_byte(b: u8) -> bool {
    CLASS[b as usize] & FIELD != 0
}

/// Index of the first byte at or after `from` not in `class` (or `buf.len()`).
#[inline(always)]
pub(crate) fn scan(buf: &[u8], from: usize, class: u8) -> usize {
    let mut i = from;
    // Targets and values are the long runs, and both classes are "at least
    // some low bound and not DEL", which eight bytes at a time can test; the
    // first flagged byte is then the stop, except a tab inside a value.
    let low = match class {
        TARGET => Some(0x21),
        FIELD => Some(0x20),
        _ => None,
    };
    if let Some(low) = low {
        while let Some(word) = buf.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let stops = bytes_below(word, low) | bytes_below(word ^ (ONES * 0x7f), 1);
            if stops == 0 {
                i += 8;
                continue;
            }
            i += first_flagged(stops);
            if class == FIELD && buf[i] == b'\t' {
                i += 1;
                continue;
            }
            return i;
        }
    } else {
        // Tokens (methods, field names) are nearly always letters, digits
        // and '-', which eight bytes at a time can test; any other byte is
        // looked up, and the run goes on past it if it is a tchar too.
        while let Some(word) = buf.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let others = !alnum_or_dash(word) & (ONES * 0x80);
            if others == 0 {
                i += 8;
                continue;
            }
            i += first_flagged(others);
            if CLASS[buf[i] as usize] & class == 0 {
                return i;
            }
            i += 1;
        }
    }
    while i < buf.len() && CLASS[buf[i] as usize] & class != 0 {
        i += 1;
    }
    i
}

const ONES: u64 = u64::from_le_bytes([1; 8]);

/// The top bit of each byte of `word` that is an ASCII letter, digit or
/// '-', exactly (no false positives): every sum below stays under 0x100 per
/// byte, so no carry crosses into the next byte.
#[inline(always)]
fn alnum_or_dash(word: u64) -> u64 {
    let high = ONES * 0x80;
    let ascii = word & (ONES * 0x7f);
    // Top bit set iff the byte is at least `low` / at least `high + 1`.
    let in_range = |bytes: u64, low: u8, high: u8| {
        (bytes + ONES * u64::from(0x80 - low)) & !(bytes + ONES * u64::from(0x7f - high))
    };
    let digit = in_range(ascii, b'0', b'9');
    // Folding 0x20 in maps exactly the letters (of either case) onto a-z.
    let letter = in_range(ascii | (ONES * 0x20), b'a', b'z');
    // Top bit clear iff the byte is '-'.
    let not_dash = (ascii ^ (ONES * u64::from(b'-'))) + ONES * 0x7f;
    (digit | letter | !not_dash) & !word & high
}

/// The top bit of each byte of `word` below `bound` (which must be at most
/// 0x80), possibly with false positives above the first such byte: the
/// classic SWAR test, where a borrow only reaches a byte's top bit from a
/// byte that really was below the bound. Only the lowest flag is exact.
#[inline(always)]
fn bytes_below(word: u64, bound: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(bound)) & !word & (ONES * 0x80)
}

/// Offset of the byte holding the lowest flag (`flags` non-zero); words are
/// read little-endian, so that is the first byte in the buffer.
#[inline(always)]
fn first_flagged(flags: u64) -> usize {
    (flags.trailing_zeros() / 8) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan_bytewise(buf: &[u8], from: usize, class: u8) -> usize {
        (from..buf.len())
            .find(|&i| CLASS[buf[i] as usize] & class == 0)
            .unwrap_or(buf.len())
    }

    proptest! {
        #[test]
        fn scan_matches_a_bytewise_walk(
            buf in prop::collection::vec(prop_oneof![
                0x1fu8..=0x22, 0x7eu8..=0x81, any::<u8>(), Just(b'\t'),
                // Around the edges of letters, digits and '-', in ASCII and
                // with the top bit set.
                0x2cu8..=0x3a, 0x40u8..=0x5b, 0x60u8..=0x7b, 0xacu8..=0xba, 0xc0u8..=0xdb,
            ], 0..40),
            from in 0usize..8,
        ) {
            let from = from.min(buf.len());
            for class in [TOKEN, TARGET, FIELD] {
                prop_assert_eq!(scan(&buf, from, class), scan_bytewise(&buf, from, class));
            }
        }
    }

    #[test]
    fn alnum_or_dash_is_exact_in_every_byte() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b == b'-';
            for lane in 0..8 {
                for filler in [0, b'-', b'0', b'z', 0x7f, 0x80, 0xad, 0xff] {
                    let mut bytes = [filler; 8];
                    bytes[lane] = b;
                    let flags = alnum_or_dash(u64::from_le_bytes(bytes));
                    let flagged = flags >> (lane * 8 + 7) & 1 == 1;
                    assert_eq!(
                        flagged, expected,
                        "byte {b:#x} in lane {lane}, filler {filler:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn classes_match_httparse_tables() {
        for b in 0..=255u8 {
            let token = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_token_byte(b), token, "token {b:#x}");
            assert_eq!(
                CLASS[b as usize] & TARGET != 0,
                (0x21..=0x7e).contains(&b) || b >= 0x80,
                "target {b:#x}"
            );
            assert_eq!(
                is_field_byte(b),
                b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80,
                "field {b:#x}"
            );
        }
    }
}
