//! `loadgen --help`, `loadgen mock --help` and `loadgen run --help` print
//! usage on stdout and exit 0 (asking for help is not a bad flag), while an
//! unknown subcommand still exits 2.

use std::process::Command;

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_exits_0_with_usage() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["mock", "--help"],
        &["run", "--help"],
    ] {
        let out = loadgen(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("loadgen"),
            "{args:?}: {out:?}"
        );
    }
}

#[test]
fn unknown_subcommand_exits_2() {
    let out = loadgen(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
