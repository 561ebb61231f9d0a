//! Arbitrary input through the Gemini translators: never a panic, every
//! body they write is JSON, and the stream translator writes only
//! `data:` lines whose payload is JSON (or `[DONE]`).
//!
//! Input: the first byte picks the translator; for the stream, the rest is
//! split on newlines, each line fed as one SSE `data:` payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::translate::{
    gemini_response_to_openai, google_error_to_openai, openai_request_to_gemini,
    GeminiToOpenAiStream, StreamEnd, TranslateLimits,
};
use shardgate::providers::google::anthropic_body_for_vertex;

#[path = "output_checks.rs"]
mod output_checks;
use output_checks::{check_json, check_sse};

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode % 5 {
        0 => {
            if let Ok(out) = openai_request_to_gemini(rest, TranslateLimits::DEFAULT, false) {
                check_json(&out);
            }
        }
        1 => {
            if let Ok(out) = gemini_response_to_openai(rest, "m", "r") {
                check_json(&out);
            }
        }
        2 => check_json(&google_error_to_openai(400, rest).body),
        3 => {
            if let Ok(body) = std::str::from_utf8(rest) {
                if let Ok(out) = anthropic_body_for_vertex(body) {
                    check_json(&out);
                }
            }
        }
        _ => {
            let mut translator = GeminiToOpenAiStream::new("m", "r", mode & 8 != 0);
            let mut out = Vec::new();
            for line in rest.split(|&b| b == b'\n') {
                let _ = translator.on_data(line, &mut out);
            }
            translator.finish(&mut out);
            check_sse(&out);
        }
    }
});
