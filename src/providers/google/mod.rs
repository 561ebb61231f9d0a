//! Google (Gemini API and Vertex AI) building blocks: the request targets
//! below, the Vertex AI body for Anthropic's models
//! ([`anthropic_body_for_vertex`]), the service-account OAuth 2.0 token
//! flow Vertex AI authenticates with (`service_account`), and Vertex AI's
//! settings and token thread (`vertex`).
//!
//! The two front doors to Gemini models:
//! - the Gemini API, `https://generativelanguage.googleapis.com`, key in
//!   the `x-goog-api-key` header: `/v1beta/models/{model}:generateContent`,
//!   or `:streamGenerateContent?alt=sse` for SSE;
//! - Vertex AI, `https://{region}-aiplatform.googleapis.com` (the `global`
//!   location: `aiplatform.googleapis.com`), `Authorization: Bearer
//!   {token}`: `/v1/projects/{project}/locations/{region}/publishers/google/
//!   models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`);
//!   Anthropic's models under `publishers/anthropic/models/{model}` with
//!   `:rawPredict` and `:streamRawPredict`, taking Anthropic's own body.
//!
//! The translations are in `api::translate` (`request_to_gemini`,
//! `response_gemini`, `stream_gemini_to_openai`); the proxy reaches them
//! for a provider of the Gemini family (`kind = "google"`) or of Vertex
//! AI's (`kind = "vertex"`).

pub mod service_account;
pub mod vertex;

use crate::json::JsonError;
use crate::providers::aws::invoke::anthropic_body_for_platform;

/// The `anthropic_version` Vertex AI requires of Anthropic bodies.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The API version the Gemini API family puts after its base URL.
pub const GEMINI_API_VERSION: &str = "/v1beta";

/// Operations, as the proxy names them (`api_path`): each goes after
/// `models/{model}`. The stream is asked for as SSE.
pub const GENERATE: &str = ":generateContent";
pub const STREAM_GENERATE: &str = ":streamGenerateContent?alt=sse";

/// Appends `{root}/models/{model, one segment}{operation}`: the Gemini
/// API's target when `root` ends in its version, Vertex AI's for Google's
/// models when it ends in `…/publishers/google`.
pub fn write_model_target(out: &mut Vec<u8>, root: &str, operation: &str, model: &str) {
    out.extend_from_slice(root.as_bytes());
    out.extend_from_slice(b"/models/");
    out.extend_from_slice(segment(model).as_bytes());
    out.extend_from_slice(operation.as_bytes());
}

/// The Vertex AI host for `region`.
pub fn vertex_host(region: &str) -> String {
    if region == "global" {
        "aiplatform.googleapis.com".to_owned()
    } else {
        format!("{}-aiplatform.googleapis.com", segment(region))
    }
}

/// `body` (an Anthropic messages request, one JSON object) as Vertex AI
/// wants it: without `model` (in the path), with `anthropic_version`
/// added unless the client set one. `stream` stays: unlike Bedrock's,
/// Vertex AI's streaming method streams only when the body asks.
pub fn anthropic_body_for_vertex(body: &str) -> Result<Vec<u8>, JsonError> {
    anthropic_body_for_platform(body, VERTEX_ANTHROPIC_VERSION, &["model"])
}

/// The Gemini operation for a request that streams or not.
pub fn gemini_method(stream: bool) -> &'static str {
    if stream {
        STREAM_GENERATE
    } else {
        GENERATE
    }
}

/// A name as one path segment: percent-encoded but for the characters
/// model, project and region names are made of (`@` included, which
/// Vertex AI's versioned model names have and paths allow as they are).
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(root: &str, operation: &str, model: &str) -> String {
        let mut out = Vec::new();
        write_model_target(&mut out, root, operation, model);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn gemini_api_targets() {
        assert_eq!(
            target(GEMINI_API_VERSION, GENERATE, "gemini-2.5-flash"),
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            target(GEMINI_API_VERSION, gemini_method(true), "gemini-2.5-flash"),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            target(GEMINI_API_VERSION, GENERATE, "a/b?c"),
            "/v1beta/models/a%2Fb%3Fc:generateContent"
        );
    }

    #[test]
    fn vertex_targets_and_hosts() {
        assert_eq!(
            vertex_host("us-central1"),
            "us-central1-aiplatform.googleapis.com"
        );
        assert_eq!(vertex_host("global"), "aiplatform.googleapis.com");
        let settings = vertex::VertexSettings {
            region: "europe-west1".into(),
            project: "my-project".into(),
            credentials_file: "sa.json".into(),
        };
        let root = vertex::path_root("", &settings);
        let at = |operation: &str, model: &str| {
            target(
                &format!("{root}{}", vertex::publisher(operation)),
                operation,
                model,
            )
        };
        assert_eq!(
            at(STREAM_GENERATE, "gemini-2.5-pro"),
            "/v1/projects/my-project/locations/europe-west1/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            at(vertex::RAW_PREDICT, "claude-sonnet-4@20250514"),
            "/v1/projects/my-project/locations/europe-west1/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
        );
        assert!(
            at(vertex::STREAM_RAW_PREDICT, "m").ends_with("/anthropic/models/m:streamRawPredict")
        );
    }

    #[test]
    fn vertex_anthropic_body_keeps_stream_and_gains_the_version() {
        let body = r#"{"model":"claude-sonnet-4","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(
            std::str::from_utf8(&anthropic_body_for_vertex(body).unwrap()).unwrap(),
            r#"{"max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}],"anthropic_version":"vertex-2023-10-16"}"#
        );
        let body = r#"{"anthropic_version":"vertex-2023-10-16","messages":[]}"#;
        assert_eq!(anthropic_body_for_vertex(body).unwrap(), body.as_bytes());
        assert!(anthropic_body_for_vertex("[1]").is_err());
    }
}
