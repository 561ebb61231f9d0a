//! Request-body patch cost: our validating scan + splice of `model` against a
//! full parse, set, re-serialize with sonic-rs and with serde_json, on a
//! ~500-byte chat body and a ~20 KB one; and the SSE scanner on a realistic
//! chat-completions stream, whole and in 61-byte reads. Every variant writes
//! into an output buffer reused across iterations.
//!
//! Run: `cargo bench --bench json`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use shardgate::api::sse::SseScanner;
use shardgate::json::{push_json_string, scan_top_level, splice};
use sonic_rs::JsonValueMutTrait;

const NEW_MODEL: &str = "gpt-4o-mini-2024-07-18";

fn small_chat_body() -> Vec<u8> {
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "What is the capital of France? Also, what's the weather usually like there in \"spring\"?\nThanks!"}
        ],
        "temperature": 0.7,
        "max_tokens": 256,
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "user-7f3a9c"
    });
    serde_json::to_vec(&body).unwrap()
}

fn large_chat_body() -> Vec<u8> {
    let mut messages = Vec::new();
    for turn in 0..60 {
        messages.push(json!({"role": "user", "content": format!("Question {turn}: what about \"quoted\" text,\nnewlines and ünïcödé? {}", "lorem ipsum ".repeat(12))}));
        messages.push(json!({"role": "assistant", "content": format!("Answer {turn}: {}", "dolor sit amet ".repeat(8))}));
    }
    let tools: Vec<_> = (0..4).map(|i| json!({"type": "function", "function": {"name": format!("tool_{i}"), "description": "Looks something up.", "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}}, "required": ["query"]}}})).collect();
    serde_json::to_vec(
        &json!({"model": "gpt-4o", "messages": messages, "tools": tools, "stream": true}),
    )
    .unwrap()
}

fn patch_bodies(c: &mut Criterion) {
    for (name, body) in [
        ("chat_500B", small_chat_body()),
        ("chat_20KB", large_chat_body()),
    ] {
        let mut group = c.benchmark_group(format!("patch_model/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        let mut out = Vec::with_capacity(body.len() * 2);
        let mut literal = Vec::with_capacity(64);

        group.bench_function("shardgate::scan+splice", |b| {
            b.iter(|| {
                let top = scan_top_level(black_box(&body)).unwrap();
                literal.clear();
                push_json_string(&mut literal, NEW_MODEL);
                out.clear();
                for part in splice(&body, top.model.unwrap().span, &literal) {
                    out.extend_from_slice(part);
                }
                black_box(out.len())
            })
        });
        group.bench_function("sonic_rs::Value", |b| {
            b.iter(|| {
                let mut value: sonic_rs::Value = sonic_rs::from_slice(black_box(&body)).unwrap();
                value.as_object_mut().unwrap().insert("model", NEW_MODEL);
                out.clear();
                sonic_rs::to_writer(&mut out, &value).unwrap();
                black_box(out.len())
            })
        });
        group.bench_function("serde_json::Value", |b| {
            b.iter(|| {
                let mut value: serde_json::Value =
                    serde_json::from_slice(black_box(&body)).unwrap();
                value["model"] = NEW_MODEL.into();
                out.clear();
                serde_json::to_writer(&mut out, &value).unwrap();
                black_box(out.len())
            })
        });
        group.finish();
    }
}

fn chat_stream() -> Vec<u8> {
    let mut stream = String::new();
    let words = [
        "The", " capital", " of", " France", " is", " Paris", ".", " Spring", " is", " mild", ".",
    ];
    for i in 0..200 {
        let chunk = json!({"id": "chatcmpl-AZxq1", "object": "chat.completion.chunk", "created": 1733000000, "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1", "choices": [{"index": 0, "delta": {"content": words[i % words.len()]}, "logprobs": null, "finish_reason": null}], "usage": null});
        stream.push_str(&format!("data: {chunk}\n\n"));
    }
    stream.push_str("data: {\"id\":\"chatcmpl-AZxq1\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":200,\"total_tokens\":230}}\n\ndata: [DONE]\n\n");
    stream.into_bytes()
}

fn scan_stream(c: &mut Criterion) {
    let stream = chat_stream();
    let mut group = c.benchmark_group("sse/chat_stream");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    let mut scanner = SseScanner::new(1 << 20);
    for read_size in [stream.len(), 61] {
        group.bench_with_input(
            BenchmarkId::new("SseScanner", read_size),
            &read_size,
            |b, &read_size| {
                b.iter(|| {
                    scanner.reset();
                    let mut data_bytes = 0;
                    for read in black_box(&stream).chunks(read_size) {
                        scanner.feed(read, |e| data_bytes += e.data.len()).unwrap();
                    }
                    black_box(data_bytes)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, patch_bodies, scan_stream);
criterion_main!(benches);
