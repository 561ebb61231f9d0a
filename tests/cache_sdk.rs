//! The response cache through the official Python SDKs
//! (`tests/sdk/cache_sdk.py`): reordered keys and re-spaced JSON hit,
//! another tenant misses, a streamed hit replays chunk by chunk (OpenAI
//! and Anthropic), `Cache-Control` in seconds; and the same hits, misses
//! and replays through the official Node SDKs (`tests/sdk/node/cache.mjs`).
//! Skipped with a SKIP line when the SDKs are not installed, unless
//! `SHARDGATE_REQUIRE_SDK=1` (Python) or `SHARDGATE_REQUIRE_NODE_SDK=1`
//! (Node).

mod common;

use std::time::Duration;

use common::answers::realistic_mock;
use common::*;

/// A gateway with the cache on, an Anthropic provider for `claude-x`, and
/// two keys in two teams (`sk-red`, `sk-blue`).
fn gateway(mock: &MockUpstream) -> Gateway {
    let config = config_for(
        mock,
        "",
        &format!(
            "[providers.an]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"an-key\"\n\n\
             [cache]\nenabled = true\n\n\
             [[models]]\nname = \"claude-x\"\nprovider = \"an\"\n\n\
             [[teams]]\nid = \"red\"\n\n[[teams]]\nid = \"blue\"\n\n\
             [[keys]]\nname = \"r\"\nkey_env = \"RED\"\nteam = \"red\"\n\n\
             [[keys]]\nname = \"b\"\nkey_env = \"BLUE\"\nteam = \"blue\"\n",
            mock.base_url()
        ),
    );
    let opts = GatewayOpts::config(Driver::IoUring, config);
    Gateway::start_with_env(&opts, &[("RED", "sk-red"), ("BLUE", "sk-blue")])
}

#[test]
fn the_official_sdks_see_the_cache_as_documented() {
    if !python_modules_available("cache_sdk", "openai, anthropic") {
        return;
    }
    let mock = realistic_mock();
    let gw = gateway(&mock);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/cache_sdk.py");
    let out = run_python(
        script,
        &[gw.base_url().trim_end_matches("/v1"), "sk-red", "sk-blue"],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all cache SDK checks passed"),
        "{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    // Each distinct request reached the provider once (plus the refreshes
    // asked for: max-age=0 and no-cache).
    let chats = mock
        .requests()
        .iter()
        .filter(|r| r.target == "/v1/chat/completions")
        .count();
    let messages = mock
        .requests()
        .iter()
        .filter(|r| r.target == "/v1/messages")
        .count();
    assert_eq!((chats, messages), (5, 1), "{:#?}", mock.requests());
}

#[test]
fn the_official_node_sdks_see_the_cache_as_documented() {
    if !node_sdks_available("the_official_node_sdks_see_the_cache_as_documented") {
        return;
    }
    let mock = realistic_mock();
    let gw = gateway(&mock);
    let out = run_node(
        "cache.mjs",
        &[gw.base_url().trim_end_matches("/v1"), "sk-red", "sk-blue"],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    let upstream = |path: &str| mock.requests().iter().filter(|r| r.target == path).count();
    assert_eq!(
        (upstream("/v1/chat/completions"), upstream("/v1/messages")),
        (3, 1)
    );
}
