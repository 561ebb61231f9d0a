//! Arbitrary input through the Cohere translators: never a panic, every
//! body they write is JSON, and the stream translator writes only `data:`
//! lines whose payload is JSON (or `[DONE]`).
//!
//! Input: the first byte picks the translator; for the stream, the rest is
//! split on newlines, each line fed as one SSE event's data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::translate::{
    cohere_chat_response_to_openai, cohere_embed_to_openai, openai_embeddings_to_cohere,
    openai_request_to_cohere_chat, CohereToOpenAiStream, EmbeddingFormat, StreamEnd,
    TranslateLimits,
};

#[path = "output_checks.rs"]
mod output_checks;
use output_checks::{check_json, check_sse};

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode % 5 {
        0 => {
            if let Ok(out) = openai_request_to_cohere_chat(rest, "command-a", TranslateLimits::DEFAULT, false) {
                check_json(&out);
            }
        }
        1 => {
            if let Ok(out) = cohere_chat_response_to_openai(rest, "c") {
                check_json(&out);
            }
        }
        2 => {
            if let Ok(out) = openai_embeddings_to_cohere(rest, "embed-v4.0") {
                check_json(&out);
            }
        }
        3 => {
            for format in [EmbeddingFormat::Float, EmbeddingFormat::Base64] {
                if let Ok(out) = cohere_embed_to_openai(rest, "e", format) {
                    check_json(&out);
                }
            }
        }
        _ => {
            let mut t = CohereToOpenAiStream::new("c", true);
            let mut out = Vec::new();
            for line in rest.split(|&b| b == b'\n') {
                let _ = t.on_event(b"", line, &mut out);
            }
            t.finish(&mut out);
            check_sse(&out);
        }
    }
});
