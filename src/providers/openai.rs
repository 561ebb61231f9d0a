//! The OpenAI family: OpenAI itself and every OpenAI-compatible API (the
//! hosted ones in the catalogue, local servers, custom base URLs).
//!
//! The base URL carries the version path (`https://api.openai.com/v1`,
//! `https://api.groq.com/openai/v1`, or none for Perplexity), so a request
//! target is that path, then the endpoint path, then the client's query,
//! unchanged. Auth is `Authorization: Bearer <key>`; key-less servers (local
//! ones) get no auth header at all.

/// The auth header for `key`.
pub fn auth_headers(key: Option<&str>) -> Vec<(&'static str, String)> {
    key.map(|k| ("authorization", format!("Bearer {k}")))
        .into_iter()
        .collect()
}

/// The path every target starts with: the base URL's path as configured.
pub fn path_root(base_path: &str) -> String {
    base_path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_auth_or_none() {
        assert_eq!(
            auth_headers(Some("sk-1")),
            [("authorization", "Bearer sk-1".to_string())]
        );
        assert!(auth_headers(None).is_empty());
    }

    #[test]
    fn root_is_the_base_path() {
        assert_eq!(path_root("/openai/v1"), "/openai/v1");
        assert_eq!(path_root(""), "");
    }
}
