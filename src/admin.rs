//! The admin listener: `GET /metrics` (Prometheus text merged from every
//! shard's snapshot), `POST /admin/reload` (the same reload as SIGHUP,
//! answered with its outcome), `GET /health`, `GET /admin/status` (ready,
//! shards and their drivers, generation, in flight: `shard::status`), and the key and team
//! endpoints (`governance::handle_admin`, behind the admin token). It runs on a thread of its
//! own, off the shards, serving one short connection at a time: it is for
//! operators and scrapers, not traffic. It sits above `shard` and
//! `telemetry` (it drives the shards' `Control`); nothing below imports it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::governance::handle_admin;
use crate::http1::parse::{parse_request, HeadLimits, Parsed, RequestHead};
use crate::shard::Control;
use crate::telemetry::{log_error, prometheus, MergedMetrics};

/// The dashboard: `GET /` (the page) and `GET /admin/stats` (what it polls).
mod dashboard;

/// The largest admin request body (a key or team object).
const MAX_BODY: usize = 64 * 1024;

/// How long a scrape waits for the shards' snapshots.
const SCRAPE_WAIT: Duration = Duration::from_millis(500);

/// Reloads the configuration: what was applied, or why it was refused (the
/// running configuration then stays in force).
pub type Reload = Box<dyn Fn() -> Result<String, String> + Send>;

/// What the admin listener serves from.
pub struct Admin {
    pub control: Arc<Control>,
    /// Access-log lines dropped (a slow writer), for `/metrics`.
    pub log_dropped: Arc<AtomicU64>,
    /// The OTLP exporter's counters, when tracing is on.
    pub traces: Option<Arc<crate::telemetry::trace::TraceCounters>>,
    pub reload: Reload,
}

/// Binds `addr` and serves it on a new thread.
pub fn spawn_admin(addr: SocketAddr, admin: Admin) -> io::Result<SocketAddr> {
    let listener = crate::net::bind_admin(addr)?;
    let bound = listener.local_addr()?;
    dashboard::mark_start();
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = serve(stream, &admin) {
                    log_error(format_args!("admin: {e}"));
                }
            }
        })?;
    Ok(bound)
}

fn serve(mut stream: TcpStream, admin: &Admin) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::with_capacity(4096);
    let mut head = RequestHead::default();
    let limits = HeadLimits {
        max_head_bytes: 8192,
        max_headers: 64,
    };
    loop {
        match parse_request(&buf, &limits, &mut head) {
            Ok(Parsed::Complete) => break,
            Ok(Parsed::Partial) => {}
            Err(_) => {
                return respond(
                    &mut stream,
                    400,
                    "application/json",
                    b"{\"error\":\"bad request\"}",
                )
            }
        }
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    // A JSON body for the key and team endpoints; small, and read whole.
    let head_end = head.head_len;
    let length = match head.header(&buf, b"content-length") {
        Some(v) => match std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            Some(n) if n <= MAX_BODY => n,
            _ => {
                return respond(
                    &mut stream,
                    413,
                    "application/json",
                    b"{\"error\":\"the body must have a Content-Length of at most 64 KiB\"}",
                )
            }
        },
        None => 0,
    };
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + length];
    let method = head.method.get(&buf);
    let path = head
        .target
        .get(&buf)
        .split(|&b| b == b'?')
        .next()
        .unwrap_or_default();
    let config = admin.control.current();
    if let Some(answer) = handle_admin(
        &admin.control.governance,
        &config.config,
        method,
        path,
        head.header(&buf, b"authorization"),
        body,
    ) {
        return respond(&mut stream, answer.status, "application/json", &answer.body);
    }
    match (method, path) {
        (b"GET", b"/metrics") => {
            let snapshots = admin.control.scrape(SCRAPE_WAIT);
            let mut merged = MergedMetrics::merge(&snapshots);
            merged.access_log_dropped = admin.log_dropped.load(Ordering::Relaxed);
            let mut text = String::with_capacity(16 * 1024);
            prometheus::render(&merged, &mut text);
            prometheus::render_gen_ai(&merged, &mut text);
            prometheus::render_process_info(&mut text, &admin.control.reload_counts());
            crate::telemetry::process::ProcessStats::read().render(&mut text);
            crate::governance::metrics::render(&admin.control.governance.table, &mut text);
            if let Some(traces) = &admin.traces {
                traces.render(&mut text);
            }
            if let Some(cache) = &config.cache {
                crate::cache::metrics::render(
                    cache,
                    config.shared_cache.as_deref(),
                    config.semantic.as_ref(),
                    &mut text,
                );
            }
            respond(&mut stream, 200, prometheus::CONTENT_TYPE, text.as_bytes())
        }
        (b"POST", b"/admin/reload") if !operator(&config.config, &head, &buf) => respond(
            &mut stream,
            401,
            "application/json",
            b"{\"error\":\"POST /admin/reload needs `Authorization: Bearer <admin token>`\"}",
        ),
        (b"POST", b"/admin/reload") => {
            let (status, outcome, detail, text) = match (admin.reload)() {
                Ok(applied) => (200, "applied", "message", applied),
                Err(why) => (422, "refused", "error", why),
            };
            let mut body = format!("{{\"status\":\"{outcome}\",\"{detail}\":").into_bytes();
            crate::json::push_json_string(&mut body, &text);
            body.push(b'}');
            respond(&mut stream, status, "application/json", &body)
        }
        (b"DELETE", b"/admin/cache") => {
            let allowed = operator(&config.config, &head, &buf);
            let mut shared = "";
            let purged = match (&config.cache, allowed) {
                (_, false) => return respond(
                    &mut stream,
                    401,
                    "application/json",
                    b"{\"error\":\"DELETE /admin/cache needs `Authorization: Bearer <admin token>`\"}",
                ),
                (Some(cache), true) => {
                    if let Some(tier) = &config.shared_cache {
                        shared = match tier.purge() {
                            true => ",\"shared\":\"queued\"",
                            false => ",\"shared\":\"unavailable\"",
                        };
                    }
                    cache.clear()
                }
                (None, true) => 0,
            };
            let body = format!("{{\"purged\":{purged}{shared}}}");
            respond(&mut stream, 200, "application/json", body.as_bytes())
        }
        (b"GET", b"/admin/status") => {
            let (status, body) =
                crate::shard::render_status(&crate::shard::Status::of(&admin.control));
            respond(&mut stream, status, "application/json", &body)
        }
        (b"GET", b"/admin/stats") => {
            let body = dashboard::stats_body(admin, &config);
            respond(&mut stream, 200, "application/json", &body)
        }
        (b"GET", b"/" | b"/dashboard") => dashboard::respond_page(&mut stream),
        (b"GET", b"/health") => {
            respond(&mut stream, 200, "application/json", b"{\"status\":\"ok\"}")
        }
        _ => respond(
            &mut stream,
            404,
            "application/json",
            b"{\"error\":\"not found\"}",
        ),
    }
}

/// Whether a request may change what the gateway does (reload it, purge
/// its cache): with an admin token set, only one that presents it.
fn operator(config: &crate::config::Config, head: &RequestHead, buf: &[u8]) -> bool {
    match config.admin.token.as_deref() {
        Some(token) => {
            crate::governance::presents_admin_token(token, head.header(buf, b"authorization"))
        }
        None => true,
    }
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 128);
    crate::http1::write::push_status_line(&mut out, status);
    crate::http1::write::push_header(&mut out, b"content-type", content_type.as_bytes());
    crate::http1::write::push_content_length(&mut out, body.len() as u64);
    crate::http1::write::push_header(&mut out, b"connection", b"close");
    crate::http1::write::end_head(&mut out);
    out.extend_from_slice(body);
    stream.write_all(&out)
}
