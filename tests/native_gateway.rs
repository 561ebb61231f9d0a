//! The Gemini API (`kind = "google"`) and Cohere (`kind = "cohere"`) end
//! to end: a real gateway in front of mocks that check each request the
//! way the real services do and answer in their own shapes. Gemini's
//! mock refuses a key not in `x-goog-api-key`, a field its API does not
//! know (Google answers 400 "Unknown name" to one), a turn whose role is
//! not `user` or `model` and a method other than the two; Cohere's a key
//! not sent as Bearer, a field v2 does not know and an embed without its
//! required `input_type` and `embedding_types`. Both client dialects
//! (OpenAI chat and Anthropic messages), plain and streamed, tools, usage
//! metered, errors in the client's dialect, a cut stream; Cohere's embed
//! and rerank; the official SDKs.

mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{free_port, Gateway, GatewayOpts, MockUpstream, Recorded, Reply, Writer};
use serde_json::{json, Value};

const GEMINI_KEY: &str = "AIza-test-key";
const COHERE_KEY: &str = "co-test-key";

fn respond(stream: &mut TcpStream, status: u16, body: &Value) -> io::Result<bool> {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json; charset=UTF-8\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    Ok(true)
}

/// Writes `events` (whole SSE events) as one chunk each, a little apart;
/// ends the body unless `cut` (then the connection closes mid-stream).
fn respond_sse(stream: &mut TcpStream, events: &[String], cut: bool) -> io::Result<bool> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    )?;
    for e in events {
        stream.write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes())?;
        stream.flush()?;
        std::thread::sleep(Duration::from_millis(5));
    }
    if cut {
        return Ok(false);
    }
    stream.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

fn google_error(
    stream: &mut TcpStream,
    status: u16,
    kind: &str,
    message: &str,
) -> io::Result<bool> {
    let body = json!({"error": {"code": status, "message": message, "status": kind}});
    respond(stream, status, &body)
}

/// What the Gemini API accepts at the top of a `generateContent` body.
const GEMINI_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
];

/// Checks a request as the Gemini API would; the refusal it would answer.
fn gemini_refusal(rec: &Recorded) -> Option<(u16, &'static str, String)> {
    if rec.header("x-goog-api-key") != Some(GEMINI_KEY) || rec.header("authorization").is_some() {
        return Some((
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers".into(),
        ));
    }
    let Some(rest) = rec.target.strip_prefix("/v1beta/models/") else {
        return Some((404, "NOT_FOUND", format!("no route {}", rec.target)));
    };
    if !(rest.ends_with(":generateContent") || rest.ends_with(":streamGenerateContent?alt=sse")) {
        return Some((404, "NOT_FOUND", format!("no method {rest}")));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&rec.body) else {
        return Some((
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.".into(),
        ));
    };
    for key in body.as_object().into_iter().flat_map(|o| o.keys()) {
        if !GEMINI_FIELDS.contains(&key.as_str()) {
            return Some((
                400,
                "INVALID_ARGUMENT",
                format!(
                    "Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
                ),
            ));
        }
    }
    let contents = body["contents"].as_array().cloned().unwrap_or_default();
    if contents.is_empty() {
        return Some((400, "INVALID_ARGUMENT", "contents is not specified".into()));
    }
    for c in &contents {
        let role = c["role"].as_str().unwrap_or("");
        let parts = c["parts"].as_array().map_or(0, Vec::len);
        if !matches!(role, "user" | "model") || parts == 0 {
            return Some((
                400,
                "INVALID_ARGUMENT",
                format!("Please use a valid role: user, model. (got {c})"),
            ));
        }
    }
    None
}

fn gemini_data(v: Value) -> String {
    format!("data: {v}\r\n\r\n")
}

fn gemini_answer(stream: &mut TcpStream, rec: &Recorded) -> io::Result<bool> {
    if let Some((status, kind, message)) = gemini_refusal(rec) {
        return google_error(stream, status, kind, &message);
    }
    let model = rec.target["/v1beta/models/".len()..]
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    if model.contains("exhausted") {
        return google_error(
            stream,
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        );
    }
    let body: Value = serde_json::from_slice(&rec.body).unwrap();
    let tools = body.get("tools").is_some();
    let usage = json!({"promptTokenCount": 11, "candidatesTokenCount": 4, "totalTokenCount": 15, "cachedContentTokenCount": 2});
    if !rec.target.contains(":stream") {
        let parts = if tools {
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}])
        } else {
            json!([{"text": "Hello from Gemini"}])
        };
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": "gem-resp-1"
        });
        return respond(stream, 200, &body);
    }
    let cut = model.contains("cut");
    let mut events = vec![
        gemini_data(
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}], "responseId": "gem-resp-2"}),
        ),
        gemini_data(
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "index": 0}], "responseId": "gem-resp-2"}),
        ),
    ];
    if !cut {
        events.push(gemini_data(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage,
            "responseId": "gem-resp-2"
        })));
    }
    respond_sse(stream, &events, cut)
}

/// What Cohere's v2 chat accepts at the top of its body.
const COHERE_CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
];

fn cohere_error(stream: &mut TcpStream, status: u16, message: &str) -> io::Result<bool> {
    respond(stream, status, &json!({"id": "err-1", "message": message}))
}

fn cohere_answer(stream: &mut TcpStream, rec: &Recorded) -> io::Result<bool> {
    if rec.header("authorization") != Some(&format!("Bearer {COHERE_KEY}")) {
        return cohere_error(stream, 401, "invalid api token");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&rec.body) else {
        return cohere_error(stream, 400, "invalid request: body is not JSON");
    };
    let model = body["model"].as_str().unwrap_or("").to_string();
    if model.is_empty() {
        return cohere_error(stream, 400, "invalid request: model is required");
    }
    match rec.target.as_str() {
        "/v2/chat" => {}
        "/v2/embed" => {
            let types = body["embedding_types"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !body["input_type"].is_string() || !types.contains(&json!("float")) {
                return cohere_error(
                    stream,
                    400,
                    "invalid request: input_type and embedding_types are required",
                );
            }
            let texts = body["texts"].as_array().cloned().unwrap_or_default();
            let vectors: Vec<Value> = (0..texts.len())
                .map(|i| json!([0.5, -0.25, i as f64]))
                .collect();
            let answer = json!({
                "id": "emb-1",
                "embeddings": {"float": vectors},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 6}}
            });
            return respond(stream, 200, &answer);
        }
        "/v2/rerank" => {
            if !body["query"].is_string() || !body["documents"].is_array() {
                return cohere_error(
                    stream,
                    400,
                    "invalid request: query and documents are required",
                );
            }
            let answer = json!({
                "id": "rr-1",
                "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
            });
            return respond(stream, 200, &answer);
        }
        other => return cohere_error(stream, 404, &format!("no route {other}")),
    }
    for key in body.as_object().into_iter().flat_map(|o| o.keys()) {
        if !COHERE_CHAT_FIELDS.contains(&key.as_str()) {
            return cohere_error(
                stream,
                400,
                &format!("invalid request: unknown field {key}"),
            );
        }
    }
    let roles_ok = body["messages"].as_array().is_some_and(|m| {
        !m.is_empty()
            && m.iter().all(|m| {
                matches!(
                    m["role"].as_str(),
                    Some("system" | "user" | "assistant" | "tool")
                )
            })
    });
    if !roles_ok {
        return cohere_error(
            stream,
            400,
            "invalid request: messages must have valid roles",
        );
    }
    if model.contains("limited") {
        return cohere_error(
            stream,
            429,
            "You are using a Trial key, which is limited to 10 API calls / minute.",
        );
    }
    let usage = json!({"billed_units": {"input_tokens": 9, "output_tokens": 3}, "tokens": {"input_tokens": 70, "output_tokens": 3}});
    let tools = body.get("tools").is_some();
    if body["stream"] != true {
        let message = if tools {
            json!({"role": "assistant", "tool_plan": "I will check the weather.", "tool_calls": [
                {"id": "get_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]})
        } else {
            json!({"role": "assistant", "content": [{"type": "text", "text": "Hello from Cohere"}]})
        };
        let finish = if tools { "TOOL_CALL" } else { "COMPLETE" };
        let answer =
            json!({"id": "co-resp-1", "message": message, "finish_reason": finish, "usage": usage});
        return respond(stream, 200, &answer);
    }
    let event = |kind: &str, data: Value| format!("event: {kind}\ndata: {data}\n\n");
    let cut = model.contains("cut");
    let mut events = vec![
        event(
            "message-start",
            json!({"id": "co-resp-2", "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        ),
        event(
            "content-start",
            json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        ),
        event(
            "content-delta",
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hel"}}}}),
        ),
        event(
            "content-delta",
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "lo"}}}}),
        ),
    ];
    if !cut {
        events.extend([
            event("content-delta", json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "!"}}}})),
            event("content-end", json!({"type": "content-end", "index": 0})),
            event("message-end", json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}})),
        ]);
    }
    respond_sse(stream, &events, cut)
}

fn mock(answer: fn(&mut TcpStream, &Recorded) -> io::Result<bool>) -> MockUpstream {
    MockUpstream::with(move |_| Reply::Scripted(Writer::new(answer)))
}

/// A gateway with providers `google` (Gemini API) and `cohere` in front
/// of the mocks, its admin listener at the returned address.
fn gateway(gemini: &MockUpstream, cohere: &MockUpstream) -> (Gateway, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n[admin]\nlisten = \"{admin}\"\n\n\
         [providers.google]\nbase_url = \"http://{}\"\napi_key = \"{GEMINI_KEY}\"\n\n\
         [providers.cohere]\nbase_url = \"http://{}\"\napi_key = \"{COHERE_KEY}\"\n\n\
         [[models]]\nname = \"flash\"\nprovider = \"google\"\nupstream_model = \"gemini-2.5-flash\"\n",
        gemini.addr, cohere.addr
    );
    let opts = GatewayOpts::config(common::Driver::IoUring, config);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::spawn_at(&opts, addr, &[], &[]).expect("gateway starts");
    (gw, admin)
}

fn metrics(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    io::Read::read_to_string(&mut s, &mut out).unwrap();
    out
}

fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// The JSON `data:` payloads of an SSE body (`[DONE]` left out).
fn data_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn content_of(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn chat(model: &str, stream: bool) -> String {
    json!({
        "model": model,
        "stream": stream,
        "stream_options": {"include_usage": true},
        "max_tokens": 64,
        "temperature": 0.2,
        "user": "u-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"}
        ]
    })
    .to_string()
}

const TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}}}]"#;

#[test]
fn openai_chat_through_the_gemini_api() {
    let (g, c) = (mock(gemini_answer), mock(cohere_answer));
    let (gw, admin) = gateway(&g, &c);

    let r = gw.post("/v1/chat/completions", &chat("flash", false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "flash");
    assert_eq!(v["id"], "chatcmpl-gem-resp-1");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Gemini");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    let sent = g.last();
    assert_eq!(
        sent.target,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json();
    assert_eq!(
        body["systemInstruction"]["parts"],
        json!([{"text": "Be brief."}])
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hello"}]}])
    );
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 64);
    assert_eq!(body["generationConfig"]["temperature"], 0.2);

    // A provider prefix reaches any model; the stream is SSE both ways.
    let r = gw.post("/v1/chat/completions", &chat("google/gemini-2.5-pro", true));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = data_events(&text);
    assert_eq!(content_of(&events), "Hello!");
    assert!(events.iter().all(|e| e["model"] == "google/gemini-2.5-pro"));
    let finish: Vec<_> = events
        .iter()
        .filter_map(|e| e["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["stop"]);
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(11), Some(4))
    );
    assert_eq!(
        g.last().target,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );

    // Tools: OpenAI's JSON Schema goes where Gemini takes JSON Schema; the
    // call comes back as OpenAI's.
    let body = format!(
        r#"{{"model":"flash","messages":[{{"role":"user","content":"Weather in Paris?"}}],"tools":{TOOLS},"tool_choice":"required"}}"#
    );
    let r = gw.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let sent = g.last().json();
    let decl = &sent["tools"][0]["functionDeclarations"][0];
    assert_eq!(decl["name"], "get_weather");
    assert_eq!(decl["parametersJsonSchema"]["additionalProperties"], false);
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");

    // The tool's answer goes back keyed by the function's name.
    let body = format!(
        r#"{{"model":"flash","tools":{TOOLS},"messages":[{{"role":"user","content":"Weather in Paris?"}},{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_0","type":"function","function":{{"name":"get_weather","arguments":"{{\"city\":\"Paris\"}}"}}}}]}},{{"role":"tool","tool_call_id":"call_0","content":"18C"}},{{"role":"user","content":[{{"type":"text","text":"And this?"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,iVBORw0KGgo="}}}}]}}]}}"#
    );
    let r = gw.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let contents = g.last().json()["contents"].clone();
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"output": "18C"}})
    );
    assert_eq!(
        contents[2]["parts"][2]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );

    // Metered as Gemini counts: the prompt with its cached part, three
    // requests to the configured model.
    let model = "model=\"flash\"";
    wait_metric(
        admin,
        "shardgate_tokens_total",
        &[model, "direction=\"input\""],
        33.0,
    );
    wait_metric(
        admin,
        "shardgate_tokens_total",
        &[model, "direction=\"output\""],
        12.0,
    );
    wait_metric(
        admin,
        "shardgate_cache_tokens_total",
        &[model, "kind=\"read\""],
        6.0,
    );
}

/// Waits (bounded) for the sum of a metric's samples to be `want`; the log
/// phase records a response just after its last byte is sent.
fn wait_metric(admin: SocketAddr, name: &str, labels: &[&str], want: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = metrics(admin);
        let got = sample(&m, name, labels);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{labels:?} = {got}, want {want}:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gemini_errors_and_cut_streams_in_the_clients_dialect() {
    let (g, c) = (mock(gemini_answer), mock(cohere_answer));
    let (gw, _) = gateway(&g, &c);

    let r = gw.post(
        "/v1/chat/completions",
        &chat("google/gemini-exhausted", false),
    );
    let e = r.assert_openai_error(429);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Resource has been exhausted"),
        "{e}"
    );
    assert_eq!(e["code"], "RESOURCE_EXHAUSTED");

    let anthropic = json!({"model": "google/gemini-exhausted", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/messages", &anthropic.to_string());
    assert_eq!(r.status, 429, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    // A stream cut before its finish reason ends in OpenAI's error event.
    let r = gw.post("/v1/chat/completions", &chat("google/gemini-cut", true));
    assert_eq!(r.status, 200);
    let text = r.text();
    let events = data_events(&text);
    assert_eq!(content_of(&events), "Hello");
    assert!(events.last().unwrap()["error"].is_object(), "{text}");

    // The same to an Anthropic client ends in Anthropic's error event.
    let mut cut = anthropic.clone();
    cut["model"] = json!("google/gemini-cut");
    cut["stream"] = json!(true);
    let r = gw.post("/v1/messages", &cut.to_string());
    let text = r.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("event: message_stop"), "{text}");

    // What the Gemini API has no equivalent of is refused before sending.
    let sent = g.requests().len();
    let r = gw.post("/v1/completions", r#"{"model":"flash","prompt":"hi"}"#);
    let e = r.assert_openai_error(400);
    assert!(e["message"].as_str().unwrap().contains("Gemini"), "{e}");
    assert_eq!(g.requests().len(), sent);
}

#[test]
fn anthropic_messages_through_the_gemini_api() {
    let (g, c) = (mock(gemini_answer), mock(cohere_answer));
    let (gw, _) = gateway(&g, &c);
    let body = json!({
        "model": "flash",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    });
    let r = gw.post("/v1/messages", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "flash");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello from Gemini"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 9);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 2);
    assert_eq!(v["usage"]["output_tokens"], 4);
    let sent = g.last().json();
    assert_eq!(
        sent["systemInstruction"]["parts"],
        json!([{"text": "Be brief."}])
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 50);

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let r = gw.post("/v1/messages", &stream.to_string());
    assert_eq!(r.status, 200);
    let text = r.text();
    let events: Vec<Value> = data_events(&text);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"message_start"), "{text}");
    assert_eq!(kinds.last(), Some(&"message_stop"), "{text}");
    let said: String = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "Hello!");
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 4);
}

#[test]
fn cohere_chat_embed_and_rerank() {
    let (g, c) = (mock(gemini_answer), mock(cohere_answer));
    let (gw, admin) = gateway(&g, &c);

    let r = gw.post(
        "/v1/chat/completions",
        &chat("cohere/command-a-03-2025", false),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model"], "cohere/command-a-03-2025");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Cohere");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (
            v["usage"]["prompt_tokens"].as_u64(),
            v["usage"]["completion_tokens"].as_u64()
        ),
        (Some(9), Some(3))
    );
    let sent = c.last();
    assert_eq!(sent.target, "/v2/chat");
    let body = sent.json();
    assert_eq!(body["model"], "command-a-03-2025");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(body["max_tokens"], 64);

    let r = gw.post(
        "/v1/chat/completions",
        &chat("cohere/command-a-03-2025", true),
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = data_events(&text);
    assert_eq!(content_of(&events), "Hello!");
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 3);
    assert_eq!(c.last().json()["stream"], true);

    let body = format!(
        r#"{{"model":"cohere/command-a-03-2025","messages":[{{"role":"user","content":"Weather in Paris?"}}],"tools":{TOOLS}}}"#
    );
    let r = gw.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["id"],
        "get_weather_1"
    );

    // Anthropic messages, through OpenAI's shape.
    let body = json!({"model": "cohere/command-a-03-2025", "max_tokens": 30, "stream": true, "messages": [{"role": "user", "content": "Say hello"}]});
    let r = gw.post("/v1/messages", &body.to_string());
    assert_eq!(r.status, 200);
    let events = data_events(&r.text());
    let said: String = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "Hello!");
    assert_eq!(events.last().unwrap()["type"], "message_stop");

    // Embeddings: Cohere's required fields are filled in; vectors come
    // back as OpenAI's, floats or base64 little-endian f32s.
    let r = gw.post(
        "/v1/embeddings",
        r#"{"model":"cohere/embed-v4.0","input":["a","b"],"encoding_format":"float"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["embedding"], json!([0.5, -0.25, 1.0]));
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    let sent = c.last().json();
    assert_eq!(sent["texts"], json!(["a", "b"]));
    assert_eq!(sent["input_type"], "search_document");
    let r = gw.post(
        "/v1/embeddings",
        r#"{"model":"cohere/embed-v4.0","input":"a","encoding_format":"base64"}"#,
    );
    let v = r.json();
    let mut expect = Vec::new();
    for f in [0.5f32, -0.25, 0.0] {
        expect.extend_from_slice(&f.to_le_bytes());
    }
    assert_eq!(v["data"][0]["embedding"], json!(base64(&expect)));

    // Metered in billed units, not tokens: chat plain, streamed, with
    // tools and to the Anthropic client (9 each), embed twice (6 each).
    let input = ["provider=\"cohere\"", "direction=\"input\""];
    wait_metric(
        admin,
        "shardgate_tokens_total",
        &input,
        4.0 * 9.0 + 2.0 * 6.0,
    );

    // Rerank is Cohere's shape already: passed through, model renamed.
    let r = gw.post(
        "/v1/rerank",
        r#"{"model":"cohere/rerank-v3.5","query":"q","documents":["x","y"],"top_n":2}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["index"], 1);
    let sent = c.last();
    assert_eq!(sent.target, "/v2/rerank");
    assert_eq!(sent.json()["model"], "rerank-v3.5");

    // Errors are OpenAI's, and Cohere's message is kept.
    let r = gw.post("/v1/chat/completions", &chat("cohere/limited", false));
    let e = r.assert_openai_error(429);
    assert!(e["message"].as_str().unwrap().contains("Trial key"), "{e}");

    // A stream cut short ends in an error event, never a whole answer.
    let r = gw.post("/v1/chat/completions", &chat("cohere/cut", true));
    let events = data_events(&r.text());
    assert!(events.last().unwrap()["error"].is_object());
}

/// Standard base64 with padding, as OpenAI encodes embeddings.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The official Python SDKs through both providers.
#[test]
fn the_official_python_sdks_through_gemini_and_cohere() {
    if !common::python_modules_available(
        "the_official_python_sdks_through_gemini_and_cohere",
        "openai, anthropic",
    ) {
        return;
    }
    let (g, c) = (mock(gemini_answer), mock(cohere_answer));
    let (gw, _) = gateway(&g, &c);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/native_sdk.py");
    let out = common::run_python(
        script,
        &[&format!("http://{}", gw.addr)],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same through the official Node SDKs.
#[test]
fn the_official_node_sdks_through_gemini_and_cohere() {
    if !common::node_sdks_available("the_official_node_sdks_through_gemini_and_cohere") {
        return;
    }
    let (g, c) = (mock(gemini_answer), mock(cohere_answer));
    let (gw, _) = gateway(&g, &c);
    let out = common::run_node(
        "native.mjs",
        &[&format!("http://{}", gw.addr)],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
