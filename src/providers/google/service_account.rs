//! Google service-account credentials, sans-IO: reading the key file
//! Google issues (`type: service_account`, an RSA key in PKCS#8 PEM), the
//! OAuth 2.0 JWT-bearer assertion it signs (RS256), the token request body,
//! and the token response read into an [`AccessToken`] that knows when it
//! is due for a refresh. Who sends the request, and when, is the caller's.
//!
//! The flow is Google's "Using OAuth 2.0 for Server to Server
//! Applications": a JWT with header `{"alg":"RS256","typ":"JWT","kid":
//! private_key_id}` and claims `iss` (the client email), `scope`, `aud`
//! (the token URI), `iat` and `exp` (an hour later, the most Google
//! takes), POSTed form-encoded as `grant_type=urn:ietf:params:oauth:
//! grant-type:jwt-bearer&assertion=…` to the token URI.
//!
//! Invariant: no secret reaches a log. The private key and the access
//! token are never in a `Debug` output or an error message; a key file
//! that does not parse is reported by line and column only.

use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;

use crate::providers::aws::invoke::base64_decode;

/// Google's OAuth 2.0 token endpoint, for a key file that names none.
pub const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The scope that covers the Gemini API on Vertex AI (and the rest of
/// Google Cloud).
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long an assertion is valid: the most Google accepts.
const ASSERTION_SECONDS: u64 = 3600;

/// A token is refreshed this long before it expires, so no request goes
/// out with one that lapses on the way.
const REFRESH_MARGIN_SECONDS: u64 = 300;

/// Why a key file or a token response could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceAccountError {
    /// Not JSON, or a field of the wrong type (where, never what).
    Json(String),
    /// `type` is not `service_account` (a user's or an external account's
    /// credentials file).
    NotAServiceAccount(String),
    /// `private_key` is not a PEM PKCS#8 RSA key ring can sign with.
    Key(&'static str),
    /// The token response lacks a field or is not a bearer token.
    Token(&'static str),
}

impl std::fmt::Display for ServiceAccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceAccountError::Json(why) => write!(f, "not a service-account key file: {why}"),
            ServiceAccountError::NotAServiceAccount(kind) => {
                write!(f, "credentials of type {kind:?}, not \"service_account\"")
            }
            ServiceAccountError::Key(why) => write!(f, "unusable private_key: {why}"),
            ServiceAccountError::Token(why) => write!(f, "unusable token response: {why}"),
        }
    }
}

impl std::error::Error for ServiceAccountError {}

/// Where a JSON document went wrong, without quoting it.
fn json_error(e: &serde_json::Error) -> ServiceAccountError {
    ServiceAccountError::Json(format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    ))
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    private_key_id: String,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

/// A service account's identity and signing key.
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: String,
    pub token_uri: String,
    /// The project the account belongs to: Vertex AI's default project.
    pub project_id: Option<String>,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl ServiceAccount {
    /// Reads a service-account key file's JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, ServiceAccountError> {
        let file: KeyFile = serde_json::from_slice(json).map_err(|e| json_error(&e))?;
        if file.kind != "service_account" {
            return Err(ServiceAccountError::NotAServiceAccount(file.kind));
        }
        let der = pem_pkcs8_der(&file.private_key)?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|_| ServiceAccountError::Key("not an RSA key ring accepts"))?;
        Ok(Self {
            client_email: file.client_email,
            private_key_id: file.private_key_id,
            token_uri: file.token_uri.unwrap_or_else(|| TOKEN_URI.to_owned()),
            project_id: file.project_id,
            key,
        })
    }

    /// The signed JWT assertion for a token valid from `iat` (Unix
    /// seconds) for an hour, for `scope`.
    pub fn jwt_assertion(&self, scope: &str, iat: u64) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_SECONDS,
        });
        let mut jwt = base64url(header.to_string().as_bytes());
        jwt.push('.');
        jwt.push_str(&base64url(claims.to_string().as_bytes()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        // PKCS#1 v1.5 signing only fails for a buffer of the wrong size
        // (sized above) or a broken system RNG (used for blinding).
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a modulus-sized buffer");
        jwt.push('.');
        jwt.push_str(&base64url(&signature));
        jwt
    }

    /// The form-encoded body to POST to [`Self::token_uri`]
    /// (`Content-Type: application/x-www-form-urlencoded`) for a
    /// cloud-platform token valid from `now`.
    pub fn token_request_body(&self, now: u64) -> String {
        // A JWT is base64url and dots: nothing in it needs form-encoding.
        format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            self.jwt_assertion(CLOUD_PLATFORM_SCOPE, now)
        )
    }

    /// The public key, DER `RSAPublicKey`, for checking a signature.
    pub fn public_key_der(&self) -> &[u8] {
        self.key.public().as_ref()
    }
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` PEM block.
fn pem_pkcs8_der(pem: &str) -> Result<Vec<u8>, ServiceAccountError> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or(ServiceAccountError::Key(
            "not a PEM PRIVATE KEY (PKCS#8) block",
        ))?;
    let base64: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64_decode(&base64).ok_or(ServiceAccountError::Key("PEM body is not base64"))
}

/// Base64url without padding (RFC 7515's encoding of JWT parts).
fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// An OAuth 2.0 access token and when it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    token_type: String,
}

impl AccessToken {
    /// Reads the token endpoint's answer to a request sent at `now` (Unix
    /// seconds): the expiry counts from the request, not the answer, so a
    /// slow answer makes it earlier, never later.
    pub fn from_response(body: &[u8], now: u64) -> Result<Self, ServiceAccountError> {
        let response: TokenResponse = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
        if !response.token_type.eq_ignore_ascii_case("bearer") {
            return Err(ServiceAccountError::Token("token_type is not Bearer"));
        }
        if response.access_token.is_empty() {
            return Err(ServiceAccountError::Token("empty access_token"));
        }
        Ok(Self {
            token: response.access_token,
            expires_at: now.saturating_add(response.expires_in),
        })
    }

    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Whether it is time to fetch the next token: five minutes before
    /// this one expires, or later.
    pub fn refresh_due(&self, now: u64) -> bool {
        now.saturating_add(REFRESH_MARGIN_SECONDS) >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use serde_json::Value;

    const KEY_FILE: &[u8] =
        include_bytes!("../../../tests/fixtures/google/test-service-account.json");

    fn base64url_decode(text: &str) -> Vec<u8> {
        let mut standard: String = text
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        while standard.len() % 4 != 0 {
            standard.push('=');
        }
        base64_decode(standard.as_bytes()).expect("base64url")
    }

    #[test]
    fn base64url_has_no_padding_and_the_url_alphabet() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
        for len in 0..20 {
            let data: Vec<u8> = (0..len).map(|i| (i * 89 + 7) as u8).collect();
            assert_eq!(base64url_decode(&base64url(&data)), data);
        }
    }

    #[test]
    fn the_assertion_is_a_jwt_its_key_verifies() {
        let account = ServiceAccount::from_json(KEY_FILE).unwrap();
        assert_eq!(account.token_uri, TOKEN_URI);
        assert_eq!(account.project_id.as_deref(), Some("shardgate-test-only"));
        let jwt = account.jwt_assertion(CLOUD_PLATFORM_SCOPE, 1_700_000_000);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('='), "no padding");
        let header: Value = serde_json::from_slice(&base64url_decode(parts[0])).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef0123456789abcdef01234567"})
        );
        let claims: Value = serde_json::from_slice(&base64url_decode(parts[1])).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "test-only@shardgate-test-only.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        let signature = base64url_decode(parts[2]);
        assert_eq!(signature.len(), 256);
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, account.public_key_der());
        let signed = &jwt[..parts[0].len() + 1 + parts[1].len()];
        public.verify(signed.as_bytes(), &signature).unwrap();
        assert!(public
            .verify(format!("{signed}x").as_bytes(), &signature)
            .is_err());
        // PKCS#1 v1.5 is deterministic: the same claims, the same JWT.
        assert_eq!(
            account.jwt_assertion(CLOUD_PLATFORM_SCOPE, 1_700_000_000),
            jwt
        );
    }

    #[test]
    fn the_token_request_is_form_encoded() {
        let account = ServiceAccount::from_json(KEY_FILE).unwrap();
        let body = account.token_request_body(1_700_000_000);
        let assertion = body
            .strip_prefix(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=",
            )
            .unwrap();
        assert_eq!(
            assertion,
            account.jwt_assertion(CLOUD_PLATFORM_SCOPE, 1_700_000_000)
        );
    }

    #[test]
    fn nothing_secret_in_debug_or_errors() {
        let account = ServiceAccount::from_json(KEY_FILE).unwrap();
        let debug = format!("{account:?}");
        assert!(debug.contains("test-only@") && debug.contains("<redacted>"));
        assert!(!debug.contains("MII"), "{debug}");
        let token = AccessToken::from_response(
            br#"{"access_token":"ya29.secret","expires_in":3599,"token_type":"Bearer"}"#,
            100,
        )
        .unwrap();
        assert!(!format!("{token:?}").contains("ya29"));
        assert_eq!(token.authorization(), "Bearer ya29.secret");
        // A key of the wrong type is reported by where, not what.
        let err = ServiceAccount::from_json(br#"{"type":"service_account","client_email":"e","private_key_id":"k","private_key":["MIIsecret"]}"#)
            .unwrap_err();
        assert!(!err.to_string().contains("MIIsecret"), "{err}");
    }

    #[test]
    fn key_files_that_are_not_usable() {
        let mut file: Value = serde_json::from_slice(KEY_FILE).unwrap();
        file["type"] = "authorized_user".into();
        assert_eq!(
            ServiceAccount::from_json(file.to_string().as_bytes()).unwrap_err(),
            ServiceAccountError::NotAServiceAccount("authorized_user".into())
        );
        file["type"] = "service_account".into();
        for key in [
            "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
        ] {
            file["private_key"] = key.into();
            assert!(matches!(
                ServiceAccount::from_json(file.to_string().as_bytes()),
                Err(ServiceAccountError::Key(_))
            ));
        }
        assert!(matches!(
            ServiceAccount::from_json(b"{"),
            Err(ServiceAccountError::Json(_))
        ));
    }

    #[test]
    fn tokens_expire_from_the_request_and_refresh_five_minutes_early() {
        let token = AccessToken::from_response(
            br#"{"access_token":"t","expires_in":3600,"token_type":"bearer","scope":"x"}"#,
            1000,
        )
        .unwrap();
        assert_eq!(token.expires_at, 4600);
        assert!(!token.refresh_due(4299));
        assert!(token.refresh_due(4300));
        assert!(token.refresh_due(5000));
        for bad in [
            &br#"{"access_token":"t","expires_in":3600,"token_type":"mac"}"#[..],
            br#"{"access_token":"","expires_in":3600,"token_type":"Bearer"}"#,
            br#"{"access_token":"t","token_type":"Bearer"}"#,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        ] {
            assert!(AccessToken::from_response(bad, 0).is_err());
        }
    }
}
