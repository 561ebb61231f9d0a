//! Response bodies in each dialect's real shape (OpenAI chat, completions,
//! embeddings, responses, models; Anthropic messages, count_tokens), plain and
//! as SSE events. Shapes follow what the official Python SDKs parse: `usage`
//! is always present, the request's `model` is echoed, and streams end the way
//! their dialect ends (`[DONE]`, `response.completed`, `message_stop`).
//!
//! Everything appends to a caller-owned buffer so a connection reuses one
//! allocation for all its responses.

use std::io::Write;

/// The endpoints the mock serves (paths with or without the `/v1` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Responses,
    Messages,
    CountTokens,
    Models,
}

impl Endpoint {
    pub fn route(method: &[u8], path: &[u8]) -> Option<Endpoint> {
        let path = path.split(|&b| b == b'?').next().unwrap_or(b"");
        let path = path.strip_prefix(b"/v1").unwrap_or(path);
        let endpoint = match path {
            b"/chat/completions" => Endpoint::Chat,
            b"/completions" => Endpoint::Completions,
            b"/embeddings" => Endpoint::Embeddings,
            b"/responses" => Endpoint::Responses,
            b"/messages" => Endpoint::Messages,
            b"/messages/count_tokens" => Endpoint::CountTokens,
            b"/models" => Endpoint::Models,
            _ => return None,
        };
        let wants_get = endpoint == Endpoint::Models;
        (wants_get == (method == b"GET")).then_some(endpoint)
    }

    pub fn is_anthropic(self) -> bool {
        matches!(self, Endpoint::Messages | Endpoint::CountTokens)
    }

    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Endpoint::Chat | Endpoint::Completions | Endpoint::Responses | Endpoint::Messages
        )
    }
}

/// What a response needs to know about its request.
pub struct Reply<'a> {
    /// The request's `model`, already a JSON string literal (quotes included).
    pub model_json: &'a [u8],
    pub id: u64,
    pub tokens: usize,
    pub prompt_tokens: usize,
    pub include_usage: bool,
    pub inputs: usize,
    /// One embedding vector rendered once at startup (`[0.0123,...]`).
    pub embedding: &'a str,
}

const CREATED: u64 = 1_700_000_000;
const TOKEN: &str = "tok ";

fn content(r: &Reply<'_>) -> String {
    TOKEN.repeat(r.tokens)
}

/// A plain JSON body for `endpoint`.
pub fn json_body(endpoint: Endpoint, r: &Reply<'_>, anthropic_models: bool, out: &mut Vec<u8>) {
    let m = String::from_utf8_lossy(r.model_json);
    let (id, pt, ct) = (r.id, r.prompt_tokens, r.tokens);
    let total = pt + ct;
    let text = content(r);
    let _ = match endpoint {
        Endpoint::Chat => write!(
            out,
            r#"{{"id":"chatcmpl-mock{id}","object":"chat.completion","created":{CREATED},"model":{m},"system_fingerprint":"fp_mock","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{pt},"completion_tokens":{ct},"total_tokens":{total}}}}}"#
        ),
        Endpoint::Completions => write!(
            out,
            r#"{{"id":"cmpl-mock{id}","object":"text_completion","created":{CREATED},"model":{m},"choices":[{{"text":"{text}","index":0,"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{pt},"completion_tokens":{ct},"total_tokens":{total}}}}}"#
        ),
        Endpoint::Embeddings => {
            let _ = write!(out, r#"{{"object":"list","data":["#);
            for i in 0..r.inputs.max(1) {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(
                    out,
                    r#"{sep}{{"object":"embedding","index":{i},"embedding":{}}}"#,
                    r.embedding
                );
            }
            write!(
                out,
                r#"],"model":{m},"usage":{{"prompt_tokens":{pt},"total_tokens":{pt}}}}}"#
            )
        }
        Endpoint::Responses => {
            let _ = write!(
                out,
                r#"{{"id":"resp_mock{id}","object":"response","created_at":{CREATED},"status":"completed","#
            );
            response_tail(out, r, &m, &text)
        }
        Endpoint::Messages => write!(
            out,
            r#"{{"id":"msg_mock{id}","type":"message","role":"assistant","model":{m},"content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{pt},"output_tokens":{ct}}}}}"#
        ),
        Endpoint::CountTokens => write!(out, r#"{{"input_tokens":{pt}}}"#),
        Endpoint::Models if anthropic_models => write!(
            out,
            r#"{{"data":[{{"type":"model","id":"mock-model","display_name":"Mock Model","created_at":"2024-01-01T00:00:00Z"}}],"has_more":false,"first_id":"mock-model","last_id":"mock-model"}}"#
        ),
        Endpoint::Models => write!(
            out,
            r#"{{"object":"list","data":[{{"id":"mock-model","object":"model","created":{CREATED},"owned_by":"mock"}}]}}"#
        ),
    };
}

/// The rest of a Responses API object after `status`, shared by the plain
/// body and the `response.completed` event.
fn response_tail(out: &mut Vec<u8>, r: &Reply<'_>, m: &str, text: &str) -> std::io::Result<()> {
    let (id, pt, ct) = (r.id, r.prompt_tokens, r.tokens);
    let total = pt + ct;
    write!(
        out,
        r#""error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":{m},"output":[{{"type":"message","id":"msg_mock{id}","status":"completed","role":"assistant","content":[{{"type":"output_text","text":"{text}","annotations":[]}}]}}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{{"effort":null,"summary":null}},"store":false,"temperature":1.0,"text":{{"format":{{"type":"text"}}}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{{"input_tokens":{pt},"input_tokens_details":{{"cached_tokens":0}},"output_tokens":{ct},"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{total}}},"user":null,"metadata":{{}}}}"#
    )
}

/// SSE events for a streamed `endpoint`, appended to `out`; `ends` receives
/// the end offset of each event so the caller can pace or cut the stream.
pub fn sse_events(endpoint: Endpoint, r: &Reply<'_>, out: &mut Vec<u8>, ends: &mut Vec<usize>) {
    let m = String::from_utf8_lossy(r.model_json);
    let (id, pt, ct) = (r.id, r.prompt_tokens, r.tokens);
    let total = pt + ct;
    let mut event = |out: &mut Vec<u8>, args: std::fmt::Arguments<'_>| {
        let _ = out.write_fmt(args);
        out.extend_from_slice(b"\n\n");
        ends.push(out.len());
    };
    match endpoint {
        Endpoint::Chat => {
            let usage_null = if r.include_usage {
                r#","usage":null"#
            } else {
                ""
            };
            let head = format!(
                r#"data: {{"id":"chatcmpl-mock{id}","object":"chat.completion.chunk","created":{CREATED},"model":{m},"system_fingerprint":"fp_mock","choices":["#
            );
            event(
                out,
                format_args!(
                    r#"{head}{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}]{usage_null}}}"#
                ),
            );
            for _ in 0..ct {
                event(
                    out,
                    format_args!(
                        r#"{head}{{"index":0,"delta":{{"content":"{TOKEN}"}},"logprobs":null,"finish_reason":null}}]{usage_null}}}"#
                    ),
                );
            }
            event(
                out,
                format_args!(
                    r#"{head}{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]{usage_null}}}"#
                ),
            );
            if r.include_usage {
                event(
                    out,
                    format_args!(
                        r#"{head}],"usage":{{"prompt_tokens":{pt},"completion_tokens":{ct},"total_tokens":{total}}}}}"#
                    ),
                );
            }
            event(out, format_args!("data: [DONE]"));
        }
        Endpoint::Completions => {
            let head = format!(
                r#"data: {{"id":"cmpl-mock{id}","object":"text_completion","created":{CREATED},"model":{m},"choices":["#
            );
            for i in 0..ct {
                let finish = if i + 1 == ct { r#""stop""# } else { "null" };
                event(
                    out,
                    format_args!(
                        r#"{head}{{"text":"{TOKEN}","index":0,"logprobs":null,"finish_reason":{finish}}}]}}"#
                    ),
                );
            }
            if r.include_usage {
                event(
                    out,
                    format_args!(
                        r#"{head}],"usage":{{"prompt_tokens":{pt},"completion_tokens":{ct},"total_tokens":{total}}}}}"#
                    ),
                );
            }
            event(out, format_args!("data: [DONE]"));
        }
        Endpoint::Responses => {
            let text = content(r);
            let mut seq = 0;
            let mut next = || {
                seq += 1;
                seq - 1
            };
            let created = format!(
                r#""response":{{"id":"resp_mock{id}","object":"response","created_at":{CREATED},"status":"in_progress","model":{m},"output":[],"usage":null}}"#
            );
            event(
                out,
                format_args!(
                    r#"event: response.created{}data: {{"type":"response.created","sequence_number":{},{created}}}"#,
                    "\n",
                    next()
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: response.in_progress{}data: {{"type":"response.in_progress","sequence_number":{},{created}}}"#,
                    "\n",
                    next()
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: response.output_item.added{}data: {{"type":"response.output_item.added","sequence_number":{},"output_index":0,"item":{{"type":"message","id":"msg_mock{id}","status":"in_progress","role":"assistant","content":[]}}}}"#,
                    "\n",
                    next()
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: response.content_part.added{}data: {{"type":"response.content_part.added","sequence_number":{},"item_id":"msg_mock{id}","output_index":0,"content_index":0,"part":{{"type":"output_text","text":"","annotations":[]}}}}"#,
                    "\n",
                    next()
                ),
            );
            for _ in 0..ct {
                event(
                    out,
                    format_args!(
                        r#"event: response.output_text.delta{}data: {{"type":"response.output_text.delta","sequence_number":{},"item_id":"msg_mock{id}","output_index":0,"content_index":0,"delta":"{TOKEN}"}}"#,
                        "\n",
                        next()
                    ),
                );
            }
            event(
                out,
                format_args!(
                    r#"event: response.output_text.done{}data: {{"type":"response.output_text.done","sequence_number":{},"item_id":"msg_mock{id}","output_index":0,"content_index":0,"text":"{text}"}}"#,
                    "\n",
                    next()
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: response.content_part.done{}data: {{"type":"response.content_part.done","sequence_number":{},"item_id":"msg_mock{id}","output_index":0,"content_index":0,"part":{{"type":"output_text","text":"{text}","annotations":[]}}}}"#,
                    "\n",
                    next()
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: response.output_item.done{}data: {{"type":"response.output_item.done","sequence_number":{},"output_index":0,"item":{{"type":"message","id":"msg_mock{id}","status":"completed","role":"assistant","content":[{{"type":"output_text","text":"{text}","annotations":[]}}]}}}}"#,
                    "\n",
                    next()
                ),
            );
            let _ = write!(out, "event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":{},\"response\":{{\"id\":\"resp_mock{id}\",\"object\":\"response\",\"created_at\":{CREATED},\"status\":\"completed\",", next());
            let _ = response_tail(out, r, &m, &text);
            event(out, format_args!("}}"));
        }
        Endpoint::Messages => {
            event(
                out,
                format_args!(
                    r#"event: message_start{}data: {{"type":"message_start","message":{{"id":"msg_mock{id}","type":"message","role":"assistant","model":{m},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{pt},"output_tokens":1}}}}}}"#,
                    "\n"
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: content_block_start{}data: {{"type":"content_block_start","index":0,"content_block":{{"type":"text","text":""}}}}"#,
                    "\n"
                ),
            );
            event(
                out,
                format_args!(r#"event: ping{}data: {{"type":"ping"}}"#, "\n"),
            );
            for _ in 0..ct {
                event(
                    out,
                    format_args!(
                        r#"event: content_block_delta{}data: {{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{TOKEN}"}}}}"#,
                        "\n"
                    ),
                );
            }
            event(
                out,
                format_args!(
                    r#"event: content_block_stop{}data: {{"type":"content_block_stop","index":0}}"#,
                    "\n"
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: message_delta{}data: {{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{ct}}}}}"#,
                    "\n"
                ),
            );
            event(
                out,
                format_args!(
                    r#"event: message_stop{}data: {{"type":"message_stop"}}"#,
                    "\n"
                ),
            );
        }
        Endpoint::Embeddings | Endpoint::CountTokens | Endpoint::Models => {}
    }
}

/// An error body in the dialect of `endpoint`.
pub fn error_body(endpoint: Option<Endpoint>, status: u16, message: &str, out: &mut Vec<u8>) {
    let anthropic = endpoint.is_some_and(Endpoint::is_anthropic);
    let kind = match (status, anthropic) {
        (429, true) => "rate_limit_error",
        (429, false) => "rate_limit_exceeded",
        (400, true) => "invalid_request_error",
        (400, false) => "invalid_request_error",
        (404, true) => "not_found_error",
        (404, false) => "not_found",
        (503, true) => "overloaded_error",
        (_, true) => "api_error",
        (_, false) => "server_error",
    };
    let _ = if anthropic {
        write!(
            out,
            r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}}}}"#
        )
    } else {
        write!(
            out,
            r#"{{"error":{{"message":"{message}","type":"{kind}","param":null,"code":null}}}}"#
        )
    };
}

/// One embedding vector as a JSON array, deterministic so tests can compare.
pub fn embedding_json(dims: usize) -> String {
    let mut s = String::with_capacity(dims * 10 + 2);
    s.push('[');
    for i in 0..dims {
        if i > 0 {
            s.push(',');
        }
        let v = ((i as f64 * 0.618_033_988_75).fract() - 0.5) * 0.1;
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{v:.6}"));
    }
    s.push(']');
    s
}
