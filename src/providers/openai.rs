//! The OpenAI family: OpenAI itself and every OpenAI-compatible API (the
//! hosted ones in the catalogue, local servers, custom base URLs).
//!
//! The base URL carries the version path (`https://api.openai.com/v1`,
//! `https://api.groq.com/openai/v1`, or none for Perplexity), so a request
//! target is that path, then the endpoint path, then the client's query,
//! unchanged. Auth is the catalogue entry's [`Auth`]: `Authorization:
//! Bearer <key>` for almost all, the bare key in a named header for Azure AI
//! Foundry (`api-key`); key-less servers (local ones) get no auth header.

use super::catalog::Auth;

/// The auth header for `key`, carried the way `auth` says.
pub fn auth_headers(key: Option<&str>, auth: Auth) -> Vec<(&'static str, String)> {
    key.map(|k| match auth {
        Auth::Bearer => ("authorization", format!("Bearer {k}")),
        Auth::Header(name) => (name, k.to_string()),
    })
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
    fn bearer_or_named_header_auth_or_none() {
        assert_eq!(
            auth_headers(Some("sk-1"), Auth::Bearer),
            [("authorization", "Bearer sk-1".to_string())]
        );
        assert_eq!(
            auth_headers(Some("k"), Auth::Header("api-key")),
            [("api-key", "k".to_string())]
        );
        assert!(auth_headers(None, Auth::Bearer).is_empty());
        assert!(auth_headers(None, Auth::Header("api-key")).is_empty());
    }

    #[test]
    fn root_is_the_base_path() {
        assert_eq!(path_root("/openai/v1"), "/openai/v1");
        assert_eq!(path_root(""), "");
    }
}
