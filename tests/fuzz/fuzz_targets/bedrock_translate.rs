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

#[path = "output_checks.rs"]
mod output_checks;
use output_checks::{check_json, check_sse};

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
