//! The OpenAI routes beyond chat: images (generations, edits, variations),
//! speech, transcriptions and translations, moderations and rerank,
//! routed by the model they name (or, where OpenAI's API defaults the
//! model, to the default provider), over real sockets to the mock.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn zero_config(mock: &MockUpstream) -> Gateway {
    Gateway::start(GatewayOpts::env(Driver::IoUring, mock))
}

#[test]
fn json_routes_reach_the_provider_with_their_path_model_and_key() {
    let mock = MockUpstream::start();
    let gw = zero_config(&mock);
    for (path, body) in [
        (
            "/v1/images/generations",
            json!({"model": "gpt-image-1", "prompt": "a red gate", "n": 1}),
        ),
        (
            "/v1/moderations",
            json!({"model": "omni-moderation-latest", "input": "hello"}),
        ),
        (
            "/v1/rerank",
            json!({"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"]}),
        ),
    ] {
        let r = gw.post(path, &body.to_string());
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let got = mock.last();
        assert_eq!(got.method, "POST");
        assert_eq!(got.target, path);
        assert_eq!(
            got.header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
        let sent: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(
            sent, body,
            "{path}: the body reached the provider unchanged"
        );
        let answer = r.json();
        match path {
            "/v1/images/generations" => assert_eq!(answer["data"][0]["b64_json"], "aW1hZ2U="),
            "/v1/moderations" => assert_eq!(answer["results"][0]["flagged"], false),
            _ => assert_eq!(answer["results"][0]["index"], 1),
        }
    }
}

#[test]
fn a_model_is_routed_and_rewritten_like_chat() {
    let mock = MockUpstream::start();
    let config = config_for(
        &mock,
        "",
        r#"[[models]]
name = "painter"
[[models.deployments]]
provider = "openai"
upstream_model = "gpt-image-1"
"#,
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    let r = gw.post(
        "/v1/images/generations",
        r#"{"model":"painter","prompt":"a gate"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sent: Value = serde_json::from_slice(&mock.last().body).unwrap();
    assert_eq!(sent["model"], "gpt-image-1");
    assert_eq!(sent["prompt"], "a gate");
}

#[test]
fn where_openai_defaults_the_model_a_body_without_one_goes_to_the_default_provider() {
    let mock = MockUpstream::start();
    let gw = zero_config(&mock);
    for path in ["/v1/moderations", "/v1/images/generations"] {
        let body = r#"{"input":"hello","prompt":"x"}"#;
        let r = gw.post(path, body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(mock.last().target, path);
        assert_eq!(mock.last().body, body.as_bytes(), "{path}: sent as it came");
    }
    // Elsewhere the model is required, as before.
    let r = gw.post("/v1/rerank", r#"{"query":"q","documents":["a"]}"#);
    let err = r.assert_openai_error(400);
    assert_eq!(err["param"], "model");
}

#[test]
fn speech_audio_is_relayed_as_it_arrives() {
    const FIRST: &[u8] = b"ID3\x04first-audio-frames";
    const PAUSE: Duration = Duration::from_millis(600);
    let mock = MockUpstream::with(|_| {
        Reply::Scripted(Writer::new(|s: &mut TcpStream, _| {
            s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ntransfer-encoding: chunked\r\n\r\n",
            )?;
            s.write_all(format!("{:x}\r\n", FIRST.len()).as_bytes())?;
            s.write_all(FIRST)?;
            s.write_all(b"\r\n")?;
            std::thread::sleep(PAUSE);
            let rest = vec![0xAAu8; 64 * 1024];
            s.write_all(format!("{:x}\r\n", rest.len()).as_bytes())?;
            s.write_all(&rest)?;
            s.write_all(b"\r\n0\r\n\r\n")?;
            Ok(true)
        }))
    });
    let gw = zero_config(&mock);
    let mut client = TcpStream::connect(gw.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let body = r#"{"model":"tts-1","voice":"alloy","input":"hello there"}"#;
    let sent = Instant::now();
    client
        .write_all(post("/v1/audio/speech", body, &[]).as_bytes())
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while !contains(&seen, FIRST) {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let first = sent.elapsed();
    assert!(
        first < PAUSE / 2,
        "the first audio bytes took {first:?}: held until the upstream's pause ({PAUSE:?}) ended"
    );
    let head = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: audio/mpeg"), "{head}");
    // And the rest follows, whole.
    while !contains(&seen, b"\r\n0\r\n\r\n") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the end");
        seen.extend_from_slice(&buf[..n]);
    }
    let audio = seen.iter().filter(|&&b| b == 0xAA).count();
    assert_eq!(audio, 64 * 1024);
    assert_eq!(mock.last().target, "/v1/audio/speech");
}

#[test]
fn the_official_sdk_calls_these_routes() {
    if !python_modules_available("the_official_sdk_calls_these_routes", "openai") {
        return;
    }
    let mock = MockUpstream::start();
    let gw = zero_config(&mock);
    let out = run_python(
        "tests/sdk/openai_surface_sdk.py",
        &[&gw.base_url()],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let paths: Vec<String> = mock.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/images/generations",
            "/v1/moderations",
            "/v1/responses/resp_abc123",
            "/v1/responses/resp_abc123",
            "/v1/audio/transcriptions",
            "/v1/audio/translations",
            "/v1/images/edits",
            "/v1/images/variations"
        ]
    );
    uploads_arrived_whole(&mock);
}

#[test]
fn the_official_node_sdk_calls_these_routes() {
    if !node_sdks_available("the_official_node_sdk_calls_these_routes") {
        return;
    }
    let mock = MockUpstream::start();
    let gw = zero_config(&mock);
    let out = run_node("surface.mjs", &[&gw.base_url()], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let paths: Vec<String> = mock.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/images/generations",
            "/v1/moderations",
            "/v1/responses/resp_abc123",
            "/v1/responses/resp_abc123",
            "/v1/audio/transcriptions",
            "/v1/audio/translations",
            "/v1/images/edits",
            "/v1/images/variations"
        ]
    );
    uploads_arrived_whole(&mock);
}

#[test]
fn a_stored_responses_routes_go_to_the_provider_the_client_names() {
    let (first, second) = (MockUpstream::start(), MockUpstream::start());
    let config = config_for(
        &first,
        "",
        &format!(
            "[providers.second]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-second\"\n\n\
             [providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"sk-ant\"\n",
            second.base_url(),
            second.base_url()
        ),
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    let send = |req: String| gw.connect().request(req).unwrap();
    // To the default provider, path and query as they came.
    for (method, path) in [
        (
            "GET",
            "/v1/responses/resp_abc123?include[]=file_search_call.results",
        ),
        ("GET", "/v1/responses/resp_abc123/input_items?limit=5"),
        ("DELETE", "/v1/responses/resp_abc123"),
    ] {
        let r = send(format!("{method} {path} HTTP/1.1\r\nhost: t\r\n\r\n"));
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        let got = first.last();
        assert_eq!((got.method.as_str(), got.target.as_str()), (method, path));
        assert_eq!(
            got.header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
        assert_eq!(r.json()["id"], "resp_abc123");
    }
    // Named by the header, which is not forwarded.
    let r = send(
        "POST /v1/responses/resp_xyz/cancel HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: second\r\ncontent-length: 0\r\n\r\n"
            .into(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got = second.last();
    assert_eq!(
        (got.method.as_str(), got.target.as_str()),
        ("POST", "/v1/responses/resp_xyz/cancel")
    );
    assert_eq!(got.header("authorization"), Some("Bearer sk-second"));
    assert_eq!(got.header("x-shardgate-provider"), None);
    assert_eq!(
        first.requests().len(),
        3,
        "the named provider, not the default"
    );
    // A name that is no provider, or one that has no such API.
    let r = send(
        "GET /v1/responses/resp_1 HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: nope\r\n\r\n".into(),
    );
    r.assert_openai_error(404);
    let r = send(
        "GET /v1/responses/resp_1 HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: claude\r\n\r\n"
            .into(),
    );
    r.assert_openai_error(400);
    // Only the API's own paths: anything else is a 404 here, never sent.
    let before = first.requests().len() + second.requests().len();
    for path in ["/v1/responses/resp_1/secrets", "/v1/responses/..%2Fmodels"] {
        let r = send(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n"));
        r.assert_openai_error(404);
    }
    assert_eq!(first.requests().len() + second.requests().len(), before);
}

#[test]
fn any_other_v1_path_passes_through_to_the_provider_the_client_names() {
    let mock = MockUpstream::start();
    let gw = zero_config(&mock);
    let send = |req: String| gw.connect().request(req).unwrap();
    // A multipart upload, sent as it came, to the path and query it named.
    let body = "--b\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{}\r\n--b--\r\n";
    let r = send(format!(
        "POST /v1/files?x=1 HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: openai\r\nauthorization: Bearer sk-client\r\n\
         content-type: multipart/form-data; boundary=b\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = mock.last();
    assert_eq!(
        (got.method.as_str(), got.target.as_str()),
        ("POST", "/v1/files?x=1")
    );
    assert_eq!(got.body, body.as_bytes());
    assert_eq!(
        got.header("content-type"),
        Some("multipart/form-data; boundary=b")
    );
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(got.header("x-shardgate-provider"), None);
    let r = send(
        "GET /v1/files/file-abc/content HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: openai\r\n\r\n"
            .into(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.last().target, "/v1/files/file-abc/content");
    // Without a provider named it is the 404 it was; nothing is sent.
    let sent = mock.requests().len();
    for req in [
        "GET /v1/fine_tuning/jobs HTTP/1.1\r\nhost: t\r\n\r\n",
        "GET /v1/files/../models HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: openai\r\n\r\n",
        "GET /v1/files/%2e%2e/models HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: openai\r\n\r\n",
    ] {
        send(req.into()).assert_openai_error(404);
    }
    assert_eq!(mock.requests().len(), sent);
}

/// A pass-through to an Anthropic provider speaks Anthropic's dialect: the
/// gateway's own errors for it come in Anthropic's shape.
#[test]
fn a_pass_through_to_an_anthropic_provider_errs_in_its_dialect() {
    let mock = MockUpstream::start();
    let closed = common::free_port();
    let config = config_for(
        &mock,
        "",
        &format!(
            "[providers.claude]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{closed}\"\napi_key = \"sk-ant\"\n"
        ),
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    let r = gw
        .connect()
        .request(
            "GET /v1/messages/batches HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: claude\r\n\r\n",
        )
        .unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "api_error", "{v}");
    // The OpenAI provider's stay OpenAI's.
    let r = gw
        .connect()
        .request("GET /v1/files/nope HTTP/1.1\r\nhost: t\r\nx-shardgate-provider: nope\r\n\r\n")
        .unwrap();
    r.assert_openai_error(404);
}

/// Every upload the SDKs sent reached the mock as a well-formed form
/// whose model was renamed and whose file came through byte for byte.
fn uploads_arrived_whole(mock: &MockUpstream) {
    let mut uploads = 0;
    for rec in mock.requests() {
        let Some(fields) = form_fields(&rec) else {
            continue;
        };
        uploads += 1;
        let field = |name: &str| fields.iter().find(|f| f.name == name);
        if rec.target.starts_with("/v1/audio/") {
            assert_eq!(field("model").unwrap().value, b"whisper-1");
            let file = &field("file").unwrap().value;
            assert!(file.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8));
            assert_eq!(file.len(), 16384);
        } else {
            let image = &field("image").unwrap().value;
            assert_eq!(&image[..4], b"\x89PNG");
        }
    }
    assert_eq!(uploads, 4);
}

const BOUNDARY: &str = "----shardgate-test-7f3a";

/// A multipart body with `fields` in order, as curl writes one.
fn form(fields: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, value) in fields {
        out.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = filename {
            out.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: application/octet-stream").as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn post_form(gw: &Gateway, path: &str, content_type: &str, body: &[u8]) -> Response {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    gw.connect().request(req).unwrap()
}

#[test]
fn uploads_are_routed_by_their_model_field_and_renamed_in_place() {
    let mock = MockUpstream::start();
    let gw = zero_config(&mock);
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    // 2 MiB of bytes that look like framing (CRLFs, dashes, a near-boundary)
    // without being the boundary: larger than the off-loop threshold too.
    let mut file = Vec::new();
    while file.len() < 2 << 20 {
        file.extend_from_slice(b"\r\n--\r\n\r\n----shardgate-test-7f3\x00\xff");
    }
    for order in ["model first", "file first"] {
        let model = ("model", None, &b"openai/whisper-1"[..]);
        let upload = ("file", Some("a.bin"), &file[..]);
        let lang = ("language", None, &b"en"[..]);
        let fields = if order == "model first" {
            vec![model, lang, upload]
        } else {
            vec![upload, lang, model]
        };
        let r = post_form(&gw, "/v1/audio/transcriptions", &ct, &form(&fields));
        assert_eq!(r.status, 200, "{order}: {}", r.text());
        let text = r.json()["text"].as_str().unwrap().to_string();
        assert_eq!(
            text,
            format!("mock transcript of {} bytes by whisper-1", file.len())
        );
        let got = mock.last();
        assert_eq!(got.target, "/v1/audio/transcriptions");
        let sent = form_fields(&got).unwrap();
        let names: Vec<&str> = sent.iter().map(|f| f.name.as_str()).collect();
        let want: Vec<&str> = fields.iter().map(|f| f.0).collect();
        assert_eq!(names, want, "{order}");
        for f in &sent {
            let value: &[u8] = match f.name.as_str() {
                "model" => b"whisper-1",
                "file" => &file,
                _ => b"en",
            };
            assert!(f.value == value, "{order}: field {} changed", f.name);
        }
        assert_eq!(got.header("content-type"), Some(ct.as_str()));
    }

    // Where OpenAI defaults the model, an upload without one goes to the
    // default provider unchanged.
    let body = form(&[
        ("image", Some("a.png"), b"\x89PNG..."),
        ("prompt", None, b"a gate"),
    ]);
    let r = post_form(&gw, "/v1/images/edits", &ct, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.last().body, body);

    // What is not an upload, or not a well-formed one, is refused here.
    let sent = mock.requests().len();
    let r = post_form(
        &gw,
        "/v1/audio/transcriptions",
        "application/json",
        br#"{"model":"whisper-1"}"#,
    );
    r.assert_openai_error(400);
    let cut = &form(&[("model", None, b"whisper-1")])[..20];
    let r = post_form(&gw, "/v1/audio/transcriptions", &ct, cut);
    let e = r.assert_openai_error(400);
    assert!(e["message"].as_str().unwrap().contains("multipart"), "{e}");
    let r = post_form(
        &gw,
        "/v1/audio/translations",
        &ct,
        &form(&[("file", Some("a"), b"x")]),
    );
    let e = r.assert_openai_error(400);
    assert_eq!(e["param"], "model");
    assert_eq!(mock.requests().len(), sent, "nothing refused was sent");
}

/// The ids `/v1/models` answers, once they include `want` (the lists
/// are fetched just after start, by a thread of the gateway's own).
fn model_ids_once(gw: &Gateway, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get("/v1/models");
        assert_eq!(r.status, 200, "{}", r.text());
        let ids: Vec<String> = r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        if ids.iter().any(|i| i == want) {
            return ids;
        }
        assert!(Instant::now() < deadline, "{want} never listed: {ids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn models_merge_the_configured_ones_with_each_providers_own_list() {
    let (oa, an) = (MockUpstream::start(), MockUpstream::start());
    let config = format!(
        "default_provider = \"openai\"\n\n[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [providers.openai]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n\n\
         [providers.anthropic]\nbase_url = \"http://{}\"\napi_key = \"sk-ant-test\"\n\n\
         [[models]]\nname = \"fast\"\nprovider = \"anthropic\"\nupstream_model = \"claude-haiku\"\n",
        oa.base_url(),
        an.addr
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    let ids = model_ids_once(&gw, "anthropic/mock-model-b");
    assert_eq!(
        ids,
        [
            "fast",
            "anthropic/mock-model-a",
            "anthropic/mock-model-b",
            // The default provider's models route bare too.
            "mock-model-a",
            "openai/mock-model-a",
            "mock-model-b",
            "openai/mock-model-b"
        ]
    );
    // Each list was asked for once, with the provider's own auth.
    let asked = an.list_fetches();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].method.as_str(), asked[0].target.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(asked[0].header("x-api-key"), Some("sk-ant-test"));
    assert!(asked[0].header("anthropic-version").is_some());
    let asked = oa.list_fetches();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].target, "/v1/models");
    assert_eq!(
        asked[0].header("authorization"),
        Some(&*format!("Bearer {PROVIDER_KEY}"))
    );
    // Answered from the cache: no provider is asked again per request.
    for _ in 0..5 {
        assert_eq!(gw.get("/v1/models").status, 200);
    }
    assert_eq!(oa.list_fetches().len() + an.list_fetches().len(), 2);
    assert!(oa.requests().is_empty() && an.requests().is_empty());
    // A listed model routes as it is listed.
    for (listed, mock) in [("openai/mock-model-b", &oa), ("mock-model-b", &oa)] {
        let body =
            format!(r#"{{"model":"{listed}","messages":[{{"role":"user","content":"hi"}}]}}"#);
        let r = gw.post("/v1/chat/completions", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(mock.last().json()["model"], "mock-model-b");
    }
}

#[test]
fn a_provider_whose_list_fails_leaves_the_others() {
    let oa = MockUpstream::with(|info| {
        if info.path.ends_with("/models") {
            Reply::Error {
                status: 500,
                message: "list unavailable".into(),
                headers: vec![],
            }
        } else {
            Reply::Auto
        }
    })
    .script_list_fetches();
    let other = MockUpstream::start();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [providers.a]\nbase_url = \"{}\"\n\n[providers.b]\nbase_url = \"{}\"\n",
        oa.base_url(),
        other.base_url()
    );
    let gw = Gateway::start(GatewayOpts::config(Driver::IoUring, config));
    let ids = model_ids_once(&gw, "b/mock-model-a");
    assert_eq!(ids, ["b/mock-model-a", "b/mock-model-b"]);
    assert!(
        gw.log().contains("model list was not fetched"),
        "{}",
        gw.log()
    );
}
