//! The official OpenAI Python SDK through shardgate gives the same parsed
//! objects as straight to the mock upstream (tests/sdk/openai_sdk.py), under
//! both drivers. Skipped with a SKIP line when `python3 -c "import openai"`
//! fails, unless `SHARDGATE_REQUIRE_SDK=1`, which makes that a failure.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn openai_python_sdk_sees_the_same_results_through_the_gateway() {
    if !python_modules_available("gateway_sdk", "openai") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py");
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let (gateway, direct) = (gw.base_url(), mock.base_url());
        let out = run_python(
            script,
            &["--gateway", &gateway, "--direct", &direct],
            Duration::from_secs(60),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{d:?}: SDK script failed ({}):\n{stdout}\n{stderr}\ngateway log:\n{}",
            out.status,
            gw.log()
        );
        assert!(stdout.contains("all SDK results match"), "{stdout}");
        // The SDK's own key never reached the upstream; the provider's did.
        let reqs = mock.requests();
        assert!(reqs.len() >= 20, "only {} upstream requests", reqs.len());
        let via_gateway: Vec<_> = reqs
            .iter()
            .filter(|r| r.header("authorization") == Some(&*format!("Bearer {PROVIDER_KEY}")))
            .collect();
        assert!(!via_gateway.is_empty());
        assert!(via_gateway
            .iter()
            .all(|r| !r.headers.iter().any(|(_, v)| v.contains("sk-client-key"))));
    });
}
