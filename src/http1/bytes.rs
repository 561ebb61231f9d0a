//! Byte classes of the HTTP/1.1 grammar, exactly as httparse 1.10 draws
//! them, and the run scanner the head parser spends its time in.
//!
//! Invariant: `scan` returns the same index as a byte-by-byte walk over
//! `CLASS`. The block tests (SSE2 on x86_64, SWAR words everywhere) only
//! say which bytes to look up; every byte they flag is still checked
//! against the table, so they may over-flag but must never miss a byte
//! outside the class (tested below, per byte and against the walk).

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
    scan_with::<true>(buf, from, class)
}

/// `SIMD` off leaves the portable path alone, for the tests.
#[inline(always)]
fn scan_with<const SIMD: bool>(buf: &[u8], from: usize, class: u8) -> usize {
    let Some(rest) = buf.get(from..) else {
        return from;
    };
    let rest = match skip_blocks::<SIMD>(rest, class) {
        Run::Stopped(rest) => rest,
        Run::Unfinished(rest) => skip_bytes(rest, class),
    };
    buf.len() - rest.len()
}

/// How far a block-at-a-time pass got.
enum Run<'b> {
    /// `rest` starts at the first byte not in the class.
    Stopped(&'b [u8]),
    /// Everything before `rest` is in the class; `rest` is shorter than a block.
    Unfinished(&'b [u8]),
}

/// Blocks of 16 bytes (SSE2, part of x86_64 itself) then words of 8 (SWAR)
/// flag every byte that may stop the run, so that only the flagged ones
/// are looked up in the table: a flagged byte still in the class (a tab in
/// a value, a '_' in a name) is stepped over and the run goes on. Flags may
/// be false positives, never false negatives.
#[inline(always)]
fn skip_blocks<const SIMD: bool>(mut rest: &[u8], class: u8) -> Run<'_> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(block) = rest.first_chunk::<16>().filter(|_| SIMD) {
        let stops = sse2::stops(block, class);
        if stops == 0 {
            rest = &rest[16..];
            continue;
        }
        rest = &rest[stops.trailing_zeros() as usize..];
        if CLASS[rest[0] as usize] & class == 0 {
            return Run::Stopped(rest);
        }
        rest = &rest[1..];
    }
    while let Some(word) = rest.first_chunk::<8>() {
        let stops = swar::stops(u64::from_le_bytes(*word), class);
        if stops == 0 {
            rest = &rest[8..];
            continue;
        }
        // Words are read little-endian: the lowest flag is the first byte.
        rest = &rest[(stops.trailing_zeros() / 8) as usize..];
        if CLASS[rest[0] as usize] & class == 0 {
            return Run::Stopped(rest);
        }
        rest = &rest[1..];
    }
    Run::Unfinished(rest)
}

#[inline(always)]
fn skip_bytes(mut rest: &[u8], class: u8) -> &[u8] {
    while let [b, after @ ..] = rest {
        if CLASS[*b as usize] & class == 0 {
            break;
        }
        rest = after;
    }
    rest
}

/// Eight bytes at a time in a `u64`, portable.
mod swar {
    use super::{FIELD, TARGET};

    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;

    /// The top bit of each byte of `word` that may not be in `class`.
    /// Targets and values are "at least some low bound and not DEL"; names
    /// and methods are nearly always letters, digits and '-'.
    #[inline(always)]
    pub(super) fn stops(word: u64, class: u8) -> u64 {
        match class {
            TARGET => below(word, 0x21) | below(word ^ (ONES * 0x7f), 1),
            FIELD => below(word, 0x20) | below(word ^ (ONES * 0x7f), 1),
            _ => !alnum_or_dash(word) & HIGH,
        }
    }

    /// The top bit of each byte of `word` below `bound` (at most 0x80),
    /// and perhaps of bytes after such a byte: the classic SWAR test, where
    /// a borrow only reaches a byte's top bit from a byte that really was
    /// below the bound.
    #[inline(always)]
    fn below(word: u64, bound: u8) -> u64 {
        word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGH
    }

    /// The top bit of each byte of `word` that is an ASCII letter, digit or
    /// '-', exactly: every sum below stays under 0x100 per byte, so no
    /// carry crosses into the next byte.
    #[inline(always)]
    pub(super) fn alnum_or_dash(word: u64) -> u64 {
        let ascii = word & (ONES * 0x7f);
        // Top bit set iff the byte is at least `low` and at most `high`.
        let in_range = |bytes: u64, low: u8, high: u8| {
            (bytes + ONES * u64::from(0x80 - low)) & !(bytes + ONES * u64::from(0x7f - high))
        };
        let digit = in_range(ascii, b'0', b'9');
        // Folding 0x20 in maps exactly the letters (of either case) onto a-z.
        let letter = in_range(ascii | (ONES * 0x20), b'a', b'z');
        // Top bit clear iff the byte is '-'.
        let not_dash = (ascii ^ (ONES * u64::from(b'-'))) + ONES * 0x7f;
        (digit | letter | !not_dash) & !word & HIGH
    }
}

/// Sixteen bytes at a time with SSE2, which every x86_64 CPU has (the cfg
/// checks it at compile time); the same tests as [`swar`], exact per byte.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use super::{FIELD, TARGET};
    use std::arch::x86_64::*;

    /// Bit `i` set if byte `i` of `block` may not be in `class`.
    #[inline(always)]
    pub(super) fn stops(block: &[u8; 16], class: u8) -> u32 {
        // SAFETY: SSE2 is enabled for this target (cfg on the module), and
        // the unaligned load reads exactly the sixteen bytes of `block`.
        let stays = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            // Unsigned `b >= low`, and not DEL.
            let at_least_not_del = |low: u8| {
                let at_least = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(low as i8)), v);
                _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)), at_least)
            };
            // Unsigned `low <= b < low + n` as one signed compare:
            // b - (low + 0x80) < n - 0x80.
            let in_range = |b: __m128i, low: u8, n: u8| {
                _mm_cmplt_epi8(
                    _mm_sub_epi8(b, _mm_set1_epi8(low.wrapping_add(0x80) as i8)),
                    _mm_set1_epi8(n.wrapping_sub(0x80) as i8),
                )
            };
            let stays = match class {
                TARGET => at_least_not_del(0x21),
                FIELD => at_least_not_del(0x20),
                _ => {
                    let digit = in_range(v, b'0', 10);
                    let letter = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', 26);
                    let dash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'-' as i8));
                    _mm_or_si128(_mm_or_si128(digit, letter), dash)
                }
            };
            _mm_movemask_epi8(stays) as u32
        };
        !stays & 0xffff
    }
}

#[cfg(test)]
mod tests {
    use super::swar::alnum_or_dash;
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
            ], 0..80),
            from in 0usize..24,
        ) {
            let from = from.min(buf.len());
            for class in [TOKEN, TARGET, FIELD] {
                let expected = scan_bytewise(&buf, from, class);
                prop_assert_eq!(scan(&buf, from, class), expected);
                prop_assert_eq!(scan_with::<false>(&buf, from, class), expected);
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

    /// What the block tests flag: exactly the bytes outside the class for
    /// targets and values, and all but letters, digits and '-' for tokens.
    fn expected_stop(b: u8, class: u8) -> bool {
        match class {
            TOKEN => !(b.is_ascii_alphanumeric() || b == b'-'),
            _ => CLASS[b as usize] & class == 0 || b == b'\t',
        }
    }

    const FILLERS: [u8; 10] = [0, b'\t', b' ', b'-', b'0', b'z', 0x7f, 0x80, 0xad, 0xff];

    #[test]
    fn swar_flags_every_byte_that_may_stop_a_run() {
        for class in [TOKEN, TARGET, FIELD] {
            for b in 0..=255u8 {
                for lane in 0..8 {
                    for filler in FILLERS {
                        let mut bytes = [filler; 8];
                        bytes[lane] = b;
                        let flags = swar::stops(u64::from_le_bytes(bytes), class);
                        let flagged = flags >> (lane * 8 + 7) & 1 == 1;
                        // Later bytes may be flagged spuriously; the lowest
                        // flag, and every byte that does stop, never are.
                        if expected_stop(b, class) {
                            assert!(flagged, "class {class} byte {b:#x} lane {lane}");
                        } else if !expected_stop(filler, class) {
                            assert!(!flagged, "class {class} byte {b:#x} lane {lane}");
                        }
                    }
                }
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn sse2_flags_exactly_the_bytes_that_may_stop_a_run() {
        for class in [TOKEN, TARGET, FIELD] {
            for b in 0..=255u8 {
                for lane in 0..16 {
                    for filler in FILLERS {
                        let mut block = [filler; 16];
                        block[lane] = b;
                        let flags = sse2::stops(&block, class);
                        for (i, &byte) in block.iter().enumerate() {
                            assert_eq!(
                                flags >> i & 1 == 1,
                                expected_stop(byte, class),
                                "class {class} byte {byte:#x} at {i}"
                            );
                        }
                    }
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
