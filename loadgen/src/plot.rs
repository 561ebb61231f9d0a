//! `--plot FILE.svg`: latency (and, for streams, time to first token) against
//! percentile on the usual log "nines" axis, as a small hand-written SVG.

use crate::report::Summary;
use crate::stats::Stats;
use hdrhistogram::Histogram;
use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// The x axis runs to 99.999%: 5 nines.
const NINES: f64 = 5.0;

/// x position for a percentile: log10(1 / (1 - p)), so each nine is one step.
fn nines(percentile: f64) -> f64 {
    (1.0 / (1.0 - percentile / 100.0)).log10().min(NINES)
}

fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=200)
        .map(|i| {
            let x = NINES * i as f64 / 200.0;
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            (nines(p), h.value_at_percentile(p) as f64 / 1000.0)
        })
        .collect()
}

/// A named, coloured curve of (nines, milliseconds) points.
type Series = (&'static str, &'static str, Vec<(f64, f64)>);

pub fn svg(s: &Summary, stats: &Stats) -> String {
    let series: Vec<Series> = [
        ("latency", "#1f77b4", &stats.latency),
        ("ttft", "#d62728", &stats.ttft),
    ]
    .into_iter()
    .filter(|(_, _, h)| !h.is_empty())
    .map(|(name, color, h)| (name, color, curve(h)))
    .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
        .fold(0.001, f64::max)
        * 1.05;
    let px = |x: f64| LEFT + x / NINES * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - TOP - BOTTOM);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let title = format!("{} — {} — {:.0} req/s", s.workload, s.mode, s.throughput)
        .replace('&', "&amp;")
        .replace('<', "&lt;");
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="13">{title}</text>"#
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = px(i as f64);
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{label}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 18.0
        );
    }
    for i in 0..=5 {
        let v = y_max * i as f64 / 5.0;
        let y = py(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.2}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">milliseconds</text>"#,
        H / 2.0,
        H / 2.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 10.0
    );
    for (i, (name, color, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" fill="{color}">{name}</text>"#,
            LEFT + 10.0,
            TOP + 16.0 + 16.0 * i as f64
        );
    }
    out.push_str("</svg>\n");
    out
}
