//! The Azure OpenAI family.
//!
//! The base URL is the resource endpoint (`AZURE_OPENAI_ENDPOINT`,
//! `https://NAME.openai.azure.com/`); requests go under `/openai` (not
//! doubled when the base URL already ends with it). Model-scoped endpoints
//! are per deployment, and the deployment is the model name:
//! `/openai/deployments/{model}/chat/completions?api-version=...`. Every
//! request carries the `api-version` query parameter (a client's own
//! `api-version` wins). Auth is the `api-key` header.
//!
//! The model name comes from the client's request body, so one that is not
//! a single plain path segment (Azure's deployment names are letters,
//! digits, `-`, `_` and `.`) is refused before anything is sent
//! ([`deployment_name_error`]): `..` would climb out of `/deployments/`, and
//! a percent-encoded `/` is decoded by some servers in front of Azure. What
//! reaches the path is percent-encoded all the same, so nothing could break
//! the request line even past that check.

/// `api-version` when neither config nor `OPENAI_API_VERSION` names one (the
/// latest GA version of the data-plane API).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Endpoint paths that Azure serves per deployment.
const DEPLOYMENT_PATHS: &[&str] = &[
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/audio/transcriptions",
    "/audio/translations",
    "/audio/speech",
    "/images/generations",
    "/images/edits",
];

/// Whether `api_path` is addressed per deployment (the model in the path).
pub fn is_deployment_path(api_path: &str) -> bool {
    DEPLOYMENT_PATHS.contains(&api_path)
}

/// Why `model` cannot be a deployment path segment, if it cannot: empty, a
/// dot segment (RFC 3986 §3.3), or a byte other than RFC 3986's unreserved
/// ones (letters, digits, `-`, `.`, `_`, `~`).
pub fn deployment_name_error(model: &str) -> Option<&'static str> {
    if model.is_empty() {
        return Some("a deployment name cannot be empty");
    }
    if model == "." || model == ".." {
        return Some("a deployment name cannot be `.` or `..`");
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !model.bytes().all(plain) {
        return Some(
            "a deployment name is one path segment of letters, digits, `-`, `.`, `_` or `~`",
        );
    }
    None
}

/// The `api-key` header (when a key is configured).
pub fn auth_headers(key: Option<&str>) -> Vec<(&'static str, String)> {
    key.map(|k| ("api-key", k.to_string()))
        .into_iter()
        .collect()
}

/// The base URL's path with `/openai` appended unless it already ends with it.
pub fn path_root(base_path: &str) -> String {
    if base_path.ends_with("/openai") {
        base_path.to_string()
    } else {
        format!("{base_path}/openai")
    }
}

/// Writes the request target for `api_path` (e.g. `/chat/completions`).
/// `client_query` is empty or starts with `?`.
pub fn write_target(
    out: &mut Vec<u8>,
    root: &str,
    api_version: &str,
    api_path: &str,
    model: Option<&str>,
    client_query: &[u8],
) {
    out.extend_from_slice(root.as_bytes());
    if let Some(model) = model.filter(|_| is_deployment_path(api_path)) {
        out.extend_from_slice(b"/deployments/");
        push_path_segment(out, model);
    }
    out.extend_from_slice(api_path.as_bytes());
    let query = if client_query == b"?" {
        &[]
    } else {
        client_query
    };
    out.extend_from_slice(query);
    if !has_api_version(query) {
        out.push(if query.is_empty() { b'?' } else { b'&' });
        out.extend_from_slice(b"api-version=");
        out.extend_from_slice(api_version.as_bytes());
    }
}

fn has_api_version(query: &[u8]) -> bool {
    query
        .strip_prefix(b"?")
        .unwrap_or(query)
        .split(|&b| b == b'&')
        .any(|pair| pair.starts_with(b"api-version="))
}

/// Percent-encodes everything but RFC 3986 unreserved bytes.
fn push_path_segment(out: &mut Vec<u8>, segment: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(api_path: &str, model: Option<&str>, query: &str) -> String {
        let mut out = Vec::new();
        write_target(
            &mut out,
            &path_root(""),
            "2024-10-21",
            api_path,
            model,
            query.as_bytes(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn deployment_paths_carry_the_model_and_api_version() {
        assert_eq!(
            target("/chat/completions", Some("gpt-4o"), ""),
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            target("/embeddings", Some("text-embedding-3-small"), "?x=1"),
            "/openai/deployments/text-embedding-3-small/embeddings?x=1&api-version=2024-10-21"
        );
        assert_eq!(
            target("/models", None, ""),
            "/openai/models?api-version=2024-10-21"
        );
        assert_eq!(
            target("/responses", Some("gpt-4o"), "?"),
            "/openai/responses?api-version=2024-10-21"
        );
    }

    #[test]
    fn a_clients_api_version_wins() {
        assert_eq!(
            target(
                "/chat/completions",
                Some("m"),
                "?api-version=2025-01-01-preview"
            ),
            "/openai/deployments/m/chat/completions?api-version=2025-01-01-preview"
        );
        assert_eq!(
            target("/chat/completions", Some("m"), "?a=b&api-version=x"),
            "/openai/deployments/m/chat/completions?a=b&api-version=x"
        );
    }

    #[test]
    fn model_names_cannot_break_the_request_line() {
        assert_eq!(
            target("/chat/completions", Some("a b\r\n/../x?"), ""),
            "/openai/deployments/a%20b%0D%0A%2F..%2Fx%3F/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn only_plain_single_segments_name_a_deployment() {
        for ok in ["gpt-4o", "gpt-4o.mini_2~x", "...", ".a", "a..b", "A1"] {
            assert_eq!(deployment_name_error(ok), None, "{ok}");
        }
        for bad in [
            "", ".", "..", "a/b", "../x", "a b", "a%2Fb", "a?b", "a#b", "é", "a\\b", "a;b",
        ] {
            assert!(deployment_name_error(bad).is_some(), "{bad:?}");
        }
        assert!(is_deployment_path("/chat/completions"));
        assert!(!is_deployment_path("/models"));
    }

    #[test]
    fn openai_is_added_once_and_key_goes_in_api_key() {
        assert_eq!(path_root(""), "/openai");
        assert_eq!(path_root("/openai"), "/openai");
        assert_eq!(path_root("/gw"), "/gw/openai");
        assert_eq!(auth_headers(Some("k")), [("api-key", "k".to_string())]);
    }
}
