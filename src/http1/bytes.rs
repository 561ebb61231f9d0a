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
    // some low bound and not DEL", which eight bytes at a time can test.
    let low = match class {
        TARGET => Some(0x21),
        FIELD => Some(0x20),
        _ => None,
    };
    if let Some(low) = low {
        while let Some(word) = buf.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if has_byte_below(word, low) || has_byte_below(word ^ (ONES * 0x7f), 1) {
                break;
            }
            i += 8;
        }
    }
    // Whatever is left (tokens, a word holding a stop byte or a tab) goes
    // through the table, four at a time.
    while i + 4 <= buf.len() {
        let ok = CLASS[buf[i] as usize]
            & CLASS[buf[i + 1] as usize]
            & CLASS[buf[i + 2] as usize]
            & CLASS[buf[i + 3] as usize];
        if ok & class == 0 {
            break;
        }
        i += 4;
    }
    while i < buf.len() && CLASS[buf[i] as usize] & class != 0 {
        i += 1;
    }
    i
}

const ONES: u64 = u64::from_le_bytes([1; 8]);

/// Whether any byte of `word` is below `bound` (which must be at most 0x80);
/// the classic SWAR test: borrows only reach a byte's top bit from a byte
/// that really was below the bound.
#[inline(always)]
fn has_byte_below(word: u64, bound: u8) -> bool {
    word.wrapping_sub(ONES * u64::from(bound)) & !word & (ONES * 0x80) != 0
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
            buf in prop::collection::vec(prop_oneof![0x1fu8..=0x22, 0x7eu8..=0x81, any::<u8>(), Just(b'\t')], 0..40),
            from in 0usize..8,
        ) {
            let from = from.min(buf.len());
            for class in [TOKEN, TARGET, FIELD] {
                prop_assert_eq!(scan(&buf, from, class), scan_bytewise(&buf, from, class));
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
