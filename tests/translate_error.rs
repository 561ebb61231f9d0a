//! Error translation between the dialects, and gateway-made errors.

mod translate_support;

use serde_json::json;
use shardgate::api::translate::{
    anthropic_error, anthropic_error_to_openai, openai_error, openai_error_to_anthropic,
};
use translate_support::{fixture, parse};

#[test]
fn openai_rate_limit_becomes_anthropic_rate_limit_error() {
    let translated = openai_error_to_anthropic(429, &fixture("openai_error_rate_limit.json"));
    assert_eq!(translated.status, 429);
    assert_eq!(
        parse(&translated.body),
        json!({
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29850, Requested 500.",
            },
        })
    );
}

#[test]
fn openai_error_type_follows_the_status() {
    // OpenAI labels a bad key `invalid_request_error`; Anthropic clients expect
    // the type that matches a 401.
    let translated = openai_error_to_anthropic(401, &fixture("openai_error_invalid_key.json"));
    assert_eq!(
        parse(&translated.body)["error"]["type"],
        "authentication_error"
    );
}

#[test]
fn anthropic_overloaded_becomes_openai_503() {
    let translated = anthropic_error_to_openai(529, &fixture("anthropic_error_overloaded.json"));
    assert_eq!(
        translated.status, 503,
        "529 is not a status OpenAI clients know"
    );
    assert_eq!(
        parse(&translated.body),
        json!({
            "error": {"message": "Overloaded", "type": "server_error", "param": null, "code": null},
        })
    );
}

#[test]
fn anthropic_invalid_request_keeps_status_and_type() {
    let translated =
        anthropic_error_to_openai(400, &fixture("anthropic_error_invalid_request.json"));
    assert_eq!(translated.status, 400);
    let body = parse(&translated.body);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["message"], "max_tokens: Field required");
}

#[test]
fn non_json_upstream_errors_still_yield_well_formed_errors() {
    let html = anthropic_error_to_openai(502, b"<html><body>Bad Gateway</body></html>");
    assert_eq!(
        parse(&html.body)["error"]["message"],
        "<html><body>Bad Gateway</body></html>"
    );
    assert_eq!(parse(&html.body)["error"]["type"], "server_error");

    let empty = openai_error_to_anthropic(504, b"");
    assert_eq!(
        parse(&empty.body)["error"],
        json!({"type": "api_error", "message": "upstream returned 504 Gateway Timeout"})
    );

    let huge = openai_error_to_anthropic(500, "é".repeat(2000).as_bytes());
    let message = parse(&huge.body)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.len() <= 512 && message.chars().all(|c| c == 'é'),
        "cut on a char boundary"
    );

    let bare = openai_error_to_anthropic(400, br#"{"error": "model is required"}"#);
    assert_eq!(parse(&bare.body)["error"]["message"], "model is required");
}

#[test]
fn gateway_errors_take_their_type_from_the_status() {
    let cases = [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (403, "permission_error", "permission_error"),
        (404, "not_found_error", "not_found_error"),
        (413, "request_too_large", "invalid_request_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "server_error"),
        (502, "api_error", "server_error"),
        (529, "overloaded_error", "server_error"),
    ];
    for (status, anthropic_type, openai_type) in cases {
        let anthropic = parse(&anthropic_error(status, "no route to model \"x\""));
        assert_eq!(
            anthropic,
            json!({"type": "error", "error": {"type": anthropic_type, "message": "no route to model \"x\""}})
        );
        let openai = parse(&openai_error(status, "quota"));
        assert_eq!(
            openai,
            json!({"error": {"message": "quota", "type": openai_type, "param": null, "code": null}}),
            "{status}"
        );
    }
}
