//! JSON, sans-IO: the top-level field scan and in-place patch of request
//! bodies, reading one member of a response on the side, and JSON string
//! escaping.
//!
//! The proxy never re-serializes a pass-through body: [`scan_top_level`]
//! validates it and returns byte spans, and the patched body is written as
//! `body[..span.start] | new value | body[span.end..]` ([`splice`]).

mod error;
mod escape;
mod locate;
mod scan;
pub(crate) mod walk;

use std::ops::Range;

pub use error::{JsonError, JsonErrorKind};
pub use escape::{push_json_string, string_contents};
pub use locate::{
    next_quote_or_backslash, quotes_or_backslashes, skip_space, top_level_value, value_end, Items,
};
pub use scan::{scan_top_level, FieldSpan, StringField, TopLevel};
pub use walk::MAX_NESTING;

/// The three parts of `body` with `span` replaced by `replacement`, ready for
/// one vectored write.
pub fn splice<'a>(body: &'a [u8], span: Range<usize>, replacement: &'a [u8]) -> [&'a [u8]; 3] {
    [&body[..span.start], replacement, &body[span.end..]]
}
