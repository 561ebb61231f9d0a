//! The standard `process_*` metrics (the names and units every Prometheus
//! client library exports, so the usual dashboards and alerts work):
//! resident and virtual memory, CPU seconds, open and maximum file
//! descriptors, start time. Read from `/proc/self` at scrape time, on the
//! admin thread; the parsing is sans-IO and tested on recorded text.
//!
//! Invariants: a figure that cannot be read is left out of the exposition
//! (never written as 0); nothing here runs on a shard.

use std::fmt::Write;

use super::prometheus::family;

/// What `/proc/self` says about the process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// The fields of `/proc/self/stat` this needs: utime and stime (clock
/// ticks), starttime (ticks since boot), vsize (bytes), rss (pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFields {
    pub utime: u64,
    pub stime: u64,
    pub starttime: u64,
    pub vsize: u64,
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may hold spaces or `)`, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<StatFields> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first; utime is field 14.
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(StatFields {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

/// `btime` (boot time, unix seconds) from `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?;
    soft.parse().ok()
}

impl ProcessStats {
    /// This process's figures now.
    pub fn read() -> ProcessStats {
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let stat = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_stat(&t));
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| parse_boot_time(&t));
        let ticks = (ticks > 0).then_some(ticks as f64);
        let page = (page > 0).then_some(page as u64);
        ProcessStats {
            cpu_seconds: stat.zip(ticks).map(|(s, t)| (s.utime + s.stime) as f64 / t),
            resident_bytes: stat.zip(page).map(|(s, p)| s.rss_pages * p),
            virtual_bytes: stat.map(|s| s.vsize),
            start_time_seconds: match (stat, ticks, boot) {
                (Some(s), Some(t), Some(b)) => Some(b as f64 + s.starttime as f64 / t),
                _ => None,
            },
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|t| parse_max_fds(&t)),
        }
    }

    /// Appends the `process_*` families that were read.
    pub fn render(&self, out: &mut String) {
        let mut float = |name: &str, kind: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                family(out, name, kind, help);
                let _ = writeln!(out, "{name} {v}");
            }
        };
        float(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds,
        );
        float(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds,
        );
        let ints = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                self.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                self.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                self.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                self.max_fds,
            ),
        ];
        for (name, help, v) in ints {
            if let Some(v) = v {
                family(out, name, "gauge", help);
                let _ = writeln!(out, "{name} {v}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        // A name with a space and a `)` in it, as a process may set.
        let text = "4242 (shard gate) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 3 0 987654 123456789 2048 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17630 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            StatFields {
                utime: 250,
                stime: 75,
                starttime: 987654,
                vsize: 123456789,
                rss_pages: 2048,
            }
        );
        assert_eq!(parse_stat("4242 (truncated) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_and_fd_limit() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1764000000\nprocesses 9\n"),
            Some(1764000000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1048576              1048576              files     \n";
        assert_eq!(parse_max_fds(limits), Some(1048576));
        assert_eq!(
            parse_max_fds("Max open files unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn this_process_reads_and_renders() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.unwrap() > 1 << 20);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.cpu_seconds.is_some() && p.start_time_seconds.unwrap() > 1.7e9);
        let mut out = String::new();
        p.render(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(out.contains(&format!("# TYPE {name} ")), "{out}");
        }
        let mut none = String::new();
        ProcessStats::default().render(&mut none);
        assert!(none.is_empty());
    }
}
