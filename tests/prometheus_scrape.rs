//! What an operator's Prometheus sees: a gateway that has served chat
//! (whole and streamed) is scraped by `promtool check metrics` (names,
//! units and types pass its lint) and by a real Prometheus (the series are
//! queryable with the configured model's name); the shipped alerting rules
//! pass `promtool check rules` and their unit tests, and the shipped
//! Grafana dashboard references only metrics the gateway exports.
//!
//! Needs Debian's `prometheus` (promtool and the server); skips without it
//! unless `SHARDGATE_REQUIRE_PROMETHEUS=1` (as `.ci/run` sets).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    config_for, free_port, post, scrape, Driver, Gateway, GatewayOpts, MockUpstream, TempDir,
};
use serde_json::Value;

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found && std::env::var("SHARDGATE_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
        panic!("SHARDGATE_REQUIRE_PROMETHEUS=1 but {tool} is not installed");
    }
    if !found {
        eprintln!("skipped: {tool} is not installed (apt-get install prometheus)");
    }
    found
}

/// A gateway with a configured model and its admin listener, after some
/// whole and streamed chat.
fn served_gateway(mock: &MockUpstream) -> (Gateway, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = config_for(
        mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\n\n\
             [[prices]]\nmodel = \"gpt-4o-mini\"\ninput = 1.0\noutput = 2.0\n\n\
             [[models]]\nname = \"assistant\"\n\
             deployments = [{{ provider = \"openai\", upstream_model = \"gpt-4o-mini\" }}]\n"
        ),
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    for stream in [false, true, false] {
        let body = format!(
            r#"{{"model":"assistant","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let res = gw
            .connect()
            .request(post("/v1/chat/completions", &body, &[]))
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.text());
    }
    (gw, admin)
}

#[test]
fn promtool_lints_a_real_scrape_clean() {
    if !have("promtool") {
        return;
    }
    let mock = MockUpstream::start();
    let (_gw, admin) = served_gateway(&mock);
    let scraped = scrape(admin);
    let (_, text) = scraped.split_once("\r\n\r\n").unwrap();
    for family in [
        "shardgate_build_info",
        "shardgate_shard_info",
        "shardgate_config_generation",
        "shardgate_config_reloads_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "gen_ai_client_token_usage",
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_client_operation_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    // The configured model's name, not `other`.
    assert!(
        common::sample(
            text,
            "shardgate_requests_total",
            &["model=\"assistant\"", "status=\"200\""]
        ) >= 3.0
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

/// Every metric name a PromQL expression mentions (the identifiers in the
/// families the gateway exports: `shardgate_`, `gen_ai_`, `process_`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &expr[i..];
        if starts_word
            && ["shardgate_", "gen_ai_", "process_"]
                .iter()
                .any(|p| rest.starts_with(p))
        {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.push(rest[..len].to_string());
            i += len;
        } else {
            i += 1;
        }
    }
    names
}

/// The families a scrape declares, with each histogram's series names.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

#[test]
fn shipped_rules_and_dashboard_name_only_exported_metrics() {
    if !have("promtool") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("deploy/prometheus/alerts.yml");
    for args in [
        vec!["check", "rules", rules.to_str().unwrap()],
        vec![
            "test",
            "rules",
            root.join("deploy/prometheus/alerts_test.yml")
                .to_str()
                .unwrap(),
        ],
    ] {
        let out = Command::new("promtool").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The metrics a gateway exports with keys, budgets and the cache on
    // (the families that exist only with them need them configured).
    let mock = MockUpstream::start();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let token = "admin-token-for-tests";
    let config = config_for(
        &mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\ntoken = \"{token}\"\n\n[cache]\nenabled = true\n\n\
             [access_log]\ntarget = \"off\"\n"
        ),
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    let created = admin_post(
        admin,
        "/admin/keys",
        token,
        r#"{"name":"ci","budget_usd":10,"budget_period":"month"}"#,
    );
    let secret = created["key"].as_str().unwrap().to_string();
    let res = gw
        .connect()
        .request(post(
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
            &[&format!("authorization: Bearer {secret}")],
        ))
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    let have = exported(&scrape(admin));

    let mut missing = Vec::new();
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    for name in metric_names(&rules_text) {
        if !have.contains(&name) {
            missing.push(format!("alerts.yml: {name}"));
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/shardgate-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            exprs += 1;
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} names no metric");
            for name in names {
                if !have.contains(&name) {
                    missing.push(format!("{}: {name}", panel["title"]));
                }
            }
        }
    }
    assert!(exprs >= 15, "{exprs} expressions");
    assert!(missing.is_empty(), "not exported: {missing:#?}");
    // The checker itself: a name that does not exist is caught.
    assert!(!have.contains("shardgate_no_such_metric_total"));
    assert_eq!(
        metric_names("rate(shardgate_x_total[5m]) / process_y"),
        ["shardgate_x_total", "process_y"]
    );
}

fn admin_post(admin: SocketAddr, path: &str, token: &str, body: &str) -> Value {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (_, json) = out.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_real_prometheus_scrapes_the_gateway() {
    if !have("prometheus") {
        return;
    }
    let mock = MockUpstream::start();
    let (gw, admin) = served_gateway(&mock);
    let dir = TempDir::new("prometheus");
    let port = free_port();
    let config = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shardgate\n    \
             static_configs:\n      - targets: [\"{admin}\"]\n"
        ),
    );
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.0.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _ = &mut prom;
    let _prom = Kill(prom);
    let query = |q: &str| -> Option<Value> {
        let path = format!("/api/v1/query?query={}", urlencode(q));
        let (status, body) = common::admin_request(
            format!("127.0.0.1:{port}").parse().unwrap(),
            "GET",
            &path,
            &["connection: close"],
        );
        (status == 200).then(|| serde_json::from_str::<Value>(&body).ok())?
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let connectable = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if connectable {
            if let Some(v) = query("shardgate_requests_total{model=\"assistant\",status=\"200\"}") {
                let result = &v["data"]["result"];
                if result.as_array().is_some_and(|r| !r.is_empty()) {
                    break v;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had the series: {}\n{}",
            std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default(),
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let series = &found["data"]["result"][0];
    assert_eq!(series["metric"]["job"], "shardgate");
    assert_eq!(series["metric"]["route"], "chat_completions");
    let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 3.0, "{found}");
    let up = query("up{job=\"shardgate\"}").unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let rss = query("process_resident_memory_bytes{job=\"shardgate\"}").unwrap();
    let rss: f64 = rss["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss > 1e6, "{rss}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}
