//! The Bedrock family: AWS Bedrock's runtime API
//! (`https://bedrock-runtime.{region}.amazonaws.com`).
//!
//! The model is in the path, one percent-encoded segment
//! (`/model/{id}/converse`, `/converse-stream`, `/invoke`,
//! `/invoke-with-response-stream`), so the request target is made here from
//! the operation the proxy chose and the upstream model. Auth is either a
//! Bedrock API key (`api_key`, sent as `Authorization: Bearer`, a fixed
//! header like every other family's) or, without one, a SigV4 signature
//! over each request with the AWS environment's credentials ([`Signer`]).
//!
//! Invariants: the credentials a shard signs with are a snapshot swapped in
//! whole by the refresh thread, never read from files or the environment on
//! a shard; a signature covers `host` and `x-amz-date` (and the session
//! token), what SigV4 requires signed, over the exact target and body
//! bytes that go on the wire (the mock in `tests/bedrock_gateway.rs`
//! checks each with botocore); no secret reaches a log or a `Debug`.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use super::aws::credentials::{resolve_from_process, Credentials, Resolved};
use super::aws::sigv4::{self, AmzDate, Options, SigningKey, UriEncoding};
use crate::config::{ConfigError, ProviderConfig};
use crate::telemetry::{log_info, log_warn};

/// The SigV4 service name of the runtime API.
pub const SERVICE: &str = "bedrock";

/// How often the refresh thread reads the AWS environment again, unless the
/// provider sets `credentials_refresh_s`: short-lived credentials are
/// rewritten in the shared files by whatever issues them (`aws sso login`,
/// a sidecar) well before they expire.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// Operations, as the proxy names them (`api_path`); each goes after
/// `/model/{id}`.
pub const CONVERSE: &str = "/converse";
pub const CONVERSE_STREAM: &str = "/converse-stream";
pub const INVOKE: &str = "/invoke";
pub const INVOKE_STREAM: &str = "/invoke-with-response-stream";

/// The region `providers.{name}` signs for: its own `region`, else the AWS
/// environment's. `None` when neither names one.
pub fn region(name: &str, cfg: &ProviderConfig) -> Result<Option<String>, ConfigError> {
    let region = match &cfg.region {
        Some(r) => Some(r.clone()),
        None => resolve_from_process().ok().and_then(|r| r.region),
    };
    match region {
        Some(r) if !is_region(&r) => Err(ConfigError {
            field: format!("providers.{name}.region"),
            message: format!("{r:?} is not an AWS region like \"us-east-1\""),
        }),
        r => Ok(r),
    }
}

/// Lowercase letters, digits and `-`, as every AWS region name is; anything
/// else could move the host it is put into.
fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The runtime endpoint of `region`.
pub fn base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// Appends `{root}/model/{model, encoded}{operation}`.
pub fn write_target(out: &mut Vec<u8>, root: &str, operation: &str, model: &str) {
    out.extend_from_slice(root.as_bytes());
    out.extend_from_slice(b"/model/");
    out.extend_from_slice(sigv4::uri_encode(model).as_bytes());
    out.extend_from_slice(operation.as_bytes());
}

/// Whether `model` is one of Anthropic's (a model id, a cross-region
/// inference profile like `us.anthropic.…`, or an ARN naming either),
/// which Anthropic-dialect clients reach through InvokeModel with their own
/// request body.
pub fn is_anthropic_model(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    id.starts_with("anthropic.")
        || id
            .split_once('.')
            .is_some_and(|(_, rest)| rest.starts_with("anthropic."))
}

/// What a shard signs with: one consistent set of credentials and the
/// signing key of the day they were last derived for.
struct Identity {
    credentials: Credentials,
    key: SigningKey,
}

/// Signs Bedrock requests with SigV4. Shared by every shard; a thread of
/// its own re-reads the AWS environment every `refresh` and swaps in what
/// changed (and the day's new signing key), until the provider is dropped.
pub struct Signer {
    region: String,
    current: RwLock<Arc<Identity>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `provider` in `region` with the AWS environment's
    /// credentials, refreshed every `refresh`. Reads files: call it off
    /// the shards.
    pub fn from_environment(
        provider: &str,
        region: &str,
        refresh: Duration,
    ) -> Result<Arc<Signer>, String> {
        let credentials = environment_credentials(provider, resolve_from_process())?;
        let signer = Arc::new(Signer::new(region, credentials));
        let weak = Arc::downgrade(&signer);
        let name = provider.to_string();
        std::thread::Builder::new()
            .name("shardgate-aws-credentials".into())
            .spawn(move || refresh_loop(weak, &name, refresh))
            .map_err(|e| format!("cannot start the AWS credentials thread: {e}"))?;
        Ok(signer)
    }

    /// A signer with fixed `credentials` (tests and tools).
    pub fn new(region: &str, credentials: Credentials) -> Signer {
        let key = derive(&credentials, &AmzDate::now(), region);
        Signer {
            region: region.to_string(),
            current: RwLock::new(Arc::new(Identity { credentials, key })),
        }
    }

    /// The signing headers (`x-amz-date`, `x-amz-security-token`,
    /// `authorization`) of a request to `host` with this method, target
    /// (path and query as sent) and body, signed now, appended as header
    /// lines.
    pub fn write_headers(
        &self,
        out: &mut Vec<u8>,
        method: &str,
        target: &str,
        host: &str,
        body: &[u8],
    ) {
        self.write_headers_at(out, method, target, host, body, AmzDate::now());
    }

    fn write_headers_at(
        &self,
        out: &mut Vec<u8>,
        method: &str,
        target: &str,
        host: &str,
        body: &[u8],
        date: AmzDate,
    ) {
        let identity = self.snapshot();
        // The refresh thread derives the new day's key within `refresh` of
        // midnight; until then a request derives its own.
        let fresh;
        let key = if identity.key.date() == date.date() {
            &identity.key
        } else {
            fresh = derive(&identity.credentials, &date, &self.region);
            &fresh
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let payload = sigv4::sha256_hex(body);
        let request = sigv4::Request {
            method,
            path,
            query,
            headers: &[("host", host)],
            payload_sha256: &payload,
        };
        let c = &identity.credentials;
        let options = Options {
            uri_encoding: UriEncoding::Double,
            content_sha256_header: false,
        };
        let signed = sigv4::sign(
            &request,
            &c.access_key_id,
            c.session_token.as_deref(),
            key,
            date,
            options,
        );
        for (name, value) in signed.headers() {
            crate::http1::write::push_header(out, name.as_bytes(), value.as_bytes());
        }
    }

    fn snapshot(&self) -> Arc<Identity> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in `credentials` (and today's key) when either changed; true
    /// when they did.
    fn update(&self, credentials: Credentials, date: &AmzDate) -> bool {
        let now = self.snapshot();
        if now.credentials == credentials && now.key.date() == date.date() {
            return false;
        }
        let key = derive(&credentials, date, &self.region);
        let next = Arc::new(Identity { credentials, key });
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        true
    }
}

fn derive(c: &Credentials, date: &AmzDate, region: &str) -> SigningKey {
    SigningKey::derive(&c.secret_access_key, date.date(), region, SERVICE)
}

/// Whether the AWS environment has credentials for `provider` to sign
/// with (the configuration check; reads files, so off the shards).
pub fn check_environment_credentials(provider: &str) -> Result<(), String> {
    environment_credentials(provider, resolve_from_process()).map(drop)
}

/// The credentials of a resolved AWS environment, or why there are none.
fn environment_credentials(
    provider: &str,
    resolved: Result<Resolved, impl std::fmt::Display>,
) -> Result<Credentials, String> {
    match resolved {
        Ok(Resolved {
            credentials: Some((c, _)),
            ..
        }) => Ok(c),
        Ok(r) => Err(format!(
            "provider `{provider}` has no api_key and the AWS environment has no credentials \
             (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile `{}` in the shared \
             credentials file)",
            r.profile
        )),
        Err(e) => Err(format!("provider `{provider}`: {e}")),
    }
}

/// Re-reads the environment every `every` while the signer lives. A read
/// that fails keeps the credentials in use (and says so): an expired key
/// answers 403 upstream, which is clearer than no request at all.
fn refresh_loop(signer: Weak<Signer>, provider: &str, every: Duration) {
    loop {
        std::thread::sleep(every);
        let Some(signer) = signer.upgrade() else {
            return;
        };
        match environment_credentials(provider, resolve_from_process()) {
            Ok(c) => {
                if signer.update(c, &AmzDate::now()) {
                    log_info(format_args!(
                        "provider `{provider}`: AWS credentials or signing day changed; signing with the new ones"
                    ));
                }
            }
            Err(why) => log_warn(format_args!("{why}; still signing with the previous ones")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(secret: &str) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: secret.into(),
            session_token: None,
        }
    }

    #[test]
    fn targets_put_the_model_in_one_encoded_segment() {
        let mut out = Vec::new();
        write_target(
            &mut out,
            "",
            CONVERSE_STREAM,
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        );
        assert_eq!(
            out,
            b"/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
        );
        out.clear();
        write_target(
            &mut out,
            "/proxy",
            INVOKE,
            "arn:aws:bedrock:us-east-1:1:x/y",
        );
        assert_eq!(
            out,
            b"/proxy/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ax%2Fy/invoke"
        );
    }

    #[test]
    fn anthropic_models_by_id_profile_and_arn() {
        for m in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            assert!(is_anthropic_model(m), "{m}");
        }
        for m in [
            "amazon.nova-pro-v1:0",
            "meta.llama3-70b-instruct-v1:0",
            "us.meta.llama3-2-90b-instruct-v1:0",
            "anthropic",
            "x.y.anthropic.claude",
        ] {
            assert!(!is_anthropic_model(m), "{m}");
        }
    }

    #[test]
    fn regions_are_plain_names() {
        assert!(is_region("us-east-1") && is_region("ap-southeast-2"));
        for r in ["", "US-EAST-1", "us-east-1.evil.com", "a/b", "us east"] {
            assert!(!is_region(r), "{r:?}");
        }
    }

    #[test]
    fn signs_with_the_day_key_and_the_swapped_credentials() {
        let signer = Signer::new("us-east-1", creds("secret-a"));
        let date = AmzDate::from_unix(1_767_225_600);
        let sign = |s: &Signer| {
            let mut out = Vec::new();
            s.write_headers_at(
                &mut out,
                "POST",
                "/model/m/converse",
                "bedrock-runtime.us-east-1.amazonaws.com",
                b"{}",
                date,
            );
            String::from_utf8(out).unwrap()
        };
        let a = sign(&signer);
        assert!(a.starts_with("x-amz-date: 20260101T000000Z\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature="), "{a}");
        // Same as a key derived for that day (the snapshot's is today's).
        assert_eq!(a, sign(&Signer::new("us-east-1", creds("secret-a"))));
        assert!(signer.update(creds("secret-b"), &date));
        assert!(!signer.update(creds("secret-b"), &date));
        let b = sign(&signer);
        assert_ne!(a, b);
        let token = Credentials {
            session_token: Some("tok".into()),
            ..creds("secret-b")
        };
        assert!(signer.update(token, &date));
        let t = sign(&signer);
        assert!(t.contains("x-amz-security-token: tok\r\n"), "{t}");
        assert!(
            t.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
            "{t}"
        );
    }

    #[test]
    fn no_credentials_is_an_error_naming_the_profile() {
        let resolved: Result<Resolved, String> = Ok(Resolved {
            profile: "work".into(),
            credentials: None,
            region: None,
        });
        let e = environment_credentials("br", resolved).unwrap_err();
        assert!(
            e.contains("provider `br`") && e.contains("profile `work`"),
            "{e}"
        );
    }
}
