//! Which headers cross the gateway. Hop-by-hop headers (RFC 9110 §7.6.1)
//! and framing headers never do (we frame each side ourselves), and the
//! client's credentials never reach a provider (the provider's key replaces
//! them).

/// Request headers not copied from the client to the upstream.
pub fn is_dropped_request_header(name: &[u8]) -> bool {
    const DROPPED: &[&[u8]] = &[
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"authorization",
        b"proxy-authorization",
        b"x-api-key",
        b"api-key",
    ];
    DROPPED.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// Response headers not copied from the upstream to the client.
pub fn is_dropped_response_header(name: &[u8]) -> bool {
    const DROPPED: &[&[u8]] = &[
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
    ];
    DROPPED.iter().any(|d| d.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_hop_by_hop_are_dropped_case_insensitively() {
        for h in [
            "Authorization",
            "X-API-Key",
            "Connection",
            "Transfer-Encoding",
            "HOST",
            "Expect",
        ] {
            assert!(is_dropped_request_header(h.as_bytes()), "{h}");
        }
        for h in ["content-type", "user-agent", "openai-beta", "x-request-id"] {
            assert!(!is_dropped_request_header(h.as_bytes()), "{h}");
        }
        assert!(is_dropped_response_header(b"Content-Length"));
        assert!(!is_dropped_response_header(
            b"x-ratelimit-remaining-requests"
        ));
    }
}
