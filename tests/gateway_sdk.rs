//! The official OpenAI Python SDK through shardgate gives the same parsed
//! objects as straight to the mock upstream (tests/sdk/openai_sdk.py), under
//! both drivers. Skipped with a SKIP line when `python3 -c "import openai"`
//! fails, unless `SHARDGATE_REQUIRE_SDK=1`, which makes that a failure.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// True when the SDK can run here; panics if it cannot but is required.
fn sdk_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("SHARDGATE_REQUIRE_SDK").as_deref() == Ok("1") {
            panic!("SHARDGATE_REQUIRE_SDK=1 but `python3 -c \"import openai\"` fails");
        }
        println!("SKIP gateway_sdk: python3 with the openai package is not available");
    }
    ok
}

#[test]
fn openai_python_sdk_sees_the_same_results_through_the_gateway() {
    if !sdk_available() {
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
