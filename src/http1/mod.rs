//! HTTP/1.1 codec, sans-IO: heads parsed into spans over the caller's buffer,
//! RFC 9112 framing decisions, the chunked transfer coding, and head writing.
//! Nothing here allocates per message in steady state or touches I/O.

mod bytes;
pub mod chunked;
pub mod framing;
pub mod parse;
pub mod write;

pub use chunked::{ChunkError, ChunkLimits, ChunkProgress, ChunkedDecoder};
pub use framing::{
    request_framing, response_framing, BodyKind, FramingError, RequestFraming, ResponseFraming,
};
pub use parse::{
    parse_request, parse_response, HeadError, HeadLimits, HeadScanner, HeaderSpan, Parsed,
    RequestHead, ResponseHead, Span,
};
