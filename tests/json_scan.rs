//! Behaviour of `scan_top_level` on hand-written bodies: what it accepts,
//! what it rejects and why, and the spans it reports.

use std::borrow::Cow;

use shardgate::json::{scan_top_level, JsonErrorKind, TopLevel, MAX_NESTING};

fn scan(body: &str) -> TopLevel<'_> {
    scan_top_level(body.as_bytes()).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

fn rejection(body: &[u8]) -> JsonErrorKind {
    match scan_top_level(body) {
        Ok(top) => panic!("{:?} accepted: {top:?}", String::from_utf8_lossy(body)),
        Err(e) => e.kind().clone(),
    }
}

fn model_of(body: &str) -> Option<String> {
    scan(body).model.map(|m| m.value.into_owned())
}

#[test]
fn finds_model_and_its_span() {
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true}"#;
    let top = scan(body);
    let model = top.model.unwrap();
    assert_eq!(&body[model.span.clone()], r#""gpt-4o""#);
    assert!(matches!(model.value, Cow::Borrowed("gpt-4o")));
    assert_eq!(top.stream, Some(true));
    assert_eq!(top.object_end, body.len() - 1);
    assert_eq!(top.member_count, 3);
}

#[test]
fn escaped_keys_are_recognised() {
    assert_eq!(model_of(r#"{"mod\u0065l":"m"}"#).as_deref(), Some("m"));
    assert_eq!(
        model_of(r#"{"\u006d\u006F\u0064\u0065\u006c":"m"}"#).as_deref(),
        Some("m")
    );
    assert_eq!(scan(r#"{"str\u0065am":false}"#).stream, Some(false));
}

#[test]
fn escaped_model_value_is_unescaped_and_owned() {
    let body = r#"{"model":"a\"b\\c\u00e9\ud83e\udd80\n"}"#;
    let model = scan(body).model.unwrap();
    assert_eq!(model.value, "a\"b\\cé🦀\n");
    assert!(matches!(model.value, Cow::Owned(_)));
    assert_eq!(&body[model.span], &body[9..body.len() - 1]);
}

#[test]
fn model_in_nested_objects_or_strings_is_never_picked() {
    assert_eq!(model_of(r#"{"a":{"model":"inner"}}"#), None);
    assert_eq!(
        model_of(r#"{"a":[{"model":"inner"}],"b":"\"model\":\"s\""}"#),
        None
    );
    assert_eq!(
        model_of(r#"{"a":"{\"model\":\"s\"}","model":"outer"}"#).as_deref(),
        Some("outer")
    );
    assert_eq!(
        model_of(r#"{"metadata":{"model":"x"},"model":"y"}"#).as_deref(),
        Some("y")
    );
}

#[test]
fn whitespace_everywhere() {
    let body = " \r\n\t{ \n\"model\" \t:\r\n \"m\" \n, \"stream\"\n:\nfalse\t}\n \r\t";
    let top = scan(body);
    let model = top.model.unwrap();
    assert_eq!(&body[model.span], "\"m\"");
    assert_eq!(top.stream, Some(false));
    assert_eq!(&body[top.object_end..=top.object_end], "}");
    assert_eq!(top.object_end, body.rfind('}').unwrap());
}

#[test]
fn unicode_keys_and_values() {
    let body = r#"{"модель":"x","model":"クロード-3 🦀","emoji🦀":["ü"]}"#;
    let model = scan(body).model.unwrap();
    assert_eq!(model.value, "クロード-3 🦀");
    assert_eq!(&body[model.span], "\"クロード-3 🦀\"");
}

#[test]
fn empty_object() {
    let top = scan(" { } ");
    assert_eq!(top.model, None);
    assert_eq!(top.member_count, 0);
    assert_eq!(top.object_end, 3);
}

#[test]
fn stream_options_span_covers_member_and_value() {
    let body = r#"{"stream":true, "stream_options" : {"include_usage":false}}"#;
    let span = scan(body).stream_options.unwrap();
    assert_eq!(
        &body[span.member],
        r#""stream_options" : {"include_usage":false}"#
    );
    assert_eq!(&body[span.value], r#"{"include_usage":false}"#);
    assert!(scan(r#"{"stream_options":null}"#).stream_options.is_some());
}

#[test]
fn null_stream_reads_as_absent() {
    assert_eq!(scan(r#"{"stream":null}"#).stream, None);
}

#[test]
fn duplicate_top_level_keys_are_rejected_after_unescaping() {
    for body in [
        r#"{"model":"a","model":"b"}"#,
        r#"{"model":"a","mod\u0065l":"b"}"#,
        r#"{"mod\u0065l":"a","model":"b"}"#,
        r#"{"mod\u0065l":"a","\u006dodel":"b"}"#,
    ] {
        let err = scan_top_level(body.as_bytes()).unwrap_err();
        assert_eq!(
            err.kind(),
            &JsonErrorKind::DuplicateKey {
                key: "model".into()
            },
            "{body}"
        );
        assert_eq!(err.param(), Some("model"));
        assert!(
            err.message().contains("duplicate key 'model'"),
            "{}",
            err.message()
        );
    }
    let err = scan_top_level(br#"{"x":1,"y":2,"x":3}"#).unwrap_err();
    assert_eq!(err.param(), Some("x"));
    assert_eq!(err.offset(), 13);
}

#[test]
fn duplicates_found_among_many_keys() {
    let mut body = String::from("{");
    for i in 0..1000 {
        body.push_str(&format!("\"k{i}\":{i},"));
    }
    body.push_str("\"model\":\"m\"}");
    assert_eq!(scan(&body).member_count, 1001);
    let dup = body.replace("\"model\":\"m\"}", "\"k500\":0}");
    assert_eq!(
        rejection(dup.as_bytes()),
        JsonErrorKind::DuplicateKey { key: "k500".into() }
    );
    let escaped_dup = body.replace("\"model\":\"m\"}", "\"k\\u0037\":0}");
    assert_eq!(
        rejection(escaped_dup.as_bytes()),
        JsonErrorKind::DuplicateKey { key: "k7".into() }
    );
}

#[test]
fn nested_duplicates_are_not_our_concern() {
    assert!(scan_top_level(br#"{"a":{"x":1,"x":2},"model":"m"}"#).is_ok());
}

#[test]
fn wrong_types_name_the_param() {
    for (body, param) in [
        (r#"{"model":null}"#, "model"),
        (r#"{"model":42}"#, "model"),
        (r#"{"model":["gpt"]}"#, "model"),
        (r#"{"stream":"true"}"#, "stream"),
        (r#"{"stream":1}"#, "stream"),
        (r#"{"stream_options":true}"#, "stream_options"),
    ] {
        let err = scan_top_level(body.as_bytes()).unwrap_err();
        assert!(
            matches!(err.kind(), JsonErrorKind::WrongType { .. }),
            "{body}"
        );
        assert_eq!(err.param(), Some(param));
        assert!(err
            .message()
            .starts_with(&format!("Invalid type for '{param}'")));
    }
}

#[test]
fn non_object_top_level_is_rejected() {
    for body in [
        "[]",
        "[{\"model\":\"m\"}]",
        "\"model\"",
        "42",
        "-1",
        "true",
        "null",
    ] {
        assert_eq!(
            rejection(body.as_bytes()),
            JsonErrorKind::NotAnObject,
            "{body}"
        );
    }
}

#[test]
fn invalid_json_is_rejected() {
    for body in [
        "",
        "   ",
        "{",
        "}",
        "{\"model\"}",
        "{\"model\":}",
        "{\"model\":\"m\",}",
        "{,\"model\":\"m\"}",
        "{\"model\":\"m\" \"stream\":true}",
        "{\"model\":'m'}",
        "{model:\"m\"}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":{\"b\":1,}}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"unterminated}",
        "hello",
    ] {
        assert!(
            matches!(rejection(body.as_bytes()), JsonErrorKind::Syntax { .. }),
            "{body:?}"
        );
    }
}

#[test]
fn syntax_errors_explain_themselves() {
    let err = scan_top_level(b"{\"model\":\"m\",}").unwrap_err();
    assert!(err
        .message()
        .starts_with("We could not parse the JSON body of your request"));
    assert_eq!(err.param(), None);
}

#[test]
fn syntax_errors_point_at_the_offending_byte() {
    for (body, at, says) in [
        ("{bad", 1, "Expected an object key or '}'"),
        ("  {x", 3, "Expected an object key or '}'"),
        (r#"{"a":1,bad}"#, 7, "Expected an object key after ','"),
        (r#"{"a":1, }"#, 8, "Expected an object key after ','"),
        (
            r#"{"a":1 "b":2}"#,
            7,
            "Expected ',' or '}' after an object member",
        ),
        (r#"{"a":1"#, 6, "Expected ',' or '}' after an object member"),
        (r#"{"a" 1}"#, 5, "Expected ':' after an object key"),
        (r#"{"a":{"b" 1}}"#, 10, "Expected ':' after an object key"),
        (r#"{"a":{x}}"#, 6, "Expected an object key"),
        (r#"{"a":[1 2]}"#, 8, "Expected ',' or ']' in an array"),
        (r#"{"a":[1"#, 7, "Expected ',' or ']' in an array"),
        (r#"{"a":{"b":1 x}}"#, 12, "Expected ',' or '}' in an object"),
    ] {
        let err = scan_top_level(body.as_bytes()).unwrap_err();
        assert_eq!(err.offset(), at, "{body}: {}", err.message());
        assert!(
            err.message().contains(&format!("{says} at byte {at}")),
            "{body}: {}",
            err.message()
        );
    }
}

#[test]
fn trailing_garbage_is_rejected() {
    for body in ["{} {}", "{}x", "{\"model\":\"m\"}]", "{}\n,", "{}\u{0}"] {
        assert!(
            matches!(rejection(body.as_bytes()), JsonErrorKind::Syntax { .. }),
            "{body:?}"
        );
    }
}

#[test]
fn invalid_utf8_is_rejected_anywhere() {
    assert_eq!(
        rejection(b"{\"model\":\"gpt\xff\"}"),
        JsonErrorKind::InvalidUtf8
    );
    assert_eq!(
        rejection(b"{\"a\":\"\xc3\x28\",\"model\":\"m\"}"),
        JsonErrorKind::InvalidUtf8
    );
    assert_eq!(
        rejection(b"{\"model\":\"m\"} \xed\xa0\x80"),
        JsonErrorKind::InvalidUtf8
    );
    let err = scan_top_level(b"{\"k\xff\":1}").unwrap_err();
    assert_eq!(err.offset(), 3);
}

#[test]
fn huge_numbers_are_valid_json() {
    let body = r#"{"a":1e400,"b":-123456789012345678901234567890,"c":0.000000000000000000000000001e-999,"model":"m"}"#;
    assert_eq!(model_of(body).as_deref(), Some("m"));
}

fn nested(depth: usize) -> String {
    // The top-level object counts as one level.
    let inner = depth - 1;
    format!(
        "{{\"model\":\"m\",\"a\":{}1{}}}",
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    assert_eq!(model_of(&nested(MAX_NESTING)).as_deref(), Some("m"));
    let objects = format!(
        "{{{}}}",
        "\"a\":{".repeat(MAX_NESTING - 1) + &"}".repeat(MAX_NESTING - 1)
    );
    let objects = objects.replacen('{', "{\"model\":\"m\",", 1);
    assert_eq!(model_of(&objects).as_deref(), Some("m"));
}

#[test]
fn nesting_past_the_limit_is_rejected_without_recursing() {
    assert_eq!(
        rejection(nested(MAX_NESTING + 1).as_bytes()),
        JsonErrorKind::TooDeep { limit: MAX_NESTING }
    );
    // Deep enough to overflow any stack if it were validated recursively;
    // unbalanced too, so only the depth check can catch it first.
    let hostile = format!("{{\"a\":{}", "[{\"b\":".repeat(500_000));
    assert_eq!(
        rejection(hostile.as_bytes()),
        JsonErrorKind::TooDeep { limit: MAX_NESTING }
    );
    let err = scan_top_level(hostile.as_bytes()).unwrap_err();
    assert!(err.message().contains("nested deeper than 128"));
}
