//! Any bytes: the top-level scan never panics and agrees with serde_json on
//! the verdict, and when it accepts, splicing a new model in gives exactly
//! the body a full parse → set model → re-serialize would.
//!
//! Known, intended differences from serde_json's `Value`: numbers beyond f64
//! are valid JSON (serde_json refuses them), and serde_json's recursion limit
//! is one level lower than `MAX_NESTING`.
#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use shardgate::json::{push_json_string, scan_top_level, splice, JsonErrorKind};

struct TopLevelKeyCount;

impl<'de> Visitor<'de> for TopLevelKeyCount {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<IgnoredAny>()?;
            count += 1;
        }
        Ok(count)
    }
}

fuzz_target!(|data: &[u8]| {
    let scanned = scan_top_level(data);
    let parsed = serde_json::from_slice::<Value>(data);
    match (scanned, parsed) {
        (Ok(top), Ok(Value::Object(object))) => {
            assert_eq!(top.member_count, object.len());
            assert_eq!(data[top.object_end], b'}');
            let Some(model) = top.model else {
                assert!(!object.contains_key("model"));
                return;
            };
            assert_eq!(Some(model.value.as_ref()), object["model"].as_str());
            let mut literal = Vec::new();
            push_json_string(&mut literal, "new\"model\u{1}");
            let patched = splice(data, model.span, &literal).concat();
            let mut expected = object;
            expected.insert("model".into(), "new\"model\u{1}".into());
            let reparsed: Value = serde_json::from_slice(&patched).expect("patched body parses");
            assert_eq!(reparsed, Value::Object(expected));
        }
        (Ok(top), Ok(other)) => panic!("accepted a non-object {other:?}: {top:?}"),
        (Ok(_), Err(e)) => {
            let message = e.to_string();
            assert!(
                message.starts_with("number out of range")
                    || message.starts_with("recursion limit exceeded"),
                "scan accepted what serde_json refuses: {message}"
            );
        }
        (Err(e), Ok(Value::Object(object))) => match e.kind() {
            JsonErrorKind::DuplicateKey { .. } => {
                let members = serde_json::Deserializer::from_slice(data)
                    .deserialize_map(TopLevelKeyCount)
                    .unwrap();
                assert!(members > object.len(), "no duplicate: {e}");
            }
            JsonErrorKind::WrongType { param, .. } => {
                let value = &object[*param];
                let right_type = match *param {
                    "model" => value.is_string(),
                    "stream" => value.is_boolean() || value.is_null(),
                    _ => value.is_object() || value.is_null(),
                };
                assert!(!right_type, "{param} had the right type: {e}");
            }
            _ => panic!("scan refused a valid object: {e}"),
        },
        (Err(e), Ok(_)) => assert_eq!(e.kind(), &JsonErrorKind::NotAnObject),
        (Err(_), Err(_)) => {}
    }
});
