//! A real `redis-server` for the tests that share state through one
//! (Debian's, started per test on a free loopback port, no disk, killed on
//! drop).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, TempDir};

/// A `redis-server` on a loopback port, killed on drop.
pub struct Redis {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

pub fn have_redis(test: &str) -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("SHARDGATE_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("SHARDGATE_REQUIRE_REDIS=1 but redis-server is not installed");
        }
        println!("SKIP {test}: redis-server is not installed (apt-get install redis-server)");
    }
    ok
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir: TempDir::new("redis"),
            child: None,
        };
        r.spawn();
        r
    }

    /// Starts the server (again, empty) on its port.
    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Key `id`'s total spend in the store, nano-dollars (counter + seed).
    pub fn spend(&self, id: &str) -> u64 {
        let n = |k: String| self.cli(&["GET", &k]).parse::<u64>().unwrap_or(0);
        n(format!("sg:{{k:{id}}}:spend:0")) + n(format!("sg:{{k:{id}}}:seed:0"))
    }

    /// One `redis-cli` command; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
