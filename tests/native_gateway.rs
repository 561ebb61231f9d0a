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

use common::{
    data_events, free_port, sample, scrape, Gateway, GatewayOpts, MockUpstream, Recorded, Reply,
    Writer,
};
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

/// Where a Gemini model is and how a request to it is authenticated: the
/// Gemini API (key header) or Vertex AI (a token the mock issued).
#[derive(Clone, Copy)]
struct GoogleFront {
    models: &'static str,
    authorized: fn(&Recorded) -> bool,
}

const GEMINI_API: GoogleFront = GoogleFront {
    models: "/v1beta/models/",
    authorized: |rec| {
        rec.header("x-goog-api-key") == Some(GEMINI_KEY) && rec.header("authorization").is_none()
    },
};

/// Checks a request as the Gemini API would; the refusal it would answer.
fn gemini_refusal(rec: &Recorded, front: GoogleFront) -> Option<(u16, &'static str, String)> {
    if !(front.authorized)(rec) {
        return Some((
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers".into(),
        ));
    }
    let Some(rest) = rec.target.strip_prefix(front.models) else {
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
    google_answer(stream, rec, GEMINI_API)
}

fn google_answer(stream: &mut TcpStream, rec: &Recorded, front: GoogleFront) -> io::Result<bool> {
    if let Some((status, kind, message)) = gemini_refusal(rec, front) {
        return google_error(stream, status, kind, &message);
    }
    let model = rec.target[front.models.len()..]
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    if model.contains("garbage") {
        // A 200 that is no generateContent answer, then a stream that is
        // no SSE of one.
        let body = b"<html>upstream proxy error</html>";
        if !rec.target.contains(":stream") {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(body)?;
            return Ok(true);
        }
        return respond_sse(stream, &["data: {not json\r\n\r\n".to_string()], false);
    }
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
        let m = scrape(admin);
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

    // A lying upstream: an answer that is not Gemini's is a 502 in the
    // client's dialect; a stream whose event is not JSON ends in the
    // stream's error event, one head only.
    let r = gw.post(
        "/v1/chat/completions",
        &chat("google/gemini-garbage", false),
    );
    let e = r.assert_openai_error(502);
    assert!(e["message"].as_str().unwrap().contains("translate"), "{e}");
    let r = gw.post("/v1/chat/completions", &chat("google/gemini-garbage", true));
    assert_eq!(r.status, 200);
    let text = r.text();
    assert_eq!(text.matches("HTTP/1.1").count(), 0, "{text}");
    assert!(
        data_events(&text).last().unwrap()["error"].is_object(),
        "{text}"
    );
    let mut garbage = anthropic.clone();
    garbage["model"] = json!("google/gemini-garbage");
    let r = gw.post("/v1/messages", &garbage.to_string());
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["type"], "error");

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

// Vertex AI: a service account's tokens from a mock token endpoint that
// checks each assertion with an independent RS256 implementation
// (tests/fixtures/google/jwt_verify.py); Gemini models in the Gemini
// shape, Anthropic's in theirs.

const VERTEX_ROOT: &str = "/v1/projects/shardgate-test-only/locations/us-east5/publishers";

/// Tokens the mock token endpoint issued (the last is the one requests
/// must carry) and the verifier's verdicts.
#[derive(Default)]
struct Issued {
    tokens: Vec<String>,
    verdicts: Vec<Value>,
}

type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

/// The mock token endpoint: verifies each assertion against the key file
/// it wrote, refuses the first `refuse` requests, and issues tokens valid
/// for `expires_in` seconds.
struct TokenEndpoint {
    mock: MockUpstream,
    issued: Shared<Issued>,
    account: Shared<Value>,
}

impl TokenEndpoint {
    fn start(refuse: usize, expires_in: u64) -> TokenEndpoint {
        let issued: Shared<Issued> = Default::default();
        let account: Shared<Value> = Default::default();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (state, key) = (issued.clone(), account.clone());
        let mock = MockUpstream::with(move |_| {
            let (state, key, seen) = (state.clone(), key.clone(), seen.clone());
            Reply::Scripted(Writer::new(move |stream, rec| {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let account = key.lock().unwrap().clone();
                let verdict = verify_jwt(&account, &String::from_utf8_lossy(&rec.body), now);
                let ok = verdict["ok"] == true
                    && rec.target == "/token"
                    && rec.header("content-type") == Some("application/x-www-form-urlencoded");
                state.lock().unwrap().verdicts.push(verdict);
                if !ok || n < refuse {
                    let body = json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."});
                    return respond(stream, 400, &body);
                }
                let token = format!("ya29.test-token-{n}");
                state.lock().unwrap().tokens.push(token.clone());
                let body = json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"});
                respond(stream, 200, &body)
            }))
        });
        TokenEndpoint {
            mock,
            issued,
            account,
        }
    }

    /// Writes the test key file, its token URI pointed here.
    fn key_file(&self, dir: &common::TempDir) -> std::path::PathBuf {
        let mut account: Value =
            serde_json::from_str(include_str!("fixtures/google/test-service-account.json"))
                .unwrap();
        account["token_uri"] = json!(format!("http://{}/token", self.mock.addr));
        *self.account.lock().unwrap() = account.clone();
        dir.write("sa.json", &account.to_string())
    }

    fn tokens(&self) -> Vec<String> {
        self.issued.lock().unwrap().tokens.clone()
    }

    fn all_verified(&self) {
        let issued = self.issued.lock().unwrap();
        assert!(!issued.verdicts.is_empty());
        for v in &issued.verdicts {
            assert_eq!(v["ok"], true, "{v}");
        }
    }
}

fn verify_jwt(account: &Value, body: &str, now: u64) -> Value {
    let case = json!({"service_account": account, "body": body, "now": now});
    common::python_verdict("google/jwt_verify.py", &case)
}

/// Vertex AI's side: Gemini models as the Gemini mock answers them,
/// Anthropic's as Anthropic would; every request must carry the token
/// the endpoint issued last.
fn vertex_mock(tokens: Shared<Issued>) -> MockUpstream {
    MockUpstream::with(move |_| {
        let tokens = tokens.clone();
        Reply::Scripted(Writer::new(move |stream, rec| {
            let latest = tokens.lock().unwrap().tokens.last().cloned();
            let authorized =
                latest.is_some_and(|t| rec.header("authorization") == Some(&format!("Bearer {t}")));
            vertex_answer(stream, rec, authorized)
        }))
    })
}

fn vertex_answer(stream: &mut TcpStream, rec: &Recorded, authorized: bool) -> io::Result<bool> {
    if !authorized {
        return google_error(
            stream,
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    let google = GoogleFront {
        models: "/v1/projects/shardgate-test-only/locations/us-east5/publishers/google/models/",
        authorized: |_| true,
    };
    let Some(rest) = rec
        .target
        .strip_prefix(&format!("{VERTEX_ROOT}/anthropic/models/"))
    else {
        return google_answer(stream, rec, google);
    };
    let body: Value = serde_json::from_slice(&rec.body).unwrap_or_default();
    let streaming = rest.ends_with(":streamRawPredict");
    if body["anthropic_version"] != "vertex-2023-10-16"
        || body.get("model").is_some()
        || !(rest.ends_with(":rawPredict") || streaming)
        || (body["stream"] == true) != streaming
    {
        let err = json!({"type": "error", "error": {"type": "invalid_request_error", "message": format!("bad Vertex AI Anthropic request {rest}: {body}")}});
        return respond(stream, 400, &err);
    }
    if rest.starts_with("claude-overloaded") {
        let err = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        return respond(stream, 529, &err);
    }
    if !streaming {
        let answer = json!({
            "id": "msg_vrtx_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": "Hi from Claude on Vertex"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 13, "output_tokens": 6, "cache_read_input_tokens": 4}
        });
        return respond(stream, 200, &answer);
    }
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_vrtx_02", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514", "content": [], "stop_reason": null, "usage": {"input_tokens": 13, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 6}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let events: Vec<String> = events
        .iter()
        .map(|(kind, data)| format!("event: {kind}\ndata: {data}\n\n"))
        .collect();
    respond_sse(stream, &events, false)
}

fn vertex_config(vertex: &MockUpstream, key: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [providers.vertex]\nbase_url = \"http://{}\"\nregion = \"us-east5\"\ncredentials_file = \"{}\"\n",
        vertex.addr,
        key.display()
    )
}

fn vertex_gateway(vertex: &MockUpstream, key: &std::path::Path) -> Gateway {
    let opts = GatewayOpts::config(common::Driver::IoUring, vertex_config(vertex, key));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    Gateway::spawn_at(&opts, addr, &[], &[]).expect("gateway starts")
}

fn messages(model: &str, stream: bool) -> String {
    json!({"model": model, "max_tokens": 40, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]}).to_string()
}

#[test]
fn vertex_ai_with_a_service_accounts_token_both_dialects() {
    if !common::python_modules_available("vertex_ai", "cryptography") {
        return;
    }
    let dir = common::TempDir::new("vertex");
    let token = TokenEndpoint::start(0, 3599);
    let key = token.key_file(&dir);
    let vertex = vertex_mock(token.issued.clone());
    let gw = vertex_gateway(&vertex, &key);
    assert_eq!(token.tokens().len(), 1, "one token fetched at start");
    token.all_verified();

    // Gemini on Vertex AI, both dialects.
    let r = gw.post(
        "/v1/chat/completions",
        &chat("vertex/gemini-2.5-pro", false),
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.log());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Hello from Gemini"
    );
    assert_eq!(
        vertex.last().target,
        format!("{VERTEX_ROOT}/google/models/gemini-2.5-pro:generateContent")
    );
    let r = gw.post("/v1/chat/completions", &chat("vertex/gemini-2.5-pro", true));
    assert_eq!(content_of(&data_events(&r.text())), "Hello!");
    let r = gw.post("/v1/messages", &messages("vertex/gemini-2.5-pro", false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "Hello from Gemini");

    // Anthropic's models: the client's own body for an Anthropic client,
    // the translation for an OpenAI one; the version Vertex AI requires.
    let claude = "vertex/claude-sonnet-4@20250514";
    let r = gw.post("/v1/messages", &messages(claude, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["content"][0]["text"], "Hi from Claude on Vertex");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 4);
    assert_eq!(
        vertex.last().target,
        format!("{VERTEX_ROOT}/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    );
    let r = gw.post("/v1/messages", &messages(claude, true));
    let text = r.text();
    let said: String = data_events(&text)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "Hi there", "{text}");
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
    assert!(vertex.last().target.ends_with(":streamRawPredict"));

    let r = gw.post("/v1/chat/completions", &chat(claude, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hi from Claude on Vertex"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 17);
    assert_eq!(vertex.last().json()["system"], "Be brief.");
    let r = gw.post("/v1/chat/completions", &chat(claude, true));
    let events = data_events(&r.text());
    assert_eq!(content_of(&events), "Hi there");
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 6);

    // Anthropic's error passes as it is; Vertex AI's own is Google's,
    // translated.
    let r = gw.post("/v1/messages", &messages("vertex/claude-overloaded", false));
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    let r = gw.post(
        "/v1/chat/completions",
        &chat("vertex/gemini-exhausted", false),
    );
    r.assert_openai_error(429);
    assert_eq!(token.tokens().len(), 1, "the token is reused");
    token.all_verified();
}

#[test]
fn vertex_tokens_are_waited_for_and_refreshed_before_they_expire() {
    if !common::python_modules_available("vertex_ai", "cryptography") {
        return;
    }
    let dir = common::TempDir::new("vertex");
    // The first token request is refused: the gateway starts without one.
    // Tokens last 302 s, so each is due again (5 minutes' margin) at once.
    let token = TokenEndpoint::start(1, 302);
    let key = token.key_file(&dir);
    let vertex = vertex_mock(token.issued.clone());
    let gw = vertex_gateway(&vertex, &key);
    let r = gw.post(
        "/v1/chat/completions",
        &chat("vertex/gemini-2.5-pro", false),
    );
    let e = r.assert_openai_error(502);
    assert!(
        e["message"].as_str().unwrap().contains("no access token"),
        "{e}"
    );
    assert!(vertex.requests().is_empty(), "nothing sent without a token");

    // The thread retries, then refreshes each due token; every request
    // carries the newest (the mock refuses any other).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while token.tokens().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", token.tokens());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    let r = gw.post(
        "/v1/chat/completions",
        &chat("vertex/gemini-2.5-pro", false),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let issued = token.issued.lock().unwrap();
    assert_eq!(
        issued.verdicts.iter().filter(|v| v["ok"] == true).count(),
        issued.verdicts.len()
    );
}

#[test]
fn vertex_configs_are_checked_before_start() {
    let dir = common::TempDir::new("vertex");
    let mock = MockUpstream::start();
    let check = |config: String| {
        let path = dir.write("shardgate.toml", &config);
        let out = common::gateway_command()
            .arg("--check-config")
            .arg("--config")
            .arg(&path)
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env_remove("GOOGLE_CLOUD_LOCATION")
            .env_remove("GOOGLE_CLOUD_PROJECT")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let key = TokenEndpoint::start(0, 3599).key_file(&dir);
    assert!(check(vertex_config(&mock, &key)).0);
    let (ok, why) = check(vertex_config(&mock, &dir.0.join("missing.json")));
    assert!(
        !ok && why.contains("providers.vertex.credentials_file"),
        "{why}"
    );
    let (ok, why) = check(vertex_config(&mock, &key).replace("us-east5", "us east"));
    assert!(!ok && why.contains("providers.vertex.region"), "{why}");
    let (ok, why) = check(format!("{}api_key = \"k\"\n", vertex_config(&mock, &key)));
    assert!(!ok && why.contains("providers.vertex.api_key"), "{why}");
    let no_key = vertex_config(&mock, &key)
        .replace(&format!("credentials_file = \"{}\"\n", key.display()), "");
    let (ok, why) = check(no_key);
    assert!(
        !ok && why.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{why}"
    );
}

/// The official Python SDKs through Vertex AI, both publishers.
#[test]
fn the_official_python_sdks_through_vertex_ai() {
    if !common::python_modules_available("vertex_ai", "openai, anthropic, cryptography") {
        return;
    }
    let dir = common::TempDir::new("vertex-sdk");
    let token = TokenEndpoint::start(0, 3599);
    let key = token.key_file(&dir);
    let vertex = vertex_mock(token.issued.clone());
    let gw = vertex_gateway(&vertex, &key);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/vertex_sdk.py");
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
    token.all_verified();
    assert_eq!(token.tokens().len(), 1);
}

/// The same through the official Node SDKs.
#[test]
fn the_official_node_sdks_through_vertex_ai() {
    if !common::python_modules_available("vertex_ai", "cryptography")
        || !common::node_sdks_available("the_official_node_sdks_through_vertex_ai")
    {
        return;
    }
    let dir = common::TempDir::new("vertex-node");
    let token = TokenEndpoint::start(0, 3599);
    let key = token.key_file(&dir);
    let vertex = vertex_mock(token.issued.clone());
    let gw = vertex_gateway(&vertex, &key);
    let out = common::run_node(
        "vertex.mjs",
        &[&format!("http://{}", gw.addr)],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    token.all_verified();
}
