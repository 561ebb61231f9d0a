//! The Anthropic family: Anthropic's native Messages API.
//!
//! By the Anthropic SDK's convention the base URL has no version path
//! (`https://api.anthropic.com`, `ANTHROPIC_BASE_URL`), so `/v1` is added
//! here; a base URL that already ends in `/v1` is taken as meant and not
//! doubled. Auth is `x-api-key` plus the `anthropic-version` header, which
//! every request must carry; the provider's version replaces a client's.

/// `anthropic-version` when the config names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// `x-api-key` (when a key is configured) and `anthropic-version`.
pub fn auth_headers(key: Option<&str>, version: &str) -> Vec<(&'static str, String)> {
    key.map(|k| ("x-api-key", k.to_string()))
        .into_iter()
        .chain([("anthropic-version", version.to_string())])
        .collect()
}

/// The base URL's path with `/v1` appended unless it already ends with it.
pub fn path_root(base_path: &str) -> String {
    if base_path.ends_with("/v1") {
        base_path.to_string()
    } else {
        format!("{base_path}/v1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_and_version_headers() {
        assert_eq!(
            auth_headers(Some("sk-ant"), DEFAULT_VERSION),
            [
                ("x-api-key", "sk-ant".to_string()),
                ("anthropic-version", "2023-06-01".to_string())
            ]
        );
        assert_eq!(
            auth_headers(None, "2024-01-01"),
            [("anthropic-version", "2024-01-01".to_string())]
        );
    }

    #[test]
    fn v1_is_added_once() {
        assert_eq!(path_root(""), "/v1");
        assert_eq!(path_root("/proxy/anthropic"), "/proxy/anthropic/v1");
        assert_eq!(path_root("/v1"), "/v1");
    }
}
