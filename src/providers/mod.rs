//! Providers: who a request goes to and how to address it. A `Provider` is
//! built once from config (URL split, DNS resolved, auth headers rendered,
//! TLS client config chosen) so the hot path only copies prepared bytes.
//!
//! The families differ in three things the proxy asks a provider for: its
//! dialect ([`Provider::dialect`]), its auth headers
//! ([`Provider::write_auth_headers`]) and the request target for an endpoint
//! ([`Provider::write_request_target`]). Each family's rules live in its own
//! file; the catalogue of known providers in `catalog`, the zero-config
//! environment fallback in `zero_config`, the provider checks and the
//! whole configuration check in `check`, the binary's load in `load`.
//!
//! Invariant: everything written into a request head comes from validated
//! config or is percent-encoded, so no provider setting or model name can
//! break the head's framing; a model name that goes into a path is one
//! plain segment ([`Provider::check_request_target`]), never `..`.

pub mod anthropic;
pub mod aws;
pub mod azure;
pub mod bedrock;
pub mod catalog;
mod check;
pub mod google;
mod load;
pub mod model_lists;
pub mod openai;
pub mod prices;
pub mod router;
pub mod zero_config;

use std::net::SocketAddr;

use rustls::pki_types::ServerName;

pub use catalog::Family;
pub use check::validate;
pub use load::{load_config, no_providers, report_check};

use crate::config::{ConfigError, ProviderConfig, UpstreamConfig};
use crate::error::{Error, Kind};
use crate::upstream::timeouts::Timeouts;
use crate::upstream::tls::{self, Trust};
use crate::upstream::UpstreamUrl;

/// The request/response shape a provider speaks natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI's API (chat completions, embeddings, ...): OpenAI, Azure and
    /// every OpenAI-compatible server.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

/// One configured upstream provider.
pub struct Provider {
    pub name: String,
    pub family: Family,
    pub url: UpstreamUrl,
    /// Resolved at start-up and reload; empty when resolution failed (each
    /// request then gets a 502 that says so).
    pub addrs: Vec<SocketAddr>,
    /// For https base URLs: the connector (sharing one session cache across
    /// shards, so reconnects resume) and the SNI name.
    pub tls: Option<(monoio_rustls::TlsConnector, ServerName<'static>)>,
    /// The same TLS client config, for the gateway's own blocking
    /// requests to it (its model list).
    tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Its own timeouts, or `[upstream]`'s where it sets none.
    pub timeouts: Timeouts,
    /// Path every request target starts with (base path + family root).
    path_root: String,
    /// Azure's `api-version` value.
    api_version: String,
    /// Auth and fixed headers, rendered as `name: value\r\n` lines.
    headers: Vec<u8>,
    /// Names of the headers in `headers`: a client's copy is not forwarded.
    header_names: Vec<&'static str>,
    /// Bedrock without an API key: each request is signed.
    signer: Option<std::sync::Arc<bedrock::Signer>>,
    /// Vertex AI: the access token each request carries.
    token: Option<std::sync::Arc<google::vertex::TokenSource>>,
}

impl Provider {
    /// Builds the provider `name` from its validated config, its unset
    /// timeouts taken from `upstream`. Resolves DNS (blocking): call it off
    /// the shards.
    pub fn from_config(
        name: &str,
        cfg: &ProviderConfig,
        upstream: &UpstreamConfig,
    ) -> Result<Provider, ConfigError> {
        let field = |f: &str| format!("providers.{name}.{f}");
        let bad = |f: &str, message: String| ConfigError {
            field: field(f),
            message,
        };
        let (entry, base_url) = catalog::resolve_kind(name, cfg)?;
        let base_url = base_url.ok_or_else(|| bad("base_url", "is required".into()))?;
        let url = UpstreamUrl::parse(&base_url).map_err(|m| bad("base_url", m))?;
        let mut signer = None;
        let mut token = None;
        let key = cfg.api_key.as_deref();
        let family = entry.family;
        let (path_root, api_version, headers) = match family {
            Family::OpenAi => (
                openai::path_root(&url.path_prefix),
                String::new(),
                openai::auth_headers(key, entry.auth),
            ),
            Family::Azure => {
                let version = cfg.api_version.as_deref();
                (
                    azure::path_root(&url.path_prefix),
                    version.unwrap_or(azure::DEFAULT_API_VERSION).to_string(),
                    azure::auth_headers(key),
                )
            }
            Family::Anthropic => {
                let version = cfg.api_version.as_deref();
                (
                    anthropic::path_root(&url.path_prefix),
                    String::new(),
                    anthropic::auth_headers(key, version.unwrap_or(anthropic::DEFAULT_VERSION)),
                )
            }
            Family::Bedrock => {
                if key.is_none() {
                    let region = bedrock::region(name, cfg)?
                        .ok_or_else(|| bad("region", "is required to sign requests".into()))?;
                    let refresh = cfg
                        .credentials_refresh_s
                        .map_or(bedrock::DEFAULT_REFRESH, std::time::Duration::from_secs);
                    signer = Some(
                        bedrock::Signer::from_environment(name, &region, refresh)
                            .map_err(|m| bad("api_key", m))?,
                    );
                }
                let headers = json_body_headers(openai::auth_headers(key, entry.auth));
                (url.path_prefix.clone(), String::new(), headers)
            }
            Family::Gemini => (
                format!("{}{}", url.path_prefix, google::GEMINI_API_VERSION),
                String::new(),
                json_body_headers(openai::auth_headers(key, entry.auth)),
            ),
            Family::Cohere => (
                format!("{}/v2", url.path_prefix),
                String::new(),
                json_body_headers(openai::auth_headers(key, entry.auth)),
            ),
            Family::Vertex => {
                let (settings, account) = google::vertex::settings(name, cfg)?;
                token = Some(google::vertex::TokenSource::start(name, account));
                (
                    google::vertex::path_root(&url.path_prefix, &settings),
                    String::new(),
                    json_body_headers(Vec::new()),
                )
            }
        };
        let (tls, tls_config) = if url.tls {
            let server = ServerName::try_from(url.host.clone())
                .map_err(|e| bad("base_url", format!("bad TLS server name: {e}")))?;
            let (trust, trust_field) = match (&cfg.ca_file, cfg.tls_insecure_skip_verify) {
                (_, true) => (Trust::Insecure, "tls_insecure_skip_verify"),
                (Some(path), false) => (Trust::CaFile(path), "ca_file"),
                (None, false) => (Trust::Default, "base_url"),
            };
            let config = tls::client_config(trust, name).map_err(|m| bad(trust_field, m))?;
            let connector = monoio_rustls::TlsConnector::from(config.clone());
            (Some((connector, server)), Some(config))
        } else {
            (None, None)
        };
        let addrs = url.resolve().unwrap_or_default();
        let mut rendered = Vec::new();
        for (n, v) in &headers {
            crate::http1::write::push_header(&mut rendered, n.as_bytes(), v.as_bytes());
        }
        Ok(Provider {
            name: name.to_string(),
            family,
            url,
            addrs,
            tls,
            tls_config,
            timeouts: crate::upstream::timeouts::Timeouts::for_provider(cfg, upstream),
            path_root,
            api_version,
            header_names: headers.iter().map(|(n, _)| *n).collect(),
            headers: rendered,
            signer,
            token,
        })
    }

    /// The client dialect this provider speaks natively, so that requests
    /// in it can pass through; `None` for one reached only by translation
    /// (Bedrock, Gemini, Cohere).
    pub fn dialect(&self) -> Option<Dialect> {
        match self.family {
            Family::OpenAi | Family::Azure => Some(Dialect::OpenAi),
            Family::Anthropic => Some(Dialect::Anthropic),
            Family::Bedrock | Family::Gemini | Family::Cohere | Family::Vertex => None,
        }
    }

    /// The API a provider without a client dialect speaks, for messages.
    pub fn native_api_name(&self) -> &'static str {
        match self.family {
            Family::OpenAi | Family::Azure => "OpenAI",
            Family::Anthropic => "Anthropic Messages",
            Family::Bedrock => "Bedrock runtime",
            Family::Gemini => "Gemini",
            Family::Cohere => "Cohere v2",
            Family::Vertex => "Vertex AI",
        }
    }

    /// Appends the upstream request target: `api_path` is the endpoint's
    /// path below the API version (`/chat/completions`, `/messages`,
    /// `/models`), `model` the upstream model name when the request has one
    /// (Azure puts it in the path), `client_query` the client's query string
    /// (empty or starting with `?`), passed on.
    pub fn write_request_target(
        &self,
        out: &mut Vec<u8>,
        api_path: &str,
        model: Option<&str>,
        client_query: &[u8],
    ) {
        match self.family {
            Family::Azure => azure::write_target(
                out,
                &self.path_root,
                &self.api_version,
                api_path,
                model,
                client_query,
            ),
            // The operation is the API path; the client's query is not
            // part of Bedrock's API.
            Family::Bedrock => {
                bedrock::write_target(out, &self.path_root, api_path, model.unwrap_or(""))
            }
            Family::Gemini => {
                google::write_model_target(out, &self.path_root, api_path, model.unwrap_or(""))
            }
            Family::Vertex => {
                out.extend_from_slice(self.path_root.as_bytes());
                let publisher = google::vertex::publisher(api_path);
                google::write_model_target(out, publisher, api_path, model.unwrap_or(""))
            }
            Family::OpenAi | Family::Anthropic | Family::Cohere => {
                out.extend_from_slice(self.path_root.as_bytes());
                out.extend_from_slice(api_path.as_bytes());
                out.extend_from_slice(client_query);
            }
        }
    }

    /// Refuses (400, `param: model`) an upstream model name this provider
    /// cannot put in the request target for `api_path`: Azure's deployment
    /// paths take it as one path segment. Checked before anything is sent.
    pub fn check_request_target(&self, api_path: &str, model: &str) -> Result<(), Error> {
        if let Some(token) = &self.token {
            if !token.is_ready() {
                return Err(Error::upstream(
                    Kind::UpstreamConnect,
                    true,
                    format!(
                        "provider `{}` (Vertex AI) has no access token: its token endpoint \
                         has not answered (see the gateway's log)",
                        self.name
                    ),
                ));
            }
        }
        if matches!(
            self.family,
            Family::Bedrock | Family::Gemini | Family::Vertex
        ) && model.is_empty()
        {
            return Err(Error::client(
                Kind::BadRequest,
                format!(
                    "provider `{}` ({}) needs a model name: it goes in the path",
                    self.name,
                    self.native_api_name()
                ),
            )
            .with_param("model"));
        }
        if self.family != Family::Azure || !azure::is_deployment_path(api_path) {
            return Ok(());
        }
        match azure::deployment_name_error(model) {
            None => Ok(()),
            Some(why) => Err(Error::client(
                Kind::BadRequest,
                format!(
                    "model {model:?} cannot name a deployment of provider `{}`: {why}",
                    self.name
                ),
            )
            .with_param("model")),
        }
    }

    /// Whether [`Self::write_auth_headers`] signs the request (and so needs
    /// its method, target and body).
    pub fn signs_requests(&self) -> bool {
        self.signer.is_some()
    }

    /// Appends this provider's auth (and fixed protocol) header lines; a
    /// signing provider's signature is over the request's `method`,
    /// `target` (as written by [`Self::write_request_target`]) and `body`.
    pub fn write_auth_headers(&self, out: &mut Vec<u8>, method: &[u8], target: &[u8], body: &[u8]) {
        out.extend_from_slice(&self.headers);
        if let Some(signer) = &self.signer {
            // Both were written into a request head: ASCII.
            let method = std::str::from_utf8(method).unwrap_or("POST");
            let target = std::str::from_utf8(target).unwrap_or("/");
            signer.write_headers(out, method, target, &self.url.host_header, body);
        }
        if let Some(token) = &self.token {
            // Checked by `check_request_target` a moment before; a token
            // that lapsed since goes out without and is refused upstream.
            token.write_header(out);
        }
    }

    /// The request for this provider's own model list (`GET …/models`,
    /// with its auth, to be sent on a connection of its own), for the
    /// families that list models in OpenAI's shape (`data[].id`): OpenAI
    /// and every compatible server, and Anthropic. `None` for the others.
    pub fn model_list_request(&self) -> Option<Vec<u8>> {
        if !matches!(self.family, Family::OpenAi | Family::Anthropic) {
            return None;
        }
        let mut out = b"GET ".to_vec();
        self.write_request_target(&mut out, "/models", None, b"");
        out.extend_from_slice(b" HTTP/1.1\r\n");
        crate::http1::write::push_header(&mut out, b"host", self.url.host_header.as_bytes());
        out.extend_from_slice(&self.headers);
        out.extend_from_slice(b"accept: application/json\r\n");
        // Says whose request this is in the provider's logs.
        out.extend_from_slice(b"user-agent: shardgate (model list)\r\nconnection: close\r\n\r\n");
        Some(out)
    }

    /// The head of the gateway's own `POST …/embeddings` for the semantic
    /// cache, up to (not including) its `content-length` and blank line:
    /// OpenAI's API and every compatible server (Azure's takes the model in
    /// the path), `None` for the others.
    pub fn embeddings_request_head(&self, upstream_model: &str) -> Option<Vec<u8>> {
        if !matches!(self.family, Family::OpenAi | Family::Azure) {
            return None;
        }
        let mut out = b"POST ".to_vec();
        self.write_request_target(&mut out, "/embeddings", Some(upstream_model), b"");
        out.extend_from_slice(b" HTTP/1.1\r\n");
        crate::http1::write::push_header(&mut out, b"host", self.url.host_header.as_bytes());
        out.extend_from_slice(&self.headers);
        out.extend_from_slice(b"content-type: application/json\r\naccept: application/json\r\n");
        out.extend_from_slice(b"user-agent: shardgate (semantic cache)\r\nconnection: close\r\n");
        Some(out)
    }

    /// Where the gateway's own blocking requests to this provider go.
    pub fn blocking_peer(&self) -> crate::upstream::blocking::Peer<'_> {
        let tls = self
            .tls_config
            .clone()
            .zip(self.tls.as_ref().map(|(_, name)| name.clone()));
        crate::upstream::blocking::Peer {
            addrs: &self.addrs,
            tls,
        }
    }

    /// Whether a client header of this name must not be forwarded because
    /// the provider sets it (e.g. `anthropic-version`). The client's
    /// credentials are dropped by the proxy for every provider already.
    pub fn overrides_request_header(&self, name: &[u8]) -> bool {
        self.header_names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// `headers` and the content type of the translated JSON bodies these
/// families are sent (the client's may name another dialect's).
fn json_body_headers(mut headers: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    headers.push(("content-type", "application/json".to_string()));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Builds provider `name` from a TOML `[providers.name]` body.
    fn provider(name: &str, body: &str) -> Provider {
        let c = Config::from_toml(&format!("[providers.{name}]\n{body}")).unwrap();
        validate(&c).unwrap();
        Provider::from_config(name, &c.providers[name], &c.upstream).unwrap()
    }

    fn target(p: &Provider, api_path: &str, model: Option<&str>, query: &str) -> String {
        let mut out = Vec::new();
        p.write_request_target(&mut out, api_path, model, query.as_bytes());
        String::from_utf8(out).unwrap()
    }

    fn auth(p: &Provider) -> String {
        let mut out = Vec::new();
        p.write_auth_headers(&mut out, b"POST", b"/", b"");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn openai_compatible_custom_provider() {
        let p = provider(
            "mine",
            "base_url = \"http://127.0.0.1:9/v1/\"\napi_key = \"sk-1\"",
        );
        assert_eq!(p.family, Family::OpenAi);
        assert_eq!(p.dialect(), Some(Dialect::OpenAi));
        assert!(p.tls.is_none());
        assert_eq!(
            target(&p, "/chat/completions", Some("m"), "?x=1"),
            "/v1/chat/completions?x=1"
        );
        assert_eq!(auth(&p), "authorization: Bearer sk-1\r\n");
        assert!(!p.overrides_request_header(b"anthropic-version"));
    }

    #[test]
    fn foundry_is_openai_shaped_with_azures_api_key_header() {
        let p = provider(
            "f",
            "kind = \"foundry\"\nbase_url = \"http://127.0.0.1:9/openai/v1\"\napi_key = \"k\"",
        );
        assert_eq!(p.dialect(), Some(Dialect::OpenAi));
        assert_eq!(
            target(&p, "/chat/completions", Some("gpt-4o"), ""),
            "/openai/v1/chat/completions"
        );
        assert_eq!(auth(&p), "api-key: k\r\n");
        assert!(p.overrides_request_header(b"API-Key"));
    }

    #[test]
    fn catalogue_kind_with_local_base_url_and_no_key() {
        let p = provider(
            "local",
            "kind = \"ollama\"\nbase_url = \"http://127.0.0.1:9/v1\"",
        );
        assert_eq!(p.family, Family::OpenAi);
        assert_eq!(auth(&p), "");
        assert_eq!(target(&p, "/models", None, ""), "/v1/models");
    }

    #[test]
    fn azure_deployment_targets_and_api_key() {
        let p = provider(
            "az",
            "kind = \"azure\"\nbase_url = \"http://127.0.0.1:9/\"\napi_key = \"k\"\napi_version = \"2025-01-01-preview\"",
        );
        assert_eq!(p.dialect(), Some(Dialect::OpenAi));
        assert_eq!(
            target(&p, "/chat/completions", Some("gpt-4o"), ""),
            "/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview"
        );
        assert_eq!(auth(&p), "api-key: k\r\n");
        assert!(p
            .check_request_target("/chat/completions", "gpt-4o")
            .is_ok());
        assert!(p.check_request_target("/models", "").is_ok());
        let e = p
            .check_request_target("/chat/completions", "..")
            .unwrap_err();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("model")));
        let openai = provider("o", "base_url = \"http://127.0.0.1:9/v1\"");
        assert!(openai
            .check_request_target("/chat/completions", "..")
            .is_ok());
    }

    #[test]
    fn anthropic_by_name_adds_v1_and_version_header() {
        // A provider named like a catalogue entry gets that kind by default.
        let p = provider(
            "anthropic",
            "base_url = \"http://127.0.0.1:9\"\napi_key = \"sk-ant\"",
        );
        assert_eq!(p.family, Family::Anthropic);
        assert_eq!(p.dialect(), Some(Dialect::Anthropic));
        assert_eq!(target(&p, "/messages", Some("claude"), ""), "/v1/messages");
        assert_eq!(
            auth(&p),
            "x-api-key: sk-ant\r\nanthropic-version: 2023-06-01\r\n"
        );
        assert!(p.overrides_request_header(b"Anthropic-Version"));
        assert!(!p.overrides_request_header(b"anthropic-beta"));
    }

    #[test]
    fn https_gets_sni_and_a_connector() {
        let p = provider("t", "base_url = \"https://127.0.0.1:9/v1\"");
        let (_, name) = p.tls.as_ref().unwrap();
        assert_eq!(name.to_str(), "127.0.0.1");
    }
}
