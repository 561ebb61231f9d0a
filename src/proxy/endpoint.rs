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
    /// POST /v1/images/edits (multipart; `model` optional, as in OpenAI's).
    ImageEdits,
    /// POST /v1/images/variations (multipart; `model` optional).
    ImageVariations,
    /// POST /v1/audio/transcriptions (multipart).
    AudioTranscriptions,
    /// POST /v1/audio/translations (multipart).
    AudioTranslations,
    /// POST /v1/moderations (`model` optional).
    Moderations,
    /// POST /v1/rerank, the Cohere/Jina shape.
    Rerank,
    /// The Responses API on one stored response: GET or DELETE
    /// `/v1/responses/{id}`, GET `…/input_items`, POST `…/cancel`. They
    /// name no model: sent as they are to the provider the
    /// `x-shardgate-provider` header names, else the default one.
    ResponseById,
    /// POST `/v1/files` (an upload: `purpose` and `file`, no model) and
    /// GET `/v1/files` (the list): to the provider the
    /// `x-shardgate-provider` header names, else the default one; a file
    /// made is recorded with its provider.
    Files,
    /// GET or DELETE `/v1/files/{id}`, GET `…/content`: to the provider
    /// that holds the file.
    FileById,
    /// POST `/v1/batches` (to the provider holding its `input_file_id`) and
    /// GET `/v1/batches` (the list, as for [`Endpoint::Files`]).
    Batches,
    /// GET `/v1/batches/{id}`, POST `…/cancel`: to the provider that holds
    /// the batch.
    BatchById,
    /// Any other path under `/v1/` (plain segments only), for a request
    /// whose `x-shardgate-provider` header names a provider: sent to it as
    /// it is, metered by nothing. Without the header it is a 404.
    PassThrough,
}

/// Route labels for metrics and the access log, indexed by
/// [`Endpoint::route_index`]; the last is for requests that matched none.
pub const ROUTE_NAMES: [&str; 23] = [
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
    "response_by_id",
    "passthrough",
    "image_edits",
    "image_variations",
    "audio_transcriptions",
    "audio_translations",
    "files",
    "file_by_id",
    "batches",
    "batch_by_id",
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
            Endpoint::ResponseById => 12,
            Endpoint::PassThrough => 13,
            Endpoint::ImageEdits => 14,
            Endpoint::ImageVariations => 15,
            Endpoint::AudioTranscriptions => 16,
            Endpoint::AudioTranslations => 17,
            Endpoint::Files => 18,
            Endpoint::FileById => 19,
            Endpoint::Batches => 20,
            Endpoint::BatchById => 21,
        }
    }

    /// The path appended to the provider's base URL (which carries `/v1`);
    /// for [`Endpoint::ResponseById`] and [`Endpoint::PassThrough`], the
    /// client's path is sent instead.
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
            Endpoint::ImageEdits => "/images/edits",
            Endpoint::ImageVariations => "/images/variations",
            Endpoint::AudioTranscriptions => "/audio/transcriptions",
            Endpoint::AudioTranslations => "/audio/translations",
            Endpoint::Moderations => "/moderations",
            Endpoint::Rerank => "/rerank",
            Endpoint::ResponseById => "/responses",
            Endpoint::Files | Endpoint::FileById => "/files",
            Endpoint::Batches | Endpoint::BatchById => "/batches",
            Endpoint::PassThrough => "",
        }
    }

    /// OpenAI's API defaults the model here: a body without one goes to
    /// the default provider as it is.
    pub fn model_optional(self) -> bool {
        matches!(
            self,
            Endpoint::ImageGenerations
                | Endpoint::Moderations
                | Endpoint::ImageEdits
                | Endpoint::ImageVariations
        )
    }

    /// Whether the body is `multipart/form-data` (an upload), its model in
    /// a `model` field.
    pub fn is_multipart(self) -> bool {
        matches!(
            self,
            Endpoint::ImageEdits
                | Endpoint::ImageVariations
                | Endpoint::AudioTranscriptions
                | Endpoint::AudioTranslations
        )
    }

    /// Whether the client's own path (without `/v1`) goes upstream.
    pub fn sends_client_path(self) -> bool {
        matches!(
            self,
            Endpoint::ResponseById
                | Endpoint::PassThrough
                | Endpoint::FileById
                | Endpoint::BatchById
        )
    }

    /// The id a route names in its path (`/v1/files/{id}…`), for the ones
    /// routed by where the resource is.
    pub fn resource_id(self, path: &[u8]) -> Option<&[u8]> {
        let rest = match self {
            Endpoint::FileById => api_path(path).strip_prefix(b"/files/")?,
            Endpoint::BatchById => api_path(path).strip_prefix(b"/batches/")?,
            _ => return None,
        };
        rest.split(|&b| b == b'/').next()
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

/// The path of the API under the provider's base URL: the client's path
/// without its `/v1`.
pub fn api_path(path: &[u8]) -> &[u8] {
    path.strip_prefix(b"/v1").unwrap_or(path)
}

/// A stored resource's id as OpenAI makes them (`resp_…`, `file-…`,
/// `batch_…`): letters, digits, `_` and `-`, so the path sent upstream is
/// the one checked here.
fn is_resource_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A path the gateway may send as it is: under `/v1/`, each segment
/// non-empty, of unreserved characters (RFC 3986 §2.3) and not `.` or `..`,
/// so it names the same resource under the provider's base path and
/// cannot climb out of it (no dot segments, no percent-encoding to undo).
fn is_plain_api_path(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/v1/") else {
        return false;
    };
    rest.len() <= 512
        && rest.split(|&b| b == b'/').all(|seg| {
            !seg.is_empty()
                && seg != b"."
                && seg != b".."
                && seg
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        })
}

/// Methods, by the path's tail after a resource id (`""`: the resource).
type Subs = &'static [(&'static [u8], &'static [&'static [u8]])];

/// The routes that name a stored resource by id: the prefix, the
/// endpoint, each tail's methods, and whether another tail under the
/// prefix is the 404 (files, batches) rather than a pass-through.
const BY_ID: &[(&[u8], Endpoint, Subs, bool)] = &[
    (
        b"/responses/",
        Endpoint::ResponseById,
        &[
            (b"", &[b"GET", b"DELETE"]),
            (b"/input_items", &[b"GET"]),
            (b"/cancel", &[b"POST"]),
        ],
        false,
    ),
    (
        b"/files/",
        Endpoint::FileById,
        &[(b"", &[b"GET", b"DELETE"]), (b"/content", &[b"GET"])],
        true,
    ),
    (
        b"/batches/",
        Endpoint::BatchById,
        &[(b"", &[b"GET"]), (b"/cancel", &[b"POST"])],
        true,
    ),
];

/// What a path under one of [`BY_ID`]'s prefixes is: `Some(Ok)` its
/// endpoint and methods, `Some(Err(()))` a 404, `None` not such a path
/// (or one that may pass through).
#[allow(clippy::type_complexity)]
fn by_id(api: &[u8]) -> Option<Result<(Endpoint, &'static [&'static [u8]]), ()>> {
    let (rest, endpoint, subs, closed) = BY_ID.iter().find_map(|&(prefix, e, subs, closed)| {
        Some((api.strip_prefix(prefix)?, e, subs, closed))
    })?;
    let (id, tail) = match rest.iter().position(|&b| b == b'/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, &b""[..]),
    };
    let methods = subs
        .iter()
        .find(|(sub, _)| *sub == tail)
        .filter(|_| is_resource_id(id))
        .map(|(_, methods)| *methods);
    match (methods, closed) {
        (Some(methods), _) => Some(Ok((endpoint, methods))),
        (None, true) => Some(Err(())),
        (None, false) => None,
    }
}

/// Maps method + path to an endpoint, or the OpenAI-style 404/405.
pub fn classify(method: &[u8], path: &[u8]) -> Result<Endpoint, Error> {
    let api = api_path(path);
    let (endpoint, allowed): (Endpoint, &[&[u8]]) = match api {
        b"/chat/completions" => (Endpoint::ChatCompletions, &[b"POST"]),
        b"/completions" => (Endpoint::Completions, &[b"POST"]),
        b"/embeddings" => (Endpoint::Embeddings, &[b"POST"]),
        b"/responses" => (Endpoint::Responses, &[b"POST"]),
        b"/models" => (Endpoint::Models, &[b"GET"]),
        b"/messages" => (Endpoint::Messages, &[b"POST"]),
        b"/messages/count_tokens" => (Endpoint::CountTokens, &[b"POST"]),
        b"/images/generations" => (Endpoint::ImageGenerations, &[b"POST"]),
        b"/audio/speech" => (Endpoint::AudioSpeech, &[b"POST"]),
        b"/images/edits" => (Endpoint::ImageEdits, &[b"POST"]),
        b"/images/variations" => (Endpoint::ImageVariations, &[b"POST"]),
        b"/audio/transcriptions" => (Endpoint::AudioTranscriptions, &[b"POST"]),
        b"/audio/translations" => (Endpoint::AudioTranslations, &[b"POST"]),
        b"/moderations" => (Endpoint::Moderations, &[b"POST"]),
        b"/rerank" => (Endpoint::Rerank, &[b"POST"]),
        b"/files" => (Endpoint::Files, &[b"POST", b"GET"]),
        b"/batches" => (Endpoint::Batches, &[b"POST", b"GET"]),
        b"/health" if path == b"/health" => (Endpoint::Health, &[b"GET"]),
        _ => match by_id(api) {
            Some(Ok(found)) => found,
            None if is_plain_api_path(path) => return Ok(Endpoint::PassThrough),
            _ => return Err(not_found(method, path)),
        },
    };
    if allowed
        .iter()
        .any(|&m| method == m || (m == b"GET" && method == b"HEAD"))
    {
        Ok(endpoint)
    } else {
        let allowed: Vec<_> = allowed.iter().map(|m| String::from_utf8_lossy(m)).collect();
        Err(Error::client(
            Kind::MethodNotAllowed,
            format!(
                "Method {} is not allowed for {}; use {}",
                String::from_utf8_lossy(method),
                String::from_utf8_lossy(path),
                allowed.join(" or ")
            ),
        ))
    }
}

fn not_found(method: &[u8], path: &[u8]) -> Error {
    Error::client(
        Kind::NotFound,
        format!(
            "Invalid URL ({} {})",
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(path)
        ),
    )
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
            (b"POST", b"/v1/images/edits", Endpoint::ImageEdits),
            (b"POST", b"/v1/images/variations", Endpoint::ImageVariations),
            (
                b"POST",
                b"/v1/audio/transcriptions",
                Endpoint::AudioTranscriptions,
            ),
            (b"POST", b"/audio/translations", Endpoint::AudioTranslations),
            (b"POST", b"/v1/files", Endpoint::Files),
            (b"GET", b"/v1/files", Endpoint::Files),
            (b"GET", b"/v1/files/file-abc123", Endpoint::FileById),
            (b"DELETE", b"/v1/files/file-abc123", Endpoint::FileById),
            (b"GET", b"/v1/files/file-abc123/content", Endpoint::FileById),
            (b"POST", b"/v1/batches", Endpoint::Batches),
            (b"GET", b"/v1/batches/batch_1", Endpoint::BatchById),
            (b"POST", b"/v1/batches/batch_1/cancel", Endpoint::BatchById),
            (b"POST", b"/v1/moderations", Endpoint::Moderations),
            (b"POST", b"/v1/rerank", Endpoint::Rerank),
            (b"POST", b"/rerank", Endpoint::Rerank),
            (
                b"GET",
                b"/v1/responses/resp_abc-1_2",
                Endpoint::ResponseById,
            ),
            (b"DELETE", b"/v1/responses/resp_abc", Endpoint::ResponseById),
            (
                b"GET",
                b"/v1/responses/resp_abc/input_items",
                Endpoint::ResponseById,
            ),
            (
                b"POST",
                b"/v1/responses/resp_abc/cancel",
                Endpoint::ResponseById,
            ),
        ] {
            assert_eq!(classify(m, p).unwrap(), e);
        }
    }

    #[test]
    fn unknown_paths_404_and_wrong_methods_405() {
        assert_eq!(classify(b"POST", b"/nope").unwrap_err().status(), 404);
        assert_eq!(
            classify(b"GET", b"/v1/chat/completions")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(classify(b"POST", b"/v1/models").unwrap_err().status(), 405);
        assert_eq!(
            classify(b"POST", b"/v1/responses/resp_1")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(
            classify(b"GET", b"/v1/responses/resp_1/cancel")
                .unwrap_err()
                .status(),
            405
        );
    }

    #[test]
    fn other_v1_paths_pass_through_only_when_plain() {
        // Any plain path under /v1/ (admit refuses it without a provider).
        for p in [
            &b"/v1/nope"[..],
            b"/v1/health",
            b"/v1/responses/resp_1/other",
            b"/v1/fine_tuning/jobs",
            b"/v1/a.b~c-d_e",
        ] {
            assert_eq!(classify(b"GET", p).unwrap(), Endpoint::PassThrough, "{p:?}");
        }
        // Nothing that could name another resource under the provider's
        // base path, or that the provider would decode into another.
        for p in [
            &b"/v1/"[..],
            b"/v1",
            b"/v1/responses/",
            b"/v1/responses/../models",
            b"/v1/a/./b",
            b"/v1/a//b",
            b"/v1/a/",
            b"/v1/responses/resp%2F1",
            b"/v1/%2e%2e/admin",
            b"/v1/a b",
            b"/v1/a;b",
            b"/v1/files/",
            b"/v1/files/file-1/other",
            b"/v1/batches/b%2F1",
            b"/nope",
        ] {
            assert_eq!(classify(b"GET", p).unwrap_err().status(), 404, "{p:?}");
        }
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
