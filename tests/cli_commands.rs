//! The operator's commands as a user runs them, against a real gateway:
//! every `--help` lists what it says; `keys create` prints a secret that
//! works through the gateway at once, `keys list` shows the key, `keys
//! revoke` makes the gateway refuse it; `status` reports ready, the shards
//! with their driver and the generation, which a reload moves; a wrong
//! token, no token and an unreachable admin listener fail with a clear
//! line and exit 1; `check-config` is `--check-config`.

mod common;

use std::net::SocketAddr;
use std::process::Output;

use common::*;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-for-cli-tests-42";

/// The binary with a clean environment (no provider keys, no admin token).
fn shardgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = gateway_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run shardgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

fn config(mock: &MockUpstream, admin: SocketAddr, model: &str) -> String {
    config_for(
        mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
             [[models]]\nname = \"{model}\"\nprovider = \"openai\"\nupstream_model = \"up-{model}\"\n"
        ),
    )
}

fn start(mock: &MockUpstream, driver: Driver, shards: usize) -> (Gateway, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut opts = GatewayOpts::config(driver, config(mock, admin, "first"));
    opts.shards = shards;
    (Gateway::start(opts), admin)
}

fn chat(gw: &Gateway, secret: &str, model: &str) -> Response {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {secret}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.to_string().len()
    );
    gw.connect().request(req).unwrap()
}

#[test]
fn every_command_has_help_listing_what_it_takes() {
    for (args, says) in [
        (
            &["--help"][..],
            &[
                "check-config",
                "status",
                "keys",
                "--check-config",
                "--config",
            ][..],
        ),
        (&["check-config", "--help"], &["--config", "invalid"]),
        (
            &["status", "--help"],
            &[
                "--admin",
                "--json",
                "--config",
                "--timeout",
                "generation",
                "driver",
            ],
        ),
        (&["keys", "--help"], &["create", "list", "revoke"]),
        (
            &["keys", "create", "--help"],
            &[
                "--name",
                "--team",
                "--model",
                "--rpm",
                "--tpm",
                "--max-concurrent",
                "--budget-usd",
                "--budget-period",
                "--expires-at",
                "--metadata",
                "--admin",
                "--token",
                "SHARDGATE_ADMIN_TOKEN",
                "--json",
            ],
        ),
        (
            &["keys", "list", "--help"],
            &["--admin", "--token", "--json"],
        ),
        (
            &["keys", "revoke", "--help"],
            &["<ID>", "--admin", "--token"],
        ),
    ] {
        let out = ok(&shardgate(args, &[]));
        for s in says {
            assert!(
                out.contains(s),
                "`shardgate {}` lacks {s}:\n{out}",
                args.join(" ")
            );
        }
    }
    // A missing argument is clap's usage error.
    let out = shardgate(&["keys", "revoke"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("<ID>"), "{}", stderr(&out));
}

#[test]
fn keys_created_listed_used_and_revoked_from_the_command_line() {
    let mock = MockUpstream::start();
    let (gw, admin) = start(&mock, Driver::IoUring, 2);
    let admin_s = admin.to_string();
    let token = [("SHARDGATE_ADMIN_TOKEN", ADMIN_TOKEN)];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["--admin".to_string(), admin_s.clone()]);
        v
    };
    let run = |args: &[String], env: &[(&str, &str)]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        shardgate(&args, env)
    };

    // create: the secret, once, in words; --json gives the API's object.
    let out = ok(&run(
        &with(&["keys", "create", "--name", "cli-key", "--rpm", "100"]),
        &token,
    ));
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no secret line: {out}"))
        .to_string();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("created key "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no id: {out}"))
        .to_string();
    assert!(out.contains("not shown again"), "{out}");
    let out = ok(&run(
        &with(&[
            "keys",
            "create",
            "--name",
            "scoped",
            "--model",
            "first",
            "--budget-usd",
            "5",
            "--budget-period",
            "month",
            "--metadata",
            "owner=ops",
            "--json",
        ]),
        &token,
    ));
    let scoped: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(scoped["models"], json!(["first"]));
    assert_eq!(scoped["budget_usd"], 5.0);
    assert_eq!(scoped["budget_period"], "month");
    assert_eq!(scoped["metadata"]["owner"], "ops");
    assert!(scoped["key"].as_str().is_some_and(|k| !k.is_empty()));

    // list: both, in a table and as JSON.
    let out = ok(&run(&with(&["keys", "list"]), &token));
    assert!(out.starts_with("ID "), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {out}"));
    assert!(row.contains("cli-key") && row.contains("100"), "{row}");
    assert!(out.contains("$5.00/month"), "{out}");
    assert!(!out.contains(&secret), "the list never shows a secret");
    let list: Value =
        serde_json::from_str(&ok(&run(&with(&["keys", "list", "--json"]), &token))).unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");

    // The key works through the gateway at once, on either shard.
    for _ in 0..4 {
        let r = chat(&gw, &secret, "first");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(mock.last().json()["model"], "up-first");

    // revoke: refused from the next request.
    let out = ok(&run(&with(&["keys", "revoke", &id]), &token));
    assert!(out.contains(&format!("revoked key {id}")), "{out}");
    for _ in 0..4 {
        chat(&gw, &secret, "first").assert_openai_error(401);
    }
    let out = ok(&run(&with(&["keys", "list"]), &token));
    assert!(!out.contains(&id), "{out}");
    // Twice: the API's own words, exit 1.
    let out = run(&with(&["keys", "revoke", &id]), &token);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("no key with id `{id}`")),
        "{}",
        stderr(&out)
    );

    // The token from --token, and from the gateway's config file.
    ok(&run(&with(&["keys", "list", "--token", ADMIN_TOKEN]), &[]));
    let conf = gw.config_path();
    ok(&shardgate(
        &["keys", "list", "--config", conf.to_str().unwrap()],
        &[],
    ));
    ok(&shardgate(&["-c", conf.to_str().unwrap(), "status"], &[]));
}

#[test]
fn a_wrong_or_missing_token_is_refused_with_a_clear_line() {
    let mock = MockUpstream::start();
    let (_gw, admin) = start(&mock, Driver::IoUring, 1);
    let admin = admin.to_string();
    let out = shardgate(
        &["keys", "list", "--admin", &admin],
        &[("SHARDGATE_ADMIN_TOKEN", "not-the-token-not-the-token")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refused the admin token"), "{err}");
    assert!(err.contains(&admin), "{err}");
    assert!(stdout(&out).is_empty());

    let out = shardgate(&["keys", "create", "--name", "x", "--admin", &admin], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("needs its token") && err.contains("SHARDGATE_ADMIN_TOKEN"),
        "{err}"
    );
}

#[test]
fn status_reports_ready_shards_drivers_and_generation_moves_on_reload() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let (gw, admin) = start(&mock, d, 2);
        let admin_s = admin.to_string();
        let want_driver = match d {
            Driver::IoUring => "io_uring",
            Driver::Legacy => "epoll",
        };

        let out = ok(&shardgate(&["status", "--admin", &admin_s], &[]));
        assert!(out.contains(": ready"), "{out}");
        assert!(out.contains("generation  0"), "{out}");
        assert!(
            out.contains(&format!("shards      2: 2 {want_driver}")),
            "{out}"
        );
        assert!(out.contains("in flight   0"), "{out}");
        let v: Value = serde_json::from_str(&ok(&shardgate(
            &["status", "--admin", &admin_s, "--json"],
            &[],
        )))
        .unwrap();
        assert_eq!(v["ready"], true, "{v}");
        assert_eq!(v["status"], "ready", "{v}");
        assert_eq!(v["generation"], 0, "{v}");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
        assert_eq!(v["shards"].as_array().unwrap().len(), 2, "{v}");
        assert_eq!(v["drivers"][want_driver], 2, "{v}");
        assert!(v["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["driver"] == want_driver));
        assert!(v["uptime_s"].is_u64(), "{v}");
        assert!(
            !v.to_string().contains(ADMIN_TOKEN),
            "no secrets in the status"
        );

        // A reload moves the generation; with an admin token set, only one
        // that presents it reloads.
        gw.rewrite_config(&config(&mock, admin, "second"));
        for wrong in ["", "Bearer not-the-admin-token-at-all"] {
            let (status, body) = admin_post(admin, "/admin/reload", wrong);
            assert_eq!(status, 401, "{body}");
            assert!(
                body.contains("needs `Authorization: Bearer <admin token>`"),
                "{body}"
            );
        }
        let out = ok(&shardgate(&["status", "--admin", &admin_s], &[]));
        assert!(out.contains("generation  0"), "{out}");
        let (status, body) = admin_post(admin, "/admin/reload", &format!("Bearer {ADMIN_TOKEN}"));
        assert_eq!(status, 200, "{body}");
        let out = ok(&shardgate(&["status", "--admin", &admin_s], &[]));
        assert!(out.contains("generation  1"), "{out}");
    });
}

/// `POST path` on the admin listener, by hand, with `authorization` (if
/// not empty).
fn admin_post(admin: SocketAddr, path: &str, authorization: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    let auth = match authorization {
        "" => String::new(),
        a => format!("authorization: {a}\r\n"),
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: a\r\n{auth}content-length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
}

#[test]
fn an_unreachable_admin_listener_is_exit_1_with_the_address() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    for args in [
        &["status", "--admin", &addr][..],
        &["keys", "list", "--admin", &addr, "--token", ADMIN_TOKEN],
    ] {
        let out = shardgate(args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot reach the admin listener at {addr}")),
            "{err}"
        );
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    }
    // Not an address at all: said so, exit 1.
    let out = shardgate(&["status", "--admin", "nowhere"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not an admin address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_config_subcommand_is_the_flag() {
    let mock = MockUpstream::start();
    let dir = TempDir::new("cli-check");
    let good = dir.write("good.toml", &config_for(&mock, "", ""));
    let bad = dir.write("bad.toml", "[server]\nlisten = 7\n");
    for path in [&good, &bad] {
        let p = path.to_str().unwrap();
        let sub = shardgate(&["check-config", "-c", p], &[]);
        let flag = shardgate(&["--check-config", "--config", p], &[]);
        let top = shardgate(&["--config", p, "check-config"], &[]);
        assert_eq!(sub.status.code(), flag.status.code(), "{}", stderr(&sub));
        assert_eq!(top.status.code(), flag.status.code(), "{}", stderr(&top));
        assert_eq!(stdout(&sub), stdout(&flag));
        assert_eq!(stderr(&sub), stderr(&flag));
    }
    assert_eq!(
        shardgate(&["check-config", "-c", good.to_str().unwrap()], &[])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        shardgate(&["check-config", "-c", bad.to_str().unwrap()], &[])
            .status
            .code(),
        Some(2)
    );
}
