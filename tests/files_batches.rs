//! Files and batches go to the provider that holds them: a file uploaded
//! to the provider the client named is fetched, read and deleted there
//! without naming it again; a batch made from it goes there too, and so
//! do its fetches and its cancel; what the gateway learnt survives a
//! restart; a completed batch's usage is metered once however often it is
//! fetched; the official SDK's calls work the same.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A provider's Files and Batches API: ids carry the provider's `tag`, so
/// a request that reached the wrong one is seen at once.
fn files_provider(tag: &'static str) -> MockUpstream {
    let n = Arc::new(AtomicUsize::new(0));
    MockUpstream::with(move |info| {
        let n = n.clone();
        let path = info.path.to_string();
        Reply::Scripted(Writer::new(move |s, rec| {
            let seq = n.fetch_add(1, Ordering::SeqCst);
            let json_reply = |s: &mut TcpStream, v: Value| -> std::io::Result<bool> {
                let body = v.to_string();
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                Ok(true)
            };
            let api = path.strip_prefix("/v1").unwrap_or(&path);
            let id = api.split('/').nth(2).unwrap_or("").to_string();
            match (rec.method.as_str(), api) {
                ("POST", "/files") => {
                    let fields = form_fields(rec).expect("a multipart upload");
                    let file = fields.iter().find(|f| f.name == "file").unwrap();
                    json_reply(
                        s,
                        json!({"id": format!("file-{tag}{seq}"), "object": "file", "bytes": file.value.len(), "created_at": 1, "filename": file.filename, "purpose": "batch"}),
                    )
                }
                ("GET", "/files") => {
                    json_reply(s, json!({"object": "list", "data": [], "has_more": false}))
                }
                ("GET", p) if p.ends_with("/content") => {
                    let body = format!("{{\"custom_id\":\"from-{tag}\"}}\n");
                    write!(s, "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n{body}", body.len())?;
                    Ok(true)
                }
                ("GET", p) if p.starts_with("/files/") => json_reply(
                    s,
                    json!({"id": id, "object": "file", "purpose": "batch", "held_by": tag}),
                ),
                ("DELETE", _) => {
                    json_reply(s, json!({"id": id, "object": "file", "deleted": true}))
                }
                ("POST", "/batches") => {
                    let req: Value = serde_json::from_slice(&rec.body).unwrap();
                    json_reply(
                        s,
                        json!({"id": format!("batch_{tag}{seq}"), "object": "batch", "endpoint": req["endpoint"], "input_file_id": req["input_file_id"], "completion_window": "24h", "status": "validating", "created_at": 2}),
                    )
                }
                ("POST", p) if p.ends_with("/cancel") => json_reply(
                    s,
                    json!({"id": id, "object": "batch", "status": "cancelling"}),
                ),
                ("GET", p) if p.starts_with("/batches/") => json_reply(
                    s,
                    json!({
                        "id": id, "object": "batch", "endpoint": "/v1/chat/completions", "model": "gpt-4o-mini",
                        "input_file_id": "file-x", "completion_window": "24h", "status": "completed", "created_at": 2,
                        "request_counts": {"total": 2, "completed": 2, "failed": 0},
                        "usage": {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500,
                                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
                    }),
                ),
                _ => json_reply(
                    s,
                    json!({"error": {"message": format!("mock: no route {path}")}}),
                ),
            }
        }))
    })
}

struct Setup {
    gw: Gateway,
    admin: SocketAddr,
    config: String,
}

fn setup(a: &MockUpstream, b: &MockUpstream, dir: &TempDir) -> Setup {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "default_provider = \"a\"\n\n[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [admin]\nlisten = \"{admin}\"\n\n[state]\ndir = \"{}\"\nflush_interval_ms = 100\n\n\
         [providers.a]\nbase_url = \"{}\"\napi_key = \"sk-a\"\n\n[providers.b]\nbase_url = \"{}\"\napi_key = \"sk-b\"\n",
        dir.0.display(),
        a.base_url(),
        b.base_url()
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config.clone()));
    Setup { gw, admin, config }
}

fn send(gw: &Gateway, req: impl AsRef<[u8]>) -> Response {
    gw.connect().request(req).unwrap()
}

fn get(gw: &Gateway, path: &str) -> Response {
    send(gw, format!("GET {path} HTTP/1.1\r\nhost: gw\r\n\r\n"))
}

const BOUNDARY: &str = "----files-7c1";

fn upload(gw: &Gateway, provider: Option<&str>) -> Response {
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{{\"custom_id\":\"1\"}}\n\r\n--{BOUNDARY}--\r\n"
    );
    let named = provider.map_or(String::new(), |p| format!("x-shardgate-provider: {p}\r\n"));
    send(
        gw,
        format!(
            "POST /v1/files HTTP/1.1\r\nhost: gw\r\n{named}content-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn input_tokens(admin: SocketAddr) -> f64 {
    scrape(admin)
        .lines()
        .filter(|l| l.starts_with("shardgate_tokens_total{") && l.contains("direction=\"input\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn files_and_batches_go_where_they_were_made_even_after_a_restart() {
    let (a, b) = (files_provider("a"), files_provider("b"));
    let dir = TempDir::new("files");
    let Setup { gw, admin, config } = setup(&a, &b, &dir);

    // Uploaded to the provider the client names...
    let r = upload(&gw, Some("b"));
    assert_eq!(r.status, 200, "{}", r.text());
    let file = r.json()["id"].as_str().unwrap().to_string();
    assert!(file.starts_with("file-b"), "{file}");
    assert_eq!(b.last().header("authorization"), Some("Bearer sk-b"));
    // ...then fetched and read there, named by its id alone.
    let r = get(&gw, &format!("/v1/files/{file}"));
    assert_eq!(r.json()["held_by"], "b", "{}", r.text());
    let r = get(&gw, &format!("/v1/files/{file}/content"));
    assert_eq!(r.text(), "{\"custom_id\":\"from-b\"}\n");
    // An id the gateway did not see made goes to the default provider.
    assert_eq!(get(&gw, "/v1/files/file-elsewhere").json()["held_by"], "a");

    // A batch goes where its input file is, and so do its fetches.
    let req = json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"}).to_string();
    let r = send(
        &gw,
        format!(
            "POST /v1/batches HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{req}",
            req.len()
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let batch = r.json()["id"].as_str().unwrap().to_string();
    assert!(batch.starts_with("batch_b"), "{batch}");
    let from_a = a.requests().len();

    // Its usage is metered once, however often it is fetched.
    let before = input_tokens(admin);
    for _ in 0..3 {
        let r = get(&gw, &format!("/v1/batches/{batch}"));
        assert_eq!(r.json()["status"], "completed");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while input_tokens(admin) < before + 1200.0 {
        assert!(Instant::now() < deadline, "batch usage never metered");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(input_tokens(admin), before + 1200.0, "metered once");
    // A file's answer is not a request's usage either.
    let r = get(&gw, &format!("/v1/files/{file}"));
    assert_eq!(r.status, 200);
    assert_eq!(a.requests().len(), from_a, "nothing of b's went to a");

    // Stopped and started again on the same state: still known.
    std::thread::sleep(Duration::from_millis(300));
    drop(gw);
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    let r = get(&gw, &format!("/v1/files/{file}"));
    assert_eq!(r.json()["held_by"], "b", "after a restart: {}", r.text());
    let r = send(
        &gw,
        format!(
            "POST /v1/batches/{batch}/cancel HTTP/1.1\r\nhost: gw\r\ncontent-length: 0\r\n\r\n"
        ),
    );
    assert_eq!(r.json()["status"], "cancelling");
    assert!(b.last().target.ends_with("/cancel"));
    // Deleted there, it is forgotten: the id no longer leads to b.
    let r = send(
        &gw,
        format!("DELETE /v1/files/{file} HTTP/1.1\r\nhost: gw\r\n\r\n"),
    );
    assert_eq!(r.json()["deleted"], true);
    assert_eq!(b.last().method, "DELETE");
    assert_eq!(
        get(&gw, &format!("/v1/files/{file}")).json()["held_by"],
        "a"
    );
}

#[test]
fn the_official_sdk_manages_files_and_batches_through_the_gateway() {
    if !python_modules_available("files_batches", "openai") {
        return;
    }
    let (a, b) = (files_provider("a"), files_provider("b"));
    let dir = TempDir::new("files-sdk");
    let Setup { gw, .. } = setup(&a, &b, &dir);
    let out = run_python(
        "tests/sdk/files_batches_sdk.py",
        &[&gw.base_url()],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Everything after the upload went to b without being told.
    let targets: Vec<String> = b
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(targets.len(), 5, "{targets:?}");
    assert!(
        a.requests().is_empty(),
        "{:?}",
        a.requests()
            .iter()
            .map(|r| r.target.clone())
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_official_node_sdk_manages_files_and_batches_through_the_gateway() {
    if !node_sdks_available("the_official_node_sdk_manages_files_and_batches_through_the_gateway") {
        return;
    }
    let (a, b) = (files_provider("a"), files_provider("b"));
    let dir = TempDir::new("files-node");
    let Setup { gw, .. } = setup(&a, &b, &dir);
    let out = run_node(
        "files_batches.mjs",
        &[&gw.base_url()],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.requests().len(), 5);
    assert!(a.requests().is_empty());
}
