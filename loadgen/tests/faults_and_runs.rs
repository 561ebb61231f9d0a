//! `loadgen run` against the mock: counts add up, fault fractions are
//! honoured, and validation catches what the mock breaks on purpose.

mod common;
use common::*;

fn errors(report: &serde_json::Value, class: &str) -> u64 {
    report["errors"][class].as_u64().unwrap()
}

#[test]
fn closed_loop_counts_every_request() {
    let mock = Mock::start(&[]);
    for workload in [
        "chat",
        "chat-stream",
        "responses-stream",
        "messages-stream",
        "embeddings",
    ] {
        let r = run(
            mock.addr,
            &[
                "--workload",
                workload,
                "--requests",
                "400",
                "--connections",
                "4",
            ],
        );
        assert_eq!(r["ok"], 400, "{workload}: {r}");
        assert_eq!(r["latency_ms"]["count"], 400);
        assert!(r["throughput_rps"].as_f64().unwrap() > 0.0);
        if workload.ends_with("-stream") {
            assert_eq!(r["ttft_ms"]["count"], 400);
        }
    }
}

#[test]
fn custom_bodies_are_sent_and_validated_in_their_paths_dialect() {
    let mock = Mock::start(&[]);
    let dir = std::env::temp_dir();
    let plain = dir.join(format!("loadgen-body-{}.json", std::process::id()));
    let stream = dir.join(format!("loadgen-body-stream-{}.json", std::process::id()));
    std::fs::write(&plain, r#"{"model":"custom","input":["a","b","c"]}"#).unwrap();
    std::fs::write(
        &stream,
        r#"{"model":"c","max_tokens":8,"stream":true,"messages":[]}"#,
    )
    .unwrap();
    let r = run(
        mock.addr,
        &[
            "--body",
            plain.to_str().unwrap(),
            "--path",
            "/v1/embeddings",
            "--requests",
            "50",
        ],
    );
    assert_eq!(r["ok"], 50, "{r}");
    let r = run(
        mock.addr,
        &[
            "--body",
            stream.to_str().unwrap(),
            "--path",
            "/v1/messages",
            "--requests",
            "50",
        ],
    );
    assert_eq!(
        (r["ok"].as_u64(), r["ttft_ms"]["count"].as_u64()),
        (Some(50), Some(50)),
        "{r}"
    );
    let _ = (std::fs::remove_file(plain), std::fs::remove_file(stream));
}

#[test]
fn plot_is_an_svg_percentile_curve() {
    let mock = Mock::start(&["--latency", "uniform:0ms..2ms"]);
    let path = std::env::temp_dir().join(format!("loadgen-plot-{}.svg", std::process::id()));
    let r = run(
        mock.addr,
        &[
            "--workload",
            "chat-stream",
            "--requests",
            "200",
            "--plot",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(r["ok"], 200);
    let svg = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<polyline").count(),
        2,
        "latency and ttft curves"
    );
    assert!(svg.contains("99.9%"));
}

#[test]
fn open_loop_keeps_its_rate_and_excludes_warmup() {
    let mock = Mock::start(&[]);
    let r = run(
        mock.addr,
        &[
            "--rate",
            "400",
            "--duration",
            "1s",
            "--warmup",
            "500ms",
            "--connections",
            "8",
        ],
    );
    let total = r["ok"].as_u64().unwrap();
    assert!((360..=440).contains(&total), "{r}");
    assert!(
        (380.0..=420.0).contains(&r["throughput_rps"].as_f64().unwrap()),
        "{r}"
    );
}

#[test]
fn fault_fractions_are_roughly_honoured() {
    let mock = Mock::start(&[
        "--fail-429",
        "0.2",
        "--fail-500",
        "0.1",
        "--truncate",
        "0.1",
        "--seed",
        "9",
    ]);
    let r = run(
        mock.addr,
        &[
            "--workload",
            "chat",
            "--requests",
            "2000",
            "--connections",
            "8",
        ],
    );
    let share = |n: u64| n as f64 / 2000.0;
    assert!((share(errors(&r, "status")) - 0.3).abs() < 0.04, "{r}");
    assert!((share(errors(&r, "truncated")) - 0.1).abs() < 0.03, "{r}");
    assert!((share(r["ok"].as_u64().unwrap()) - 0.6).abs() < 0.05, "{r}");
}

#[test]
fn truncated_streams_and_stalls_are_caught() {
    let mock = Mock::start(&["--truncate", "1"]);
    for workload in [
        "chat-stream",
        "responses-stream",
        "messages-stream",
        "completions",
    ] {
        let r = run(
            mock.addr,
            &[
                "--workload",
                workload,
                "--requests",
                "50",
                "--connections",
                "2",
            ],
        );
        assert_eq!(
            (r["ok"].as_u64(), errors(&r, "truncated")),
            (Some(0), 50),
            "{workload}: {r}"
        );
    }
    let stalling = Mock::start(&["--stall", "1"]);
    let r = run(
        stalling.addr,
        &[
            "--requests",
            "2",
            "--connections",
            "2",
            "--timeout",
            "300ms",
        ],
    );
    assert_eq!(errors(&r, "timeout"), 2, "{r}");
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(port, &["--requests", "3", "--connections", "1"]);
    assert_eq!(errors(&r, "connect"), 3, "{r}");
}

/// A keep-alive HTTP/1.1 server that answers every request with one chat
/// completion and hands each request's body to `bodies`.
fn recording_server() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let (mut reader, tx) = (BufReader::new(conn.unwrap()), tx.clone());
            std::thread::spawn(move || loop {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let _ = tx.send(body);
                let answer = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    answer.len()
                );
                let stream = reader.get_mut();
                if stream.write_all(head.as_bytes()).is_err()
                    || stream.write_all(answer.as_bytes()).is_err()
                {
                    return;
                }
            });
        }
    });
    (addr, rx)
}

#[test]
fn unique_prompts_differ_on_every_request_and_connection() {
    let (addr, bodies) = recording_server();
    let r = run(
        addr,
        &[
            "--unique",
            "--requests",
            "300",
            "--connections",
            "4",
            "--cores",
            "2",
        ],
    );
    assert_eq!(r["ok"], 300, "{r}");
    // A second run numbers its prompts apart from the first's.
    let r = run(
        addr,
        &["--unique", "--requests", "100", "--connections", "2"],
    );
    assert_eq!(r["ok"], 100, "{r}");
    let bodies: Vec<Vec<u8>> = bodies.try_iter().collect();
    assert_eq!(bodies.len(), 400);
    let distinct: std::collections::HashSet<&Vec<u8>> = bodies.iter().collect();
    assert_eq!(distinct.len(), 400, "every prompt its own");
    for body in &bodies {
        assert_eq!(body.len(), bodies[0].len());
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let prompt = v["messages"][1]["content"].as_str().unwrap();
        assert!(
            prompt[..24].bytes().all(|b| b.is_ascii_hexdigit()),
            "{prompt}"
        );
    }
    // Without the flag, one body every time.
    let (addr, bodies) = recording_server();
    run(addr, &["--requests", "20", "--connections", "2"]);
    let same: std::collections::HashSet<Vec<u8>> = bodies.try_iter().collect();
    assert_eq!(same.len(), 1);
}
