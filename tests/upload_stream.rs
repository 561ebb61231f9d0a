//! Uploads larger than `limits.max_body_bytes`, streamed through: a
//! 200 MiB transcription upload reaches the mock whole, its model renamed,
//! while the gateway's RSS stays near its idle size; a large upload whose
//! model field comes after its first MiB, or one over
//! `limits.max_upload_bytes`, is refused before anything is sent; a client
//! that leaves mid-upload leaves no upstream request, slot or connection
//! behind.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const BOUNDARY: &str = "----shardgate-upload-51e2";
const MIB: usize = 1024 * 1024;

/// The file's byte at `i`: a pattern no boundary can appear in (no `-`).
fn file_byte(i: usize) -> u8 {
    let b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    if b == b'-' {
        b'+'
    } else {
        b
    }
}

/// The form's parts before and after the file's bytes.
fn form_around(fields_first: &[(&str, &str)], fields_after: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
    let field = |out: &mut Vec<u8>, name: &str, value: &str| {
        out.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    };
    let mut before = Vec::new();
    for (n, v) in fields_first {
        field(&mut before, n, v);
    }
    before.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"talk.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
    );
    let mut after = b"\r\n".to_vec();
    for (n, v) in fields_after {
        field(&mut after, n, v);
    }
    after.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (before, after)
}

fn gateway(mock: &MockUpstream, limits: &str) -> Gateway {
    gateway_with_admin(mock, limits).0
}

/// The same, with an admin listener for its metrics.
fn gateway_with_admin(mock: &MockUpstream, limits: &str) -> (Gateway, std::net::SocketAddr) {
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = config_for(
        mock,
        "",
        &format!("[admin]\nlisten = \"{admin}\"\n\n[limits]\n{limits}"),
    );
    (
        Gateway::start(GatewayOpts::config(Driver::IoUring, config)),
        admin,
    )
}

/// Sends an upload's head and form start, then `file_len` file bytes (or
/// `send` of them, then stops), then the form's end.
fn send_upload(
    s: &mut TcpStream,
    before: &[u8],
    file_len: usize,
    after: &[u8],
    send: usize,
) -> std::io::Result<()> {
    let len = before.len() + file_len + after.len();
    s.write_all(
        format!(
            "POST /v1/audio/transcriptions HTTP/1.1\r\nhost: gw\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {len}\r\n\r\n"
        )
        .as_bytes(),
    )?;
    s.write_all(before)?;
    let mut chunk = vec![0u8; MIB];
    let mut at = 0;
    while at < send.min(file_len) {
        let n = MIB.min(file_len - at).min(send - at);
        for (j, b) in chunk[..n].iter_mut().enumerate() {
            *b = file_byte(at + j);
        }
        s.write_all(&chunk[..n])?;
        at += n;
    }
    if send >= file_len {
        s.write_all(after)?;
    }
    Ok(())
}

#[test]
fn a_200_mib_upload_streams_through_in_bounded_memory() {
    let mock = MockUpstream::start();
    let (gw, admin) = gateway_with_admin(&mock, "");
    let idle = rss_kib(gw.pid());
    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done, pid) = (peak.clone(), done.clone(), gw.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let file_len = 200 * MIB;
    let (before, after) = form_around(&[("model", "openai/whisper-1")], &[("language", "en")]);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let started = Instant::now();
    send_upload(&mut s, &before, file_len, &after, file_len).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("mock transcript of {file_len} bytes by whisper-1")),
        "{answer}"
    );
    // Streamed uploads close their connection after the answer.
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    let got = mock.last();
    let fields = form_fields(&got).unwrap();
    let field = |name: &str| fields.iter().find(|f| f.name == name).unwrap();
    assert_eq!(field("model").value, b"whisper-1");
    assert_eq!(field("language").value, b"en");
    let file = &field("file").value;
    assert_eq!(file.len(), file_len);
    assert!(
        file.iter().enumerate().all(|(i, &b)| b == file_byte(i)),
        "file bytes changed"
    );
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "200 MiB upload in {:?}: gateway RSS {idle} KiB idle, {peak} KiB peak",
        started.elapsed()
    );
    assert!(
        peak < idle + 24 * 1024,
        "RSS grew from {idle} KiB to {peak} KiB during a 200 MiB upload"
    );
    // Its usage (the mock's transcription usage) is metered like any other.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = scrape(admin);
        let input = sample(&m, "shardgate_tokens_total", &["direction=\"input\""]);
        let output = sample(&m, "shardgate_tokens_total", &["direction=\"output\""]);
        if (input, output) == (14.0, 5.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "usage not metered: {input}/{output}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.assert_healthy();
}

#[test]
fn large_uploads_name_their_model_first_and_stay_under_the_upload_limit() {
    let mock = MockUpstream::start();
    let gw = gateway(
        &mock,
        "max_body_bytes = 1048576\nmax_upload_bytes = 67108864\n",
    );
    // The model after 2 MiB of file: not found in the first MiB.
    let (before, after) = form_around(&[], &[("model", "whisper-1")]);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The gateway answers and closes before taking it all.
    let _ = send_upload(&mut s, &before, 2 * MIB, &after, 2 * MIB);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("model"), "{answer}");

    // Over max_upload_bytes: refused from the head.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "POST /v1/audio/transcriptions HTTP/1.1\r\nhost: gw\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {}\r\n\r\n",
            128 * MIB
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_upload_bytes"), "{answer}");

    // A model-first upload of the same size is streamed.
    let (before, after) = form_around(&[("model", "whisper-1")], &[]);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    send_upload(&mut s, &before, 2 * MIB, &after, 2 * MIB).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        mock.requests().len(),
        1,
        "only the streamed one went upstream"
    );
}

#[test]
fn a_client_that_leaves_mid_upload_leaves_nothing_behind() {
    let mock = MockUpstream::start();
    let gw = gateway(&mock, "max_body_bytes = 1048576\n");
    let fds = fd_count(gw.pid());
    for _ in 0..3 {
        let (before, after) = form_around(&[("model", "whisper-1")], &[]);
        let mut s = TcpStream::connect(gw.addr).unwrap();
        send_upload(&mut s, &before, 8 * MIB, &after, 3 * MIB).unwrap();
        drop(s);
    }
    // The upstream connections of the cut uploads are closed, the mock
    // never got a whole request, and the gateway serves the next one.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count(gw.pid()) > fds {
        assert!(
            Instant::now() < deadline,
            "{} fds, {fds} before",
            fd_count(gw.pid())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(mock.requests().is_empty());
    assert!(mock.connections() >= 3);
    let (before, after) = form_around(&[("model", "whisper-1")], &[]);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    send_upload(&mut s, &before, 2 * MIB, &after, 2 * MIB).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    gw.assert_healthy();
}
