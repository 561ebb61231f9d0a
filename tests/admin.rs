//! The admin listener as an operator meets it: `POST /admin/reload`
//! answers with the outcome (applied, or refused and why, the running
//! configuration kept); a taken admin address stops the start-up with a
//! message naming it; `--admin-listen` moves it or turns it off.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// One request to the admin listener; its status and body.
fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn config(mock: &MockUpstream, admin: SocketAddr, model: &str) -> String {
    format!(
        "[admin]\nlisten = \"{admin}\"\n\n\
         [providers.oa]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [[models]]\nname = \"{model}\"\nprovider = \"oa\"\nupstream_model = \"up-{model}\"\n",
        mock.base_url()
    )
}

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

#[test]
fn reload_over_the_admin_port_answers_with_its_outcome() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let gw = Gateway::start(GatewayOpts::config(d, config(&mock, addr, "first")));
        assert_eq!(gw.post("/v1/chat/completions", &chat("first")).status, 200);

        // An invalid file: refused, with the reason, and nothing changes.
        gw.rewrite_config("[server\nlisten = 1\n");
        let (status, body) = admin(addr, "POST", "/admin/reload");
        assert_eq!(status, 422, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "refused", "{body}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{body}");
        assert_eq!(gw.post("/v1/chat/completions", &chat("first")).status, 200);
        assert_eq!(
            mock.last().json()["model"],
            "up-first",
            "the running config stays"
        );

        // A valid one: applied, and in force for the next request.
        gw.rewrite_config(&config(&mock, addr, "second"));
        let (status, body) = admin(addr, "POST", "/admin/reload");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "applied", "{body}");
        assert!(v["message"].as_str().unwrap().contains("1 model"), "{body}");
        assert_eq!(gw.post("/v1/chat/completions", &chat("second")).status, 200);
        assert_eq!(mock.last().json()["model"], "up-second");
    });
}

#[test]
fn a_taken_admin_address_stops_the_start_up_and_says_which() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = gateway_command()
        .args([
            "--listen",
            &listen,
            "--shards",
            "1",
            "--admin-listen",
            &addr.to_string(),
        ])
        .env("OPENAI_API_KEY", "sk-test")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway ran on without its admin address");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&addr.to_string()), "names the address: {err}");
    assert!(
        err.contains("--admin-listen off"),
        "says how to run without it: {err}"
    );
}

#[test]
fn admin_listen_moves_the_admin_port_or_turns_it_off() {
    let mock = MockUpstream::start();
    let moved: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let opts = GatewayOpts::env(Driver::IoUring, &mock);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::spawn_at(&opts, addr, &["--admin-listen", &moved.to_string()], &[]).unwrap();
    let (status, body) = admin(moved, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("shardgate_requests_total"), "{body}");
    assert!(gw
        .log()
        .contains(&format!("admin (metrics, reload) on http://{moved}")));

    // Off: the gateway serves with its admin address taken by another.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let toml = format!(
        "[admin]\nlisten = \"{}\"\n\n[providers.oa]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\n",
        taken.local_addr().unwrap(),
        mock.base_url()
    );
    let opts = GatewayOpts::config(Driver::IoUring, toml);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::spawn_at(&opts, addr, &["--admin-listen", "off"], &[]).unwrap();
    gw.assert_healthy();
    assert!(!gw.log().contains("admin (metrics"), "{}", gw.log());
}
