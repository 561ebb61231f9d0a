//! Writing heads: status lines, request lines, headers, chunk framing, into a
//! caller's reusable buffer.
