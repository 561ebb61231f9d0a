//! SigV4 against an independent implementation: botocore's `SigV4Auth`
//! signs the same Bedrock-shaped requests (`POST /model/{id}/converse` on
//! bedrock-runtime) and must produce the same `Authorization` header. The
//! published test suite (unit tests in `sigv4.rs`) uses service `service`
//! and single encoding; this is where the double encoding of a model id,
//! the session token and `x-amz-content-sha256` meet the real service's
//! signer. Also tests `tests/fixtures/aws/sigv4_verify.py`, the botocore
//! verifier a mock Bedrock will check received requests with. Skips with a
//! SKIP line when botocore is not installed.

mod common;

use common::python_modules_available;
use serde_json::{json, Value};
use shardgate::providers::aws::sigv4::{
    sha256_hex, sign, uri_encode, AmzDate, Options, Request, SigningKey,
};

/// Signs with botocore at a fixed time; prints the Authorization header and
/// the canonical request it signed.
const BOTOCORE_SIGN: &str = r#"
import datetime, json, sys
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
case = json.load(sys.stdin)
t = datetime.datetime.fromtimestamp(case["time"], datetime.timezone.utc).replace(tzinfo=None)
botocore.auth.get_current_datetime = lambda *a, **k: t
creds = Credentials(case["access_key_id"], case["secret_access_key"], case["session_token"])
req = AWSRequest(method=case["method"], url=case["url"], data=case["body"].encode(), headers=case["headers"])
auth = SigV4Auth(creds, case["service"], case["region"])
# The canonical request as add_auth builds it, before it adds Authorization.
req.context["timestamp"] = t.strftime(botocore.auth.SIGV4_TIMESTAMP)
auth._modify_request_before_signing(req)
canonical = auth.canonical_request(req)
auth.add_auth(req)
print(json.dumps({"authorization": req.headers["Authorization"], "canonical": canonical}))
"#;

fn botocore(case: &Value) -> Value {
    common::python_json(&["-c", BOTOCORE_SIGN], case)
}

struct Case<'a> {
    model_id: &'a str,
    operation: &'a str,
    query: &'a str,
    session_token: Option<&'a str>,
    body: &'a str,
    time: u64,
}

fn check(case: Case<'_>) {
    const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let path = format!("/model/{}/{}", uri_encode(case.model_id), case.operation);
    let payload = sha256_hex(case.body.as_bytes());
    let headers = [
        ("Host", HOST),
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let date = AmzDate::from_unix(case.time);
    let key = SigningKey::derive(SECRET, date.date(), "us-east-1", "bedrock");
    let req = Request {
        method: "POST",
        path: &path,
        query: case.query,
        headers: &headers,
        payload_sha256: &payload,
    };
    let ours = sign(
        &req,
        AKID,
        case.session_token,
        &key,
        date,
        Options::default(),
    );

    let query = if case.query.is_empty() {
        String::new()
    } else {
        format!("?{}", case.query)
    };
    // botocore is given the content hash as a plain header, as Bedrock's
    // callers that send it do; its signer then signs it like any other.
    let theirs = botocore(&json!({
        "time": case.time,
        "access_key_id": AKID,
        "secret_access_key": SECRET,
        "session_token": case.session_token,
        "service": "bedrock",
        "region": "us-east-1",
        "method": "POST",
        "url": format!("https://{HOST}{path}{query}"),
        "body": case.body,
        "headers": {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Amz-Content-SHA256": payload,
        },
    }));
    assert_eq!(
        ours.canonical_request, theirs["canonical"],
        "canonical request for {}",
        case.model_id
    );
    assert_eq!(
        ours.authorization, theirs["authorization"],
        "{}",
        case.model_id
    );
}

#[test]
fn bedrock_requests_sign_as_botocore_signs_them() {
    if !python_modules_available("aws_sigv4_botocore", "botocore") {
        return;
    }
    let body = r#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}"#;
    // The model id's `:` is `%3A` on the wire, `%253A` signed.
    check(Case {
        model_id: "anthropic.claude-3-5-sonnet-20240620-v1:0",
        operation: "converse",
        query: "",
        session_token: None,
        body,
        time: 1_440_938_160,
    });
    // Temporary credentials, the streaming operation, another day.
    check(Case {
        model_id: "anthropic.claude-3-5-sonnet-20240620-v1:0",
        operation: "converse-stream",
        query: "",
        session_token: Some("FQoGZXIvYXdzEXAMPLE//token+with/slashes=="),
        body,
        time: 1_767_225_599,
    });
    // An inference-profile ARN: `/` and `:` inside one segment.
    check(Case {
        model_id: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        operation: "invoke",
        query: "",
        session_token: None,
        body: r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[]}"#,
        time: 1_700_000_000,
    });
    // A query string, out of order, with a value that needs encoding.
    check(Case {
        model_id: "amazon.titan-text-express-v1",
        operation: "invoke",
        query: "b=2&a=x%20y&a=1",
        session_token: None,
        body: "{}",
        time: 1_700_000_000,
    });
}

/// `tests/fixtures/aws/sigv4_verify.py` on one received request.
fn verify(
    target: &str,
    headers: &[(String, String)],
    body: &str,
    session_token: Option<&str>,
) -> Value {
    let case = json!({
        "method": "POST",
        "target": target,
        "headers": headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
        "body": body,
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "session_token": session_token,
        "region": "us-east-1",
        "service": "bedrock",
    });
    common::python_verdict("aws/sigv4_verify.py", &case)
}

/// The verifier a mock Bedrock will run accepts what we sign and refuses
/// each thing the real service refuses, so a passing mock test means
/// something.
#[test]
fn the_mock_verifier_accepts_our_signature_and_nothing_else() {
    if !python_modules_available("aws_sigv4_botocore", "botocore") {
        return;
    }
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE/token==";
    let body = r#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#;
    let path = format!(
        "/model/{}/converse-stream",
        uri_encode("anthropic.claude-3-5-sonnet-20240620-v1:0")
    );
    let base = [
        ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
        ("content-type", "application/json"),
    ];
    let sign_with = |token: Option<&str>| {
        let date = AmzDate::from_unix(1_767_225_600);
        let key = SigningKey::derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            date.date(),
            "us-east-1",
            "bedrock",
        );
        let payload = sha256_hex(body.as_bytes());
        let req = Request {
            method: "POST",
            path: &path,
            query: "",
            headers: &base,
            payload_sha256: &payload,
        };
        let signed = sign(&req, "AKIDEXAMPLE", token, &key, date, Options::default());
        let mut sent: Vec<(String, String)> = base
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        sent.extend(
            signed
                .headers()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string())),
        );
        sent
    };
    let ok = json!({"ok": true});
    let signed = sign_with(Some(TOKEN));
    assert_eq!(verify(&path, &signed, body, Some(TOKEN)), ok);
    let plain = sign_with(None);
    assert_eq!(verify(&path, &plain, body, None), ok);

    let refused = |target: &str, headers: &[(String, String)], body: &str, token| {
        let got = verify(target, headers, body, token);
        assert_eq!(got["ok"], false, "accepted: {got}");
        got["why"].as_str().unwrap().to_owned()
    };
    let why = refused(&path, &signed, &body.replace("Hi", "Ho"), Some(TOKEN));
    assert!(why.contains("x-amz-content-sha256"), "{why}");
    let why = refused(&path.replace("%3A", ":"), &signed, body, Some(TOKEN));
    assert!(why.contains("signature mismatch"), "{why}");
    let mut changed = signed.clone();
    changed[1].1 = "text/plain".into();
    let why = refused(&path, &changed, body, Some(TOKEN));
    assert!(why.contains("signature mismatch"), "{why}");
    let why = refused(&path, &plain, body, Some(TOKEN));
    assert!(why.contains("session token"), "{why}");
    let why = refused(&path, &signed, body, None);
    assert!(why.contains("unexpected session token"), "{why}");
    let without_auth: Vec<_> = plain
        .iter()
        .filter(|(n, _)| n != "authorization")
        .cloned()
        .collect();
    let why = refused(&path, &without_auth, body, None);
    assert!(why.contains("no Authorization"), "{why}");
}
