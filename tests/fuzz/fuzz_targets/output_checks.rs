//! What every translator fuzz target asserts of what a translator wrote:
//! a body is JSON; a stream is `data:` lines whose payload is JSON (or
//! `[DONE]`). Shared by the translator targets through `#[path]`.

/// `out` parses as JSON.
pub fn check_json(out: &[u8]) {
    serde_json::from_slice::<serde_json::Value>(out)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}): {}", String::from_utf8_lossy(out)));
}

/// `out` is OpenAI-style SSE: only `data:` events, each JSON or `[DONE]`.
pub fn check_sse(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("translated stream is UTF-8");
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = event.strip_prefix("data: ").expect("only data lines");
        if data != "[DONE]" {
            check_json(data.as_bytes());
        }
    }
}
