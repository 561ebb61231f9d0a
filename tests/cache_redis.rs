//! The cache's shared tier over a real Redis (Debian's `redis-server`,
//! started per test on a free loopback port): two gateway instances, one's
//! miss is the other's hit, whole answers and streams alike; with Redis
//! killed under load every request is still answered (misses, never an
//! error, never a wait past the bound), and once Redis is back the
//! instances share again.
//!
//! Without `redis-server` the tests skip, unless `SHARDGATE_REQUIRE_REDIS=1`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::{have_redis, Redis};
use common::*;

struct Instance {
    gw: Gateway,
    admin: SocketAddr,
}

/// An instance's config: the cache on, shared through `redis` if given.
fn config(mock: &MockUpstream, admin: SocketAddr, redis: Option<&Redis>) -> String {
    let state = match redis {
        Some(r) => format!(
            "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_timeout_ms = 200\n",
            r.url()
        ),
        None => String::new(),
    };
    config_for(
        mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\n\n\
             [cache]\nenabled = true\nshared_wait_ms = 50\n\n{state}"
        ),
    )
}

fn instance(mock: &MockUpstream, redis: &Redis) -> Instance {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let text = config(mock, admin, Some(redis));
    let mut opts = GatewayOpts::config(Driver::IoUring, text);
    opts.shards = 2;
    Instance {
        gw: Gateway::start(opts),
        admin,
    }
}

impl Instance {
    fn ask(&self, body: &str) -> Response {
        self.gw
            .connect()
            .request(post("/v1/chat/completions", body, &[]))
            .unwrap()
    }

    fn shared_up(&self) -> bool {
        sample(&scrape(self.admin), "shardgate_cache_shared_up", &[]) == 1.0
    }

    /// Waits until the shared tier is (or is not) connected.
    fn wait_shared(&self, up: bool, within: Duration) {
        let deadline = Instant::now() + within;
        while self.shared_up() != up {
            assert!(
                Instant::now() < deadline,
                "shared tier up = {up} not seen: {}\n{}",
                scrape(self.admin),
                self.gw.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn chat(prompt: &str) -> String {
    format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{prompt}"}}]}}"#)
}

fn cache_header(r: &Response) -> &str {
    r.header("x-shardgate-cache").unwrap_or("none")
}

#[test]
fn one_instances_miss_is_the_others_hit() {
    if !have_redis("one_instances_miss_is_the_others_hit") {
        return;
    }
    let redis = Redis::start();
    let mock = MockUpstream::start();
    let (a, b) = (instance(&mock, &redis), instance(&mock, &redis));
    a.wait_shared(true, Duration::from_secs(5));
    b.wait_shared(true, Duration::from_secs(5));

    let first = a.ask(&chat("shared"));
    assert_eq!(cache_header(&first), "miss");
    // The store is written off the request path: it lands within moments.
    let deadline = Instant::now() + Duration::from_secs(2);
    while redis.cli(&["KEYS", "sg:cache:*"]).is_empty() {
        assert!(Instant::now() < deadline, "nothing was written to Redis");
        std::thread::sleep(Duration::from_millis(10));
    }
    let other = b.ask(&chat("shared"));
    assert_eq!(cache_header(&other), "hit");
    assert_eq!(other.json(), first.json());
    assert_eq!(mock.requests().len(), 1);
    // Kept in b's own store now: its next hit does not ask Redis.
    let m = scrape(b.admin);
    let asked = sample(
        &m,
        "shardgate_cache_shared_lookups_total",
        &["result=\"hit\""],
    );
    assert_eq!(asked, 1.0, "{m}");
    assert_eq!(cache_header(&b.ask(&chat("shared"))), "hit");
    let m = scrape(b.admin);
    assert_eq!(
        sample(
            &m,
            "shardgate_cache_shared_lookups_total",
            &["result=\"hit\""]
        ),
        1.0
    );
    // What Redis holds expires with the entry (ttl_s = 300 by default).
    let key = redis.cli(&["KEYS", "sg:cache:*"]);
    let ttl: i64 = redis
        .cli(&["PTTL", key.lines().next().unwrap()])
        .parse()
        .unwrap();
    assert!((1..=300_000).contains(&ttl), "{ttl}");

    // A purge empties the instance's store and Redis's.
    let (status, body) = admin_request(a.admin, "DELETE", "/admin/cache", &[]);
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"purged\":1,\"shared\":\"queued\"}")
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while !redis.cli(&["KEYS", "sg:cache:*"]).is_empty() {
        assert!(Instant::now() < deadline, "Redis kept its entries");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cache_header(&a.ask(&chat("shared"))), "miss");
}

#[test]
fn redis_killed_under_load_means_misses_then_sharing_again() {
    if !have_redis("redis_killed_under_load_means_misses_then_sharing_again") {
        return;
    }
    let mut redis = Redis::start();
    let mock = MockUpstream::start();
    let a = Arc::new(instance(&mock, &redis));
    let b = Arc::new(instance(&mock, &redis));
    a.wait_shared(true, Duration::from_secs(5));
    b.wait_shared(true, Duration::from_secs(5));

    // Four clients, on both instances, a few prompts over and over.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let slowest = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let gw = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (stop, served, slowest) = (stop.clone(), served.clone(), slowest.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = gw.ask(&chat(&format!("load {}", n % 7)));
                    assert_eq!(r.status, 200, "{}", r.text());
                    let took = t.elapsed();
                    let mut s = slowest.lock().unwrap();
                    *s = (*s).max(took);
                    served.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    redis.kill();
    let killed_at = served.load(Ordering::Relaxed);
    a.wait_shared(false, Duration::from_secs(3));
    b.wait_shared(false, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("every request was answered 200");
    }
    let total = served.load(Ordering::Relaxed);
    assert!(total > killed_at, "requests went on after the kill");
    let slowest = *slowest.lock().unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "a request waited {slowest:?}"
    );

    // Back (empty): the tiers reconnect and share again.
    redis.spawn();
    a.wait_shared(true, Duration::from_secs(5));
    b.wait_shared(true, Duration::from_secs(5));
    assert_eq!(cache_header(&a.ask(&chat("after"))), "miss");
    let deadline = Instant::now() + Duration::from_secs(2);
    while redis.cli(&["KEYS", "sg:cache:*"]).is_empty() {
        assert!(Instant::now() < deadline, "nothing was written to Redis");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cache_header(&b.ask(&chat("after"))), "hit");
}

/// A reload that adds the shared tier starts a store keyed as every
/// instance keys (SHA-256), and one that drops it a store keyed per
/// process: an answer stored before either is not found after it, and
/// after adding it another instance finds the answer in Redis.
#[test]
fn a_reload_that_adds_or_drops_the_shared_tier_starts_a_new_store() {
    if !have_redis("a_reload_that_adds_or_drops_the_shared_tier_starts_a_new_store") {
        return;
    }
    let redis = Redis::start();
    let mock = MockUpstream::start();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let a = Instance {
        gw: Gateway::start(GatewayOpts::config(
            Driver::IoUring,
            config(&mock, admin, None),
        )),
        admin,
    };
    let asks = |want: [&str; 2]| {
        for w in want {
            let r = a.ask(&chat("reloaded"));
            assert_eq!(r.status, 200, "{}", a.gw.log());
            assert_eq!(cache_header(&r), w, "{}", a.gw.log());
        }
    };
    asks(["miss", "hit"]);
    let reload = |n: usize, redis: Option<&Redis>| {
        a.gw.rewrite_config(&config(&mock, admin, redis));
        a.gw.signal(libc::SIGHUP);
        assert!(
            a.gw.wait_log("configuration reloaded", n, Duration::from_secs(5)),
            "{}",
            a.gw.log()
        );
    };

    reload(1, Some(&redis));
    a.wait_shared(true, Duration::from_secs(5));
    asks(["miss", "hit"]);
    let deadline = Instant::now() + Duration::from_secs(2);
    while redis.cli(&["KEYS", "sg:cache:*"]).is_empty() {
        assert!(Instant::now() < deadline, "nothing was written to Redis");
        std::thread::sleep(Duration::from_millis(10));
    }
    let b = instance(&mock, &redis);
    b.wait_shared(true, Duration::from_secs(5));
    assert_eq!(cache_header(&b.ask(&chat("reloaded"))), "hit");

    reload(2, None);
    a.wait_shared(false, Duration::from_secs(5));
    asks(["miss", "hit"]);
    assert_eq!(mock.requests().len(), 3);
}
