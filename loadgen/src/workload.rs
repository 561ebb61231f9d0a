//! The built-in workloads (each dialect, plain and streaming) and custom
//! bodies: what request to send, pre-encoded once, and how its response must
//! end to count as complete.

use shardgate::http1::write;
use std::io::Write;

/// How a stream in a given dialect ends; a stream that stops before this is truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// OpenAI chat and completions: `data: [DONE]`.
    Done,
    /// OpenAI responses: an `event: response.completed`.
    ResponseCompleted,
    /// Anthropic messages: an `event: message_stop`.
    MessageStop,
}

impl StreamEnd {
    fn for_path(path: &str) -> StreamEnd {
        if path.ends_with("/messages") {
            StreamEnd::MessageStop
        } else if path.ends_with("/responses") {
            StreamEnd::ResponseCompleted
        } else {
            StreamEnd::Done
        }
    }
}

pub struct Workload {
    pub name: String,
    pub method: &'static str,
    pub path: String,
    pub body: Vec<u8>,
    /// `Some` when the response is an SSE stream that must end this way.
    pub stream: Option<StreamEnd>,
    /// `--unique`: where in the body the [`UNIQUE_DIGITS`] of each
    /// request's own number go (the start of its prompt).
    pub unique_at: Option<usize>,
}

/// Hex digits at the start of a `--unique` prompt, rewritten per request
/// (the same width each time, so the body's length never changes).
pub const UNIQUE_DIGITS: usize = 24;

pub const NAMES: &str =
    "chat, chat-stream, responses, responses-stream, messages, messages-stream, \
completions, completions-stream, embeddings, models, custom (--body FILE --path /v1/...)";

/// A user message padded so the whole chat body is about `target` bytes.
fn padded_text(target: usize, overhead: usize) -> String {
    let filler = "The quick brown fox jumps over the lazy dog. ";
    filler
        .repeat(target.saturating_sub(overhead).div_ceil(filler.len()))
        .chars()
        .take(target.saturating_sub(overhead))
        .collect()
}

impl Workload {
    /// A built-in workload by name; `path` overrides its default path.
    pub fn builtin(
        name: &str,
        model: &str,
        body_bytes: usize,
        path: Option<String>,
        unique: bool,
    ) -> Result<Workload, String> {
        let (base, stream) = match name.strip_suffix("-stream") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let model = serde_json::to_string(model).map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        // A unique prompt starts with its number's digits, then a space.
        let slot = if unique { UNIQUE_DIGITS + 1 } else { 0 };
        let text = |overhead: usize| {
            let padding = padded_text(body_bytes, overhead + slot);
            match unique {
                true => format!("{} {padding}", "0".repeat(UNIQUE_DIGITS)),
                false => padding,
            }
        };
        let (default_path, method) = match base {
            "chat" => {
                let overhead = 160 + model.len();
                let _ = write!(
                    body,
                    r#"{{"model":{model},"messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"{}"}}],"max_tokens":64,"temperature":0.7{}}}"#,
                    text(overhead),
                    if stream {
                        r#","stream":true,"stream_options":{"include_usage":true}"#
                    } else {
                        ""
                    }
                );
                ("/v1/chat/completions", "POST")
            }
            "responses" => {
                let _ = write!(
                    body,
                    r#"{{"model":{model},"input":"{}","max_output_tokens":64{}}}"#,
                    text(80 + model.len()),
                    if stream { r#","stream":true"# } else { "" }
                );
                ("/v1/responses", "POST")
            }
            "messages" => {
                let _ = write!(
                    body,
                    r#"{{"model":{model},"max_tokens":64,"messages":[{{"role":"user","content":"{}"}}]{}}}"#,
                    text(90 + model.len()),
                    if stream { r#","stream":true"# } else { "" }
                );
                ("/v1/messages", "POST")
            }
            "completions" => {
                let _ = write!(
                    body,
                    r#"{{"model":{model},"prompt":"{}","max_tokens":64{}}}"#,
                    text(70 + model.len()),
                    if stream { r#","stream":true"# } else { "" }
                );
                ("/v1/completions", "POST")
            }
            "embeddings" if !stream => {
                let _ = write!(
                    body,
                    r#"{{"model":{model},"input":"{}"}}"#,
                    text(30 + model.len())
                );
                ("/v1/embeddings", "POST")
            }
            "models" if !stream && !unique => ("/v1/models", "GET"),
            "models" => return Err("--unique needs a workload with a prompt".into()),
            _ => return Err(format!("unknown workload `{name}`; built in: {NAMES}")),
        };
        let path = path.unwrap_or_else(|| default_path.to_string());
        let stream = stream.then(|| StreamEnd::for_path(default_path));
        let unique_at = unique.then(|| {
            let digits = "0".repeat(UNIQUE_DIGITS) + " ";
            // The last match: a model name before the prompt may hold the digits too.
            body.windows(digits.len())
                .rposition(|w| w == digits.as_bytes())
                .expect("the prompt starts with them")
        });
        Ok(Workload {
            name: name.to_string(),
            method,
            path,
            body,
            stream,
            unique_at,
        })
    }

    /// A custom POST body from a file; it streams if its top-level `stream` is true.
    pub fn custom(body_file: &str, path: String) -> Result<Workload, String> {
        let body = std::fs::read(body_file).map_err(|e| format!("--body {body_file}: {e}"))?;
        let parsed: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("--body {body_file}: not JSON: {e}"))?;
        let stream = (parsed.get("stream") == Some(&serde_json::Value::Bool(true)))
            .then(|| StreamEnd::for_path(&path));
        Ok(Workload {
            name: "custom".into(),
            method: "POST",
            path,
            body,
            stream,
            unique_at: None,
        })
    }

    /// The complete request, head and body, as sent on every exchange.
    pub fn encode(&self, host: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        write::push_request_line(&mut out, self.method.as_bytes(), self.path.as_bytes());
        write::push_header(&mut out, b"host", host.as_bytes());
        write::push_header(&mut out, b"authorization", b"Bearer loadgen");
        if self.path.ends_with("/messages") {
            write::push_header(&mut out, b"x-api-key", b"loadgen");
            write::push_header(&mut out, b"anthropic-version", b"2023-06-01");
        }
        if self.method == "POST" {
            write::push_header(&mut out, b"content-type", b"application/json");
            write::push_content_length(&mut out, self.body.len() as u64);
        }
        write::end_head(&mut out);
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_body_is_about_the_asked_size_and_valid_json() {
        for name in [
            "chat",
            "chat-stream",
            "responses",
            "messages-stream",
            "completions",
            "embeddings",
        ] {
            let w = Workload::builtin(name, "gpt-4o-mini", 500, None, false).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
            assert_eq!(v["model"], "gpt-4o-mini");
            assert!(
                (450..=560).contains(&w.body.len()),
                "{name}: {} bytes",
                w.body.len()
            );
        }
        assert_eq!(
            Workload::builtin("messages-stream", "m", 500, None, false)
                .unwrap()
                .stream,
            Some(StreamEnd::MessageStop)
        );
        assert!(Workload::builtin("embeddings-stream", "m", 500, None, false).is_err());
    }

    #[test]
    fn a_unique_prompt_starts_with_digits_rewritten_in_place() {
        for name in [
            "chat",
            "responses-stream",
            "messages",
            "completions",
            "embeddings",
        ] {
            let w = Workload::builtin(name, "000000000000000000000000 ", 500, None, true).unwrap();
            let at = w.unique_at.unwrap();
            let plain =
                Workload::builtin(name, "000000000000000000000000 ", 500, None, false).unwrap();
            assert_eq!(
                w.body.len(),
                plain.body.len(),
                "{name}: the same size asked"
            );
            let mut stamped = w.body.clone();
            stamped[at..at + UNIQUE_DIGITS].copy_from_slice(b"00000100000000ff00000000");
            let v: serde_json::Value = serde_json::from_slice(&stamped).unwrap();
            // The digits are the prompt's, not the model name's.
            assert_eq!(v["model"], "000000000000000000000000 ", "{name}");
            let text = String::from_utf8(stamped).unwrap();
            assert!(
                text.contains("\"00000100000000ff00000000 The quick"),
                "{name}: {text}"
            );
        }
        assert!(Workload::builtin("models", "m", 500, None, true).is_err());
    }
}
