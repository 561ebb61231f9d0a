//! Operational log lines on stderr: start-up, lifecycle events, errors and
//! state changes; never the hot path (the access log is the per-request
//! record). Two formats, chosen once at start (`--log-format`):
//!
//! - `text`: `<RFC 3339 time> shardgate info: <message>`, and for a
//!   lifecycle event `… shardgate info: event=ready listen=… shards=2
//!   msg="…"` (logfmt: a value with a space, `"` or `=` is quoted and
//!   escaped);
//! - `json`: one object per line, `{"ts":…,"level":…,"event":…,"msg":…,
//!   <fields>}`, numbers as JSON numbers.
//!
//! Under journald (`$JOURNAL_STREAM` names stderr, as systemd sets it) a
//! line has no timestamp, since journald adds its own, and starts with the
//! syslog priority (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug),
//! which journald reads as the entry's level and strips.
//!
//! Invariants: one `write` per line, so lines from threads never
//! interleave; a value never breaks its line (control characters are
//! escaped); lines under the configured level cost one comparison.

use std::fmt::{Arguments, Display, Write as _};
use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

/// How lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// A line's level, ordered by importance; its value is the syslog
/// priority journald reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 3,
    Warn = 4,
    #[default]
    Info = 6,
    Debug = 7,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// The process's log settings, fixed at start.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// Lines less important than this are not written.
    pub level: Level,
    /// Under journald: no timestamp, a priority prefix.
    pub journald: bool,
}

static SETTINGS: OnceLock<LogSettings> = OnceLock::new();

/// Sets the format and level (once; later calls change nothing), and
/// whether stderr is journald's.
pub fn init_log(format: LogFormat, level: Level) {
    let _ = SETTINGS.set(LogSettings {
        format,
        level,
        journald: stderr_is_journal(),
    });
}

fn settings() -> LogSettings {
    *SETTINGS.get_or_init(|| LogSettings {
        journald: stderr_is_journal(),
        ..LogSettings::default()
    })
}

/// `$JOURNAL_STREAM` is `<device>:<inode>` of the stream systemd connected
/// to journald; it is inherited by children whose stderr may be elsewhere,
/// so it counts only when it names stderr itself.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    // SAFETY: fstat on the process's stderr into a zeroed stat struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

/// A lifecycle event's field value.
#[derive(Clone, Copy)]
pub enum Field<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
    Shown(&'a dyn Display),
}

/// One line: a lifecycle event (with named fields), or a message alone.
pub struct Line<'a> {
    pub level: Level,
    pub event: Option<&'a str>,
    pub msg: Option<Arguments<'a>>,
    pub fields: &'a [(&'a str, Field<'a>)],
}

/// `line` in `settings`' format at `now`, newline included.
pub fn render(out: &mut String, settings: &LogSettings, now: SystemTime, line: &Line<'_>) {
    if settings.journald {
        let _ = write!(out, "<{}>", line.level as u8);
    }
    match settings.format {
        LogFormat::Text => render_text(out, settings, now, line),
        LogFormat::Json => render_json(out, settings, now, line),
    }
    out.push('\n');
}

fn render_text(out: &mut String, settings: &LogSettings, now: SystemTime, line: &Line<'_>) {
    if !settings.journald {
        push_time(out, now);
        out.push(' ');
    }
    let _ = write!(out, "shardgate {}: ", line.level.name());
    let Some(event) = line.event else {
        if let Some(msg) = line.msg {
            let _ = out.write_fmt(msg);
        }
        return;
    };
    out.push_str("event=");
    push_logfmt(out, event);
    for (name, value) in line.fields {
        let _ = write!(out, " {name}=");
        match value {
            Field::Str(s) => push_logfmt(out, s),
            Field::U64(v) => {
                let _ = write!(out, "{v}");
            }
            Field::F64(v) => {
                let _ = write!(out, "{v}");
            }
            Field::Shown(v) => push_logfmt(out, &v.to_string()),
        }
    }
    if let Some(msg) = line.msg {
        out.push_str(" msg=");
        push_logfmt(out, &msg.to_string());
    }
}

/// A logfmt value: bare when it can be, else quoted with `"` and `\`
/// escaped (control characters too, so a value never breaks the line).
fn push_logfmt(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn render_json(out: &mut String, settings: &LogSettings, now: SystemTime, line: &Line<'_>) {
    out.push('{');
    if !settings.journald {
        out.push_str("\"ts\":\"");
        push_time(out, now);
        out.push_str("\",");
    }
    let _ = write!(out, "\"level\":\"{}\"", line.level.name());
    if let Some(event) = line.event {
        out.push_str(",\"event\":");
        push_json_str(out, event);
    }
    if let Some(msg) = line.msg {
        out.push_str(",\"msg\":");
        push_json_str(out, &msg.to_string());
    }
    for (name, value) in line.fields {
        out.push(',');
        push_json_str(out, name);
        out.push(':');
        match value {
            Field::Str(s) => push_json_str(out, s),
            Field::U64(v) => {
                let _ = write!(out, "{v}");
            }
            // JSON has no NaN or infinity.
            Field::F64(v) if v.is_finite() => {
                let _ = write!(out, "{v}");
            }
            Field::F64(_) => out.push_str("null"),
            Field::Shown(v) => push_json_str(out, &v.to_string()),
        }
    }
    out.push('}');
}

fn push_json_str(out: &mut String, s: &str) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    crate::json::push_json_string(&mut bytes, s);
    // The escaper writes valid UTF-8 from valid UTF-8.
    out.push_str(&String::from_utf8_lossy(&bytes));
}

fn push_time(out: &mut String, now: SystemTime) {
    let mut b = Vec::with_capacity(24);
    crate::civil::push_rfc3339_millis(&mut b, now);
    out.push_str(&String::from_utf8_lossy(&b));
}

fn emit(line: &Line<'_>) {
    let settings = settings();
    if line.level > settings.level {
        return;
    }
    let mut out = String::with_capacity(160);
    render(&mut out, &settings, SystemTime::now(), line);
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// A lifecycle event: its name, its fields, and a message for people.
pub fn log_event(
    level: Level,
    event: &str,
    fields: &[(&str, Field<'_>)],
    msg: Option<Arguments<'_>>,
) {
    emit(&Line {
        level,
        event: Some(event),
        msg,
        fields,
    });
}

fn message(level: Level, args: Arguments<'_>) {
    emit(&Line {
        level,
        event: None,
        msg: Some(args),
        fields: &[],
    });
}

pub fn log_info(args: Arguments<'_>) {
    message(Level::Info, args);
}

pub fn log_warn(args: Arguments<'_>) {
    message(Level::Warn, args);
}

pub fn log_error(args: Arguments<'_>) {
    message(Level::Error, args);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn line(settings: LogSettings, l: &Line<'_>) -> String {
        let mut out = String::new();
        render(
            &mut out,
            &settings,
            UNIX_EPOCH + Duration::from_millis(1_500),
            l,
        );
        out
    }

    fn ready<'a>(fields: &'a [(&'a str, Field<'a>)], msg: Arguments<'a>) -> Line<'a> {
        Line {
            level: Level::Info,
            event: Some("ready"),
            msg: Some(msg),
            fields,
        }
    }

    #[test]
    fn text_names_the_fields_and_quotes_what_needs_it() {
        let fields = [
            ("listen", Field::Str("127.0.0.1:8080")),
            ("shards", Field::U64(2)),
            ("ready_ms", Field::F64(9.5)),
            ("why", Field::Str("a \"b\"=c\nd")),
            ("empty", Field::Str("")),
        ];
        let s = line(
            LogSettings::default(),
            &ready(&fields, format_args!("listening on {}", 8080)),
        );
        assert_eq!(
            s,
            "1970-01-01T00:00:01.500Z shardgate info: event=ready listen=127.0.0.1:8080 \
             shards=2 ready_ms=9.5 why=\"a \\\"b\\\"=c\\nd\" empty=\"\" msg=\"listening on 8080\"\n"
        );
    }

    #[test]
    fn json_is_one_object_with_typed_fields() {
        let fields = [
            ("shards", Field::U64(2)),
            ("nan", Field::F64(f64::NAN)),
            ("why", Field::Str("x\"\n")),
        ];
        let settings = LogSettings {
            format: LogFormat::Json,
            ..LogSettings::default()
        };
        let s = line(settings, &ready(&fields, format_args!("up")));
        assert!(s.ends_with('\n') && s.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["ts"], "1970-01-01T00:00:01.500Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["event"], "ready");
        assert_eq!(v["msg"], "up");
        assert_eq!(v["shards"], 2);
        assert!(v["nan"].is_null());
        assert_eq!(v["why"], "x\"\n");
    }

    #[test]
    fn under_journald_a_priority_and_no_timestamp() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let settings = LogSettings {
                format,
                level: Level::Debug,
                journald: true,
            };
            let warn = Line {
                level: Level::Warn,
                event: None,
                msg: Some(format_args!("careful")),
                fields: &[],
            };
            let s = line(settings, &warn);
            assert!(s.starts_with("<4>"), "{s}");
            assert!(!s.contains("1970"), "{s}");
            assert!(s.contains("careful"), "{s}");
        }
        let plain = line(
            LogSettings {
                journald: true,
                ..LogSettings::default()
            },
            &Line {
                level: Level::Error,
                event: None,
                msg: Some(format_args!("boom")),
                fields: &[],
            },
        );
        assert_eq!(plain, "<3>shardgate error: boom\n");
    }

    #[test]
    fn levels_and_formats_parse_and_order() {
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("WARN"), None);
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("yaml"), None);
    }
}
