//! `GET /admin/status`, sans-IO: what the shards' [`Control`] knows of the
//! gateway right now (ready, version, each shard's driver and in-flight
//! requests, the configuration generation, uptime) taken in one cheap
//! pass of atomic loads, and rendered as JSON. No shard is asked anything
//! and nothing secret is in it; `shardgate status` reads it.

use std::time::Duration;

use super::Control;
use crate::runtime::Driver;

/// One shard, as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    pub id: usize,
    /// `None` while the shard has not started accepting.
    pub driver: Option<Driver>,
    pub in_flight: usize,
}

/// The gateway's status at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub version: &'static str,
    pub shards: Vec<ShardStatus>,
    /// Reloads published since start.
    pub generation: u64,
    pub draining: bool,
    pub uptime: Duration,
}

impl Status {
    /// Read from `control`: a few atomic loads, no lock a shard holds.
    pub fn of(control: &Control) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION"),
            shards: (0..control.shards())
                .map(|id| ShardStatus {
                    id,
                    driver: control.driver(id),
                    in_flight: control.shard_in_flight(id),
                })
                .collect(),
            generation: control.generation(),
            draining: control.is_draining(),
            uptime: control.uptime(),
        }
    }

    /// Every shard accepts and the gateway is not draining.
    pub fn ready(&self) -> bool {
        !self.draining && self.shards.iter().all(|s| s.driver.is_some())
    }

    /// `starting`, `ready` or `draining`.
    pub fn state(&self) -> &'static str {
        match (self.draining, self.ready()) {
            (true, _) => "draining",
            (false, true) => "ready",
            (false, false) => "starting",
        }
    }

    pub fn in_flight(&self) -> usize {
        self.shards.iter().map(|s| s.in_flight).sum()
    }
}

/// The status as `GET /admin/status` answers it: 200 when ready, else 503
/// (so a probe can use it as is), and the JSON body either way.
pub fn render_status(status: &Status) -> (u16, Vec<u8>) {
    let count = |d: Driver| status.shards.iter().filter(|s| s.driver == Some(d)).count();
    let shards: Vec<serde_json::Value> = status
        .shards
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "driver": s.driver.map(Driver::as_str),
                "in_flight": s.in_flight,
            })
        })
        .collect();
    let body = serde_json::json!({
        "status": status.state(),
        "ready": status.ready(),
        "version": status.version,
        "uptime_s": status.uptime.as_secs(),
        "generation": status.generation,
        "in_flight": status.in_flight(),
        "drivers": {
            "io_uring": count(Driver::IoUring),
            "epoll": count(Driver::Epoll),
        },
        "shards": shards,
    });
    let code = if status.ready() { 200 } else { 503 };
    (code, serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(drivers: &[Option<Driver>], draining: bool) -> Status {
        Status {
            version: "9.9.9",
            shards: drivers
                .iter()
                .enumerate()
                .map(|(id, &driver)| ShardStatus {
                    id,
                    driver,
                    in_flight: id,
                })
                .collect(),
            generation: 3,
            draining,
            uptime: Duration::from_millis(61_500),
        }
    }

    fn json(s: &Status) -> (u16, serde_json::Value) {
        let (code, body) = render_status(s);
        (code, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn ready_when_every_shard_has_a_driver() {
        let (code, v) = json(&status(
            &[Some(Driver::IoUring), Some(Driver::Epoll)],
            false,
        ));
        assert_eq!(code, 200);
        assert_eq!(v["status"], "ready");
        assert_eq!(v["ready"], true);
        assert_eq!(v["version"], "9.9.9");
        assert_eq!(v["uptime_s"], 61);
        assert_eq!(v["generation"], 3);
        assert_eq!(v["in_flight"], 1);
        assert_eq!(v["drivers"]["io_uring"], 1);
        assert_eq!(v["drivers"]["epoll"], 1);
        assert_eq!(v["shards"][1]["driver"], "epoll");
        assert_eq!(v["shards"][1]["in_flight"], 1);
    }

    #[test]
    fn starting_and_draining_are_not_ready() {
        let (code, v) = json(&status(&[Some(Driver::IoUring), None], false));
        assert_eq!(
            (code, &v["status"], &v["ready"]),
            (503, &"starting".into(), &false.into())
        );
        assert_eq!(v["shards"][1]["driver"], serde_json::Value::Null);
        let (code, v) = json(&status(&[Some(Driver::IoUring)], true));
        assert_eq!((code, &v["status"]), (503, &"draining".into()));
    }
}
