//! Per-request state on a keep-alive connection: a gateway-made answer
//! after a successful request carries nothing of that request (tokens,
//! cost, provider, upstream time) into its log line or metrics; every
//! log line has the bytes that went to the client; gateway-made errors are
//! counted in `shardgate_errors_total`.

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SOON: Duration = Duration::from_secs(5);

fn config(mock: &MockUpstream, log: &std::path::Path, admin: SocketAddr) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [admin]\nlisten = \"{admin}\"\n\n\
         [access_log]\ntarget = \"file\"\npath = \"{log}\"\n\n\
         [providers.oa]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"{PROVIDER_KEY}\"\n",
        log = log.display(),
        addr = mock.addr,
    )
}

/// The access-log records of `ids`, in that order (waits for the flush).
fn records(path: &std::path::Path, ids: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + SOON;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("access-log line is JSON"))
            .collect();
        let found: Vec<Value> = ids
            .iter()
            .filter_map(|id| lines.iter().find(|r| r["request_id"] == *id).cloned())
            .collect();
        if found.len() == ids.len() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "missing access-log records: {text}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gateway_made_answers_after_a_relayed_one_carry_nothing_of_it() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let dir = TempDir::new("request-context");
        let log = dir.0.join("access.log");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let gw = Gateway::start(GatewayOpts::config(d, config(&mock, &log, admin)));
        let mut c = gw.connect();

        let chat = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
        let ok = c
            .request(post("/v1/chat/completions", chat, &["x-request-id: ok-1"]))
            .unwrap();
        assert_eq!(ok.status, 200, "{}", gw.log());
        // Count tokens is Anthropic's: refused for an OpenAI model (400).
        let count = c
            .request(post(
                "/v1/messages/count_tokens",
                r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
                &["x-request-id: refused-2", "anthropic-version: 2023-06-01"],
            ))
            .unwrap();
        assert_eq!(count.status, 400, "{}", count.text());
        // A provider prefix nothing is configured for (404).
        let unknown = c
            .request(post(
                "/v1/chat/completions",
                r#"{"model":"nosuch/model","messages":[{"role":"user","content":"hi"}]}"#,
                &["x-request-id: unknown-3"],
            ))
            .unwrap();
        assert_eq!(unknown.status, 404, "{}", unknown.text());
        // A path the gateway does not serve (404), on the same connection.
        let path = c
            .request("GET /v2/nothing HTTP/1.1\r\nhost: t\r\nx-request-id: path-4\r\n\r\n")
            .unwrap();
        assert_eq!(path.status, 404);
        assert_eq!(mock.requests().len(), 1, "only the first went upstream");

        let recs = records(&log, &["ok-1", "refused-2", "unknown-3", "path-4"]);
        assert_eq!(recs[0]["provider"], "oa");
        assert!(recs[0]["input_tokens"].as_u64().unwrap() > 0, "{}", recs[0]);
        assert!(recs[0]["upstream_ms"].is_number(), "{}", recs[0]);
        for (rec, res) in recs.iter().zip([&ok, &count, &unknown, &path]) {
            assert_eq!(
                rec["bytes_out"].as_u64(),
                Some(res.raw.len() as u64),
                "bytes_out is what the client got: {rec}"
            );
        }
        for rec in &recs[1..] {
            assert_eq!(rec["input_tokens"], 0, "{rec}");
            assert_eq!(rec["output_tokens"], 0, "{rec}");
            assert_eq!(rec["cost_usd"].as_f64().unwrap_or(0.0), 0.0, "{rec}");
            assert!(rec["provider"].is_null(), "{rec}");
            assert!(rec["upstream_ms"].is_null(), "{rec}");
        }

        let metrics = scrape(admin);
        let tokens_none = sample(&metrics, "shardgate_tokens_total", &["provider=\"none\""]);
        assert_eq!(tokens_none, 0.0, "no tokens without a provider:\n{metrics}");
        let cost_none = sample(&metrics, "shardgate_cost_usd_total", &["provider=\"none\""]);
        assert_eq!(cost_none, 0.0, "no cost without a provider:\n{metrics}");
        let errors = sample(&metrics, "shardgate_errors_total", &["provider=\"none\""]);
        assert_eq!(errors, 3.0, "the 400 and both 404s are counted:\n{metrics}");
    });
}
