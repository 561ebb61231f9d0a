//! TLS for clients (`[server.tls]`), over real sockets against the real
//! binary and the bundled mock upstream, under both drivers: a test CA and
//! server certificates made with rcgen in a scratch directory; rustls
//! clients pinned to TLS 1.3 or 1.2; and the official OpenAI and Anthropic
//! Python SDKs over https with the test CA (tests/sdk/tls_sdk.py, skipped
//! with a SKIP line when they cannot be imported, unless
//! `SHARDGATE_REQUIRE_SDK=1`).
//!
//! What is asserted: both versions get the mock's answer (keep-alive,
//! pipelined, a large body, a stream) with ALPN `http/1.1`; a client
//! offering only h2 is refused; plain HTTP to the TLS port gets no HTTP
//! answer and hurts no one; a client stalling mid-ClientHello delays no
//! other client and is closed at `limits.header_read_timeout_ms`; SIGHUP
//! with a new certificate is seen by new connections while an older
//! keep-alive connection goes on; a broken certificate is refused on reload
//! and the served one stays; a key that is not the certificate's stops the
//! start-up naming `server.tls.key_file`.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};

const CHAT: &str = "/v1/chat/completions";
/// The handshake deadline these gateways run with (`header_read_timeout_ms`).
const DEADLINE: Duration = Duration::from_millis(1000);

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A test CA that signs server certificates for `localhost` and 127.0.0.1.
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "shardgate test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa { params, key, cert }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A server certificate and its key, as PEM, and the certificate's DER.
    fn issue(&self, cn: &str, serial: u64) -> (String, String, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }
}

/// Writes `text` to `path` through a rename, as a deploy tool would, so a
/// reload never reads half a file.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ---------------------------------------------------------------------------
// A gateway on a TLS listener
// ---------------------------------------------------------------------------

struct TlsGateway {
    addr: SocketAddr,
    child: Child,
    dir: TempDir,
    cert_file: PathBuf,
    key_file: PathBuf,
    ca: CertificateDer<'static>,
}

fn tls_config_text(mock: &MockUpstream, cert: &Path, key: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n\
         [limits]\nheader_read_timeout_ms = {}\n\n\
         [providers.openai]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n",
        cert.display(),
        key.display(),
        DEADLINE.as_millis(),
        mock.base_url()
    )
}

impl TlsGateway {
    /// Starts the binary with `[server.tls]` serving `cert_pem`/`key_pem`
    /// (written to files of its own) and waits until a TLS client gets an
    /// answer from `/health`.
    fn start(driver: Driver, mock: &MockUpstream, ca: &TestCa, cn: &str) -> TlsGateway {
        let (cert_pem, key_pem, _) = ca.issue(cn, 1);
        let dir = TempDir::new("tls");
        let cert_file = dir.write("server.crt", &cert_pem);
        let key_file = dir.write("server.key", &key_pem);
        let config = dir.write(
            "shardgate.toml",
            &tls_config_text(mock, &cert_file, &key_file),
        );
        let mut last = String::new();
        let mut dir = Some(dir);
        for _ in 0..3 {
            let dir_now = dir.take().unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let log = std::fs::File::create(dir_now.0.join("stderr.log")).unwrap();
            let mut cmd = gateway_command();
            cmd.args(["--listen", &addr.to_string(), "--shards", "1"])
                .args(["--admin-listen", "127.0.0.1:0", "--config"])
                .arg(&config);
            if driver == Driver::Legacy {
                cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap();
            let mut gw = TlsGateway {
                addr,
                child,
                dir: dir_now,
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                ca: ca.der(),
            };
            match gw.wait_ready() {
                Ok(()) => return gw,
                // The port was taken between the probe and the bind: retry
                // on another, with the same files.
                Err(e) => last = e,
            }
            let _ = gw.child.kill();
            let _ = gw.child.wait();
            dir = Some(std::mem::replace(&mut gw.dir, TempDir(PathBuf::new())));
        }
        panic!("gateway did not start: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log()));
            }
            if self.log().contains("listening on") {
                if let Ok(mut s) = self.connect(&[&rustls::version::TLS13]) {
                    if let Ok(r) = request(&mut s, "GET /health HTTP/1.1\r\nhost: t\r\n\r\n") {
                        if r.status == 200 {
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("/health never answered over TLS: {}", self.log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().matches(needle).count() >= count {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn sighup(&self) {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) },
            0
        );
    }

    /// `shardgate_errors_total{provider="none",kind=KIND}` from the
    /// (plain HTTP) admin listener.
    fn errors(&self, kind: &str) -> u64 {
        let log = self.log();
        let admin = log
            .split("admin (metrics, reload) on http://")
            .nth(1)
            // The line's end: a space, or the quote closing its msg="…".
            .and_then(|s| s.split(|c: char| c.is_whitespace() || c == '"').next())
            .expect("admin address in the log");
        let mut c = Client::connect(admin.parse().unwrap()).unwrap();
        let r = c
            .request("GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        let needle = format!("shardgate_errors_total{{provider=\"none\",kind=\"{kind}\"}} ");
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    fn connect(&self, versions: &[&'static SupportedProtocolVersion]) -> io::Result<Tls> {
        tls_connect(self.addr, client_config(&self.ca, versions, &[b"http/1.1"]))
    }
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// A rustls client
// ---------------------------------------------------------------------------

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Connects and completes the handshake (so that its errors show here).
fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` and reads one response.
fn request(s: &mut Tls, req: &str) -> io::Result<Answer> {
    s.write_all(req.as_bytes())?;
    s.flush()?;
    read_answer(s, &mut Vec::new())
}

/// Reads one response (Content-Length or chunked) from `s`; bytes past it
/// stay in `pending` for the next one.
fn read_answer(s: &mut impl Read, pending: &mut Vec<u8>) -> io::Result<Answer> {
    let mut chunk = [0u8; 16 * 1024];
    let more = |s: &mut dyn Read, pending: &mut Vec<u8>, chunk: &mut [u8]| -> io::Result<()> {
        let n = s.read(chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        pending.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    let head_len = loop {
        if let Some(i) = find(pending, b"\r\n\r\n") {
            break i + 4;
        }
        more(s, pending, &mut chunk)?;
    };
    let head = String::from_utf8_lossy(&pending[..head_len]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    pending.drain(..head_len);
    let body = if let Some(cl) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
    {
        let n: usize = cl.trim().parse().unwrap();
        while pending.len() < n {
            more(s, pending, &mut chunk)?;
        }
        pending.drain(..n).collect()
    } else if lower.contains("transfer-encoding: chunked") {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(pending, b"\r\n") {
                    break i;
                }
                more(s, pending, &mut chunk)?;
            };
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&pending[..line_end])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            while pending.len() < line_end + 2 + size + 2 {
                more(s, pending, &mut chunk)?;
            }
            body.extend_from_slice(&pending[line_end + 2..line_end + 2 + size]);
            pending.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        Vec::new()
    };
    Ok(Answer { status, head, body })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn chat(content: &str, stream: bool) -> String {
    post(
        CHAT,
        &format!(
            r#"{{"model":"gpt-4o-mini","stream":{stream},"messages":[{{"role":"user","content":"{content}"}}]}}"#
        ),
        &[],
    )
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn tls13_and_tls12_clients_get_the_mock_answer_over_http11() {
    let ca = TestCa::new();
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = TlsGateway::start(d, &mock, &ca, "gw-a");
        for (name, version) in [
            ("1.3", &rustls::version::TLS13),
            ("1.2", &rustls::version::TLS12),
        ] {
            let mut s = gw.connect(&[version]).unwrap();
            assert_eq!(s.conn.protocol_version(), Some(version.version), "{name}");
            assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "{name}");

            // Keep-alive: two requests on one connection.
            for i in 0..2 {
                let r = request(&mut s, &chat(&format!("hi {i}"), false)).unwrap();
                assert_eq!(r.status, 200, "{name}: {}\n{}", r.head, gw.log());
                assert!(r.text().contains(&format!("echo: hi {i}")), "{}", r.text());
            }

            // Idle past the gateway's hot wait (250 ms, `HOT_WAIT`): its read
            // in flight is cut short and the next waits holding no buffer;
            // the session must come out of that intact.
            thread::sleep(Duration::from_millis(350));
            let r = request(&mut s, &chat("after a pause", false)).unwrap();
            assert_eq!(r.status, 200, "{name}: {}", r.head);

            // Pipelined: two requests in one write; the second is decrypted
            // with the first and must be answered without waiting for more.
            let two = format!("{}{}", chat("p1", false), chat("p2", false));
            s.write_all(two.as_bytes()).unwrap();
            let mut pending = Vec::new();
            for want in ["echo: p1", "echo: p2"] {
                let r = read_answer(&mut s, &mut pending).unwrap();
                assert_eq!(r.status, 200, "{name}: {}", r.head);
                assert!(r.text().contains(want), "{name}: {}", r.text());
            }

            // A body of many TLS records.
            let big = "x".repeat(200 * 1024);
            let r = request(&mut s, &chat(&big, false)).unwrap();
            assert_eq!(r.status, 200, "{name}: {}", r.head);
            assert!(r.body.len() > big.len(), "{name}: echo cut short");

            // A stream.
            let r = request(&mut s, &chat("stream", true)).unwrap();
            assert_eq!(r.status, 200, "{name}: {}", r.head);
            assert!(r.text().contains("data: [DONE]"), "{name}: {}", r.text());

            // `connection: close`: the answer, then close_notify (a clean
            // end, which rustls tells from a cut).
            let r = request(
                &mut s,
                "GET /health HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
            )
            .unwrap();
            assert_eq!(r.status, 200, "{name}: {}", r.head);
            let mut rest = Vec::new();
            let end = s.read_to_end(&mut rest);
            assert!(end.is_ok() && rest.is_empty(), "{name}: {end:?} {rest:?}");
        }
    });
}

#[test]
fn a_client_offering_only_h2_is_refused() {
    let ca = TestCa::new();
    let mock = MockUpstream::start();
    let gw = TlsGateway::start(Driver::IoUring, &mock, &ca, "gw-a");
    let config = client_config(&gw.ca, &[&rustls::version::TLS13], &[b"h2"]);
    let err = tls_connect(gw.addr, config).map(|_| ()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("NoApplicationProtocol"), "{msg}");
    // Without ALPN at all is fine (curl --no-alpn, old clients).
    let config = client_config(&gw.ca, &[&rustls::version::TLS13], &[]);
    let mut s = tls_connect(gw.addr, config).unwrap();
    assert_eq!(s.conn.alpn_protocol(), None);
    let r = request(&mut s, "GET /health HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn plain_http_to_the_tls_port_gets_no_http_answer_and_hurts_no_one() {
    let ca = TestCa::new();
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = TlsGateway::start(d, &mock, &ca, "gw-a");
        let mut plain = TcpStream::connect(gw.addr).unwrap();
        plain.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        plain.write_all(chat("in clear", false).as_bytes()).unwrap();
        let started = Instant::now();
        let mut got = Vec::new();
        let _ = plain.read_to_end(&mut got);
        assert!(
            started.elapsed() < DEADLINE,
            "closed at once, not at the deadline"
        );
        assert!(
            !got.starts_with(b"HTTP/"),
            "an HTTP answer in clear: {:?}",
            String::from_utf8_lossy(&got)
        );
        // A TLS alert at most (content type 21).
        assert!(got.is_empty() || got[0] == 21, "{got:?}");
        assert!(mock
            .requests()
            .iter()
            .all(|r| !common::contains(&r.body, b"in clear")));

        let mut s = gw.connect(&[&rustls::version::TLS13]).unwrap();
        let r = request(&mut s, &chat("after", false)).unwrap();
        assert_eq!(r.status, 200, "{}", gw.log());
        assert_eq!(gw.errors("tls_handshake"), 1, "counted once");
    });
}

#[test]
fn a_client_stalling_mid_hello_blocks_no_one_and_is_closed_at_the_deadline() {
    let ca = TestCa::new();
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = TlsGateway::start(d, &mock, &ca, "gw-a");
        // Half of a real ClientHello, then nothing.
        let mut hello = Vec::new();
        let config = client_config(&gw.ca, &[&rustls::version::TLS13], &[b"http/1.1"]);
        ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
            .unwrap()
            .write_tls(&mut hello)
            .unwrap();
        let mut stalled = TcpStream::connect(gw.addr).unwrap();
        stalled.write_all(&hello[..hello.len() / 2]).unwrap();
        let stalled_at = Instant::now();

        // Meanwhile, on the same (only) shard, others are served at once.
        for i in 0..5 {
            let t = Instant::now();
            let mut s = gw.connect(&[&rustls::version::TLS13]).unwrap();
            let r = request(&mut s, &chat(&format!("n{i}"), false)).unwrap();
            assert_eq!(r.status, 200);
            assert!(
                t.elapsed() < DEADLINE / 2,
                "{d:?}: a client waited {:?} behind a stalled handshake",
                t.elapsed()
            );
        }
        assert!(stalled_at.elapsed() < DEADLINE, "the test itself was slow");

        stalled.set_read_timeout(Some(DEADLINE * 5)).unwrap();
        let mut rest = Vec::new();
        let closed = stalled.read_to_end(&mut rest);
        let after = stalled_at.elapsed();
        assert!(
            closed.is_ok()
                || closed
                    .as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "{d:?}: not closed: {closed:?}"
        );
        assert!(
            after >= DEADLINE - Duration::from_millis(100) && after < DEADLINE * 3,
            "{d:?}: closed after {after:?}, deadline {DEADLINE:?}"
        );
        assert!(rest.is_empty() || rest[0] == 21, "{rest:?}");
        assert_eq!(gw.errors("tls_handshake_timeout"), 1);
    });
}

#[test]
fn sighup_serves_a_new_certificate_to_new_connections_and_keeps_old_ones() {
    let ca = TestCa::new();
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = TlsGateway::start(d, &mock, &ca, "gw-a");
        let peer_cert = |s: &Tls| s.conn.peer_certificates().unwrap()[0].clone();

        let mut before = gw.connect(&[&rustls::version::TLS13]).unwrap();
        assert_eq!(request(&mut before, &chat("a", false)).unwrap().status, 200);
        let old_der = peer_cert(&before);

        let (cert_b, key_b, der_b) = ca.issue("gw-b", 2);
        assert_ne!(old_der, der_b);
        replace_file(&gw.key_file, &key_b);
        replace_file(&gw.cert_file, &cert_b);
        gw.sighup();
        assert!(
            gw.wait_log("TLS certificate reloaded", 1, Duration::from_secs(5)),
            "{}",
            gw.log()
        );
        for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let mut s = gw.connect(&[v]).unwrap();
            assert_eq!(
                peer_cert(&s),
                der_b,
                "{d:?}: a new connection got the old certificate"
            );
            assert_eq!(request(&mut s, &chat("b", false)).unwrap().status, 200);
        }
        // The connection from before the reload goes on, on its certificate.
        let r = request(&mut before, &chat("still", false)).unwrap();
        assert_eq!(r.status, 200, "{}", gw.log());
        assert!(r.text().contains("echo: still"));

        // A broken certificate is refused; B stays.
        replace_file(
            &gw.cert_file,
            "-----BEGIN CERTIFICATE-----\nnot base64 !\n-----END CERTIFICATE-----\n",
        );
        gw.sighup();
        assert!(
            gw.wait_log("reload refused", 1, Duration::from_secs(5)),
            "{}",
            gw.log()
        );
        assert!(gw.log().contains("server.tls.cert_file"), "{}", gw.log());
        // A certificate whose key is not the one configured is refused too.
        let (cert_c, _, _) = ca.issue("gw-c", 3);
        replace_file(&gw.cert_file, &cert_c);
        gw.sighup();
        assert!(
            gw.wait_log("reload refused", 2, Duration::from_secs(5)),
            "{}",
            gw.log()
        );
        assert!(gw.log().contains("server.tls.key_file"), "{}", gw.log());
        let mut s = gw.connect(&[&rustls::version::TLS13]).unwrap();
        assert_eq!(
            peer_cert(&s),
            der_b,
            "{d:?}: a refused reload changed the certificate"
        );
        assert_eq!(request(&mut s, &chat("c", false)).unwrap().status, 200);
        assert_eq!(request(&mut before, &chat("z", false)).unwrap().status, 200);
    });
}

#[test]
fn a_key_that_is_not_the_certificates_stops_the_start_naming_the_key() {
    let ca = TestCa::new();
    let mock = MockUpstream::start();
    let dir = TempDir::new("tls-bad");
    let (cert, _, _) = ca.issue("gw-a", 1);
    let (_, other_key, _) = ca.issue("gw-b", 2);
    let cert_file = dir.write("server.crt", &cert);
    let key_file = dir.write("server.key", &other_key);
    let config = dir.write("g.toml", &tls_config_text(&mock, &cert_file, &key_file));
    let out = gateway_command()
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server.tls.key_file"), "{stderr}");
    assert!(stderr.contains("is not the private key"), "{stderr}");
}

#[test]
fn openai_and_anthropic_sdks_over_https_with_the_test_ca() {
    if !python_modules_available("tls_clients", "openai, anthropic") {
        return;
    }
    let ca = TestCa::new();
    let mock = MockUpstream::start();
    let ca_dir = TempDir::new("tls-ca");
    let ca_file = ca_dir.write("ca.pem", &ca.cert.pem());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/tls_sdk.py");
    each_driver(|d| {
        let gw = TlsGateway::start(d, &mock, &ca, "gw-a");
        let base = format!("https://127.0.0.1:{}", gw.addr.port());
        let out = run_python(
            script,
            &["--base", &base, "--ca", ca_file.to_str().unwrap()],
            Duration::from_secs(60),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{d:?}: SDK script failed ({}):\n{stdout}\n{stderr}\ngateway log:\n{}",
            out.status,
            gw.log()
        );
        assert!(stdout.contains("tls sdk ok"), "{stdout}");
    });
}
