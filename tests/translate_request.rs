//! Request translation, Anthropic ⇄ OpenAI, field by field and in round trips.

mod translate_support;

use serde_json::{json, Value};
use shardgate::api::translate::{
    anthropic_request_to_openai, openai_request_to_anthropic, openai_stream_wants_usage,
    translate_request, RequestInto, TranslateError, TranslateLimits,
};
use translate_support::{fixture, parse};

fn to_openai(body: &[u8]) -> Value {
    parse(&anthropic_request_to_openai(body, "gpt-4o").expect("translates"))
}

fn to_anthropic(body: &[u8]) -> Value {
    parse(&openai_request_to_anthropic(body, "claude-sonnet-4-5").expect("translates"))
}

#[test]
fn anthropic_plain_request_becomes_system_and_user_messages() {
    let out = to_openai(&fixture("anthropic_request_plain.json"));
    assert_eq!(
        out,
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "Hello, Claude"},
            ],
            "max_completion_tokens": 1024,
        })
    );
}

#[test]
fn anthropic_tools_request_maps_every_field() {
    let out = to_openai(&fixture("anthropic_request_tools.json"));
    let messages = out["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "You are a weather assistant.\n\nAlways answer in Celsius."})
    );
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
            {"type": "text", "text": "Where were these taken, and what's the weather in Paris and London?"},
        ]})
    );
    // The thinking block is dropped; the tool input object becomes a JSON string.
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["content"], "Let me check both cities.");
    let calls = messages[2]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"location": "London, UK", "unit": "celsius"})
    );
    // Tool results first, in order, then the rest of the user turn.
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees, light rain"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "tool", "tool_call_id": "toolu_01B19r91rw91mr918846mr0", "content": "12 degrees\novercast"})
    );
    assert_eq!(
        messages[5],
        json!({"role": "user", "content": "Thanks, now summarise."})
    );
    assert_eq!(messages.len(), 6);

    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        }}])
    );
    assert_eq!(out["tool_choice"], "required");
    assert_eq!(out["parallel_tool_calls"], false);
    assert_eq!(out["stop"], json!(["\n\nHuman:", "END"]));
    assert_eq!(out["max_completion_tokens"], 2048);
    assert_eq!(out["temperature"], 0.7);
    assert_eq!(out["top_p"], 0.9);
    assert!(out.get("top_k").is_none(), "OpenAI has no top_k");
    assert_eq!(out["user"], "user-1234");
    assert_eq!(out["stream"], true);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    assert!(out.get("metadata").is_none() && out.get("system").is_none());
}

#[test]
fn anthropic_tool_choice_variants() {
    let request = |choice: Value| {
        let body = json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": choice});
        to_openai(body.to_string().as_bytes())["tool_choice"].clone()
    };
    assert_eq!(request(json!({"type": "auto"})), "auto");
    assert_eq!(request(json!({"type": "any"})), "required");
    assert_eq!(request(json!({"type": "none"})), "none");
    assert_eq!(
        request(json!({"type": "tool", "name": "get_weather"})),
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
}

#[test]
fn anthropic_tool_result_images_move_to_the_user_message() {
    let body = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "screenshot taken"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        ]},
    ]}]});
    let out = to_openai(body.to_string().as_bytes());
    assert_eq!(
        out["messages"],
        json!([
            {"role": "tool", "tool_call_id": "toolu_1", "content": "screenshot taken"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        ])
    );
}

#[test]
fn openai_plain_request_gets_default_max_tokens() {
    let out = to_anthropic(&fixture("openai_request_plain.json"));
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello!"}]}],
        })
    );
}

#[test]
fn openai_tools_request_maps_every_field() {
    let out = to_anthropic(&fixture("openai_request_tools.json"));
    assert_eq!(out["model"], "claude-sonnet-4-5");
    assert_eq!(
        out["system"],
        "You are a weather assistant.\n\nAlways answer in Celsius."
    );
    assert_eq!(out["max_tokens"], 512);
    let messages = out["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(
        messages[0],
        json!({"role": "user", "content": [
            {"type": "text", "text": "What's in these images, and what's the weather in Paris and London?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="}},
            {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"}},
        ]})
    );
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_abc123", "name": "get_weather", "input": {"location": "Paris, France"}},
            {"type": "tool_use", "id": "call_def456", "name": "get_weather", "input": {"location": "London, UK", "unit": "celsius"}},
        ]})
    );
    // Both tool messages and the following user message form one user turn.
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_abc123", "content": "15 degrees, light rain"},
            {"type": "tool_result", "tool_use_id": "call_def456", "content": "12 degrees, overcast"},
            {"type": "text", "text": "Thanks, now summarise."},
        ]})
    );
    assert_eq!(out["tools"][0]["name"], "get_weather");
    assert_eq!(
        out["tools"][0]["description"],
        "Get the current weather in a given location"
    );
    assert_eq!(
        out["tools"][0]["input_schema"]["required"],
        json!(["location"])
    );
    assert_eq!(
        out["tools"][1],
        json!({"name": "get_time", "input_schema": {"type": "object", "properties": {}}})
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["temperature"], 1.0, "clamped into Anthropic's range");
    assert_eq!(out["top_p"], 0.9);
    assert_eq!(out["metadata"], json!({"user_id": "user-1234"}));
    assert_eq!(out["stream"], true);
    for dropped in [
        "stream_options",
        "parallel_tool_calls",
        "presence_penalty",
        "user",
        "stop",
        "max_completion_tokens",
    ] {
        assert!(
            out.get(dropped).is_none(),
            "{dropped} must not reach Anthropic"
        );
    }
}

#[test]
fn openai_max_tokens_and_tool_choice_variants() {
    let request = |extra: Value| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        to_anthropic(body.to_string().as_bytes())
    };
    assert_eq!(request(json!({"max_tokens": 77}))["max_tokens"], 77);
    assert_eq!(
        request(json!({"max_tokens": 77, "max_completion_tokens": 88}))["max_tokens"],
        88
    );
    assert_eq!(
        request(json!({"tool_choice": "auto"}))["tool_choice"],
        json!({"type": "auto"})
    );
    assert_eq!(
        request(json!({"tool_choice": "required"}))["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(
        request(json!({"tool_choice": "none"}))["tool_choice"],
        json!({"type": "none"})
    );
    assert_eq!(
        request(json!({"parallel_tool_calls": false}))["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        request(json!({"stop": ["a", "b"]}))["stop_sequences"],
        json!(["a", "b"])
    );
}

#[test]
fn openai_assistant_text_and_empty_content_are_handled() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
        {"role": "assistant", "content": [{"type": "text", "text": "It is noon."}]},
    ]});
    let out = to_anthropic(body.to_string().as_bytes());
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "now", "input": {}},
        ]}),
        "empty text is dropped, empty arguments become an empty object"
    );
    assert_eq!(
        out["messages"][3],
        json!({"role": "assistant", "content": [{"type": "text", "text": "It is noon."}]})
    );
}

#[test]
fn conversation_round_trips_through_openai() {
    let original = parse(&fixture("anthropic_request_tools.json"));
    let openai =
        anthropic_request_to_openai(&fixture("anthropic_request_tools.json"), "gpt-4o").unwrap();
    let back = parse(&openai_request_to_anthropic(&openai, "claude-sonnet-4-5").unwrap());
    assert_eq!(back["max_tokens"], original["max_tokens"]);
    assert_eq!(back["stop_sequences"], original["stop_sequences"]);
    assert_eq!(back["metadata"], original["metadata"]);
    assert_eq!(
        back["tools"],
        json!([{
            "name": "get_weather",
            "description": original["tools"][0]["description"],
            "input_schema": original["tools"][0]["input_schema"],
        }])
    );
    assert_eq!(
        back["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    // Messages survive except for what OpenAI cannot carry: thinking blocks,
    // cache_control, and the split of one tool result into several text blocks.
    let original_messages = original["messages"].as_array().unwrap();
    let messages = back["messages"].as_array().unwrap();
    assert_eq!(messages[0], original_messages[0]);
    assert_eq!(
        messages[1]["content"].as_array().unwrap(),
        &original_messages[1]["content"].as_array().unwrap()[1..]
    );
    assert_eq!(
        messages[2]["content"][0],
        original_messages[2]["content"][0]
    );
    assert_eq!(messages[2]["content"][1]["content"], "12 degrees\novercast");
    assert_eq!(
        messages[2]["content"][2],
        original_messages[2]["content"][2]
    );
}

#[test]
fn stream_usage_option_is_read_from_openai_requests() {
    assert!(openai_stream_wants_usage(&fixture(
        "openai_request_tools.json"
    )));
    assert!(!openai_stream_wants_usage(&fixture(
        "openai_request_plain.json"
    )));
    assert!(!openai_stream_wants_usage(b"not json"));
}

#[test]
fn untranslatable_requests_are_refused_with_a_reason() {
    assert!(matches!(
        anthropic_request_to_openai(b"{", "m"),
        Err(TranslateError::Json(_))
    ));
    assert!(matches!(
        anthropic_request_to_openai(b"[]", "m"),
        Err(TranslateError::Invalid(_))
    ));
    assert!(matches!(
        anthropic_request_to_openai(br#"{"max_tokens":1}"#, "m"),
        Err(TranslateError::Invalid(_))
    ));
    let server_tool = json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    assert!(matches!(
        anthropic_request_to_openai(server_tool.to_string().as_bytes(), "m"),
        Err(TranslateError::Unsupported(_))
    ));
    let two_choices = json!({"model": "m", "n": 2, "messages": []});
    assert!(matches!(
        openai_request_to_anthropic(two_choices.to_string().as_bytes(), "m"),
        Err(TranslateError::Unsupported(_))
    ));
    let audio = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]});
    assert!(matches!(
        openai_request_to_anthropic(audio.to_string().as_bytes(), "m"),
        Err(TranslateError::Unsupported(_))
    ));
    let bad_arguments = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]});
    assert!(matches!(
        openai_request_to_anthropic(bad_arguments.to_string().as_bytes(), "m"),
        Err(TranslateError::Invalid(_))
    ));
}

fn usage_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/usage/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn openai_cache_control_reaches_the_anthropic_blocks_it_becomes() {
    let out = to_anthropic(&usage_fixture("openai_request_cache_control.json"));
    let ephemeral = json!({"type": "ephemeral"});
    // A breakpoint in the system prompt keeps each part a block of its own.
    assert_eq!(
        out["system"],
        json!([
            {"type": "text", "text": "You review contracts."},
            {"type": "text", "text": "<contract>The parties agree that either may terminate on ninety days' written notice.</contract>", "cache_control": ephemeral},
            {"type": "text", "text": "Answer in one sentence."},
        ])
    );
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Earlier question and answer, long enough to cache.",
             "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "What notice does termination need?"},
        ]}])
    );
    assert_eq!(out["tools"][0]["cache_control"], ephemeral);
    assert_eq!(out["tools"][0]["name"], "lookup_clause");
}

#[test]
fn anthropic_cache_control_is_dropped_for_openai() {
    let mut request = parse(&fixture("anthropic_request_tools.json"));
    request["tools"][0]["cache_control"] = json!({"type": "ephemeral"});
    request["messages"][0]["content"][2]["cache_control"] = json!({"type": "ephemeral"});
    let out = anthropic_request_to_openai(request.to_string().as_bytes(), "gpt-4o").unwrap();
    let text = String::from_utf8(out).unwrap();
    // OpenAI caches prompt prefixes by itself and has no such field.
    assert!(!text.contains("cache_control"), "{text}");
    let out: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        out["messages"][0]["content"],
        "You are a weather assistant.\n\nAlways answer in Celsius."
    );
}

#[test]
fn an_empty_anthropic_system_prompt_sends_no_system_message() {
    for system in [r#""""#, "[]", r#"[{"type":"text","text":""}]"#] {
        let body = format!(
            r#"{{"model":"c","max_tokens":5,"system":{system},"messages":[{{"role":"user","content":"Hi"}}]}}"#
        );
        let v = to_openai(body.as_bytes());
        assert_eq!(
            v["messages"],
            serde_json::json!([{"role": "user", "content": "Hi"}]),
            "{system}"
        );
    }
    let v = to_openai(
        br#"{"model":"c","max_tokens":5,"system":[{"type":"text","text":""},{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":"Hi"}]}"#,
    );
    assert_eq!(v["messages"][0]["content"], "Be brief.");
}

#[test]
fn cache_marks_are_kept_only_on_the_way_to_converse() {
    let ephemeral = json!({"type": "ephemeral"});
    let body = json!({
        "model": "claude",
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "Rules.", "cache_control": ephemeral},
            {"type": "text", "text": "More."}
        ],
        "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": ephemeral}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Doc.", "cache_control": ephemeral}
        ]}]
    })
    .to_string();
    // To an OpenAI server: dropped (OpenAI caches by itself).
    let plain = to_openai(body.as_bytes());
    assert!(!plain.to_string().contains("cache_control"), "{plain}");
    assert_eq!(plain["messages"][1]["content"], "Doc.");
    // On the way to Converse: kept where they were, the system as parts.
    let kept = parse(
        &translate_request(
            RequestInto::OpenAiKeepingCache,
            body.as_bytes(),
            "m",
            TranslateLimits::DEFAULT,
            false,
        )
        .unwrap(),
    );
    assert_eq!(
        kept["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Rules.", "cache_control": ephemeral},
            {"type": "text", "text": "More."}
        ])
    );
    assert_eq!(
        kept["messages"][1]["content"],
        json!([{"type": "text", "text": "Doc.", "cache_control": ephemeral}])
    );
    assert_eq!(kept["tools"][0]["cache_control"], ephemeral);
}
