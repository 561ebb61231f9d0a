//! A running estimate of the output tokens a stream has carried, event by
//! event, for what cannot wait for the stream's usage report: a budget or
//! token limit enforced while the stream runs, and the charge for a stream
//! cut before its usage event.
//!
//! The estimate of one event: the bytes of the text it adds (the first of
//! `"content"`, `"text"`, `"partial_json"`, `"arguments"`, `"delta"`,
//! `"thinking"`, `"reasoning_content"` string members), divided by 4 and
//! rounded up, and at least 1 for an event that adds any text. Providers
//! stream about one token per OpenAI chunk, so chunk streams read nearly
//! exact (1 per chunk); Anthropic's deltas carry a few tokens each, which
//! bytes / 4 reads within about a quarter for English text. Escapes count
//! their bytes (a `\n` is 2), which errs high. Events with no text (role,
//! finish, usage, ping) count 0.

use memchr::memmem;

/// The members whose string values are streamed text, most common first.
const TEXT_MEMBERS: [&[u8]; 7] = [
    b"\"content\":\"",
    b"\"text\":\"",
    b"\"partial_json\":\"",
    b"\"arguments\":\"",
    b"\"delta\":\"",
    b"\"thinking\":\"",
    b"\"reasoning_content\":\"",
];

/// Output tokens one event's `data` carries, estimated (see the module doc).
pub fn event_output_tokens(data: &[u8]) -> u64 {
    for member in TEXT_MEMBERS {
        if let Some(at) = memmem::find(data, member) {
            let text = string_bytes(&data[at + member.len()..]);
            return if text == 0 {
                0
            } else {
                (text as u64).div_ceil(4)
            };
        }
    }
    0
}

/// Bytes of a JSON string body up to its closing quote (escapes included).
fn string_bytes(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return i,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_by_dialect() {
        // OpenAI chat chunk, one token.
        let chunk = br#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#;
        assert_eq!(event_output_tokens(chunk), 2);
        assert_eq!(
            event_output_tokens(br#"{"choices":[{"delta":{"content":"Hi"}}]}"#),
            1
        );
        // Role and finish chunks carry no text.
        assert_eq!(
            event_output_tokens(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            0
        );
        assert_eq!(
            event_output_tokens(br#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#),
            0
        );
        // Anthropic text and tool-input deltas.
        let delta = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The quick brown fox"}}"#;
        assert_eq!(event_output_tokens(delta), 5);
        let json = br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#;
        assert_eq!(event_output_tokens(json), 4);
        assert_eq!(event_output_tokens(br#"{"type":"ping"}"#), 0);
        // Responses API.
        assert_eq!(
            event_output_tokens(br#"{"type":"response.output_text.delta","delta":"abcdefgh"}"#),
            2
        );
        // Escaped quotes do not end the text early.
        assert_eq!(
            event_output_tokens(br#"{"delta":{"content":"a\"b\"c"}}"#),
            2
        );
        // An unterminated string counts what there is.
        assert_eq!(event_output_tokens(br#"{"content":"abcde"#), 2);
    }
}
