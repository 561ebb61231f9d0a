//! Reading what the Anthropic translation needs from an OpenAI chat
//! completion in one validating walk over its bytes: the id, the first
//! choice's message (text, refusal, tool calls) and finish reason, and the
//! usage counts.
//!
//! Validating the whole body first and then finding the fields with the
//! cursor (`raw`) read the choice's bytes four times: the walk, then the
//! top level's, the choice's and the message's cursor passes
//! (bench/README.md, issue 19 item 2). Here the walk goes into the
//! containers that hold a wanted field and validates everything else as it
//! passes it (`crate::json::walk`), so each byte is read once.
//!
//! Invariants:
//! - Accepts and refuses exactly what `raw::document` does, with the same
//!   error: the walker makes the same parser calls in the same order, and
//!   nothing is judged about the fields until the walk has finished.
//! - Reads each field as `raw`'s `pick` would: a repeated key reads as its
//!   last occurrence, and a repeated container forgets what the earlier one
//!   held; a field in a container of the wrong type reads as absent.
//! - At most [`MAX_RESPONSE_BLOCKS`] tool calls are kept; past them only a
//!   flag is, and the rest is validated and dropped.

use std::borrow::Cow;

use sonic_rs::parser::ParseStatus;

use super::raw::{utf8, walk_error, Raw, NULL};
use super::response::MAX_RESPONSE_BLOCKS;
use super::TranslateError;
use crate::json::walk::MemberWalker;
use crate::json::JsonError;

/// The fields of a chat completion the translation reads, each a validated
/// value of the body ([`NULL`] when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChatCompletion<'a> {
    pub id: Raw<'a>,
    /// Whether `choices` is an array whose first element is an object.
    pub has_choice: bool,
    pub content: Raw<'a>,
    pub refusal: Raw<'a>,
    pub tool_calls: Vec<ToolCall<'a>>,
    /// More than [`MAX_RESPONSE_BLOCKS`] tool calls (not all kept).
    pub too_many_tool_calls: bool,
    pub finish_reason: Raw<'a>,
    pub prompt_tokens: Raw<'a>,
    pub completion_tokens: Raw<'a>,
    pub cached_tokens: Raw<'a>,
    /// The value of the first top-level member whose key is written
    /// `"usage"` (escapes not decoded): what `api::usage`'s locator finds
    /// in a valid body, so the gateway's accounting need not look again.
    pub usage_value: Option<&'a [u8]>,
}

/// One element of the message's `tool_calls` (all [`NULL`] when it is not
/// an object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ToolCall<'a> {
    pub id: Raw<'a>,
    pub name: Raw<'a>,
    pub arguments: Raw<'a>,
}

const NO_CALL: ToolCall<'static> = ToolCall {
    id: NULL,
    name: NULL,
    arguments: NULL,
};

/// Validates `body` as one JSON object (as `raw::document`) and reads the
/// chat completion's fields on the way.
pub(super) fn read(body: &[u8]) -> Result<ChatCompletion<'_>, TranslateError> {
    read_text(utf8(body)?).map_err(walk_error)
}

type Key<'a> = (usize, &'a str, ParseStatus);

/// A key's name, decoded (borrowed unless it has escapes, which are rare).
fn name<'a>((_, raw, status): Key<'a>) -> Cow<'a, str> {
    match status {
        ParseStatus::None => Cow::Borrowed(&raw[1..raw.len() - 1]),
        // Validated, so decoding cannot fail.
        ParseStatus::HasEscaped => Raw::walked(raw).as_str().unwrap_or_default(),
    }
}

/// The value that is next, validated, as a [`Raw`].
fn value<'a>(walker: &mut MemberWalker<'a>, depth: usize) -> Result<Raw<'a>, JsonError> {
    walker.value(depth).map(|(_, text, _)| Raw::walked(text))
}

fn read_text(text: &str) -> Result<ChatCompletion<'_>, JsonError> {
    let mut walker = MemberWalker::new(text)?;
    let mut read = ChatCompletion {
        id: NULL,
        has_choice: false,
        content: NULL,
        refusal: NULL,
        tool_calls: Vec::new(),
        too_many_tool_calls: false,
        finish_reason: NULL,
        prompt_tokens: NULL,
        completion_tokens: NULL,
        cached_tokens: NULL,
        usage_value: None,
    };
    while let Some(key) = walker.next_key()? {
        match &*name(key) {
            "id" => read.id = value(&mut walker, 0)?,
            "choices" => {
                read.has_choice = false;
                read.finish_reason = NULL;
                read.forget_message();
                choices(&mut walker, &mut read)?;
            }
            "usage" => {
                read.prompt_tokens = NULL;
                read.completion_tokens = NULL;
                read.cached_tokens = NULL;
                walker.peek();
                let start = walker.offset();
                usage(&mut walker, &mut read)?;
                if read.usage_value.is_none() && key.1 == "\"usage\"" {
                    read.usage_value = Some(&text.as_bytes()[start..walker.offset()]);
                }
            }
            _ => drop(walker.value(0)?),
        }
        walker.end_member()?;
    }
    walker.finish()?;
    Ok(read)
}

impl ChatCompletion<'_> {
    fn forget_message(&mut self) {
        self.content = NULL;
        self.refusal = NULL;
        self.tool_calls.clear();
        self.too_many_tool_calls = false;
    }
}

/// `choices`, a top-level member's value: only its first element is read.
fn choices<'a>(
    walker: &mut MemberWalker<'a>,
    read: &mut ChatCompletion<'a>,
) -> Result<(), JsonError> {
    if walker.peek() != Some(b'[') {
        return walker.value(0).map(drop);
    }
    if !walker.enter_array(1)? {
        return Ok(());
    }
    if walker.peek() == Some(b'{') {
        read.has_choice = true;
        choice(walker, read)?;
    } else {
        walker.value(1)?;
    }
    while walker.next_in_array()? {
        walker.value(1)?;
    }
    Ok(())
}

/// The first choice, an object two deep.
fn choice<'a>(
    walker: &mut MemberWalker<'a>,
    read: &mut ChatCompletion<'a>,
) -> Result<(), JsonError> {
    let mut key = walker.enter_object(2)?;
    while let Some(found) = key {
        match &*name(found) {
            "message" => {
                read.forget_message();
                if walker.peek() == Some(b'{') {
                    message(walker, read)?;
                } else {
                    walker.value(2)?;
                }
            }
            "finish_reason" => read.finish_reason = value(walker, 2)?,
            _ => drop(walker.value(2)?),
        }
        key = walker.next_key_in()?;
    }
    Ok(())
}

/// The choice's message, three deep.
fn message<'a>(
    walker: &mut MemberWalker<'a>,
    read: &mut ChatCompletion<'a>,
) -> Result<(), JsonError> {
    let mut key = walker.enter_object(3)?;
    while let Some(found) = key {
        match &*name(found) {
            "content" => read.content = value(walker, 3)?,
            "refusal" => read.refusal = value(walker, 3)?,
            "tool_calls" => {
                read.tool_calls.clear();
                read.too_many_tool_calls = false;
                if walker.peek() == Some(b'[') {
                    tool_calls(walker, read)?;
                } else {
                    walker.value(3)?;
                }
            }
            _ => drop(walker.value(3)?),
        }
        key = walker.next_key_in()?;
    }
    Ok(())
}

/// The message's `tool_calls`, four deep.
fn tool_calls<'a>(
    walker: &mut MemberWalker<'a>,
    read: &mut ChatCompletion<'a>,
) -> Result<(), JsonError> {
    if !walker.enter_array(4)? {
        return Ok(());
    }
    loop {
        if read.tool_calls.len() == MAX_RESPONSE_BLOCKS {
            read.too_many_tool_calls = true;
            walker.value(4)?;
        } else if walker.peek() == Some(b'{') {
            let call = tool_call(walker)?;
            read.tool_calls.push(call);
        } else {
            walker.value(4)?;
            read.tool_calls.push(NO_CALL);
        }
        if !walker.next_in_array()? {
            return Ok(());
        }
    }
}

/// One tool call, five deep, and its `function`, six.
fn tool_call<'a>(walker: &mut MemberWalker<'a>) -> Result<ToolCall<'a>, JsonError> {
    let mut call = NO_CALL;
    let mut key = walker.enter_object(5)?;
    while let Some(found) = key {
        match &*name(found) {
            "id" => call.id = value(walker, 5)?,
            "function" => {
                call.name = NULL;
                call.arguments = NULL;
                if walker.peek() == Some(b'{') {
                    let mut key = walker.enter_object(6)?;
                    while let Some(found) = key {
                        match &*name(found) {
                            "name" => call.name = value(walker, 6)?,
                            "arguments" => call.arguments = value(walker, 6)?,
                            _ => drop(walker.value(6)?),
                        }
                        key = walker.next_key_in()?;
                    }
                } else {
                    walker.value(5)?;
                }
            }
            _ => drop(walker.value(5)?),
        }
        key = walker.next_key_in()?;
    }
    Ok(call)
}

/// `usage`, a top-level member's value, and its `prompt_tokens_details`.
fn usage<'a>(
    walker: &mut MemberWalker<'a>,
    read: &mut ChatCompletion<'a>,
) -> Result<(), JsonError> {
    if walker.peek() != Some(b'{') {
        return walker.value(0).map(drop);
    }
    let mut key = walker.enter_object(1)?;
    while let Some(found) = key {
        match &*name(found) {
            "prompt_tokens" => read.prompt_tokens = value(walker, 1)?,
            "completion_tokens" => read.completion_tokens = value(walker, 1)?,
            "prompt_tokens_details" => {
                read.cached_tokens = NULL;
                if walker.peek() == Some(b'{') {
                    let mut key = walker.enter_object(2)?;
                    while let Some(found) = key {
                        match &*name(found) {
                            "cached_tokens" => read.cached_tokens = value(walker, 2)?,
                            _ => drop(walker.value(2)?),
                        }
                        key = walker.next_key_in()?;
                    }
                } else {
                    walker.value(1)?;
                }
            }
            _ => drop(walker.value(1)?),
        }
        key = walker.next_key_in()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::response::openai_response_to_anthropic;
    use super::super::response::two_pass::openai_response_to_anthropic_two_pass as two_pass;
    use super::*;
    use crate::api::usage::{openai_response_usage, openai_usage_value};
    use crate::json::MAX_NESTING;

    const FIXTURES: [&str; 5] = [
        include_str!("../../../tests/fixtures/translate/openai_response_text.json"),
        include_str!("../../../tests/fixtures/translate/openai_response_tool_calls.json"),
        include_str!("../../../tests/fixtures/translate/openai_response_length.json"),
        include_str!("../../../tests/fixtures/translate/openai_response_content_filter.json"),
        include_str!("../../../tests/fixtures/usage/openai_chat_cached.json"),
    ];

    /// What the loadgen mock sends (the benchmark's body).
    const MOCK: &str = r#"{"id":"chatcmpl-mock1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":[{"index":0,"message":{"role":"assistant","content":"tok tok tok tok tok tok tok tok tok tok tok tok tok tok tok tok","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}"#;

    /// The one-pass translation and the two-pass one agree: the same bytes,
    /// or the same error; and where it reads, the usage it kept is the
    /// locator's.
    fn same(body: &[u8]) {
        same_translation(body);
        same_usage(body);
    }

    fn same_translation(body: &[u8]) {
        assert_eq!(
            openai_response_to_anthropic(body, "claude-x"),
            two_pass(body, "claude-x"),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }

    fn same_usage(body: &[u8]) {
        if let Ok(read) = read(body) {
            assert_eq!(
                read.usage_value.and_then(openai_usage_value),
                openai_response_usage(body),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_usage_kept_is_the_first_written_usage() {
        for (body, kept) in [
            (
                r#"{"usage":{"prompt_tokens":1},"usage":null}"#,
                Some(r#"{"prompt_tokens":1}"#),
            ),
            (
                r#"{"\u0075sage":{"prompt_tokens":1},"usage": 7 }"#,
                Some("7"),
            ),
            (
                r#"{"usage" : [1, {"a":2}] , "x":1}"#,
                Some(r#"[1, {"a":2}]"#),
            ),
            (r#"{"x":{"usage":{}}}"#, None),
        ] {
            let read = read(body.as_bytes()).unwrap();
            assert_eq!(read.usage_value, kept.map(str::as_bytes), "{body}");
            same_usage(body.as_bytes());
        }
        same_usage(FIXTURES[4].as_bytes());
        assert!(openai_usage_value(b"null").is_none());
    }

    #[test]
    fn reads_the_fields_of_a_completion() {
        let mock = read(MOCK.as_bytes()).unwrap();
        assert_eq!(mock.id.text(), r#""chatcmpl-mock1""#);
        assert!(mock.has_choice);
        assert_eq!(mock.content.str_inner().unwrap().len(), 63);
        assert!(mock.refusal.is_null());
        assert!(mock.tool_calls.is_empty());
        assert_eq!(mock.finish_reason.text(), r#""stop""#);
        assert_eq!(mock.prompt_tokens.as_u64(), Some(12));
        assert_eq!(mock.completion_tokens.as_u64(), Some(16));
        assert!(mock.cached_tokens.is_null());

        let tools = read(FIXTURES[1].as_bytes()).unwrap();
        assert!(!tools.tool_calls.is_empty());
        assert!(tools.tool_calls.iter().all(|c| c.name.is_str()));
    }

    #[test]
    fn fixtures_translate_as_before() {
        for body in FIXTURES.iter().chain([&MOCK]) {
            same(body.as_bytes());
            assert!(openai_response_to_anthropic(body.as_bytes(), "m").is_ok());
        }
    }

    #[test]
    fn every_truncation_and_every_byte_dropped_fails_or_reads_as_before() {
        for body in FIXTURES.iter().chain([&MOCK]) {
            let bytes = body.as_bytes();
            for cut in 0..bytes.len() {
                same(&bytes[..cut]);
                let mut dropped = bytes.to_vec();
                dropped.remove(cut);
                same(&dropped);
            }
        }
    }

    #[test]
    fn every_byte_replaced_by_a_delimiter_fails_or_reads_as_before() {
        for body in FIXTURES.iter().chain([&MOCK]) {
            for at in 0..body.len() {
                for b in [
                    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'x', 0x01, 0xff,
                ] {
                    let mut bytes = body.as_bytes().to_vec();
                    bytes[at] = b;
                    same(&bytes);
                }
            }
        }
    }

    #[test]
    fn repeated_and_mistyped_fields_read_like_pick() {
        for body in [
            // Repeated keys: the last wins, a repeated container starts over.
            r#"{"id":"chatcmpl-a","id":"chatcmpl-b","choices":[{"message":{"content":"x","tool_calls":[{"id":"c"}]}}],"choices":[{"message":{"refusal":"no"}}]}"#,
            r#"{"choices":[{"message":{"content":"x"},"message":{"refusal":"r"},"finish_reason":"length"}]}"#,
            r#"{"choices":[{"finish_reason":"length","message":{"content":"x"},"finish_reason":null}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}],"tool_calls":[]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"id":"a","function":{"name":"f"},"function":{"arguments":"[1]"}}]}}]}"#,
            r#"{"choices":[{"message":{}}],"usage":{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":2},"prompt_tokens_details":{}},"usage":{"completion_tokens":3}}"#,
            r#"{"choices":[{"message":{}}],"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":2,"cached_tokens":4}}}"#,
            // Wrong types: read as absent.
            r#"{"id":7,"choices":[{"message":"hi","finish_reason":3}],"usage":[1]}"#,
            r#"{"choices":[{"message":{"content":["a"],"refusal":{},"tool_calls":{"id":"x"}}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[1,"x",null,{"id":2,"function":[]},{"function":{"name":{},"arguments":5}}]}}]}"#,
            r#"{"choices":[{"message":{}}],"usage":{"prompt_tokens":"5","completion_tokens":1.0,"prompt_tokens_details":[{"cached_tokens":1}]}}"#,
            r#"{"choices":[{"message":{}}],"usage":{"prompt_tokens":-1,"completion_tokens":1e3}}"#,
            // Escaped keys compare decoded; escaped values are kept escaped.
            r#"{"\u0069d":"chatcmpl-\u00e9","ch\u006fices":[{"m\u0065ssage":{"c\u006fntent":"a\"b\n","tool_c\u0061lls":[{"\u0069d":"c\\1","function":{"n\u0061me":"f\u00e9","\u0061rguments":"{\"a\":\"\\u00e9\"}"}}]}}]}"#,
            // No choice: not an array, empty, or a first element not an object.
            r#"{"choices":{"message":{}}}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":[1,{"message":{"content":"x"}}]}"#,
            r#"{"choices":[{"message":{"content":"x"}}],"choices":null}"#,
            r#"{}"#,
            // Bad tool arguments fail after the walk, in order.
            r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{oops"}},{"function":{"arguments":"1 2"}}]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"   "}}]}}]}"#,
            // Other choices, other members: validated, not read.
            r#"{"choices":[{"message":{"content":"a"}},{"message":{"content":"b"}},[],{}],"x":[{"y":[]}],"z":{}}"#,
        ] {
            same(body.as_bytes());
        }
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_same_error() {
        for body in [
            "",
            " ",
            "[]",
            "\"x\"",
            "nul",
            "{",
            "{}}",
            "{} x",
            r#"{"choices":[{"message":{"content":"\x"}}]}"#,
            r#"{"choices":[{"message":{"content":"\u12G4"}}]}"#,
            r#"{"choices":[{"message":{"content":"\ud83e"}}]}"#,
            r#"{"choices":[{"message":{"content":"a"}}],"usage":{"prompt_tokens":01}}"#,
            r#"{"choices":[{"message":{"content":"a"}}],"usage":{"prompt_tokens":1,}}"#,
            r#"{"choices":[{"message":{"content":"a"},}]}"#,
            r#"{"choices":[{"message":{"content":"a"}},]}"#,
            r#"{"choices":[{"message":{"content":"a"}} {}]}"#,
            r#"{"choices":[{"message":{"content":"a"]}]}"#,
            r#"{"choices":[{"message":{"content":"a"}]}"#,
            r#"{"choices":[{"message":{"content" "a"}}]}"#,
            r#"{"choices":[{"message":{1:"a"}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f",}}]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"function":{"name":tru}}]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[,]}}]}"#,
            r#"{"choices":[,],"id":"x"}"#,
            r#"{"choices":[{"message":{"content":"a"}}],"usage":{"prompt_tokens_details":{"cached_tokens":}}}"#,
            "{\"choices\":[{\"message\":{\"content\":\"a\u{1}b\"}}]}",
            "{\"choices\":[{\"message\":{\"content\":\"a\"}}]}\u{0}",
        ] {
            same(body.as_bytes());
            assert!(
                openai_response_to_anthropic(body.as_bytes(), "m").is_err(),
                "{body}"
            );
        }
        same(b"{\"id\":\"\xff\",\"choices\":[{}]}");
        same(b"{\"choices\":[{\"message\":{\"content\":\"\xc3\"}}]}");
    }

    #[test]
    fn nesting_is_capped_where_the_walk_caps_it() {
        // Open containers around the innermost one, by where it sits. (Not
        // the usage: serde reads a deep one by recursion, too deep for a
        // test thread's stack unoptimized; the usage paths are the same.)
        let wrappers: [(&str, &str, usize); 6] = [
            (r#"{"choices":[{"message":{"content":"#, "}}]}", 3),
            (
                r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"#,
                "}}]}}]}",
                6,
            ),
            (r#"{"choices":[{"message":{"tool_calls":["#, "]}}]}", 4),
            (r#"{"choices":[{"message":{}},"#, "]}", 1),
            (
                r#"{"usage":{"prompt_tokens_details":{"cached_tokens":"#,
                "}}}",
                2,
            ),
            (r#"{"x":"#, "}", 0),
        ];
        for (open, close, around) in wrappers {
            for depth in [
                MAX_NESTING - around - 2,
                MAX_NESTING - around - 1,
                MAX_NESTING - around,
            ] {
                let body = format!("{open}{}{}{close}", "[".repeat(depth), "]".repeat(depth));
                same_translation(body.as_bytes());
                let err = read(body.as_bytes()).err();
                assert_eq!(
                    err.is_some(),
                    depth + around >= MAX_NESTING,
                    "{depth} inside {around}: {err:?}"
                );
            }
            // Hostile depth: refused, no recursion.
            let body = format!("{open}{}{close}", "[{\"a\":".repeat(100_000));
            same_translation(body.as_bytes());
        }
    }

    #[test]
    fn too_many_tool_calls_are_refused_after_the_walk() {
        let calls = |n: usize| {
            let one = r#"{"id":"c","function":{"name":"f","arguments":"{}"}}"#;
            format!(
                r#"{{"choices":[{{"message":{{"tool_calls":[{}]}}}}]}}"#,
                vec![one; n].join(",")
            )
        };
        let limit = calls(MAX_RESPONSE_BLOCKS);
        same(limit.as_bytes());
        assert!(openai_response_to_anthropic(limit.as_bytes(), "m").is_ok());
        let over = calls(MAX_RESPONSE_BLOCKS + 1);
        same(over.as_bytes());
        let over_read = read(over.as_bytes()).unwrap();
        assert!(over_read.too_many_tool_calls);
        assert_eq!(over_read.tool_calls.len(), MAX_RESPONSE_BLOCKS);
        // A syntax error after them is still the error.
        let broken = format!("{},", &over[..over.len() - 1]);
        same(broken.as_bytes());
        assert!(matches!(
            openai_response_to_anthropic(broken.as_bytes(), "m"),
            Err(TranslateError::Json(_))
        ));
    }

    /// JSON text built from the pieces a chat completion has, wanted keys
    /// and others, nested at random; sometimes broken.
    fn json_value(depth: u32) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("12".to_owned()),
            Just("-1.5e3".to_owned()),
            Just(r#""chatcmpl-1""#.to_owned()),
            Just(r#""stop""#.to_owned()),
            Just(r#""tool_calls""#.to_owned()),
            Just(r#""a\"b\u00e9""#.to_owned()),
            Just(r#""{\"q\":1}""#.to_owned()),
            Just(r#""""#.to_owned()),
        ];
        leaf.prop_recursive(depth, 64, 6, |inner| {
            let key = proptest::sample::select(vec![
                "id",
                "choices",
                "message",
                "content",
                "refusal",
                "tool_calls",
                "function",
                "name",
                "arguments",
                "finish_reason",
                "usage",
                "prompt_tokens",
                "completion_tokens",
                "prompt_tokens_details",
                "cached_tokens",
                "input_tokens",
                "prompt_cache_hit_tokens",
                "cache_write_tokens",
                "other",
                "\\u0069d",
            ]);
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec((key, inner), 0..5).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\": {v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn any_document_reads_as_the_two_passes_read_it(
            doc in json_value(7),
            cut in proptest::option::of(0usize..400),
            noise in proptest::option::of((0usize..400, proptest::sample::select(b"\"\\{}[],: x\x01".to_vec()))),
        ) {
            let mut bytes = doc.into_bytes();
            if let Some((at, b)) = noise {
                let at = at.min(bytes.len());
                bytes.insert(at, b);
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            proptest::prop_assert_eq!(
                openai_response_to_anthropic(&bytes, "m"),
                two_pass(&bytes, "m")
            );
            same_usage(&bytes);
        }

        #[test]
        fn completion_shaped_documents_read_as_the_two_passes_read_them(
            id in json_value(1),
            message in proptest::collection::vec((proptest::sample::select(vec!["content", "refusal", "tool_calls", "role", "content"]), json_value(4)), 0..5),
            finish in json_value(1),
            usage in json_value(3),
        ) {
            let message: Vec<String> = message.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let body = format!(
                r#"{{"id":{id},"choices":[{{"index":0,"message":{{{}}},"finish_reason":{finish}}}],"usage":{usage}}}"#,
                message.join(",")
            );
            proptest::prop_assert_eq!(
                openai_response_to_anthropic(body.as_bytes(), "m"),
                two_pass(body.as_bytes(), "m")
            );
            same_usage(body.as_bytes());
        }
    }
}
