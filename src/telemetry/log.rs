//! Operational log lines on stderr (journald adds the timestamp under
//! systemd). Used off the hot path only: start-up, errors, state changes.

use std::fmt::Arguments;
use std::io::Write;

fn emit(level: &str, args: Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "shardgate {level}: {args}");
}

pub fn log_info(args: Arguments<'_>) {
    emit("info", args);
}

pub fn log_warn(args: Arguments<'_>) {
    emit("warn", args);
}

pub fn log_error(args: Arguments<'_>) {
    emit("error", args);
}
