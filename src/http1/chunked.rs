//! The chunked transfer coding (RFC 9112 §7.1): an incremental decoder that
//! hands out payload as borrowed slices of the input, never copying.
