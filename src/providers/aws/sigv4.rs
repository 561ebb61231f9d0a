//! AWS Signature Version 4 for one HTTP request, sans-IO: the caller gives
//! the method, the path and query as they go on the wire, the headers it
//! will send and the payload's SHA-256; this module gives back the headers
//! that make the request signed (`Authorization`, `x-amz-date`, optionally
//! `x-amz-content-sha256`, and `x-amz-security-token` with temporary
//! credentials). It reads no clock and no environment: the time and the
//! credentials are inputs, so every signature is reproducible in a test.
//!
//! Invariants:
//! - The canonical request follows the published rules exactly: header
//!   names lowercased, values trimmed with inner runs of spaces collapsed,
//!   repeated headers joined with `,`, headers sorted by name; query pairs
//!   re-encoded with the RFC 3986 unreserved set and sorted by name then
//!   value; the canonical URI is the wire path encoded once more per
//!   segment for every service but S3 ([`UriEncoding::Double`]), which is
//!   why a Bedrock model id `…-v1:0` is `…-v1%3A0` on the wire and
//!   `…-v1%253A0` in the canonical request.
//! - The headers this module owns (`x-amz-date`, `x-amz-content-sha256`,
//!   `x-amz-security-token`, `authorization`) are taken from the signer,
//!   never from the caller's list, so a stale one cannot be signed twice.
//! - A [`SigningKey`] carries its scope (day, region, service), so its
//!   holder (`providers::bedrock::Signer`) derives it once a day and a
//!   request costs one HMAC (the signature) besides its SHA-256s, not five.

use ring::{digest, hmac};

use crate::civil::civil_from_days;

/// The algorithm name, in the string to sign and the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SHA-256 of the empty payload, the hash a bodiless request signs.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How the canonical URI is formed from the wire path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriEncoding {
    /// Every service but S3: each segment of the (already encoded) wire path
    /// is encoded again.
    Double,
    /// S3: the wire path is the canonical URI as it stands.
    Single,
}

/// A time in the form SigV4 signs, `YYYYMMDDTHHMMSSZ` (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmzDate([u8; 16]);

impl AmzDate {
    /// The date for `secs` since the Unix epoch.
    pub fn from_unix(secs: u64) -> AmzDate {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let mut out = [0u8; 16];
        write_digits(&mut out[0..4], y as u64);
        write_digits(&mut out[4..6], m as u64);
        write_digits(&mut out[6..8], d as u64);
        out[8] = b'T';
        write_digits(&mut out[9..11], rem / 3600);
        write_digits(&mut out[11..13], rem % 3600 / 60);
        write_digits(&mut out[13..15], rem % 60);
        out[15] = b'Z';
        AmzDate(out)
    }

    /// The current time.
    pub fn now() -> AmzDate {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        AmzDate::from_unix(secs)
    }

    /// `YYYYMMDDTHHMMSSZ`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, `T` and `Z` are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// `YYYYMMDD`, the credential scope's date.
    pub fn date(&self) -> &str {
        &self.as_str()[..8]
    }
}

fn write_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The key a day's signatures are made with, and the scope it is for.
#[derive(Clone)]
pub struct SigningKey {
    key: hmac::Key,
    /// `YYYYMMDD/region/service/aws4_request`.
    scope: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("scope", &self.scope)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// kSecret → kDate → kRegion → kService → kSigning.
    pub fn derive(secret_access_key: &str, date: &str, region: &str, service: &str) -> SigningKey {
        let mut k_secret = Vec::with_capacity(4 + secret_access_key.len());
        k_secret.extend_from_slice(b"AWS4");
        k_secret.extend_from_slice(secret_access_key.as_bytes());
        let mut k = hmac_sha256(&k_secret, date.as_bytes());
        for part in [region, service, "aws4_request"] {
            k = hmac_sha256(k.as_ref(), part.as_bytes());
        }
        SigningKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()),
            scope: format!("{date}/{region}/{service}/aws4_request"),
        }
    }

    /// `YYYYMMDD/region/service/aws4_request`.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The scope's date, `YYYYMMDD`: a key is only good for that day.
    pub fn date(&self) -> &str {
        &self.scope[..8]
    }

    /// Hex HMAC-SHA256 of `data` under this key: the signature of a string to sign.
    pub fn sign_hex(&self, data: &[u8]) -> String {
        hex(hmac::sign(&self.key, data).as_ref())
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// Lowercase hex SHA-256 of `data`, the form payload hashes are signed in.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The request to sign, as it will go on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (already percent-encoded), starting with `/`.
    pub path: &'a str,
    /// The query string as sent, without the `?`; empty for none.
    pub query: &'a str,
    /// Every header that will be sent and should be signed, `host` included.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lowercase hex SHA-256 of the body ([`sha256_hex`]).
    pub payload_sha256: &'a str,
}

/// How to sign.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub uri_encoding: UriEncoding,
    /// Send (and sign) `x-amz-content-sha256`; S3 needs it, others accept it.
    pub content_sha256_header: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            uri_encoding: UriEncoding::Double,
            content_sha256_header: true,
        }
    }
}

/// The headers that make a request signed, to be added to it as they are.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub authorization: String,
    pub amz_date: AmzDate,
    pub content_sha256: Option<String>,
    pub security_token: Option<String>,
    /// The canonical request that was signed, kept for diagnosing a
    /// `SignatureDoesNotMatch` (AWS returns its own in the error body).
    pub canonical_request: String,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("authorization", &self.authorization)
            .field("amz_date", &self.amz_date.as_str())
            .field("content_sha256", &self.content_sha256)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Signed {
    /// The headers to add, in the order they were signed.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("x-amz-date", self.amz_date.as_str())];
        if let Some(h) = &self.content_sha256 {
            out.push(("x-amz-content-sha256", h));
        }
        if let Some(t) = &self.security_token {
            out.push(("x-amz-security-token", t));
        }
        out.push(("authorization", &self.authorization));
        out
    }
}

/// The headers the signer adds itself; the caller's copies are ignored.
const OWNED_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

/// Signs `req` with `key` (which must be for `date`'s day) as
/// `access_key_id`, with `session_token` for temporary credentials.
pub fn sign(
    req: &Request<'_>,
    access_key_id: &str,
    session_token: Option<&str>,
    key: &SigningKey,
    date: AmzDate,
    options: Options,
) -> Signed {
    let content_sha256 = options
        .content_sha256_header
        .then(|| req.payload_sha256.to_owned());

    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), canonical_header_value(v)))
        .filter(|(n, _)| !OWNED_HEADERS.contains(&n.as_str()))
        .collect();
    headers.push(("x-amz-date".into(), date.as_str().into()));
    if let Some(h) = &content_sha256 {
        headers.push(("x-amz-content-sha256".into(), h.clone()));
    }
    if let Some(t) = session_token {
        headers.push(("x-amz-security-token".into(), canonical_header_value(t)));
    }
    // Stable, so repeated headers keep their order when joined below.
    headers.sort_by(|a, b| a.0.cmp(&b.0));

    let mut canonical_headers = String::new();
    let mut signed_headers = String::new();
    let mut i = 0;
    while i < headers.len() {
        let name = &headers[i].0;
        if !signed_headers.is_empty() {
            signed_headers.push(';');
        }
        signed_headers.push_str(name);
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        let mut first = true;
        while i < headers.len() && headers[i].0 == *name {
            if !first {
                canonical_headers.push(',');
            }
            canonical_headers.push_str(&headers[i].1);
            first = false;
            i += 1;
        }
        canonical_headers.push('\n');
    }

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path, options.uri_encoding),
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        req.payload_sha256,
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        date.as_str(),
        key.scope(),
        sha256_hex(canonical_request.as_bytes()),
    );
    let signature = key.sign_hex(string_to_sign.as_bytes());
    Signed {
        authorization: format!(
            "{ALGORITHM} Credential={access_key_id}/{}, SignedHeaders={signed_headers}, Signature={signature}",
            key.scope()
        ),
        amz_date: date,
        content_sha256,
        security_token: session_token.map(str::to_owned),
        canonical_request,
    }
}

/// Trimmed, with each run of spaces inside collapsed to one (the suite's
/// `get-header-value-trim`).
fn canonical_header_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for word in v.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    // Tabs and other whitespace at the ends count as padding too.
    out.trim().to_owned()
}

/// Appends `s` percent-encoded with the SigV4 unreserved set
/// (`A-Z a-z 0-9 - . _ ~`); `/` kept when `keep_slash`.
fn uri_encode_into(out: &mut String, s: &[u8], keep_slash: bool) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(DIGITS[(b >> 4) as usize] as char);
            out.push(DIGITS[(b & 15) as usize] as char);
        }
    }
}

/// One path segment (or query name or value) encoded for the wire, e.g. a
/// Bedrock model id for `/model/{id}/converse`.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    uri_encode_into(&mut out, s.as_bytes(), false);
    out
}

fn canonical_uri(path: &str, encoding: UriEncoding) -> String {
    let path = if path.is_empty() { "/" } else { path };
    match encoding {
        UriEncoding::Single => path.to_owned(),
        UriEncoding::Double => {
            let mut out = String::with_capacity(path.len() + 8);
            uri_encode_into(&mut out, path.as_bytes(), true);
            out
        }
    }
}

/// Percent-decodes `s`; a `%` not followed by two hex digits stays literal.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex_at = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Each pair decoded and re-encoded, so a wire query in any valid encoding
/// signs the same; sorted by encoded name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut ek = String::new();
            uri_encode_into(&mut ek, &percent_decode(k), false);
            let mut ev = String::new();
            uri_encode_into(&mut ev, &percent_decode(v), false);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The credentials, date, region and service of AWS's published SigV4
    // test suite (aws-sig-v4-test-suite, docs.aws.amazon.com/general/latest/gr/
    // signature-v4-test-suite.html; vendored e.g. in bazelbuild/bazel under
    // third_party/aws-sig-v4-test-suite).
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
    /// 20150830T123600Z.
    const SUITE_TIME: u64 = 1_440_938_160;

    fn suite_sign(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        token: Option<&str>,
    ) -> Signed {
        let date = AmzDate::from_unix(SUITE_TIME);
        let key = SigningKey::derive(SECRET, date.date(), "us-east-1", "service");
        let payload = sha256_hex(body);
        let req = Request {
            method,
            path,
            query,
            headers,
            payload_sha256: &payload,
        };
        // The suite predates x-amz-content-sha256 and encodes the raw path
        // once, which is what Single does to a path the caller encoded.
        let options = Options {
            uri_encoding: UriEncoding::Single,
            content_sha256_header: false,
        };
        sign(&req, AKID, token, &key, date, options)
    }

    fn suite_authz(signed_headers: &str, signature: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}")
    }

    #[test]
    fn amz_date_from_unix() {
        assert_eq!(AmzDate::from_unix(SUITE_TIME).as_str(), "20150830T123600Z");
        assert_eq!(AmzDate::from_unix(0).as_str(), "19700101T000000Z");
        // A leap day and the last second of a year.
        assert_eq!(AmzDate::from_unix(951_782_400).as_str(), "20000229T000000Z");
        assert_eq!(
            AmzDate::from_unix(1_735_689_599).as_str(),
            "20241231T235959Z"
        );
        assert_eq!(AmzDate::from_unix(SUITE_TIME).date(), "20150830");
    }

    #[test]
    fn signing_key_derivation_matches_the_docs() {
        // "Examples of how to derive a signing key for Signature Version 4"
        // (AWS General Reference): secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
        // 20120215, us-east-1, iam.
        let date = "20120215";
        let mut k = hmac_sha256(format!("AWS4{SECRET}").as_bytes(), date.as_bytes());
        for part in ["us-east-1", "iam", "aws4_request"] {
            k = hmac_sha256(k.as_ref(), part.as_bytes());
        }
        assert_eq!(
            hex(k.as_ref()),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        // And the struct's chain is that chain: the same key signs the same.
        let key = SigningKey::derive(SECRET, date, "us-east-1", "iam");
        assert_eq!(
            key.sign_hex(b"x"),
            hex(hmac_sha256(k.as_ref(), b"x").as_ref())
        );
        assert_eq!(key.scope(), "20120215/us-east-1/iam/aws4_request");
        assert!(!format!("{key:?}").contains(SECRET));
    }

    #[test]
    fn get_vanilla() {
        let s = suite_sign("GET", "/", "", &[HOST], b"", None);
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(s.amz_date.as_str(), "20150830T123600Z");
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let s = suite_sign(
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            &[HOST],
            b"",
            None,
        );
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn get_vanilla_query_unreserved() {
        let q = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let s = suite_sign("GET", "/", q, &[HOST], b"", None);
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date",
                "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"
            )
        );
    }

    #[test]
    fn post_vanilla_empty_query_value() {
        let s = suite_sign("POST", "/", "Param1=value1", &[HOST], b"", None);
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), HOST];
        let s = suite_sign("POST", "/", "", &headers, b"Param1=value1", None);
        // The suite's .creq for this case.
        assert_eq!(
            s.canonical_request,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        assert_eq!(
            s.authorization,
            suite_authz(
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn get_header_value_trim() {
        let headers = [
            HOST,
            ("My-Header1", " value1"),
            ("My-Header2", " \"a   b   c\""),
        ];
        let s = suite_sign("GET", "/", "", &headers, b"", None);
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
            )
        );
    }

    #[test]
    fn get_header_key_duplicate() {
        // The suite sends My-Header1 three times: value2, value2, value1.
        let headers = [
            HOST,
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ];
        let s = suite_sign("GET", "/", "", &headers, b"", None);
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;my-header1;x-amz-date",
                "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"
            )
        );
    }

    #[test]
    fn post_sts_header_before_and_after() {
        const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        // post-sts-header-before: the token is signed, as Bedrock needs.
        let s = suite_sign("POST", "/", "", &[HOST], b"", Some(TOKEN));
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
            )
        );
        assert_eq!(s.security_token.as_deref(), Some(TOKEN));
        assert!(!format!("{s:?}").contains(TOKEN));
        // post-sts-header-after: a token the caller put in its own list is
        // not signed by mistake (the signer owns that header).
        let s = suite_sign(
            "POST",
            "/",
            "",
            &[HOST, ("X-Amz-Security-Token", TOKEN)],
            b"",
            None,
        );
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn get_space_and_utf8_paths() {
        // normalize-path/get-space and get-utf8: raw paths `/example space/`
        // and `/ሴ`, encoded once on the wire.
        let s = suite_sign("GET", "/example%20space/", "", &[HOST], b"", None);
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date",
                "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"
            )
        );
        let path = format!("/{}", uri_encode("ሴ"));
        let s = suite_sign("GET", &path, "", &[HOST], b"", None);
        assert_eq!(
            s.authorization,
            suite_authz(
                "host;x-amz-date",
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
            )
        );
    }

    #[test]
    fn bedrock_model_id_is_encoded_twice_in_the_canonical_uri() {
        let id = "anthropic.claude-3-5-sonnet-20240620-v1:0";
        let wire = format!("/model/{}/converse", uri_encode(id));
        assert_eq!(
            wire,
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            canonical_uri(&wire, UriEncoding::Double),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"
        );
        assert_eq!(canonical_uri(&wire, UriEncoding::Single), wire);
    }

    #[test]
    fn query_forms_that_mean_the_same_sign_the_same() {
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query("Param1"), "Param1=");
        assert_eq!(canonical_query("k=a%20b"), canonical_query("k=a b"));
        assert_eq!(canonical_query("k=%zz"), "k=%25zz");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn signer_owned_headers_and_content_sha256() {
        let date = AmzDate::from_unix(SUITE_TIME);
        let key = SigningKey::derive(SECRET, date.date(), "us-east-1", "bedrock");
        let payload = sha256_hex(b"{}");
        let headers = [
            ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
            ("X-Amz-Date", "19990101T000000Z"),
        ];
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_sha256: &payload,
        };
        let s = sign(&req, AKID, None, &key, date, Options::default());
        assert!(s
            .canonical_request
            .contains("x-amz-date:20150830T123600Z\n"));
        assert!(!s.canonical_request.contains("19990101"));
        assert!(s
            .canonical_request
            .contains(&format!("x-amz-content-sha256:{payload}\n")));
        assert!(s
            .authorization
            .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
        let names: Vec<_> = s.headers().iter().map(|h| h.0).collect();
        assert_eq!(
            names,
            ["x-amz-date", "x-amz-content-sha256", "authorization"]
        );
        assert_eq!(sha256_hex(b""), EMPTY_PAYLOAD_SHA256);
    }
}
