//! The `shardgate` command line: `--check-config` on valid and invalid files
//! (the message names the bad field), refusing a port another process
//! holds with a clear error, bad arguments, and the zero-config start with
//! no key at all (it starts, and `/health` answers).

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs the binary to completion (killed after 10 s) and returns its output.
fn run(args: &[&str]) -> Output {
    let mut child = gateway_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "shardgate {args:?} did not exit within 10 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = TempDir::new("cli");
    let path = dir.write(
        "ok.toml",
        r#"
default_provider = "a"
[server]
listen = "127.0.0.1:18080"
shards = 2
[limits]
max_body_bytes = 1048576
[upstream]
first_byte_timeout_ms = 1000
[providers.a]
base_url = "http://127.0.0.1:9/v1"
api_key = "k"
[providers.b]
base_url = "https://api.example.com/v1"
[[models]]
name = "fast"
provider = "b"
upstream_model = "b-fast"
aliases = ["quick"]
"#,
    );
    let out = run(&["--check-config", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid"), "{}", text(&out.stdout));
}

#[test]
fn check_config_rejects_invalid_files_naming_the_field() {
    // (file, text the error must contain)
    let table: &[(&str, &[&str])] = &[
        ("[server]\nlisten = \"not an address\"\n", &["server.listen"]),
        ("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &["lisen"]),
        ("[limits]\nmax_body_bytes = 0\n", &["limits.max_body_bytes"]),
        ("[upstream]\nconnect_timeout_ms = 0\n", &["upstream.connect_timeout_ms"]),
        (
            "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\nfirst_byte_timeout_ms = 0\n",
            &["providers.a.first_byte_timeout_ms"],
        ),
        ("[providers.a]\nbase_url = \"ftp://x\"\n", &["providers.a.base_url"]),
        ("[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\nkind = \"nope\"\n", &["providers.a.kind"]),
        ("default_provider = \"zz\"\n", &["default_provider", "zz"]),
        (
            "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"b\"\n",
            &["models[0].provider"],
        ),
        ("bogus_top_level = 1\n", &["bogus_top_level"]),
        ("[server\n", &["invalid"]),
    ];
    let dir = TempDir::new("cli");
    for (i, &(toml, needles)) in table.iter().enumerate() {
        let path = dir.write(&format!("bad{i}.toml"), toml);
        let out = run(&["--check-config", "--config", path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{toml:?} was accepted");
        for n in needles {
            assert!(
                err.contains(n),
                "{toml:?}: error does not name {n:?}: {err}"
            );
        }
    }
    // A missing file is an error too.
    let out = run(&["--check-config", "--config", "/nonexistent/shardgate.toml"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/shardgate.toml"));
}

#[test]
fn bad_arguments_are_refused() {
    for args in [&["--bogus"][..], &["--shards", "many"], &["--listen"]] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
    let out = run(&["--listen", "nope", "--check-config"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("server.listen"));
}

#[test]
fn a_port_held_by_another_process_is_a_clear_error() {
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = other.local_addr().unwrap().to_string();
    let out = run(&["--listen", &addr, "--shards", "1"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&addr) && err.contains("already in use"),
        "{err}"
    );

    // Another shardgate (SO_REUSEPORT) holding it is refused as well.
    each_driver(|d| {
        let first = Gateway::start(GatewayOpts {
            driver: d,
            config: None,
            base_url: None,
            api_key: None,
            shards: 1,
        });
        let addr = first.addr.to_string();
        let out = run(&["--listen", &addr, "--shards", "1"]);
        assert!(!out.status.success(), "a second gateway started on {addr}");
        assert!(
            text(&out.stderr).contains("already in use"),
            "{}",
            text(&out.stderr)
        );
        first.assert_healthy();
    });
}

#[test]
fn zero_config_without_a_key_starts_and_answers_health() {
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts {
            driver: d,
            config: None,
            base_url: None,
            api_key: None,
            shards: 1,
        });
        assert!(gw.log().contains("no providers configured"), "{}", gw.log());
        assert_eq!(gw.get("/health").status, 200);
        // With nothing to route to, a model is not found (not a crash).
        let r = gw.post(
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":[]}"#,
        );
        let e = r.assert_openai_error(404);
        assert_eq!(e["code"], "model_not_found");
        // ... and the answer says why: nothing is configured.
        let why = e["message"].as_str().unwrap();
        assert!(why.contains("no provider configured"), "{why}");
        let models = gw.get("/v1/models");
        assert_eq!(models.status, 200);
        assert_eq!(models.json()["object"], "list");
        gw.assert_healthy();
    });
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("--check-config"));
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("shardgate "));
}

#[test]
fn check_config_without_a_provider_fails_and_says_what_to_set() {
    let dir = TempDir::new("cli");
    let path = dir.write("empty.toml", "[server]\nlisten = \"127.0.0.1:18081\"\n");
    let out = run(&["--check-config", "--config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a config with no provider was called valid"
    );
    assert!(
        err.contains(&format!("no [providers] in {}", path.display())),
        "{err}"
    );
    assert!(
        !err.contains("OPENAI_API_KEY"),
        "a --config user is told to set variables: {err}"
    );
    // Zero-config with no variable set names the variables.
    let out = run(&["--check-config"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("OPENAI_API_KEY") && err.contains("OLLAMA_BASE_URL"),
        "{err}"
    );
    // Serving such a file still starts; its warning is worded for the file.
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(
            d,
            "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n",
        ));
        let log = gw.log();
        assert!(
            log.contains("no providers configured: no [providers] in"),
            "{log}"
        );
        assert!(!log.contains("OPENAI_API_KEY"), "{log}");
        gw.assert_healthy();
    });
}

#[test]
fn check_config_refuses_a_cloud_provider_without_a_key() {
    let dir = TempDir::new("cli");
    let path = dir.write("nokey.toml", "[providers.openai]\n");
    let out = run(&["--check-config", "--config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a keyless openai was called valid");
    assert!(
        err.contains("providers.openai.api_key") && err.contains("OPENAI_API_KEY"),
        "{err}"
    );
}
