//! The benchmark scripts' command line: `--help` answers without building or
//! starting anything, and an unknown flag is refused with exit 2. Runs the
//! scripts with a `cargo` stub first on PATH, so a script that went on to
//! build would be caught (the stub exits 97) instead of starting a benchmark.

use std::path::Path;
use std::process::Command;

fn bench(arg: &str) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stub = std::env::temp_dir().join(format!("shardgate-scripts-cli-{}", std::process::id()));
    std::fs::create_dir_all(&stub).unwrap();
    let cargo = stub.join("cargo");
    std::fs::write(&cargo, "#!/bin/sh\nexit 97\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        stub.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Run from outside the repository: the script must find its own files.
    Command::new("bash")
        .arg(root.join("scripts/bench.sh"))
        .arg(arg)
        .current_dir(std::env::temp_dir())
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn bench_help_prints_usage_and_exits_0() {
    for flag in ["--help", "-h"] {
        let out = bench(flag);
        assert_eq!(out.status.code(), Some(0), "{flag}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("usage: scripts/bench.sh"));
    }
}

#[test]
fn bench_unknown_flag_is_usage_on_stderr_exit_2() {
    let out = bench("--no-such-flag");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: scripts/bench.sh"));
    assert!(out.stdout.is_empty());
}
