//! Prompt caching survives reading and translation (issue 16, item 4): the
//! cached-token arithmetic on recorded provider responses. Each provider's
//! usage is read into the gateway's terms (input counts every prompt token;
//! cache reads and writes are parts of it), priced once per part at its own
//! rate, and translated into the other dialect without a token counted twice
//! or lost.
//!
//! The responses (tests/fixtures/usage/) are written in each provider's wire
//! shape, every field as the provider sends it, with the counts chosen for
//! the arithmetic (not captured from a live account): an OpenAI chat completion
//! with 2006 prompt tokens of which 1920 cached; an Anthropic message with 6
//! uncached input tokens, 1234 written to the cache and 5678 read from it
//! (Bifrost #5354 counted such prompt tokens twice); the same two as
//! streams; a Bedrock Converse response and ConverseStream `metadata`
//! event; a Gemini `generateContent` response with cached content and
//! thinking.

use serde_json::Value;
use shardgate::api::translate::{
    anthropic_response_to_openai, openai_response_to_anthropic, AnthropicToOpenAiStream,
    OpenAiToAnthropicStream, StreamEnd,
};
use shardgate::api::usage::{
    anthropic_response_usage, bedrock_usage, gemini_usage, openai_response_usage,
    StreamUsageScanner, Usage,
};
use shardgate::providers::prices::PriceTable;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/usage/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// (event name, data) of each event of an SSE text.
fn events(bytes: &[u8]) -> Vec<(String, String)> {
    std::str::from_utf8(bytes)
        .unwrap()
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let (mut event, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.into();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.into();
                }
            }
            (event, data)
        })
        .collect()
}

const OPENAI: Usage = Usage {
    input_tokens: 2006,
    output_tokens: 300,
    cache_read_tokens: 1920,
    cache_write_tokens: 0,
    cache_write_1h_tokens: 0,
};

const ANTHROPIC: Usage = Usage {
    input_tokens: 6 + 1234 + 5678,
    output_tokens: 100,
    cache_read_tokens: 5678,
    cache_write_tokens: 1234,
    cache_write_1h_tokens: 0,
};

/// gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens.
/// 86 × 2500 + 1920 × 1250 + 300 × 10000 nano-dollars.
const OPENAI_NANOS: u64 = 215_000 + 2_400_000 + 3_000_000;

/// claude-sonnet-4: $3 input, $0.30 cache read, $3.75 cache write (5-minute),
/// $15 output per million tokens. 6 × 3000 + 5678 × 300 + 1234 × 3750 +
/// 100 × 15000 nano-dollars.
const ANTHROPIC_NANOS: u64 = 18_000 + 1_703_400 + 4_627_500 + 1_500_000;

fn nanos(model: &str, usage: &Usage) -> u64 {
    PriceTable::new(&[]).price(model).unwrap().cost_nanos(usage)
}

#[test]
fn openai_prompt_tokens_include_the_cached_ones() {
    let usage = openai_response_usage(&fixture("openai_chat_cached.json")).unwrap();
    assert_eq!(usage, OPENAI);
    assert_eq!(usage.input_split(), (86, 1920, 0));
    assert_eq!(nanos("gpt-4o-2024-08-06", &usage), OPENAI_NANOS);
    // Pricing every prompt token as input, or adding the cached ones to
    // prompt_tokens, would both be wrong:
    assert_ne!(OPENAI_NANOS, 2006 * 2500 + 3_000_000);
    assert_ne!(OPENAI_NANOS, 2006 * 2500 + 1920 * 1250 + 3_000_000);
}

#[test]
fn anthropic_input_tokens_exclude_the_cache_reads_and_writes() {
    let usage = anthropic_response_usage(&fixture("anthropic_message_cached.json")).unwrap();
    assert_eq!(usage, ANTHROPIC);
    assert_eq!(
        usage.input_tokens, 6918,
        "input + cache writes + cache reads"
    );
    assert_eq!(usage.input_split(), (6, 5678, 1234));
    assert_eq!(nanos("claude-sonnet-4-20250514", &usage), ANTHROPIC_NANOS);
    assert_eq!(ANTHROPIC_NANOS, 7_848_900);
}

#[test]
fn streams_carry_the_same_counts_as_whole_bodies() {
    let mut scan = StreamUsageScanner::new();
    scan.reset(true);
    let stream = fixture("anthropic_stream_cached.sse");
    // Split mid-event: the scanner reads any split of the payload.
    for part in stream.chunks(37) {
        scan.feed(part).unwrap();
    }
    assert_eq!(
        scan.usage(),
        Some(ANTHROPIC),
        "cache counts from message_start, output from message_delta"
    );

    scan.reset(false);
    scan.feed(&fixture("openai_stream_cached.sse")).unwrap();
    assert_eq!(scan.usage(), Some(OPENAI), "the include_usage chunk");
}

#[test]
fn bedrock_converse_counts_cache_tokens_beside_input_tokens() {
    let expected = Usage {
        input_tokens: 12 + 3010 + 24,
        output_tokens: 85,
        cache_read_tokens: 3010,
        cache_write_tokens: 24,
        cache_write_1h_tokens: 0,
    };
    let whole = fixture("bedrock_converse_cached.json");
    assert_eq!(bedrock_usage(&whole), Some(expected));
    // totalTokens agrees: input + output + cache reads + cache writes.
    let total = json(&whole)["usage"]["totalTokens"].as_u64().unwrap();
    assert_eq!(total, expected.input_tokens + expected.output_tokens);
    let streamed = fixture("bedrock_converse_stream_metadata.json");
    assert_eq!(bedrock_usage(&streamed), Some(expected));
}

#[test]
fn gemini_prompt_count_includes_cached_content_and_thoughts_are_output() {
    let body = fixture("gemini_generate_cached.json");
    let expected = Usage {
        input_tokens: 2310,
        output_tokens: 120 + 450,
        cache_read_tokens: 2048,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
    };
    assert_eq!(gemini_usage(&body), Some(expected));
    let total = json(&body)["usageMetadata"]["totalTokenCount"]
        .as_u64()
        .unwrap();
    assert_eq!(total, expected.input_tokens + expected.output_tokens);
    // gemini-2.5-flash: $0.30 input, $0.075 cached, $2.50 output.
    let cost = 262 * 300 + 2048 * 75 + 570 * 2500;
    assert_eq!(nanos("gemini-2.5-flash", &expected), cost);
}

#[test]
fn openai_response_as_anthropic_reports_the_cached_part_apart() {
    let body = openai_response_to_anthropic(&fixture("openai_chat_cached.json"), "claude").unwrap();
    let usage = &json(&body)["usage"];
    assert_eq!(usage["input_tokens"], 86, "prompt − cached, not prompt");
    assert_eq!(usage["cache_read_input_tokens"], 1920);
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["output_tokens"], 300);
    // Read back in the client's dialect, the same tokens at the same cost.
    assert_eq!(anthropic_response_usage(&body), Some(OPENAI));
}

#[test]
fn anthropic_response_as_openai_counts_every_prompt_token_once() {
    let body =
        anthropic_response_to_openai(&fixture("anthropic_message_cached.json"), "gpt").unwrap();
    let usage = &json(&body)["usage"];
    assert_eq!(usage["prompt_tokens"], 6 + 5678 + 1234);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 5678);
    assert_eq!(usage["completion_tokens"], 100);
    assert_eq!(usage["total_tokens"], 6918 + 100);
    // OpenAI has no cache-write field: the writes stay in prompt_tokens, so
    // the client sees every token, none twice.
    let back = openai_response_usage(&body).unwrap();
    assert_eq!(back.input_tokens, ANTHROPIC.input_tokens);
    assert_eq!(back.cache_read_tokens, ANTHROPIC.cache_read_tokens);
}

#[test]
fn openai_stream_as_anthropic_reports_the_cached_part_apart() {
    let mut t = OpenAiToAnthropicStream::new("claude");
    let mut out = Vec::new();
    for (_, data) in events(&fixture("openai_stream_cached.sse")) {
        t.on_data(data.as_bytes(), &mut out).unwrap();
    }
    t.finish(&mut out);
    assert_eq!(t.usage(), OPENAI, "what the gateway meters");
    let translated = events(&out);
    let (_, delta) = translated
        .iter()
        .find(|(e, _)| e == "message_delta")
        .unwrap();
    let usage = &json(delta.as_bytes())["usage"];
    assert_eq!(usage["input_tokens"], 86);
    assert_eq!(usage["cache_read_input_tokens"], 1920);
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["output_tokens"], 300);
    // The gateway's own scanner, reading the translated stream as an
    // Anthropic client's would be read, finds the same usage.
    let mut scan = StreamUsageScanner::new();
    scan.reset(true);
    scan.feed(&out).unwrap();
    assert_eq!(scan.usage(), Some(OPENAI));
}

#[test]
fn anthropic_stream_as_openai_counts_every_prompt_token_once() {
    let mut t = AnthropicToOpenAiStream::new("gpt", true);
    let mut out = Vec::new();
    for (event, data) in events(&fixture("anthropic_stream_cached.sse")) {
        t.on_event(event.as_bytes(), data.as_bytes(), &mut out)
            .unwrap();
    }
    t.finish(&mut out);
    assert_eq!(t.usage(), ANTHROPIC, "what the gateway meters");
    let translated = events(&out);
    let (_, last) = &translated[translated.len() - 2];
    let usage = &json(last.as_bytes())["usage"];
    assert_eq!(usage["prompt_tokens"], 6918);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 5678);
    assert_eq!(usage["completion_tokens"], 100);
    assert_eq!(usage["total_tokens"], 7018);
    assert_eq!(translated.last().unwrap().1, "[DONE]");
}

#[test]
fn a_restated_input_replaces_the_counts_never_adds_to_them() {
    // Newer API versions restate the input (and its cache counts) in
    // message_delta: the stream's usage must not count them twice.
    let stream = String::from_utf8(fixture("anthropic_stream_cached.sse")).unwrap();
    let restated = stream.replace(
        r#""usage":{"output_tokens":100}"#,
        r#""usage":{"input_tokens":6,"cache_creation_input_tokens":1234,"cache_read_input_tokens":5678,"output_tokens":100}"#,
    );
    assert_ne!(stream, restated);
    let mut scan = StreamUsageScanner::new();
    scan.reset(true);
    scan.feed(restated.as_bytes()).unwrap();
    assert_eq!(scan.usage(), Some(ANTHROPIC));
    let mut t = AnthropicToOpenAiStream::new("gpt", true);
    let mut out = Vec::new();
    for (event, data) in events(restated.as_bytes()) {
        t.on_event(event.as_bytes(), data.as_bytes(), &mut out)
            .unwrap();
    }
    assert_eq!(t.usage(), ANTHROPIC);
}

#[test]
fn hour_long_cache_writes_are_metered_at_their_own_rate_on_every_path() {
    // The same stream with 1000 of its 1234 writes made for an hour.
    let stream = String::from_utf8(fixture("anthropic_stream_cached.sse")).unwrap();
    let hour = stream.replace(
        r#""cache_creation":{"ephemeral_5m_input_tokens":1234,"ephemeral_1h_input_tokens":0}"#,
        r#""cache_creation":{"ephemeral_5m_input_tokens":234,"ephemeral_1h_input_tokens":1000}"#,
    );
    assert_ne!(stream, hour);
    let expected = ANTHROPIC.with_writes_for_an_hour(1000);
    // Passed through: the usage scanner.
    let mut scan = StreamUsageScanner::new();
    scan.reset(true);
    scan.feed(hour.as_bytes()).unwrap();
    assert_eq!(scan.usage(), Some(expected));
    // Translated for an OpenAI client: the translator's count.
    let mut t = AnthropicToOpenAiStream::new("gpt", true);
    let mut out = Vec::new();
    for (event, data) in events(hour.as_bytes()) {
        t.on_event(event.as_bytes(), data.as_bytes(), &mut out)
            .unwrap();
    }
    t.finish(&mut out);
    assert_eq!(t.usage(), expected);
    // 1000 tokens at 2× input ($6 per million) instead of 1.25× ($3.75):
    // $2.25 per million more, 2,250,000 nano-dollars for the thousand.
    let model = "claude-sonnet-4-20250514";
    assert_eq!(
        nanos(model, &expected),
        nanos(model, &ANTHROPIC) + 2_250_000
    );
}
