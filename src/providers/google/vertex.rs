//! The Vertex AI family (`kind = "vertex"`): where a provider's requests go
//! (location, project, the publisher of each model) and the OAuth 2.0
//! access token they carry, from a service-account key file.
//!
//! Google's models are reached through `publishers/google/models/{model}`
//! (`:generateContent`, `:streamGenerateContent?alt=sse`, the Gemini
//! translation), Anthropic's (`claude-…`) through
//! `publishers/anthropic/models/{model}` (`:rawPredict`,
//! `:streamRawPredict`) with Anthropic's own body, less `model`, plus
//! `anthropic_version`.
//!
//! Invariants: a shard never signs, reads a file or waits on the token
//! endpoint: the [`TokenSource`]'s thread fetches a token before the old
//! one is within five minutes of expiring and swaps in the rendered header
//! whole; a request made while there is no valid token is refused by the
//! gateway (503), not sent unauthenticated. The token and the key never
//! reach a log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use super::service_account::{AccessToken, ServiceAccount};
use crate::config::{ConfigError, ProviderConfig};
use crate::telemetry::{log_info, log_warn};
use crate::upstream::blocking::post_form;

/// Operations for Anthropic's models, as the proxy names them (`api_path`).
pub const RAW_PREDICT: &str = ":rawPredict";
pub const STREAM_RAW_PREDICT: &str = ":streamRawPredict";

/// Whether `model` is one of Anthropic's, published on Vertex AI as
/// `claude-…` (with an `@` version or not).
pub fn is_anthropic_model(model: &str) -> bool {
    model.starts_with("claude")
}

/// The publisher segment an operation's model lives under.
pub fn publisher(operation: &str) -> &'static str {
    if operation == RAW_PREDICT || operation == STREAM_RAW_PREDICT {
        "/anthropic"
    } else {
        "/google"
    }
}

/// How long one exchange with the token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a Vertex AI provider's requests go and what authenticates them,
/// as its config and the Google environment say.
#[derive(Debug)]
pub struct VertexSettings {
    pub region: String,
    pub project: String,
    pub credentials_file: PathBuf,
}

/// A location is lowercase letters, digits and `-` (`us-central1`,
/// `global`): anything else could move the host it is put into.
fn is_location(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The location `providers.{name}` uses: its own `region`, else
/// `GOOGLE_CLOUD_LOCATION`.
pub fn region(name: &str, cfg: &ProviderConfig) -> Result<Option<String>, ConfigError> {
    let region = cfg.region.clone().or_else(|| env("GOOGLE_CLOUD_LOCATION"));
    match region {
        Some(r) if !is_location(&r) => Err(ConfigError {
            field: format!("providers.{name}.region"),
            message: format!("{r:?} is not a Vertex AI location like \"us-central1\""),
        }),
        r => Ok(r),
    }
}

/// The service endpoint of `region`.
pub fn base_url(region: &str) -> String {
    format!("https://{}", super::vertex_host(region))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads and checks everything a Vertex AI provider needs; reads the key
/// file, so call it off the shards. Also returns the parsed account.
pub fn settings(
    name: &str,
    cfg: &ProviderConfig,
) -> Result<(VertexSettings, ServiceAccount), ConfigError> {
    let bad = |f: &str, message: String| ConfigError {
        field: format!("providers.{name}.{f}"),
        message,
    };
    let region = region(name, cfg)?.ok_or_else(|| {
        bad(
            "region",
            "is required: no location is set here or in GOOGLE_CLOUD_LOCATION".into(),
        )
    })?;
    let credentials_file = cfg
        .credentials_file
        .clone()
        .or_else(|| env("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from))
        .ok_or_else(|| {
            bad(
                "credentials_file",
                "is required: no service-account key file is set here or in \
                 GOOGLE_APPLICATION_CREDENTIALS"
                    .into(),
            )
        })?;
    let account = read_account(&credentials_file).map_err(|m| bad("credentials_file", m))?;
    let project = cfg
        .project
        .clone()
        .or_else(|| env("GOOGLE_CLOUD_PROJECT"))
        .or_else(|| account.project_id.clone())
        .ok_or_else(|| {
            bad(
                "project",
                "is required: set here, in GOOGLE_CLOUD_PROJECT, or as the key file's project_id"
                    .into(),
            )
        })?;
    if !is_project(&project) {
        return Err(bad(
            "project",
            format!("{project:?} is not a Google Cloud project id"),
        ));
    }
    Ok((
        VertexSettings {
            region,
            project,
            credentials_file,
        },
        account,
    ))
}

/// Project ids are lowercase letters, digits and `-` (and, for old
/// domain-scoped ones, `.` and `:`).
fn is_project(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
}

fn read_account(path: &Path) -> Result<ServiceAccount, String> {
    let json = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ServiceAccount::from_json(&json).map_err(|e| format!("{}: {e}", path.display()))
}

/// The path every Vertex AI target starts with, below the base URL's.
pub fn path_root(base_path: &str, settings: &VertexSettings) -> String {
    format!(
        "{base_path}/v1/projects/{}/locations/{}/publishers",
        settings.project, settings.region
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The current access token as its rendered `authorization` header line,
/// with its expiry.
struct Current {
    header: Arc<[u8]>,
    expires_at: u64,
}

/// A provider's access token, kept fresh by a thread of its own (holding
/// only a [`Weak`], so it ends soon after the provider is dropped).
pub struct TokenSource {
    provider: String,
    current: RwLock<Option<Current>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Fetches the first token (bounded: a failure is logged, and the
    /// thread keeps trying) and starts the thread that refreshes it.
    pub fn start(provider: &str, account: ServiceAccount) -> Arc<TokenSource> {
        let source = Arc::new(TokenSource {
            provider: provider.to_string(),
            current: RwLock::new(None),
        });
        if let Err(e) = source.refresh(&account) {
            log_warn(format_args!(
                "provider {provider:?}: no Vertex AI access token yet ({e}); requests are refused until one is fetched"
            ));
        }
        let weak = Arc::downgrade(&source);
        let spawned = std::thread::Builder::new()
            .name(format!("token-{provider}"))
            .spawn(move || refresh_loop(weak, account));
        if let Err(e) = spawned {
            log_warn(format_args!(
                "provider {provider:?}: cannot start the token thread: {e}"
            ));
        }
        source
    }

    /// Fetches a token now and swaps it in.
    fn refresh(&self, account: &ServiceAccount) -> Result<(), String> {
        let now = unix_now();
        let (status, body) = post_form(
            &account.token_uri,
            &account.token_request_body(now),
            TOKEN_TIMEOUT,
        )?;
        if status != 200 {
            // Google's error body names the reason (`invalid_grant`, …)
            // and no secret.
            let why = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(format!("token endpoint answered {status}: {why}"));
        }
        let token = AccessToken::from_response(&body, now).map_err(|e| e.to_string())?;
        let mut header = Vec::new();
        crate::http1::write::push_header(
            &mut header,
            b"authorization",
            token.authorization().as_bytes(),
        );
        let current = Current {
            header: header.into(),
            expires_at: token.expires_at,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(current);
        Ok(())
    }

    /// Appends the `authorization` line of a token still valid; false
    /// (nothing written) when there is none.
    pub fn write_header(&self, out: &mut Vec<u8>) -> bool {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        match &*current {
            Some(c) if c.expires_at > unix_now() => {
                out.extend_from_slice(&c.header);
                true
            }
            _ => false,
        }
    }

    /// Whether a valid token is at hand.
    pub fn is_ready(&self) -> bool {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().is_some_and(|c| c.expires_at > unix_now())
    }

    fn refresh_due(&self) -> bool {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        // Due five minutes before expiry, as `AccessToken::refresh_due`.
        current
            .as_ref()
            .is_none_or(|c| unix_now().saturating_add(300) >= c.expires_at)
    }
}

/// Checks once a second whether the token is due, and fetches it when it
/// is, backing off (1 s doubling to a minute) while the endpoint fails.
fn refresh_loop(source: Weak<TokenSource>, account: ServiceAccount) {
    let mut retry = Duration::from_secs(1);
    let mut next_try = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(source) = source.upgrade() else {
            return;
        };
        if !source.refresh_due() || std::time::Instant::now() < next_try {
            continue;
        }
        match source.refresh(&account) {
            Ok(()) => {
                retry = Duration::from_secs(1);
                log_info(format_args!(
                    "provider {:?}: Vertex AI access token refreshed",
                    source.provider
                ));
            }
            Err(e) => {
                log_warn(format_args!(
                    "provider {:?}: Vertex AI token refresh failed ({e}); next try in {} s",
                    source.provider,
                    retry.as_secs()
                ));
                next_try = std::time::Instant::now() + retry;
                retry = (retry * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_by_operation_and_models_by_name() {
        assert_eq!(publisher(RAW_PREDICT), "/anthropic");
        assert_eq!(publisher(STREAM_RAW_PREDICT), "/anthropic");
        assert_eq!(publisher(super::super::GENERATE), "/google");
        assert!(is_anthropic_model("claude-sonnet-4@20250514"));
        assert!(!is_anthropic_model("gemini-2.5-pro"));
    }

    #[test]
    fn locations_and_projects_are_plain_names() {
        for ok in ["us-central1", "global", "europe-west4"] {
            assert!(is_location(ok), "{ok}");
        }
        for bad in ["", "us central1", "a.b", "US-EAST1", "x/y"] {
            assert!(!is_location(bad), "{bad}");
        }
        assert!(is_project("my-project-123") && is_project("example.com:proj"));
        assert!(!is_project("My Project") && !is_project("a/b") && !is_project(""));
    }
}
