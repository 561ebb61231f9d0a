//! Arbitrary input through the Bedrock translators: never a panic, every
//! body they write is JSON, and the stream translator writes only
//! `data:` lines whose payload is JSON (or `[DONE]`).
//!
//! Input: the first byte picks the translator; for the stream, the rest is
//! an AWS event stream (decoded as far as it goes, each message fed on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::eventstream::Decoder;
use shardgate::api::translate::{
    converse_response_to_openai, openai_request_to_converse, BedrockToOpenAiStream, StreamEnd,
    TranslateLimits,
};
use shardgate::providers::aws::invoke::{anthropic_body_for_invoke, invoke_stream_event};

fn check_json(out: &[u8]) {
    serde_json::from_slice::<serde_json::Value>(out)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}): {}", String::from_utf8_lossy(out)));
}

fn check_sse(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("translated stream is UTF-8");
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = event.strip_prefix("data: ").expect("only data lines");
        if data != "[DONE]" {
            check_json(data.as_bytes());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(out) = openai_request_to_converse(rest, TranslateLimits::DEFAULT, false) {
                check_json(&out);
            }
        }
        1 => {
            if let Ok(out) = converse_response_to_openai(rest, "m", "r") {
                check_json(&out);
            }
        }
        2 => {
            if let Ok(body) = std::str::from_utf8(rest) {
                if let Ok(out) = anthropic_body_for_invoke(body) {
                    check_json(&out);
                }
            }
        }
        _ => {
            let mut decoder = Decoder::new(1 << 16);
            let mut translator = BedrockToOpenAiStream::new("m", "r", mode & 4 != 0);
            let mut out = Vec::new();
            let _ = decoder.feed(rest, |m| {
                let _ = invoke_stream_event(&m);
                let _ = translator.on_message(&m, &mut out);
            });
            translator.finish(&mut out);
            check_sse(&out);
        }
    }
});
