//! RFC 9112 message framing: from a parsed head, how long the body is,
//! whether the connection persists, and whether the client expects 100-continue.
