//! The dashboard in a real browser: Debian's headless Chromium driven by
//! chromedriver over the W3C WebDriver protocol (a small client below:
//! std::net and serde_json). The page loads with no console error, its
//! figures move while load runs from other threads, the keys are created
//! and revoked through it with the admin token, no configured secret shows,
//! and a screenshot is kept in the test's output directory.
//!
//! Without `chromium` and `chromedriver` the test skips, unless
//! `SHARDGATE_REQUIRE_BROWSER=1` (set by `.ci/run` when it installed them).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "adm-dashboard-secret-7f3c";
const KEY_SECRET: &str = "sk-sg-dashboard-config-key-91b2";
/// The W3C WebDriver name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        let direct = Path::new("/usr/bin").join(name);
        if direct.exists() {
            return Some(direct);
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let p = dir.join(name);
                if p.exists() {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// (chromium, chromedriver), or `None` (after saying why) to skip.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_binary(&["chromium", "chromium-browser"]);
    let driver = find_binary(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            if std::env::var("SHARDGATE_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("SHARDGATE_REQUIRE_BROWSER=1 but chromium or chromedriver is not installed");
            }
            eprintln!(
                "skipping: the dashboard test needs Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status and body.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    // Read the head, then exactly Content-Length bytes (chromedriver keeps
    // the connection open whatever the request says), else to the end.
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut want: Option<usize> = None;
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            if want.is_none() {
                let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                want = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .map(|n| end + 4 + n);
            }
            if want.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// chromedriver and one browser session; both ended on drop.
struct WebDriver {
    addr: SocketAddr,
    child: Child,
    session: String,
}

impl WebDriver {
    fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> WebDriver {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut wd = WebDriver {
            addr,
            child,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(addr).is_ok() {
                let (status, body) = http(addr, "GET", "/status", &[], "");
                if status == 200 && body.contains("\"ready\":true") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1440,2000", "--hide-scrollbars", "--no-first-run",
                         format!("--user-data-dir={}", profile.display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = wd.call("POST", "/session", Some(caps));
        wd.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        wd
    }

    /// A WebDriver command; its `value` (panics on a WebDriver error).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[&str] = if method == "POST" {
            &["content-type: application/json; charset=utf-8"]
        } else {
            &[]
        };
        let (status, text) = http(self.addr, method, path, headers, &body);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} {e}: {text}"));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{what}", self.session), body)
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().unwrap().to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text_of(&self, id: &str) -> String {
        let script =
            format!("const e = document.getElementById('{id}'); return e ? e.textContent : null;");
        self.js(&script).as_str().unwrap_or_default().to_string()
    }

    /// Polls `script` (a JS expression) until it is truthy.
    fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(&format!("return ({script});"));
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The browser console since the last call.
    fn console(&self) -> Vec<Value> {
        let v = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        v.as_array().cloned().unwrap_or_default()
    }

    fn screenshot(&self, to: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = TcpStream::connect(self.addr).map(|_| {
                http(
                    self.addr,
                    "DELETE",
                    &format!("/session/{}", self.session),
                    &[],
                    "",
                )
            });
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(mock: &MockUpstream, admin: SocketAddr) -> String {
    format!(
        "[admin]\nlisten = \"{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
         [providers.mockai]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [[models]]\nname = \"fast\"\nprovider = \"mockai\"\nupstream_model = \"mock-fast\"\n\n\
         [[models]]\nname = \"smart\"\nprovider = \"mockai\"\nupstream_model = \"mock-smart\"\n\n\
         [[prices]]\nmodel = \"mock-fast\"\ninput = 1.0\noutput = 4.0\n\n\
         [[prices]]\nmodel = \"mock-smart\"\ninput = 10.0\noutput = 30.0\n\n\
         [[teams]]\nid = \"core\"\nname = \"Core\"\n\n\
         [[keys]]\nname = \"loadgen\"\nkey_env = \"DASHBOARD_TEST_KEY\"\nteam = \"core\"\n",
        mock.base_url()
    )
}

fn chat(gw: &Gateway, key: &str, model: &str) -> u16 {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]}}"#);
    let auth = format!("authorization: Bearer {key}");
    http(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &["content-type: application/json", &auth],
        &body,
    )
    .0
}

/// The leading number of a figure such as `1,234` or `12.5`.
fn figure(text: &str) -> f64 {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().unwrap_or(0.0)
}

#[test]
fn the_dashboard_in_a_real_browser_moves_under_load_and_manages_keys() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let mock = MockUpstream::start();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut opts = GatewayOpts::config(Driver::IoUring, config(&mock, admin));
    opts.shards = 2;
    let gw = Gateway::start_with_env(&opts, &[("DASHBOARD_TEST_KEY", KEY_SECRET)]);
    assert_eq!(chat(&gw, KEY_SECRET, "fast"), 200, "{}", gw.log());

    // The page and the document it polls, as served: no secret in either.
    let (status, page) = http(admin, "GET", "/", &[], "");
    assert_eq!(status, 200);
    let (status, stats) = http(admin, "GET", "/admin/stats", &[], "");
    assert_eq!(status, 200, "{stats}");
    for secret in [ADMIN_TOKEN, KEY_SECRET, PROVIDER_KEY] {
        assert!(
            !page.contains(secret) && !stats.contains(secret),
            "{secret} is shown"
        );
    }

    let profile = TempDir::new("chromium");
    let wd = WebDriver::start(&chromium, &chromedriver, &profile.0);
    wd.goto(&format!("http://{admin}/"));
    wd.wait_for(
        "two polls",
        "Number(document.body.dataset.polls) >= 2",
        Duration::from_secs(20),
    );
    assert_eq!(wd.js("return document.title;"), "shardgate dashboard");
    let before = figure(&wd.text_of("kpi-requests"));

    // Load from four threads while the page polls.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let gw = Arc::new(gw);
    let load: Vec<_> = (0..4)
        .map(|i| {
            let (stop, sent, gw) = (stop.clone(), sent.clone(), gw.clone());
            thread::spawn(move || {
                let model = if i % 2 == 0 { "fast" } else { "smart" };
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(chat(&gw, KEY_SECRET, model), 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    // The figures move: the total grows from poll to poll, the rate is above zero.
    let mut seen = vec![before];
    let mut rps_max = 0.0f64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 4 || rps_max <= 0.0 {
        assert!(
            Instant::now() < deadline,
            "figures did not move: {seen:?}, rps {rps_max}"
        );
        let polls = wd.js("return Number(document.body.dataset.polls);");
        wd.wait_for(
            "the next poll",
            &format!("Number(document.body.dataset.polls) > {polls}"),
            Duration::from_secs(10),
        );
        let total = figure(&wd.text_of("kpi-requests"));
        if total > *seen.last().unwrap() {
            seen.push(total);
        }
        rps_max = rps_max.max(figure(&wd.text_of("kpi-rps")));
    }
    eprintln!("requests shown: {seen:?}; requests/s up to {rps_max}");
    assert!(rps_max > 0.0);

    // The tables fill: both models with spend, the deployment healthy, the
    // running config shown, the key's and team's spend.
    let models = wd.text_of("models-table");
    assert!(
        models.contains("fast") && models.contains("smart") && models.contains('$'),
        "{models}"
    );
    let deployments = wd.text_of("deployments-table");
    assert!(
        deployments.contains("mock-fast") && deployments.contains("healthy"),
        "{deployments}"
    );
    let providers = wd.text_of("config-providers");
    assert!(
        providers.contains("mockai") && providers.contains("inline"),
        "{providers}"
    );
    assert!(wd.text_of("spend-keys-table").contains("loadgen"));
    assert!(wd.text_of("spend-teams-table").contains("Core"));
    assert!(figure(&wd.text_of("kpi-tps")) > 0.0 || figure(&wd.text_of("kpi-tokens")) > 0.0);

    // Keys through the page: the token, a new key (its secret shown once,
    // and it works), then revoked (and refused).
    wd.type_into("#admin-token", ADMIN_TOKEN);
    wd.click("#token-use");
    wd.wait_for(
        "the key list",
        "!document.getElementById('keys-panel').hidden && document.getElementById('keys-table').textContent.includes('loadgen')",
        Duration::from_secs(10),
    );
    assert_eq!(
        wd.js("return sessionStorage.getItem('shardgate.adminToken');"),
        ADMIN_TOKEN
    );
    wd.type_into("#new-name", "from-the-dashboard");
    wd.type_into("#new-rpm", "600");
    wd.click("#key-create-btn");
    let secret = wd.wait_for(
        "the new key's secret",
        "document.getElementById('key-secret').textContent",
        Duration::from_secs(10),
    );
    let secret = secret.as_str().unwrap().to_string();
    assert!(secret.starts_with("sk-"), "{secret}");
    wd.wait_for(
        "the new key listed",
        "document.getElementById('keys-table').textContent.includes('from-the-dashboard')",
        Duration::from_secs(10),
    );
    assert_eq!(chat(&gw, &secret, "fast"), 200, "the new key works");
    let id = wd.js("return [...document.querySelectorAll('#keys-table tr')]
           .find(r => r.textContent.includes('from-the-dashboard'))
           .querySelector('button').dataset.id;");
    let id = id.as_str().unwrap().to_string();
    let button = format!("#keys-table button[data-id='{id}']");
    wd.click(&button); // arms
    wd.click(&button); // confirms
    wd.wait_for(
        "the key gone from the list",
        &format!("!document.getElementById('keys-table').textContent.includes('{id}')"),
        Duration::from_secs(10),
    );
    assert_eq!(
        chat(&gw, &secret, "fast"),
        401,
        "the revoked key is refused"
    );

    // The page as rendered shows no secret (the new key's only in its box).
    wd.click("#key-secret-hide");
    let html = wd.js("return document.documentElement.outerHTML;");
    let html = html.as_str().unwrap();
    for s in [ADMIN_TOKEN, KEY_SECRET, PROVIDER_KEY, secret.as_str()] {
        assert!(!html.contains(s), "{s} is on the page");
    }

    wd.js("window.scrollTo(0, 0);");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    wd.screenshot(&shot);
    println!("dashboard screenshot: {}", shot.display());
    eprintln!("dashboard screenshot: {}", shot.display());

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > 0);

    // No console errors (a failed fetch, a script error, a CSP refusal).
    let console = wd.console();
    for entry in &console {
        eprintln!("console: {entry}");
    }
    let errors: Vec<_> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
