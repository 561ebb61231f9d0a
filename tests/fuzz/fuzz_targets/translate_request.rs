//! Any bytes through both request translators: never a panic, and every
//! body they produce is a JSON object naming the upstream model, which the
//! other direction then accepts without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::api::translate::{
    anthropic_request_to_openai, openai_request_to_anthropic, openai_stream_wants_usage,
};

const MODEL: &str = "upstream-model";

fn check(out: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "translated body is not JSON ({e}): {}",
            String::from_utf8_lossy(out)
        )
    });
    assert_eq!(v["model"], MODEL, "{v}");
}

fuzz_target!(|data: &[u8]| {
    let _ = openai_stream_wants_usage(data);
    if let Ok(anthropic) = openai_request_to_anthropic(data, MODEL) {
        check(&anthropic);
        if let Ok(back) = anthropic_request_to_openai(&anthropic, MODEL) {
            check(&back);
        }
    }
    if let Ok(openai) = anthropic_request_to_openai(data, MODEL) {
        check(&openai);
        if let Ok(back) = openai_request_to_anthropic(&openai, MODEL) {
            check(&back);
        }
    }
});
