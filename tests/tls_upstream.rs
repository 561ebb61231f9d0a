//! Upstream TLS end to end: the real gateway binary in front of a TLS
//! HTTP/1.1 upstream on loopback whose certificates come from a throwaway CA
//! (rcgen). Covers a private CA via `ca_file`, the 502 a rejected
//! certificate gives (unknown issuer, wrong name), SNI, ALPN, session
//! resumption across connections, and the insecure switch, under both
//! monoio drivers.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{each_driver, gateway_command, Gateway, GatewayOpts, TempDir};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::HandshakeKind;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"chatcmpl-tls","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"over tls"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;

/// A CA and a server certificate it signed for `names`.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki(names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "shardgate test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// What the upstream saw on one TLS connection.
#[derive(Debug, Clone)]
struct Seen {
    handshake: Option<HandshakeKind>,
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    head: String,
}

/// A TLS HTTP/1.1 upstream answering every request with `ANSWER` and
/// `connection: close`, so each request is a new TLS connection (which is
/// what lets a second request show resumption).
struct TlsUpstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TlsUpstream {
    fn start(pki: &Pki) -> TlsUpstream {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        // Accepts for the life of the test process; each connection is
        // bounded by socket timeouts.
        thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (config, record) = (config.clone(), record.clone());
                thread::spawn(move || serve(tcp, config, &record));
            }
        });
        TlsUpstream { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>, record: &Mutex<Vec<Seen>>) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return, // e.g. the client rejected our certificate
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let body_len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + body_len {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    record.lock().unwrap().push(Seen {
        handshake: tls.conn.handshake_kind(),
        sni: tls.conn.server_name().map(String::from),
        alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
        head,
    });
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
        ANSWER.len()
    );
    let _ = tls.write_all(response.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// A gateway config with one provider `private` at the upstream.
fn config(upstream: &TlsUpstream, extra: &str) -> String {
    format!(
        "default_provider = \"private\"\n[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\
         [providers.private]\nbase_url = \"https://localhost:{}/v1\"\napi_key = \"sk-tls\"\n{extra}\n",
        upstream.port
    )
}

#[test]
fn private_ca_file_gives_200_with_sni_alpn_and_resumption() {
    let pki = pki(&["localhost"]);
    let dir = TempDir::new("tls-ca");
    let ca = dir.write("ca.pem", &pki.ca_pem);
    each_driver(|d| {
        let upstream = TlsUpstream::start(&pki);
        let extra = format!("ca_file = {:?}", ca.display().to_string());
        let gw = Gateway::start(GatewayOpts::config(d, config(&upstream, &extra)));
        for _ in 0..2 {
            let r = gw.post("/v1/chat/completions", CHAT);
            assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.log());
            assert_eq!(r.json()["choices"][0]["message"]["content"], "over tls");
        }
        let seen = upstream.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for s in &seen {
            assert_eq!(s.sni.as_deref(), Some("localhost"));
            assert_eq!(s.alpn.as_deref(), Some(&b"http/1.1"[..]));
            assert!(s.head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"));
            assert!(
                s.head.contains("authorization: Bearer sk-tls\r\n"),
                "{}",
                s.head
            );
        }
        assert_eq!(seen[0].handshake, Some(HandshakeKind::Full));
        // The second connection resumes the first one's session: the
        // connector (and its session cache) is shared, not rebuilt.
        assert_eq!(seen[1].handshake, Some(HandshakeKind::Resumed));
    });
}

#[test]
fn unknown_issuer_is_a_502_that_says_so() {
    let pki = pki(&["localhost"]);
    each_driver(|d| {
        let upstream = TlsUpstream::start(&pki);
        let gw = Gateway::start(GatewayOpts::config(d, config(&upstream, "")));
        let r = gw.post("/v1/chat/completions", CHAT);
        let e = r.assert_openai_error(502);
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains("TLS certificate verification failed for localhost"),
            "{msg}"
        );
        assert!(msg.contains("UnknownIssuer"), "{msg}");
        assert!(msg.contains("ca_file"), "{msg}");
        assert!(upstream.seen().is_empty());
        gw.assert_healthy();
    });
}

#[test]
fn certificate_for_another_name_is_a_502_that_says_so() {
    let pki = pki(&["api.example.com"]);
    let dir = TempDir::new("tls-name");
    let ca = dir.write("ca.pem", &pki.ca_pem);
    each_driver(|d| {
        let upstream = TlsUpstream::start(&pki);
        let extra = format!("ca_file = {:?}", ca.display().to_string());
        let gw = Gateway::start(GatewayOpts::config(d, config(&upstream, &extra)));
        let e = gw
            .post("/v1/chat/completions", CHAT)
            .assert_openai_error(502);
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains("TLS certificate verification failed"), "{msg}");
        assert!(msg.contains("does not name this host"), "{msg}");
        assert!(upstream.seen().is_empty());
    });
}

#[test]
fn insecure_switch_skips_verification_and_is_logged() {
    let pki = pki(&["api.example.com"]);
    let upstream = TlsUpstream::start(&pki);
    let gw = Gateway::start(GatewayOpts::config(
        common::Driver::IoUring,
        config(&upstream, "tls_insecure_skip_verify = true"),
    ));
    let r = gw.post("/v1/chat/completions", CHAT);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        gw.log()
            .contains("TLS CERTIFICATE VERIFICATION IS DISABLED"),
        "{}",
        gw.log()
    );
}

#[test]
fn a_bad_ca_file_is_refused_at_start_naming_the_field() {
    let dir = TempDir::new("tls-bad-ca");
    let ca = dir.write("ca.pem", "not a certificate\n");
    let toml = dir.write(
        "g.toml",
        &format!(
            "[providers.p]\nbase_url = \"https://localhost:1/v1\"\nca_file = {:?}\n",
            ca.display().to_string()
        ),
    );
    let out = gateway_command()
        .arg("--config")
        .arg(&toml)
        .arg("--check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("providers.p.ca_file"), "{err}");
    assert!(err.contains("no PEM certificate"), "{err}");
}
