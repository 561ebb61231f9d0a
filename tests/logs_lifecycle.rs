//! The operational log as an operator reads it: with `--log-format json`
//! every line is one JSON object with a timestamp and a level, and each
//! lifecycle event (start, ready, reload applied and refused, ejection,
//! recovery, drain) is one line with its fields named; under journald
//! (`$JOURNAL_STREAM` naming stderr) lines carry the syslog priority and
//! no timestamp; a bad `SHARDGATE_LOG_FORMAT` stops the start-up.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn lines(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect()
}

fn events<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == name).collect()
}

#[test]
fn json_lines_name_each_lifecycle_event() {
    // `a` fails until told otherwise: ejected after one failure, then
    // recovered by the probe after its cool-down.
    let a = MockUpstream::with(|_| Reply::Error {
        status: 500,
        message: "broken".into(),
        headers: vec![],
    });
    let b = MockUpstream::start();
    let admin = free_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [resilience]\nmax_retries = 1\nbackoff_base_ms = 1\nbackoff_cap_ms = 5\n\
         breaker_consecutive_failures = 1\nbreaker_base_ejection_ms = 300\n\n\
         [providers.a]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [providers.b]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [[models]]\nname = \"m\"\ndeployments = [\n  {{ provider = \"a\", upstream_model = \"a-m\" }},\n  \
         {{ provider = \"b\", upstream_model = \"b-m\" }},\n]\n",
        a.base_url(),
        b.base_url()
    );
    let opts = GatewayOpts {
        shards: 1,
        ..GatewayOpts::config(Driver::IoUring, toml.clone())
    };
    let addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut gw = Gateway::spawn_at(&opts, addr, &["--log-format", "json"], &[]).unwrap();
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    for _ in 0..4 {
        assert_eq!(gw.post("/v1/chat/completions", chat).status, 200);
    }
    assert!(gw.wait_log("\"event\":\"ejection\"", 1, Duration::from_secs(5)));
    a.set_script(|_| Reply::Auto);
    std::thread::sleep(Duration::from_millis(400));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log().contains("\"event\":\"recovery\"") {
        assert!(Instant::now() < deadline, "no recovery: {}", gw.log());
        assert_eq!(gw.post("/v1/chat/completions", chat).status, 200);
    }

    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    assert_eq!(
        admin_request(admin_addr, "POST", "/admin/reload", &[]).0,
        200
    );
    gw.rewrite_config("this is not toml");
    assert_eq!(
        admin_request(admin_addr, "POST", "/admin/reload", &[]).0,
        422
    );
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some());

    let all = lines(&gw);
    for l in &all {
        assert!(l["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        assert!(
            ["error", "warn", "info", "debug"].contains(&l["level"].as_str().unwrap()),
            "{l}"
        );
    }
    let start = events(&all, "start");
    assert_eq!(start.len(), 1);
    assert_eq!(start[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(start[0]["pid"], gw.pid());
    let shard = events(&all, "shard_started");
    assert_eq!(shard.len(), 1);
    assert!(["io_uring", "epoll"].contains(&shard[0]["driver"].as_str().unwrap()));
    let ready = events(&all, "ready");
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["listen"], addr.to_string());
    assert_eq!(ready[0]["shards"], 1);
    assert!(ready[0]["ready_ms"].as_f64().unwrap() > 0.0);

    let ejection = events(&all, "ejection");
    assert_eq!(ejection[0]["level"], "warn");
    assert_eq!(ejection[0]["model"], "m");
    assert_eq!(ejection[0]["provider"], "a");
    assert_eq!(ejection[0]["upstream_model"], "a-m");
    assert_eq!(ejection[0]["failures"], 1);
    assert_eq!(ejection[0]["cool_down_ms"], 300);
    assert_eq!(events(&all, "probe")[0]["provider"], "a");
    let recovery = events(&all, "recovery");
    assert_eq!(recovery.len(), 1);
    assert_eq!(recovery[0]["deployment"], 0);

    let reloads = events(&all, "reload");
    assert_eq!(reloads.len(), 2, "{reloads:?}");
    assert_eq!(reloads[0]["outcome"], "applied");
    assert_eq!(reloads[0]["generation"], 1);
    assert_eq!(reloads[1]["outcome"], "refused");
    assert_eq!(reloads[1]["level"], "error");
    assert_eq!(reloads[1]["generation"], 1);
    assert!(!reloads[1]["error"].as_str().unwrap().is_empty());

    let drain = events(&all, "drain");
    assert_eq!(drain.len(), 1);
    assert_eq!(drain[0]["signal"], libc::SIGTERM);
    assert!(drain[0]["timeout_ms"].as_u64().is_some());
    assert!(events(&all, "drained")[0]["drain_ms"].as_u64().is_some());
}

/// Starts the gateway with stderr on a file of ours, so a test can say
/// whether `$JOURNAL_STREAM` names it; the log once it is ready.
fn run_with_journal_stream(journal: impl FnOnce(&std::fs::Metadata) -> String) -> String {
    let dir = TempDir::new("journal");
    let path = dir.0.join("stderr.log");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let mut child = gateway_command()
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", "off", "--shards", "1"])
        .env("OPENAI_API_KEY", "sk-unused")
        .env("JOURNAL_STREAM", journal(&meta))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&path).unwrap();
        if log.contains("listening on") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    log
}

#[test]
fn under_journald_lines_have_a_priority_and_no_timestamp() {
    let log = run_with_journal_stream(|m| format!("{}:{}", m.dev(), m.ino()));
    assert!(log.contains("listening on"), "{log}");
    for line in log.lines() {
        assert!(
            line.starts_with("<6>shardgate info: ") || line.starts_with("<4>shardgate warn: "),
            "{line}"
        );
    }
    // Inherited from a parent whose journal stream is not our stderr: a
    // terminal's or a file's line, with its timestamp.
    let log = run_with_journal_stream(|m| format!("{}:{}", m.dev(), m.ino() + 1));
    let first = log.lines().next().unwrap();
    assert!(!first.starts_with('<'), "{first}");
    assert_eq!(
        first.as_bytes()[4],
        b'-',
        "an RFC 3339 timestamp first: {first}"
    );
    assert!(first.contains("Z shardgate info: event=start"), "{first}");
}

#[test]
fn a_bad_log_format_in_the_environment_stops_the_start() {
    let out = gateway_command()
        .args(["--admin-listen", "off"])
        .env("SHARDGATE_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHARDGATE_LOG_FORMAT=yaml"), "{err}");
    let out = gateway_command()
        .args(["--log-level", "loud"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loud"));
}
