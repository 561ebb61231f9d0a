//! The README's "Try it offline" as a user runs it: the bundled mock
//! (`loadgen mock`), the gateway on `scripts/shardgate.quickstart.toml`, then
//! every example that follows: the curl bodies, sent as written, and the
//! Python block, run with the official SDKs (skipped without them unless
//! `SHARDGATE_REQUIRE_SDK=1`). Only the ports change, so tests can run side
//! by side.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The README's section from `heading` to the next `## `.
fn section(heading: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading}"));
    let rest = &readme[start + heading.len()..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
}

/// The fenced blocks of `lang` in `text`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    text.split(&fence)
        .skip(1)
        .map(|b| b[..b.find("```").unwrap()].to_string())
        .collect()
}

/// The loadgen binary the workspace built, or built now.
fn loadgen() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_shardgate"));
    let path = exe.with_file_name("loadgen");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "loadgen", "--bin", "loadgen"]);
        if exe.parent().and_then(|p| p.file_name()) == Some("release".as_ref()) {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "cargo build -p loadgen");
    }
    path
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_offline_quick_start_answers_every_example() {
    let text = section("## Try it offline");
    let sh = blocks(&text, "sh");
    // The two commands, as written.
    assert!(
        sh[0].contains("cargo run --release -p loadgen -- mock --listen 127.0.0.1:8000 &"),
        "{}",
        sh[0]
    );
    assert!(
        sh[0].contains("cargo run --release -- --config scripts/shardgate.quickstart.toml"),
        "{}",
        sh[0]
    );

    let mock_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _mock = Killed(
        Command::new(loadgen())
            .args(["mock", "--listen", &mock_addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(mock_addr);

    // The starter config with the ports moved (and only them).
    let starter =
        std::fs::read_to_string(Path::new(ROOT).join("scripts/shardgate.quickstart.toml")).unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    for port in ["127.0.0.1:8000", "127.0.0.1:8080", "127.0.0.1:9090"] {
        assert!(starter.contains(port), "{port} not in the starter config");
    }
    let config = starter
        .replace("127.0.0.1:8000", &mock_addr.to_string())
        .replace("127.0.0.1:9090", &admin.to_string());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = config.replace("127.0.0.1:8080", &addr.to_string());
    let gw = Gateway::spawn_at(
        &GatewayOpts::config(Driver::IoUring, config),
        addr,
        &[],
        &[],
    )
    .unwrap();

    // Each curl example: its path, headers and body as written.
    let curls: Vec<&String> = sh.iter().filter(|b| b.starts_with("curl ")).collect();
    assert_eq!(curls.len(), 2, "{sh:?}");
    for curl in curls {
        let url = curl.split_whitespace().nth(1).unwrap();
        let path = url.strip_prefix("http://127.0.0.1:8080").unwrap();
        let quoted: Vec<&str> = curl.split('\'').skip(1).step_by(2).collect();
        let (body, headers) = quoted.split_last().unwrap();
        let res = gw
            .connect()
            .request(post(path, body, &headers[1..]))
            .unwrap();
        assert_eq!(res.status, 200, "{curl}: {}", res.text());
        let json = res.json();
        let said = json["choices"][0]["message"]["content"]
            .as_str()
            .or(json["content"][0]["text"].as_str())
            .unwrap_or_else(|| panic!("{curl}: {json}"));
        assert!(!said.is_empty());
    }

    if !python_modules_available("the README's Python example", "openai, anthropic") {
        return;
    }
    let python = blocks(&text, "python");
    assert_eq!(python.len(), 1);
    let dir = TempDir::new("readme-python");
    let script = dir.write(
        "example.py",
        &python[0].replace("127.0.0.1:8080", &addr.to_string()),
    );
    let out = run_python(script.to_str().unwrap(), &[], Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(printed.len(), 3, "three answers: {stdout}");
    // The admin address the README names serves metrics.
    assert!(text.contains("http://127.0.0.1:9090/metrics"));
    assert!(scrape(admin).contains("shardgate_requests_total{"));
}
