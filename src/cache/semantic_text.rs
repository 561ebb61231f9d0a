//! The semantic cache's text, sans-IO: what of a request its meaning is
//! embedded from, the embeddings request that asks an upstream for that
//! embedding, and the vector read back from the answer.
//!
//! Only requests that are all text are semantically cacheable: an image,
//! an audio or file part, a tool call or a tool's result makes the answer
//! depend on more than words a paraphrase could share, so such a request
//! has no text (`None`) and goes to the exact cache alone. The text keeps
//! each message's role (a question asked by the system prompt is not one
//! asked by the user) and is bounded by [`MAX_TEXT`].
//!
//! This runs off the hot path (only for models with the semantic cache on),
//! so it parses with `serde_json`, whose recursion limit bounds nesting;
//! nothing here panics on any input.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::semantic::MAX_DIMENSIONS;

/// The most text a request may have and still be embedded: past it the
/// request is not semantically cacheable (long prompts rarely repeat in
/// other words, and embedding models truncate them anyway).
pub const MAX_TEXT: usize = 32 * 1024;

/// The text the meaning of `body`, sent to `route`, is embedded from:
/// `role: text` lines for `"chat_completions"` and `"messages"` (with the
/// Anthropic `system` first), the prompt for `"completions"`. `None` for
/// any other route, a malformed body, a part or message that is not text,
/// or text over [`MAX_TEXT`].
pub fn semantic_text(route: &str, body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let body = body.as_object()?;
    let mut text = Text::default();
    match route {
        "chat_completions" => {
            for message in body.get("messages")?.as_array()? {
                let message = message.as_object()?;
                if message.contains_key("tool_calls") || message.contains_key("function_call") {
                    return None;
                }
                let role = message.get("role")?.as_str()?;
                if !matches!(role, "system" | "developer" | "user" | "assistant") {
                    return None;
                }
                text.message(role, message.get("content")?)?;
            }
        }
        "messages" => {
            if let Some(system) = body.get("system") {
                text.message("system", system)?;
            }
            for message in body.get("messages")?.as_array()? {
                let message = message.as_object()?;
                let role = message.get("role")?.as_str()?;
                if !matches!(role, "user" | "assistant") {
                    return None;
                }
                text.message(role, message.get("content")?)?;
            }
        }
        "completions" => text.push(body.get("prompt")?.as_str()?)?,
        _ => return None,
    }
    (!text.0.is_empty()).then_some(text.0)
}

/// The text being gathered, bounded by [`MAX_TEXT`].
#[derive(Default)]
struct Text(String);

impl Text {
    fn push(&mut self, s: &str) -> Option<()> {
        if self.0.len() + s.len() > MAX_TEXT {
            return None;
        }
        self.0.push_str(s);
        Some(())
    }

    /// One message's line: its content a string, or an array of parts all
    /// of which are text (OpenAI's `{"type":"text","text":..}` and
    /// Anthropic's text blocks have the same shape).
    fn message(&mut self, role: &str, content: &Value) -> Option<()> {
        self.push(role)?;
        self.push(":")?;
        match content {
            Value::String(s) => {
                self.push(" ")?;
                self.push(s)?;
            }
            Value::Array(parts) => {
                for part in parts {
                    let part = part.as_object()?;
                    if part.get("type")?.as_str()? != "text" {
                        return None;
                    }
                    self.push(" ")?;
                    self.push(part.get("text")?.as_str()?)?;
                }
            }
            _ => return None,
        }
        self.push("\n")
    }
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a str,
    encoding_format: &'a str,
}

/// The body of an OpenAI `/v1/embeddings` request for `text`'s embedding
/// by `model`, as floats.
pub fn embedding_request(model: &str, text: &str) -> Vec<u8> {
    let request = EmbeddingRequest {
        model,
        input: text,
        encoding_format: "float",
    };
    // A struct of strings always serialises.
    serde_json::to_vec(&request).unwrap_or_default()
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingData>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    embedding: Embedding,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Embedding {
    Floats(Vec<f64>),
    /// `encoding_format: base64`: little-endian f32s.
    Base64(String),
}

/// The embedding in an `/v1/embeddings` answer (`data[0].embedding`, as
/// floats or base64 of little-endian f32s). `None` when the answer has
/// none, or it is empty, wider than [`MAX_DIMENSIONS`], or not all finite
/// f32s.
pub fn embedding_from_response(body: &[u8]) -> Option<Vec<f32>> {
    let response: EmbeddingResponse = serde_json::from_slice(body).ok()?;
    let vector: Vec<f32> = match &response.data.first()?.embedding {
        // From f64 so that a number past f32's range is refused, not
        // turned into infinity.
        Embedding::Floats(floats) => floats.iter().map(|&x| x as f32).collect(),
        Embedding::Base64(text) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?;
            if bytes.len() % 4 != 0 {
                return None;
            }
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
    };
    let fine = !vector.is_empty()
        && vector.len() <= MAX_DIMENSIONS
        && vector.iter().all(|x| x.is_finite());
    fine.then_some(vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(messages: &str) -> Option<String> {
        semantic_text(
            "chat_completions",
            format!(r#"{{"model":"m","messages":{messages}}}"#).as_bytes(),
        )
    }

    #[test]
    fn chat_messages_in_order_with_roles() {
        assert_eq!(
            chat(
                r#"[{"role":"system","content":"Be brief."},
                    {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":"there"}]},
                    {"role":"assistant","content":"Hello."},
                    {"role":"user","content":"What is \"2+2\"?"}]"#
            )
            .as_deref(),
            Some("system: Be brief.\nuser: Hi there\nassistant: Hello.\nuser: What is \"2+2\"?\n")
        );
    }

    #[test]
    fn chat_with_anything_but_text_is_not_cacheable() {
        for messages in [
            r#"[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:,"}}]}]"#,
            r#"[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]"#,
            r#"[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function"}]}]"#,
            r#"[{"role":"assistant","content":"x","function_call":{"name":"f"}}]"#,
            r#"[{"role":"tool","tool_call_id":"1","content":"42"}]"#,
            r#"[{"role":"user","content":null}]"#,
            r#"[{"role":"user","content":7}]"#,
            r#"[{"role":"user"}]"#,
            r#"[{"content":"no role"}]"#,
            r#"[{"role":"user","content":[{"type":"text","text":1}]}]"#,
            r#"[{"role":"user","content":[{"text":"untyped"}]}]"#,
            r#"["just a string"]"#,
            r#"{"role":"user"}"#,
            r#"[]"#,
        ] {
            assert_eq!(chat(messages), None, "{messages}");
        }
        assert_eq!(semantic_text("chat_completions", br#"{"model":"m"}"#), None);
    }

    #[test]
    fn anthropic_system_and_messages() {
        let text = |body: &str| semantic_text("messages", body.as_bytes());
        assert_eq!(
            text(
                r#"{"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
                    "messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},
                                {"role":"assistant","content":"Hello."}]}"#
            )
            .as_deref(),
            Some("system: Be brief.\nuser: Hi\nassistant: Hello.\n")
        );
        assert_eq!(
            text(r#"{"system":"S","messages":[{"role":"user","content":"Q"}]}"#).as_deref(),
            Some("system: S\nuser: Q\n")
        );
        for body in [
            r#"{"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#,
            r#"{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}"#,
            r#"{"messages":[{"role":"system","content":"not an Anthropic role"}]}"#,
            r#"{"system":5,"messages":[{"role":"user","content":"Q"}]}"#,
        ] {
            assert_eq!(text(body), None, "{body}");
        }
    }

    #[test]
    fn completions_prompt_and_other_routes() {
        assert_eq!(
            semantic_text("completions", br#"{"model":"m","prompt":"Once upon"}"#).as_deref(),
            Some("Once upon")
        );
        assert_eq!(semantic_text("completions", br#"{"prompt":[1,2,3]}"#), None);
        assert_eq!(semantic_text("completions", br#"{"prompt":""}"#), None);
        assert_eq!(semantic_text("embeddings", br#"{"input":"x"}"#), None);
        assert_eq!(
            semantic_text(
                "responses",
                br#"{"messages":[{"role":"user","content":"x"}]}"#
            ),
            None
        );
    }

    #[test]
    fn text_is_bounded() {
        let fits = "a".repeat(MAX_TEXT);
        let body = format!(r#"{{"prompt":"{fits}"}}"#);
        assert_eq!(semantic_text("completions", body.as_bytes()), Some(fits));
        let body = format!(r#"{{"prompt":"{}"}}"#, "a".repeat(MAX_TEXT + 1));
        assert_eq!(semantic_text("completions", body.as_bytes()), None);
        // Many small messages add up too.
        let message = format!(r#"{{"role":"user","content":"{}"}}"#, "b".repeat(1000));
        let many = vec![message; 40].join(",");
        assert_eq!(chat(&format!("[{many}]")), None);
    }

    #[test]
    fn hostile_bodies_never_panic() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_content = format!(r#"{{"messages":[{{"role":"user","content":{deep}}}]}}"#);
        for body in [
            deep.as_bytes(),
            deep_content.as_bytes(),
            b"",
            b"null",
            b"{",
            b"\xff\xfe",
            br#"{"messages":[{"role":"user","content":"\ud800"}]}"#,
            br#"{"prompt":1e999999}"#,
            br#"{"messages":1e400}"#,
            br#"{"messages":[{"role":["user"],"content":"x"}]}"#,
        ] {
            for route in ["chat_completions", "messages", "completions"] {
                assert_eq!(semantic_text(route, body), None);
            }
        }
    }

    #[test]
    fn embedding_request_is_escaped_json() {
        let text = "line\n\"quoted\" \\ tab\t \u{1} é 😀";
        let body = embedding_request("text-embedding-3-small", text);
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"model":"text-embedding-3-small","input":text,"encoding_format":"float"})
        );
    }

    #[test]
    fn embedding_as_floats_or_base64() {
        let floats = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1,2e-3]},{"embedding":[9]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        assert_eq!(embedding_from_response(floats), Some(vec![0.5, -1.0, 2e-3]));
        let bytes: Vec<u8> = [0.5f32, -1.0, 2e-3]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let body = format!(r#"{{"data":[{{"embedding":"{b64}"}}]}}"#);
        assert_eq!(
            embedding_from_response(body.as_bytes()),
            Some(vec![0.5, -1.0, 2e-3])
        );
    }

    #[test]
    fn hostile_embedding_answers_are_refused() {
        let nan = base64::engine::general_purpose::STANDARD.encode(f32::NAN.to_le_bytes());
        let nan = format!(r#"{{"data":[{{"embedding":"{nan}"}}]}}"#);
        let wide = format!(
            r#"{{"data":[{{"embedding":[{}]}}]}}"#,
            vec!["1"; MAX_DIMENSIONS + 1].join(",")
        );
        let deep = format!(r#"{{"data":[{{"embedding":{}}}]}}"#, "[".repeat(10_000));
        for body in [
            &br#"{"data":[]}"#[..],
            br#"{"data":[{"embedding":[]}]}"#,
            br#"{"data":[{"embedding":[1e39]}]}"#,
            br#"{"data":[{"embedding":[1e999]}]}"#,
            br#"{"data":[{"embedding":["1"]}]}"#,
            br#"{"data":[{"embedding":[1,null]}]}"#,
            br#"{"data":[{"embedding":"AAA"}]}"#,
            br#"{"data":[{"embedding":"!!!!"}]}"#,
            br#"{"data":[{"embedding":{"0":1}}]}"#,
            br#"{"data":{"embedding":[1]}}"#,
            br#"{"error":{"message":"no"}}"#,
            b"[1,2]",
            b"",
            nan.as_bytes(),
            wide.as_bytes(),
            deep.as_bytes(),
        ] {
            assert_eq!(
                embedding_from_response(body),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
