//! The service-account JWT assertion against an independent RS256
//! implementation: `tests/fixtures/google/jwt_verify.py`, Python's
//! `cryptography` checking a token request the way Google's token
//! endpoint does (and the verifier a mock token endpoint will use), must
//! accept what we send and refuse each thing the real endpoint refuses.
//! The key is the test-only one in `tests/fixtures/google`. Skips with a
//! SKIP line when `cryptography` is not installed.

mod common;

use common::python_modules_available;
use serde_json::{json, Value};
use shardgate::providers::google::service_account::ServiceAccount;

const KEY_FILE: &str = include_str!("fixtures/google/test-service-account.json");
const NOW: u64 = 1_767_225_600;

fn verify(body: &str, now: u64) -> Value {
    let account: Value = serde_json::from_str(KEY_FILE).unwrap();
    let case = json!({"service_account": account, "body": body, "now": now});
    common::python_verdict("google/jwt_verify.py", &case)
}

#[test]
fn cryptography_accepts_our_assertion_and_nothing_else() {
    if !python_modules_available("google_jwt", "cryptography") {
        return;
    }
    let account = ServiceAccount::from_json(KEY_FILE.as_bytes()).unwrap();
    let body = account.token_request_body(NOW);
    assert_eq!(verify(&body, NOW), json!({"ok": true}));
    assert_eq!(verify(&body, NOW + 3599), json!({"ok": true}));

    let refused = |body: &str, now: u64| {
        let got = verify(body, now);
        assert_eq!(got["ok"], false, "accepted: {got}");
        got["why"].as_str().unwrap().to_owned()
    };
    assert!(refused(&body, NOW + 3600).contains("out of range"));
    assert!(refused(&body, NOW - 1).contains("out of range"));
    // A changed signature character, in the middle and last (whose low
    // bits encode nothing: changing only them must not pass either), and
    // a claim changed after signing.
    let flip = |at: usize| {
        let mut bytes = body.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    assert!(refused(&flip(body.len() - 100), NOW).contains("signature mismatch"));
    refused(&flip(body.len() - 1), NOW);
    let (head, rest) = body.split_once("&assertion=").unwrap();
    let parts: Vec<&str> = rest.split('.').collect();
    let other = account.jwt_assertion("https://www.googleapis.com/auth/other", NOW);
    let other_claims = other.split('.').nth(1).unwrap();
    let spliced = format!("{head}&assertion={}.{other_claims}.{}", parts[0], parts[2]);
    assert!(refused(&spliced, NOW).contains("signature mismatch"));
    let wrong_grant = body.replace("jwt-bearer", "saml2-bearer");
    assert!(refused(&wrong_grant, NOW).contains("grant_type"));
}
