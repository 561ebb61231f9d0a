//! Arbitrary event sequences through both stream translators: never a
//! panic, and everything they write is SSE whose every `data:` payload is
//! JSON (or OpenAI's `[DONE]`).
//!
//! Input: the first byte picks the direction and `include_usage`; the rest
//! is split on NUL into events. For Anthropic → OpenAI an event is
//! `name\ndata`; for OpenAI → Anthropic it is the data alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream, StreamEnd};

fn check_sse(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("translated stream is UTF-8");
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        for line in event.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                if data != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(data)
                        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"));
                }
            } else {
                assert!(line.starts_with("event: "), "stray line {line:?}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let mut out = Vec::new();
    let events = rest.split(|&b| b == 0);
    if mode & 1 == 0 {
        let mut t = AnthropicToOpenAiStream::new("client-model", mode & 2 != 0);
        for ev in events {
            let (name, payload) = match ev.iter().position(|&b| b == b'\n') {
                Some(i) => (&ev[..i], &ev[i + 1..]),
                None => (&b""[..], ev),
            };
            let _ = t.on_event(name, payload, &mut out);
        }
        t.finish(&mut out);
        let _ = t.usage();
    } else {
        let mut t = OpenAiToAnthropicStream::new("client-model");
        for ev in events {
            let _ = t.on_data(ev, &mut out);
        }
        t.finish(&mut out);
        let _ = t.usage();
    }
    check_sse(&out);
});
