//! The official OpenAI and Anthropic Python SDKs against shardgate in front
//! of two mock providers, one per dialect (tests/sdk/dialects_sdk.py):
//! native and translated in both directions, plain and streaming, with
//! system prompts, tools, tool results and usage, and the errors the SDKs
//! raise (an unknown provider, an upstream 429 on the translated path).
//! Under both drivers.
//!
//! The mock here is deterministic and speaks both dialects: `/v1/messages`
//! answers Anthropic-shaped, `/v1/chat/completions` OpenAI-shaped. What it
//! answers is chosen from the last message: text that mentions "weather"
//! (with tools offered) gets a tool call, "ratelimit" gets a 429, a tool
//! result gets `result=<content>`, anything else gets
//! `system=<system prompt>|user=<text>`, so the script can see what arrived.
//!
//! Skipped with a SKIP line when `python3 -c "import openai, anthropic"`
//! fails, unless `SHARDGATE_REQUIRE_SDK=1`, which makes that a failure.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const OA_KEY: &str = "k1";
const AN_KEY: &str = "k2";
const INPUT_TOKENS: u64 = 11;
const OUTPUT_TOKENS: u64 = 7;
const TOOL_ID_ANTHROPIC: &str = "toolu_mock1";
const TOOL_ID_OPENAI: &str = "call_mock1";
/// The tool input the mock always "decides" on, as JSON text split into the
/// pieces streamed one delta each.
const TOOL_ARGS_PIECES: [&str; 3] = ["{\"city\": \"Pa", "ris\", \"unit\"", ": \"c\"}"];

/// The text of a message's `content`: a string, or the text of its text
/// parts / blocks.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// What the client's last message asks of the mock.
enum Ask {
    Text { system: String, user: String },
    ToolResult(String),
    ToolCall { name: String },
    RateLimit,
}

fn ask_anthropic(req: &Value) -> Ask {
    let system = content_text(&req["system"]);
    let last = req["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(result) = last["content"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"))
    {
        return Ask::ToolResult(content_text(&result["content"]));
    }
    classify(
        system,
        content_text(&last["content"]),
        req["tools"][0]["name"].as_str(),
    )
}

fn ask_openai(req: &Value) -> Ask {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let system = messages
        .iter()
        .filter(|m| m["role"] == "system" || m["role"] == "developer")
        .map(|m| content_text(&m["content"]))
        .collect::<Vec<_>>()
        .join("\n");
    let last = messages.last().cloned().unwrap_or(Value::Null);
    if last["role"] == "tool" {
        return Ask::ToolResult(content_text(&last["content"]));
    }
    classify(
        system,
        content_text(&last["content"]),
        req["tools"][0]["function"]["name"].as_str(),
    )
}

fn classify(system: String, user: String, tool: Option<&str>) -> Ask {
    if user.contains("ratelimit") {
        Ask::RateLimit
    } else if let (true, Some(name)) = (user.contains("weather"), tool) {
        Ask::ToolCall { name: name.into() }
    } else {
        Ask::Text { system, user }
    }
}

/// The reply text for a text answer, cut into the pieces streamed.
fn reply_text(ask: &Ask) -> String {
    match ask {
        Ask::Text { system, user } => format!("system={system}|user={user}"),
        Ask::ToolResult(r) => format!("result={r}"),
        Ask::ToolCall { .. } => "Let me check.".into(),
        Ask::RateLimit => String::new(),
    }
}

fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(5).map(|c| c.iter().collect()).collect()
}

fn raw(status: u16, content_type: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    Reply::Raw {
        status,
        content_type: content_type.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body,
    }
}

fn sse_event(out: &mut String, name: Option<&str>, data: &Value) {
    if let Some(name) = name {
        out.push_str(&format!("event: {name}\n"));
    }
    out.push_str(&format!("data: {data}\n\n"));
}

fn anthropic_reply(req: &Value) -> Reply {
    let model = req["model"].as_str().unwrap_or("");
    let ask = ask_anthropic(req);
    if let Ask::RateLimit = ask {
        let body = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "mock: slow down"}});
        return raw(
            429,
            "application/json",
            &[("retry-after", "1")],
            body.to_string().into_bytes(),
        );
    }
    let text = reply_text(&ask);
    let tool = match &ask {
        Ask::ToolCall { name } => Some(name.clone()),
        _ => None,
    };
    let stop_reason = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if req["stream"] != json!(true) {
        let mut content = vec![json!({"type": "text", "text": text})];
        if let Some(name) = &tool {
            let input: Value = serde_json::from_str(&TOOL_ARGS_PIECES.concat()).unwrap();
            content.push(
                json!({"type": "tool_use", "id": TOOL_ID_ANTHROPIC, "name": name, "input": input}),
            );
        }
        let body = json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
        });
        return raw(200, "application/json", &[], body.to_string().into_bytes());
    }
    let mut s = String::new();
    sse_event(
        &mut s,
        Some("message_start"),
        &json!({"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
    );
    sse_event(
        &mut s,
        Some("content_block_start"),
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    sse_event(&mut s, Some("ping"), &json!({"type": "ping"}));
    for p in pieces(&text) {
        sse_event(
            &mut s,
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
        );
    }
    sse_event(
        &mut s,
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    );
    if let Some(name) = &tool {
        sse_event(
            &mut s,
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 1, "content_block":
                {"type": "tool_use", "id": TOOL_ID_ANTHROPIC, "name": name, "input": {}}}),
        );
        for p in TOOL_ARGS_PIECES {
            sse_event(
                &mut s,
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": p}}),
            );
        }
        sse_event(
            &mut s,
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": 1}),
        );
    }
    sse_event(
        &mut s,
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": OUTPUT_TOKENS}}),
    );
    sse_event(
        &mut s,
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    );
    raw(200, "text/event-stream", &[], s.into_bytes())
}

fn openai_reply(req: &Value) -> Reply {
    let model = req["model"].as_str().unwrap_or("");
    let ask = ask_openai(req);
    if let Ask::RateLimit = ask {
        let body = json!({"error": {"message": "mock: slow down", "type": "requests",
                                    "param": null, "code": "rate_limit_exceeded"}});
        return raw(
            429,
            "application/json",
            &[("retry-after", "1")],
            body.to_string().into_bytes(),
        );
    }
    let text = reply_text(&ask);
    let tool = match &ask {
        Ask::ToolCall { name } => Some(name.clone()),
        _ => None,
    };
    let finish = if tool.is_some() { "tool_calls" } else { "stop" };
    let usage = json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                       "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS});
    if req["stream"] != json!(true) {
        let mut message = json!({"role": "assistant", "content": text, "refusal": null});
        if let Some(name) = &tool {
            message["tool_calls"] = json!([{"id": TOOL_ID_OPENAI, "type": "function",
                "function": {"name": name, "arguments": TOOL_ARGS_PIECES.concat()}}]);
        }
        let body = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        });
        return raw(200, "application/json", &[], body.to_string().into_bytes());
    }
    let chunk = |choices: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED,
               "model": model, "choices": choices})
    };
    let mut s = String::new();
    sse_event(
        &mut s,
        None,
        &chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        ),
    );
    for p in pieces(&text) {
        sse_event(
            &mut s,
            None,
            &chunk(json!([{"index": 0, "delta": {"content": p}, "finish_reason": null}])),
        );
    }
    if let Some(name) = &tool {
        sse_event(
            &mut s,
            None,
            &chunk(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": TOOL_ID_OPENAI,
                "type": "function", "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}]),
            ),
        );
        for p in TOOL_ARGS_PIECES {
            sse_event(
                &mut s,
                None,
                &chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
                    "function": {"arguments": p}}]}, "finish_reason": null}])),
            );
        }
    }
    sse_event(
        &mut s,
        None,
        &chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}])),
    );
    if req["stream_options"]["include_usage"] == json!(true) {
        let mut c = chunk(json!([]));
        c["usage"] = usage;
        sse_event(&mut s, None, &c);
    }
    s.push_str("data: [DONE]\n\n");
    raw(200, "text/event-stream", &[], s.into_bytes())
}

/// The mock provider behind both `oa` (OpenAI) and `an` (Anthropic).
fn dialect_mock() -> MockUpstream {
    MockUpstream::with(|info| {
        let req: Value = serde_json::from_slice(info.body).unwrap_or(Value::Null);
        match info.path {
            "/v1/messages" => anthropic_reply(&req),
            "/v1/chat/completions" => openai_reply(&req),
            _ => Reply::Error {
                status: 404,
                message: format!("mock: no route {}", info.path),
                headers: vec![],
            },
        }
    })
}

fn config(mock: &MockUpstream) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [providers.oa]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"{OA_KEY}\"\n\n\
         [providers.an]\nkind = \"anthropic\"\nbase_url = \"http://{addr}\"\napi_key = \"{AN_KEY}\"\n",
        addr = mock.addr
    )
}

fn run_script(gw: &Gateway) -> (std::process::ExitStatus, String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/dialects_sdk.py");
    let gateway = format!("http://{}", gw.addr);
    let out = run_python(script, &["--gateway", &gateway], Duration::from_secs(90));
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn official_sdks_native_and_translated_in_both_directions() {
    if !python_modules_available("gateway_sdk_dialects", "openai, anthropic") {
        return;
    }
    each_driver(|d| {
        let mock = dialect_mock();
        let gw = Gateway::start(GatewayOpts::config(d, config(&mock)));
        let (status, stdout, stderr) = run_script(&gw);
        assert!(
            status.success(),
            "{d:?}: SDK script failed ({status}):\n{stdout}\n{stderr}\ngateway log:\n{}",
            gw.log()
        );
        assert!(stdout.contains("all dialect checks passed"), "{stdout}");
        println!("{d:?}:\n{stdout}");

        let reqs = mock.requests();
        let anthropic: Vec<_> = reqs.iter().filter(|r| r.target == "/v1/messages").collect();
        let openai: Vec<_> = reqs
            .iter()
            .filter(|r| r.target == "/v1/chat/completions")
            .collect();
        assert!(anthropic.len() >= 10, "{} to /v1/messages", anthropic.len());
        assert!(
            openai.len() >= 8,
            "{} to /v1/chat/completions",
            openai.len()
        );
        assert_eq!(reqs.len(), anthropic.len() + openai.len(), "{reqs:#?}");
        // Each provider got its own key in its own header; the SDKs' keys
        // never reached either.
        for r in &anthropic {
            assert_eq!(r.header_all("x-api-key"), [AN_KEY], "{r:?}");
            assert!(r.header("authorization").is_none(), "{r:?}");
            assert!(r.header("anthropic-version").is_some(), "{r:?}");
        }
        for r in &openai {
            assert_eq!(
                r.header_all("authorization"),
                [format!("Bearer {OA_KEY}")],
                "{r:?}"
            );
            assert!(r.header("x-api-key").is_none(), "{r:?}");
        }
        assert!(reqs
            .iter()
            .all(|r| !r.headers.iter().any(|(_, v)| v.contains("sk-client"))));
        // Upstream models lost their provider prefix.
        for r in &reqs {
            let m = r.json()["model"].as_str().unwrap().to_string();
            assert!(m == "claude-mock" || m == "gpt-mock", "{m}");
        }

        // Translated requests are in the provider's dialect: an Anthropic
        // client's tool call request to `oa` became OpenAI chat...
        let oa_tools = openai
            .iter()
            .map(|r| r.json())
            .find(|b| b["tools"].is_array())
            .expect("a translated request with tools reached oa");
        assert_eq!(oa_tools["tools"][0]["type"], "function", "{oa_tools}");
        assert_eq!(
            oa_tools["tools"][0]["function"]["name"], "get_weather",
            "{oa_tools}"
        );
        assert!(
            oa_tools["tools"][0]["function"]["parameters"]["properties"]["city"].is_object(),
            "{oa_tools}"
        );
        assert_eq!(oa_tools["messages"][0]["role"], "system", "{oa_tools}");
        assert!(oa_tools.get("system").is_none(), "{oa_tools}");
        // ...and an OpenAI client's to `an` became Anthropic messages.
        let an_tools = anthropic
            .iter()
            .map(|r| r.json())
            .filter(|b| b["tools"].is_array())
            .find(|b| b["tools"][0].get("input_schema").is_some())
            .expect("a translated request with tools reached an");
        assert_eq!(an_tools["tools"][0]["name"], "get_weather", "{an_tools}");
        assert!(an_tools["max_tokens"].as_u64().is_some(), "{an_tools}");
        assert!(an_tools["system"].is_string() || an_tools["system"].is_array());
        assert!(an_tools["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] == "user" || m["role"] == "assistant"));
        gw.assert_healthy();
    });
}
