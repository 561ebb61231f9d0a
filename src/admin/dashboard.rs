//! The dashboard: `GET /` on the admin listener serves one self-contained
//! page (HTML, CSS and script in one file, embedded in the binary; it asks
//! for nothing but this listener's own endpoints), and `GET /admin/stats`
//! the JSON document it polls: the shards' merged metrics
//! (`telemetry::stats`), per key and team totals (`governance::metrics`),
//! the cache's counters and the process's own fields.
//!
//! Invariants: serving `/admin/stats` is one scrape (each shard copies its
//! counters on its housekeeping tick, never on the request path) and a
//! render; nothing is kept between polls. The page's Content-Security-Policy
//! forbids every origin but this one, so a mistake that would load
//! something from elsewhere fails in the browser instead.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::{Admin, SCRAPE_WAIT};
use crate::shard::Gateway;
use crate::telemetry::{stats, MergedMetrics};

/// The page, as served.
pub const PAGE: &str = include_str!("dashboard.html");

/// What the page may load: itself, its inline style and script, and
/// `fetch` to this origin.
const CSP: &[u8] = b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Notes the process's start, for `uptime_s` (called when the listener starts).
pub fn mark_start() {
    STARTED.get_or_init(Instant::now);
}

/// The `/admin/stats` document.
pub fn stats_body(admin: &Admin, gateway: &Gateway) -> Vec<u8> {
    let snapshots = admin.control.scrape(SCRAPE_WAIT);
    let mut merged = MergedMetrics::merge(&snapshots);
    merged.access_log_dropped = admin.log_dropped.load(Ordering::Relaxed);
    let mut doc = stats::render(&merged, &gateway.config);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    doc.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    doc.insert("time_ms".into(), now_ms.into());
    doc.insert(
        "uptime_s".into(),
        STARTED.get().map_or(0, |s| s.elapsed().as_secs()).into(),
    );
    doc.insert("in_flight".into(), admin.control.in_flight().into());
    doc.insert("draining".into(), admin.control.is_draining().into());
    doc.insert(
        "admin_api".into(),
        gateway.config.admin.token.is_some().into(),
    );
    let (keys, teams) = crate::governance::metrics::stats(&admin.control.governance.table);
    doc.insert("keys".into(), keys);
    doc.insert("teams".into(), teams);
    doc.insert("cache".into(), cache(gateway));
    serde_json::to_vec(&Value::Object(doc)).unwrap_or_default()
}

fn cache(gateway: &Gateway) -> Value {
    let Some(store) = &gateway.cache else {
        return Value::Null;
    };
    let s = store.stats();
    let mut o = Map::new();
    o.insert("hits".into(), s.hits.into());
    o.insert("misses".into(), s.misses.into());
    o.insert("evictions".into(), s.evictions.into());
    o.insert("entries".into(), (s.entries as u64).into());
    o.insert("bytes".into(), (s.bytes as u64).into());
    o.insert("saved_usd".into(), (s.saved.nanos as f64 / 1e9).into());
    Value::Object(o)
}

/// Answers `GET /` with the page.
pub fn respond_page(stream: &mut TcpStream) -> io::Result<()> {
    use crate::http1::write::{end_head, push_content_length, push_header, push_status_line};
    let mut out = Vec::with_capacity(PAGE.len() + 512);
    push_status_line(&mut out, 200);
    push_header(&mut out, b"content-type", b"text/html; charset=utf-8");
    push_header(&mut out, b"content-security-policy", CSP);
    push_header(&mut out, b"x-content-type-options", b"nosniff");
    push_header(&mut out, b"referrer-policy", b"no-referrer");
    push_header(&mut out, b"cache-control", b"no-store");
    push_content_length(&mut out, PAGE.len() as u64);
    push_header(&mut out, b"connection", b"close");
    end_head(&mut out);
    out.extend_from_slice(PAGE.as_bytes());
    stream.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    #[test]
    fn the_page_is_small_and_asks_nothing_of_elsewhere() {
        assert!(PAGE.len() < 96 * 1024, "{} bytes", PAGE.len());
        for outside in ["http://", "https://", "//cdn", "@import", "src=", "url("] {
            assert!(!PAGE.contains(outside), "the page mentions {outside}");
        }
        for (i, _) in PAGE.match_indices("href=\"") {
            let target = &PAGE[i + 6..];
            assert!(
                target.starts_with('#') || target.starts_with("data:"),
                "a link away from the page: {}",
                &target[..target.len().min(40)]
            );
        }
    }
}
