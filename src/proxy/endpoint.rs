//! Which API a request line names. Paths are accepted with and without the
//! `/v1` prefix, as OpenAI's SDKs and older clients use both.

use crate::error::{Error, Kind};
use crate::providers::Dialect;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    /// GET /v1/models (answered from config, or passed to the default provider).
    Models,
    Health,
    /// Anthropic's POST /v1/messages.
    Messages,
    /// Anthropic's POST /v1/messages/count_tokens.
    CountTokens,
    /// POST /v1/images/generations (JSON; `model` optional, as in OpenAI's).
    ImageGenerations,
    /// POST /v1/audio/speech: JSON in, audio out, relayed as it arrives.
    AudioSpeech,
    /// POST /v1/moderations (`model` optional).
    Moderations,
    /// POST /v1/rerank, the Cohere/Jina shape.
    Rerank,
}

/// Route labels for metrics and the access log, indexed by
/// [`Endpoint::route_index`]; the last is for requests that matched none.
pub const ROUTE_NAMES: [&str; 13] = [
    "chat_completions",
    "completions",
    "embeddings",
    "responses",
    "models",
    "health",
    "messages",
    "count_tokens",
    "image_generations",
    "audio_speech",
    "moderations",
    "rerank",
    "unknown",
];

/// Index of `"unknown"` in [`ROUTE_NAMES`].
pub const UNKNOWN_ROUTE: usize = ROUTE_NAMES.len() - 1;

impl Endpoint {
    pub fn route_index(self) -> usize {
        match self {
            Endpoint::ChatCompletions => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
            Endpoint::Responses => 3,
            Endpoint::Models => 4,
            Endpoint::Health => 5,
            Endpoint::Messages => 6,
            Endpoint::CountTokens => 7,
            Endpoint::ImageGenerations => 8,
            Endpoint::AudioSpeech => 9,
            Endpoint::Moderations => 10,
            Endpoint::Rerank => 11,
        }
    }

    /// The path appended to the provider's base URL (which carries `/v1`).
    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Responses => "/responses",
            Endpoint::Models => "/models",
            Endpoint::Health => "/health",
            Endpoint::Messages => "/messages",
            Endpoint::CountTokens => "/messages/count_tokens",
            Endpoint::ImageGenerations => "/images/generations",
            Endpoint::AudioSpeech => "/audio/speech",
            Endpoint::Moderations => "/moderations",
            Endpoint::Rerank => "/rerank",
        }
    }

    /// OpenAI's API defaults the model here: a body without one goes to
    /// the default provider as it is.
    pub fn model_optional(self) -> bool {
        matches!(self, Endpoint::ImageGenerations | Endpoint::Moderations)
    }

    /// The dialect the client speaks on this endpoint.
    pub fn client_dialect(self) -> Dialect {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        }
    }
}

/// Splits a request target into path and query (`?` kept with the query).
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i..]),
        None => (target, b""),
    }
}

/// Methods whose requests the gateway never forwards with content: RFC 9110
/// gives content on GET, HEAD and DELETE no defined meaning (§9.3.1, §9.3.2,
/// §9.3.5), forbids it on TRACE (§9.3.8) and CONNECT has none (§9.3.6).
/// Upstreams commonly ignore such a body, which is how one becomes a
/// smuggled request; the caller refuses any that is not empty.
pub fn method_forbids_content(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"DELETE" | b"TRACE" | b"CONNECT")
}

/// Maps method + path to an endpoint, or the OpenAI-style 404/405.
pub fn classify(method: &[u8], path: &[u8]) -> Result<Endpoint, Error> {
    let api = path.strip_prefix(b"/v1").unwrap_or(path);
    let (endpoint, allowed): (Endpoint, &[u8]) = match api {
        b"/chat/completions" => (Endpoint::ChatCompletions, b"POST"),
        b"/completions" => (Endpoint::Completions, b"POST"),
        b"/embeddings" => (Endpoint::Embeddings, b"POST"),
        b"/responses" => (Endpoint::Responses, b"POST"),
        b"/models" => (Endpoint::Models, b"GET"),
        b"/messages" => (Endpoint::Messages, b"POST"),
        b"/messages/count_tokens" => (Endpoint::CountTokens, b"POST"),
        b"/images/generations" => (Endpoint::ImageGenerations, b"POST"),
        b"/audio/speech" => (Endpoint::AudioSpeech, b"POST"),
        b"/moderations" => (Endpoint::Moderations, b"POST"),
        b"/rerank" => (Endpoint::Rerank, b"POST"),
        b"/health" if path == b"/health" => (Endpoint::Health, b"GET"),
        _ => {
            return Err(Error::client(
                Kind::NotFound,
                format!(
                    "Invalid URL ({} {})",
                    String::from_utf8_lossy(method),
                    String::from_utf8_lossy(path)
                ),
            ))
        }
    };
    if method == allowed || (allowed == b"GET" && method == b"HEAD") {
        Ok(endpoint)
    } else {
        Err(Error::client(
            Kind::MethodNotAllowed,
            format!(
                "Method {} is not allowed for {}; use {}",
                String::from_utf8_lossy(method),
                String::from_utf8_lossy(path),
                String::from_utf8_lossy(allowed)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_with_and_without_v1() {
        for (m, p, e) in [
            (
                &b"POST"[..],
                &b"/v1/chat/completions"[..],
                Endpoint::ChatCompletions,
            ),
            (b"POST", b"/chat/completions", Endpoint::ChatCompletions),
            (b"POST", b"/v1/completions", Endpoint::Completions),
            (b"POST", b"/embeddings", Endpoint::Embeddings),
            (b"POST", b"/v1/responses", Endpoint::Responses),
            (b"GET", b"/v1/models", Endpoint::Models),
            (b"GET", b"/health", Endpoint::Health),
            (b"POST", b"/v1/messages", Endpoint::Messages),
            (b"POST", b"/v1/messages/count_tokens", Endpoint::CountTokens),
            (
                b"POST",
                b"/v1/images/generations",
                Endpoint::ImageGenerations,
            ),
            (b"POST", b"/v1/audio/speech", Endpoint::AudioSpeech),
            (b"POST", b"/v1/moderations", Endpoint::Moderations),
            (b"POST", b"/v1/rerank", Endpoint::Rerank),
            (b"POST", b"/rerank", Endpoint::Rerank),
        ] {
            assert_eq!(classify(m, p).unwrap(), e);
        }
    }

    #[test]
    fn unknown_paths_404_and_wrong_methods_405() {
        assert_eq!(classify(b"POST", b"/v1/nope").unwrap_err().status(), 404);
        assert_eq!(
            classify(b"GET", b"/v1/chat/completions")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(classify(b"POST", b"/v1/models").unwrap_err().status(), 405);
        assert_eq!(classify(b"GET", b"/v1/health").unwrap_err().status(), 404);
    }

    #[test]
    fn only_methods_with_content_semantics_may_carry_a_body() {
        for (method, forbids) in [
            (&b"GET"[..], true),
            (b"HEAD", true),
            (b"DELETE", true),
            (b"TRACE", true),
            (b"CONNECT", true),
            (b"POST", false),
            (b"PUT", false),
            (b"PATCH", false),
            (b"OPTIONS", false),
            // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET,
            // and is refused by `classify` instead.
            (b"get", false),
        ] {
            assert_eq!(method_forbids_content(method), forbids, "{method:?}");
        }
    }

    #[test]
    fn splits_query() {
        assert_eq!(
            split_target(b"/v1/models?x=1"),
            (&b"/v1/models"[..], &b"?x=1"[..])
        );
        assert_eq!(split_target(b"/v1/models"), (&b"/v1/models"[..], &b""[..]));
    }
}
