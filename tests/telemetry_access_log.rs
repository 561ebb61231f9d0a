//! The access log end to end: lines are JSON with every field, a writer
//! slower than the shards never blocks them (drops are counted instead),
//! time-based flush, size-based rotation, and reopen after a move.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardgate::telemetry::access_log::{AccessLog, AccessLogOptions, AccessRecord, LogTarget};
use shardgate::telemetry::request_id::RequestIdGen;

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

fn record<'a>(request_id: &'a str, model: &'a str) -> AccessRecord<'a> {
    AccessRecord {
        time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        request_id,
        key_id: Some("key_1"),
        team: Some("team_a"),
        route: "chat_completions",
        model,
        provider: Some("openai"),
        status: 200,
        input_tokens: 120,
        output_tokens: 45,
        cache_read_tokens: 100,
        cache_write_tokens: 0,
        cost_nanos: 1_500_000,
        overhead: Duration::from_micros(87),
        upstream: Some(Duration::from_micros(12_345)),
        ttft: None,
        bytes_in: 300,
        truncated: false,
        cache: None,
        bytes_out: 900,
    }
}

/// A `Write` into shared memory, optionally slow.
#[derive(Clone, Default)]
struct Shared {
    bytes: Arc<Mutex<Vec<u8>>>,
    delay: Duration,
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(self.delay);
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lines(&self) -> Vec<String> {
        let bytes = self.bytes.lock().unwrap();
        String::from_utf8(bytes.clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn lines_are_json_with_every_field() {
    let sink = Shared::default();
    let log = AccessLog::start(
        LogTarget::Writer(Box::new(sink.clone())),
        AccessLogOptions::default(),
    )
    .unwrap();
    let ids = RequestIdGen::new(3);
    let mut tx = log.sender();
    let now = Instant::now();
    let mut sent = Vec::new();
    for i in 0..500 {
        let id = ids.next_id();
        // A model name that needs escaping, and the optional fields unset.
        let model = format!("we\"ird\\model\n{i}");
        let mut rec = record(id.as_str(), &model);
        if i % 2 == 1 {
            rec.key_id = None;
            rec.team = None;
            rec.provider = None;
            rec.upstream = None;
            rec.ttft = Some(Duration::from_micros(250_500));
        }
        tx.log(&rec, now);
        sent.push((id.to_string(), model));
    }
    drop(tx); // a shard that stops flushes
    assert_eq!(log.dropped_lines(), 0);
    log.shutdown();

    let lines = sink.lines();
    assert_eq!(lines.len(), 500);
    for (i, (line, (id, model))) in lines.iter().zip(&sent).enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let o = v.as_object().unwrap();
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        let mut expected = [
            "ts",
            "request_id",
            "key_id",
            "team",
            "route",
            "model",
            "provider",
            "status",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_usd",
            "overhead_us",
            "upstream_ms",
            "ttft_ms",
            "bytes_in",
            "bytes_out",
            "truncated",
        ];
        expected.sort();
        let mut keys = keys.clone();
        keys.sort();
        assert_eq!(keys, expected);
        assert_eq!(o["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(o["request_id"], id.as_str());
        assert_eq!(o["model"], model.as_str());
        assert_eq!(o["route"], "chat_completions");
        assert_eq!(o["status"], 200);
        assert_eq!(o["truncated"], false);
        assert_eq!(o["input_tokens"], 120);
        assert_eq!(o["output_tokens"], 45);
        assert_eq!(o["cache_read_tokens"], 100);
        assert_eq!(o["cache_write_tokens"], 0);
        assert_eq!(o["cost_usd"].as_f64(), Some(0.0015));
        assert_eq!(o["overhead_us"], 87);
        assert_eq!(o["bytes_in"], 300);
        assert_eq!(o["bytes_out"], 900);
        if i % 2 == 0 {
            assert_eq!(o["key_id"], "key_1");
            assert_eq!(o["team"], "team_a");
            assert_eq!(o["provider"], "openai");
            assert_eq!(o["upstream_ms"].as_f64(), Some(12.345));
            assert!(o["ttft_ms"].is_null());
        } else {
            assert!(o["key_id"].is_null() && o["team"].is_null() && o["provider"].is_null());
            assert!(o["upstream_ms"].is_null());
            assert_eq!(o["ttft_ms"].as_f64(), Some(250.5));
        }
    }
}

#[test]
fn slow_writer_never_blocks_producers_and_drops_are_counted() {
    // The writer takes 200 ms per batch; four shards produce far faster.
    let sink = Shared {
        delay: Duration::from_millis(200),
        ..Shared::default()
    };
    let opts = AccessLogOptions {
        batch_bytes: 4096,
        flush_interval: Duration::from_millis(100),
        queue_batches: 4,
    };
    let log = AccessLog::start(LogTarget::Writer(Box::new(sink.clone())), opts).unwrap();
    const PER_SHARD: u64 = 20_000;
    let started = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|shard| {
            let mut tx = log.sender();
            std::thread::spawn(move || {
                let ids = RequestIdGen::new(shard);
                let mut slowest = Duration::ZERO;
                for _ in 0..PER_SHARD {
                    let id = ids.next_id();
                    let t = Instant::now();
                    tx.log(&record(id.as_str(), "fast"), t);
                    slowest = slowest.max(t.elapsed());
                }
                tx.flush();
                slowest
            })
        })
        .collect();
    let slowest = producers
        .into_iter()
        .map(|p| p.join().unwrap())
        .max()
        .unwrap();
    let produced_in = started.elapsed();
    // Writing all 80k lines (~28 MB, ~7k batches) at 200 ms per batch would
    // take over 20 minutes; the producers finished without waiting for it.
    assert!(produced_in < Duration::from_secs(20), "{produced_in:?}");
    // No single call waited for the writer's 200 ms (the margin absorbs
    // scheduling noise on a busy CI box).
    assert!(
        slowest < Duration::from_millis(100),
        "slowest log call {slowest:?}"
    );
    let dropped = log.dropped_lines();
    assert!(dropped > 0, "the queue must have overflowed");
    log.shutdown();
    let written = sink.lines().len() as u64;
    assert_eq!(
        written + dropped,
        4 * PER_SHARD,
        "every line written or counted"
    );
    for line in sink.lines() {
        serde_json::from_str::<serde_json::Value>(&line).unwrap();
    }
}

#[test]
fn time_based_flush_on_tick() {
    let sink = Shared::default();
    let opts = AccessLogOptions {
        flush_interval: Duration::from_millis(100),
        ..AccessLogOptions::default()
    };
    let log = AccessLog::start(LogTarget::Writer(Box::new(sink.clone())), opts).unwrap();
    let mut tx = log.sender();
    let t0 = Instant::now();
    tx.log(&record("a", "fast"), t0);
    tx.log(&record("b", "fast"), t0 + Duration::from_millis(60));
    tx.maybe_flush(t0 + Duration::from_millis(99));
    // Nothing handed over yet: wait a little to be sure the writer has nothing.
    std::thread::sleep(Duration::from_millis(50));
    assert!(sink.lines().is_empty());
    tx.maybe_flush(t0 + Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.lines().len() < 2 {
        assert!(Instant::now() < deadline, "batch never written");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The interval restarts with the next line.
    tx.log(&record("c", "fast"), t0 + Duration::from_millis(150));
    tx.maybe_flush(t0 + Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(sink.lines().len(), 2);
    drop(tx);
    log.shutdown();
    assert_eq!(sink.lines().len(), 3);
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn rotation_keeps_the_newest_files() {
    let dir = temp_dir("rotate");
    let path = dir.join("shardgate.log");
    let line_len = {
        let mut v = Vec::new();
        record("00000000000000000000000000", "fast").write_json(&mut v);
        v.len() as u64
    };
    // Each flushed batch is one line; a file holds at most 3 lines.
    let log = AccessLog::start(
        LogTarget::File {
            path: path.clone(),
            max_bytes: 3 * line_len,
            keep: 2,
        },
        AccessLogOptions {
            batch_bytes: 1,
            ..AccessLogOptions::default()
        },
    )
    .unwrap();
    let mut tx = log.sender();
    for i in 0..20 {
        let id = format!("{i:026}");
        tx.log(&record(&id, "fast"), Instant::now());
        // Keep the queue from overflowing: this test is about rotation.
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(tx);
    log.shutdown();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        3,
        "shardgate.log, .1, .2 and nothing older"
    );
    let id_of = |line: &String| -> u64 {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["request_id"].as_str().unwrap().parse().unwrap()
    };
    let current: Vec<u64> = read_lines(&path).iter().map(id_of).collect();
    let one: Vec<u64> = read_lines(&dir.join("shardgate.log.1"))
        .iter()
        .map(id_of)
        .collect();
    let two: Vec<u64> = read_lines(&dir.join("shardgate.log.2"))
        .iter()
        .map(id_of)
        .collect();
    // 20 lines, 3 per file: the newest 2 in the live file, then 3 and 3.
    assert_eq!(current, [18, 19]);
    assert_eq!(one, [15, 16, 17]);
    assert_eq!(two, [12, 13, 14]);
    for f in [&path, &dir.join("shardgate.log.1")] {
        assert!(std::fs::metadata(f).unwrap().len() <= 3 * line_len);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reopen_follows_an_external_move() {
    let dir = temp_dir("reopen");
    let path = dir.join("access.log");
    let log = AccessLog::start(
        LogTarget::File {
            path: path.clone(),
            max_bytes: 0,
            keep: 0,
        },
        AccessLogOptions::default(),
    )
    .unwrap();
    let mut tx = log.sender();
    tx.log(&record("before", "fast"), Instant::now());
    tx.flush();
    // logrotate moves the file; the writer keeps its descriptor until told.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&path).unwrap().len() == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let moved = dir.join("access.log.old");
    std::fs::rename(&path, &moved).unwrap();
    log.reopen();
    tx.log(&record("after", "fast"), Instant::now());
    drop(tx);
    log.shutdown();
    assert_eq!(read_lines(&moved).len(), 1);
    let now = read_lines(&path);
    assert_eq!(now.len(), 1);
    assert!(now[0].contains("\"request_id\":\"after\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_path_fails_at_start() {
    let err = AccessLog::start(
        LogTarget::File {
            path: PathBuf::from("/nonexistent-dir/shardgate.log"),
            max_bytes: 0,
            keep: 0,
        },
        AccessLogOptions::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}
