//! `multipart/form-data` (RFC 7578 over RFC 2046's multipart syntax),
//! sans-IO and read only: the boundary of a request's `Content-Type`, and
//! where one field's value is in a body or in the part of it read so far.
//! The gateway routes an upload by its `model` field and renames the model
//! in place; the files themselves are never parsed or copied.
//!
//! Invariants: never panics, never allocates, O(len) (delimiters are found
//! with `memmem`); a part's headers are bounded ([`MAX_PART_HEADERS`]); a
//! prefix that ends inside the body is told apart from a body that ends
//! without the field ([`Scan::NeedMore`] vs [`Scan::Absent`]), so a caller
//! reading a body as it arrives knows when to stop.

use std::ops::Range;

use memchr::memmem;

/// Longest part head (its header lines) read, bytes.
pub const MAX_PART_HEADERS: usize = 8 * 1024;

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// What a scan for a field found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The field's value is this range of the input.
    Found(Range<usize>),
    /// The input ends before the field or the body's end: read more.
    NeedMore,
    /// The body ended (its closing delimiter read) without the field.
    Absent,
}

/// Why a body is not `multipart/form-data` as it says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultipartError(pub &'static str);

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The boundary of a `multipart/form-data` content type; `None` for any
/// other type, or a boundary missing, empty, too long or unquoted with
/// characters a token does not allow.
pub fn form_data_boundary(content_type: &[u8]) -> Option<&[u8]> {
    let mut params = content_type.split(|&b| b == b';');
    let media = params.next()?.trim_ascii();
    if !media.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    for param in params {
        let param = param.trim_ascii();
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            continue;
        };
        if !param[..eq].trim_ascii().eq_ignore_ascii_case(b"boundary") {
            continue;
        }
        let value = param[eq + 1..].trim_ascii();
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            v if v.iter().all(|&b| is_token_byte(b)) => v,
            _ => return None,
        };
        // RFC 2046's bchars: no CR, LF or other controls.
        let plain = value.iter().all(|&b| (0x20..0x7f).contains(&b));
        return (!value.is_empty() && value.len() <= MAX_BOUNDARY && plain).then_some(value);
    }
    None
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Looks for the form field `name` in `input`, a whole body or the start
/// of one (`complete` says which); the value's range, or why not.
pub fn find_field(
    input: &[u8],
    boundary: &[u8],
    name: &[u8],
    complete: bool,
) -> Result<Scan, MultipartError> {
    let need_more = |complete: bool| {
        if complete {
            Err(MultipartError("body ends inside a part"))
        } else {
            Ok(Scan::NeedMore)
        }
    };
    // The first delimiter: `--boundary` at the start (a preamble is
    // allowed, and skipped, before a CRLF-led one).
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delimiter);
    let mut at = if input.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        match finder.find(input) {
            Some(i) => i + delimiter.len(),
            None => return need_more(complete),
        }
    };
    loop {
        // After a delimiter: `--` closes the body; else transport padding
        // (spaces and tabs) and CRLF open a part.
        let rest = &input[at..];
        if rest.len() < 2 {
            return need_more(complete);
        }
        if rest.starts_with(b"--") {
            return Ok(Scan::Absent);
        }
        let pad = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        match rest.get(pad..pad + 2) {
            Some(b"\r\n") => at += pad + 2,
            Some(_) => return Err(MultipartError("a delimiter is not followed by CRLF")),
            None => return need_more(complete),
        }
        // The part's head, up to its empty line.
        let head_room = &input[at..input.len().min(at + MAX_PART_HEADERS)];
        let head_end = if head_room.starts_with(b"\r\n") {
            Some(0)
        } else {
            memmem::find(head_room, b"\r\n\r\n").map(|i| i + 2)
        };
        let Some(head_end) = head_end else {
            if head_room.len() == MAX_PART_HEADERS {
                return Err(MultipartError("a part's headers are too long"));
            }
            return need_more(complete);
        };
        let wanted = part_name(&input[at..at + head_end]) == Some(name);
        let content = at + head_end + 2;
        // The content runs to the next delimiter.
        let Some(len) = finder.find(&input[content..]) else {
            return need_more(complete);
        };
        if wanted {
            return Ok(Scan::Found(content..content + len));
        }
        at = content + len + delimiter.len();
    }
}

/// The `name` of a part whose head (header lines, each ending in CRLF)
/// has a `Content-Disposition: form-data` header.
fn part_name(head: &[u8]) -> Option<&[u8]> {
    let line = head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(b"content-disposition")
            .then(|| &line[colon + 1..])
    })?;
    let mut params = line.split(|&b| b == b';');
    if !params
        .next()?
        .trim_ascii()
        .eq_ignore_ascii_case(b"form-data")
    {
        return None;
    }
    params.find_map(|p| {
        let p = p.trim_ascii();
        let value = p.strip_prefix(b"name=")?;
        Some(match value {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BOUNDARY: &[u8] = b"----formdata-abc123";

    /// A body as curl and the SDKs write it: each field one part.
    fn body(fields: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, value) in fields {
            out.extend_from_slice(b"--");
            out.extend_from_slice(BOUNDARY);
            out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
            if let Some(f) = filename {
                out.extend_from_slice(
                    format!("; filename=\"{f}\"\r\nContent-Type: audio/mpeg").as_bytes(),
                );
            }
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(BOUNDARY);
        out.extend_from_slice(b"--\r\n");
        out
    }

    fn found(input: &[u8], name: &str, complete: bool) -> Option<String> {
        match find_field(input, BOUNDARY, name.as_bytes(), complete).unwrap() {
            Scan::Found(r) => Some(String::from_utf8_lossy(&input[r]).into_owned()),
            _ => None,
        }
    }

    #[test]
    fn boundaries_of_form_data_only() {
        let b = |ct: &str| {
            form_data_boundary(ct.as_bytes()).map(|b| String::from_utf8_lossy(b).into_owned())
        };
        assert_eq!(
            b("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            b("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"").as_deref(),
            Some("a b:c")
        );
        assert_eq!(b("multipart/mixed; boundary=abc"), None);
        assert_eq!(b("multipart/form-data"), None);
        assert_eq!(b("multipart/form-data; boundary="), None);
        assert_eq!(b("multipart/form-data; boundary=a b"), None);
        assert_eq!(
            b(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            None
        );
    }

    #[test]
    fn finds_a_field_before_after_or_between_files() {
        let audio = b"ID3\x03\x00--not-a-boundary\r\n\r\nbinary\x00\xff";
        let model_first = body(&[
            ("model", None, b"whisper-1"),
            ("file", Some("a.mp3"), audio),
        ]);
        let file_first = body(&[
            ("file", Some("a.mp3"), audio),
            ("language", None, b"en"),
            ("model", None, b"gpt-4o-transcribe"),
        ]);
        assert_eq!(
            found(&model_first, "model", true).as_deref(),
            Some("whisper-1")
        );
        assert_eq!(
            found(&file_first, "model", true).as_deref(),
            Some("gpt-4o-transcribe")
        );
        assert_eq!(found(&file_first, "language", true).as_deref(), Some("en"));
        let Ok(Scan::Found(file)) = find_field(&file_first, BOUNDARY, b"file", true) else {
            panic!("no file part");
        };
        assert_eq!(&file_first[file], audio);
        assert_eq!(
            find_field(&file_first, BOUNDARY, b"prompt", true),
            Ok(Scan::Absent)
        );
    }

    #[test]
    fn a_prefix_says_whether_to_read_more() {
        let whole = body(&[
            ("file", Some("a.mp3"), &[7u8; 300]),
            ("model", None, b"whisper-1"),
        ]);
        let at = whole.windows(9).position(|w| w == b"whisper-1").unwrap();
        for cut in 0..at + 9 + 2 {
            // The value is known only once the delimiter after it is read.
            assert_eq!(
                find_field(&whole[..cut], BOUNDARY, b"model", false),
                Ok(Scan::NeedMore),
                "cut {cut}"
            );
        }
        assert_eq!(
            found(&whole[..at + 9 + 4 + BOUNDARY.len()], "model", false).as_deref(),
            Some("whisper-1")
        );
        // The same prefix as a whole body is malformed.
        assert!(find_field(&whole[..at], BOUNDARY, b"model", true).is_err());
    }

    #[test]
    fn preamble_padding_and_bad_framing() {
        let mut with_preamble = b"ignored preamble".to_vec();
        with_preamble.extend_from_slice(b"\r\n");
        with_preamble.extend_from_slice(&body(&[("model", None, b"m")]));
        assert_eq!(found(&with_preamble, "model", true).as_deref(), Some("m"));
        let padded = body(&[("model", None, b"m")]);
        let padded = [
            &padded[..2 + BOUNDARY.len()],
            b" \t",
            &padded[2 + BOUNDARY.len()..],
        ]
        .concat();
        assert_eq!(found(&padded, "model", true).as_deref(), Some("m"));
        let bad = [&b"--"[..], BOUNDARY, b"xx\r\n"].concat();
        assert!(find_field(&bad, BOUNDARY, b"model", true).is_err());
        let long_head = [
            &b"--"[..],
            BOUNDARY,
            b"\r\nX: ",
            &[b'a'; MAX_PART_HEADERS][..],
        ]
        .concat();
        assert!(find_field(&long_head, BOUNDARY, b"model", false).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..512), complete: bool) {
            let _ = find_field(&input, BOUNDARY, b"model", complete);
            let _ = form_data_boundary(&input);
        }

        #[test]
        fn any_split_of_a_body_finds_the_same_value(
            file in prop::collection::vec(any::<u8>(), 0..400),
            model in "[a-z0-9.@/-]{1,30}",
            model_first: bool,
            cut in 0usize..1000,
        ) {
            let fields: Vec<(&str, Option<&str>, &[u8])> = if model_first {
                vec![("model", None, model.as_bytes()), ("file", Some("f.wav"), &file)]
            } else {
                vec![("file", Some("f.wav"), &file), ("model", None, model.as_bytes())]
            };
            let whole = body(&fields);
            prop_assume!(!file.windows(BOUNDARY.len()).any(|w| w == BOUNDARY));
            prop_assert_eq!(found(&whole, "model", true), Some(model.clone()));
            let cut = cut.min(whole.len());
            match find_field(&whole[..cut], BOUNDARY, b"model", false).unwrap() {
                Scan::Found(r) => prop_assert_eq!(&whole[r], model.as_bytes()),
                Scan::NeedMore => {}
                Scan::Absent => prop_assert!(false, "absent in a prefix"),
            }
        }
    }
}
