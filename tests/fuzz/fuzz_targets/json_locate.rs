//! Any bytes: locating a top-level member never panics, and on a valid
//! object without duplicate keys it finds exactly the member serde_json
//! finds (or nothing, when the key is written with escapes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shardgate::json::{scan_top_level, top_level_value};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        let _ = top_level_value(body, b"usage");
        return;
    };
    let keys: Vec<&String> = object.keys().collect();
    let key = keys.get(usize::from(pick)).map_or("usage", |k| k.as_str());
    // A key with escapes is matched as written, so only plain keys compare.
    if key.contains(['"', '\\']) || key.chars().any(char::is_control) {
        return;
    }
    let located = top_level_value(body, key.as_bytes())
        .map(|raw| serde_json::from_slice::<Value>(raw).expect("a whole value"));
    // serde_json keeps the last of duplicate keys; the scan refuses them.
    if scan_top_level(body).is_err() {
        return;
    }
    match located {
        Some(value) => assert_eq!(Some(&value), object.get(key)),
        None => assert!(object.get(key).is_none() || body.contains(&b'\\')),
    }
});
