//! The systemd unit and the installer: the unit passes `systemd-analyze
//! verify` (skipped, with a printed line, where systemd-analyze is absent)
//! and carries the sandbox we promise; install.sh stages into a DESTDIR with
//! the right files and modes, keeps edited files, and re-tightens the env file.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const UNIT: &str = include_str!("../scripts/shardgate.service");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shardgate-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `[Section] Key=value` settings; repeated keys keep every value.
fn settings(unit: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut section = String::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("Key=value");
        out.entry(format!("{section}.{k}"))
            .or_default()
            .push(v.to_string());
    }
    out
}

#[test]
fn unit_has_the_promised_settings() {
    let s = settings(UNIT);
    let one = |k: &str| -> &str {
        let v = s.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(v.len(), 1, "{k} set more than once");
        &v[0]
    };
    for (k, v) in [
        ("Service.Type", "notify"),
        (
            "Service.ExecStart",
            "/usr/local/bin/shardgate --config /etc/shardgate/shardgate.toml",
        ),
        ("Service.ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Service.KillSignal", "SIGTERM"),
        ("Service.Restart", "on-failure"),
        ("Service.EnvironmentFile", "-/etc/shardgate/shardgate.env"),
        ("Service.DynamicUser", "yes"),
        ("Service.StateDirectory", "shardgate"),
        ("Service.StateDirectoryMode", "0700"),
        ("Service.ProtectSystem", "strict"),
        ("Service.ProtectHome", "yes"),
        ("Service.NoNewPrivileges", "yes"),
        ("Service.PrivateTmp", "yes"),
        ("Service.PrivateDevices", "yes"),
        ("Service.ProtectKernelTunables", "yes"),
        ("Service.ProtectKernelModules", "yes"),
        ("Service.ProtectKernelLogs", "yes"),
        ("Service.ProtectControlGroups", "yes"),
        ("Service.RestrictNamespaces", "yes"),
        ("Service.LockPersonality", "yes"),
        ("Service.MemoryDenyWriteExecute", "yes"),
        ("Service.RestrictRealtime", "yes"),
        ("Service.RestrictSUIDSGID", "yes"),
        ("Service.CapabilityBoundingSet", ""),
        ("Service.AmbientCapabilities", ""),
        (
            "Service.RestrictAddressFamilies",
            "AF_INET AF_INET6 AF_UNIX",
        ),
        ("Service.LimitNOFILE", "1048576"),
        ("Service.LimitMEMLOCK", "infinity"),
        ("Service.SystemCallArchitectures", "native"),
        ("Service.SystemCallErrorNumber", "EPERM"),
        ("Install.WantedBy", "multi-user.target"),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    let filter = s["Service.SystemCallFilter"].join(" ");
    for call in [
        "@system-service",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ] {
        assert!(
            filter.split(' ').any(|c| c == call),
            "SystemCallFilter lacks {call}"
        );
    }
    // The stop timeout leaves room beyond the 30 s drain.
    let stop: u64 = one("Service.TimeoutStopSec").parse().unwrap();
    assert!(stop > 30, "TimeoutStopSec={stop}");
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("SKIP unit_passes_systemd_analyze_verify: systemd-analyze not found");
        return;
    };
    assert!(version.status.success());
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = temp_dir("unit");
    let unit = dir.join("shardgate.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/local/bin/shardgate", env!("CARGO_BIN_EXE_shardgate")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // Unknown or invalid settings are only warnings ("…: Unknown key …,
    // ignoring"), with exit status 0: any line about our unit is a failure.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("shardgate.service"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn install(destdir: &Path, extra: &[&str]) -> String {
    let out = Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_shardgate")])
        .args(extra)
        .env("DESTDIR", destdir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "install.sh failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn install_stages_files_with_their_modes() {
    let dest = temp_dir("install");
    install(&dest, &[]);
    let bin = dest.join("usr/local/bin/shardgate");
    let config = dest.join("etc/shardgate/shardgate.toml");
    let env = dest.join("etc/shardgate/shardgate.env");
    let unit = dest.join("etc/systemd/system/shardgate.service");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&config), 0o644);
    assert_eq!(mode(&env), 0o600);
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_shardgate")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        include_str!("../scripts/shardgate.example.toml")
    );
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), UNIT);

    // A second run keeps edited files and puts the env file back to 0600.
    std::fs::write(&config, "# edited\n").unwrap();
    std::fs::write(&env, "OPENAI_API_KEY=sk-test\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = install(&dest, &[]);
    assert!(out.contains("kept existing"), "{out}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# edited\n");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "OPENAI_API_KEY=sk-test\n"
    );
    assert_eq!(mode(&env), 0o600);
    std::fs::remove_dir_all(&dest).unwrap();
}

#[test]
fn install_prefix_moves_the_binary_and_the_unit_follows() {
    let dest = temp_dir("install-prefix");
    install(&dest, &["--prefix", "/opt/shardgate"]);
    assert_eq!(mode(&dest.join("opt/shardgate/bin/shardgate")), 0o755);
    let unit = std::fs::read_to_string(dest.join("etc/systemd/system/shardgate.service")).unwrap();
    let exec = settings(&unit).remove("Service.ExecStart").unwrap();
    assert_eq!(
        exec,
        ["/opt/shardgate/bin/shardgate --config /etc/shardgate/shardgate.toml"]
    );
    std::fs::remove_dir_all(&dest).unwrap();
}
