//! The runtime layer: which monoio driver a shard gets (io_uring, else the
//! epoll "legacy" driver), building the per-shard runtime, and the start-up
//! check that the CPU has the SIMD features the binary was compiled for.
//!
//! Every shard runtime has the one process-wide blocking pool attached
//! ([`BLOCKING_THREADS`] threads, made with the first runtime), where
//! `monoio::spawn_blocking` runs the CPU-heavy work of large request bodies
//! (`proxy::offload`) off the event loops.
//!
//! [`loop_now`] is the shard's loop clock: the instant its event loop last
//! woke, which deadlines, windows and idle bookkeeping on the hot path are
//! computed from instead of a clock read each (latency measurements still
//! read the clock).
//!
//! `MONOIO_FORCE_LEGACY_DRIVER=1` forces the epoll driver (monoio reads it in
//! `detect_uring`); io_uring is also skipped where the kernel or a seccomp
//! policy refuses it.

use std::fmt;
use std::io;
use std::sync::Mutex;

use monoio::blocking::DefaultThreadPool;

/// The I/O driver a shard runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    /// What monoio will pick on this thread: io_uring when it works here and
    /// is not disabled by `MONOIO_FORCE_LEGACY_DRIVER`.
    pub fn probe() -> Driver {
        if monoio::utils::detect_uring() {
            Driver::IoUring
        } else {
            Driver::Epoll
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runtime type every shard runs: io_uring with an epoll fallback, plus timers.
pub type ShardRuntime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

/// The loop clock: when this thread's event loop last woke from a park (or
/// submitted without parking), as monoio's time driver keeps it (a shardgate
/// patch, vendor/monoio/PATCHES.md); a clock read off a runtime. It lags the
/// clock by the tasks run since that wake: a deadline computed from it falls
/// early by at most that (the ones `monoio::time::sleep` and `timeout` make
/// already do), a duration measured with it is off by up to that. So it is
/// for deadlines, rate windows and idle bookkeeping; request, upstream and
/// first-token latencies read `Instant::now()`.
#[inline]
pub fn loop_now() -> std::time::Instant {
    monoio::time::cached_now().into_std()
}

/// Submission queue depth: enough for every connection of a shard to have a
/// read and a write in flight without forcing early submits.
const URING_ENTRIES: u32 = 1024;

/// Threads of the blocking pool: a few, not one per core, as the shards
/// already take the cores; enough that one large body does not wait for
/// another.
pub fn blocking_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(BLOCKING_THREADS))
}

/// The most threads the blocking pool has (fewer on a smaller machine).
pub const BLOCKING_THREADS: usize = 2;

/// The process's blocking pool, shared by all shards (a clone is a handle
/// to the same threads).
fn blocking_pool() -> DefaultThreadPool {
    static POOL: Mutex<Option<DefaultThreadPool>> = Mutex::new(None);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.get_or_insert_with(|| DefaultThreadPool::new(blocking_threads()))
        .clone()
}

/// Builds this thread's runtime and reports which driver it got.
///
/// The ring is set up for one thread that both submits and reaps
/// (SINGLE_ISSUER + DEFER_TASKRUN, with COOP_TASKRUN): completions are
/// processed when the shard asks for them instead of by interrupting it,
/// which on a busy box saves a wake-up per completion. Kernels before 6.1
/// refuse these flags; the ring is then built plainly.
pub fn build_runtime() -> io::Result<(ShardRuntime, Driver)> {
    let driver = Driver::probe();
    let tuned = {
        let mut urb = io_uring::IoUring::builder();
        urb.setup_coop_taskrun()
            .setup_single_issuer()
            .setup_defer_taskrun();
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .with_entries(URING_ENTRIES)
            .uring_builder(urb)
            .attach_thread_pool(Box::new(blocking_pool()))
            .enable_timer()
            .build()
    };
    let rt = match tuned {
        Ok(rt) => rt,
        Err(_) => monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .with_entries(URING_ENTRIES)
            .attach_thread_pool(Box::new(blocking_pool()))
            .enable_timer()
            .build()?,
    };
    Ok((rt, driver))
}

/// Checks that the CPU supports the target features this binary was built
/// with (see `.cargo/config.toml`); returns the first missing one. Called
/// first thing in `main` so an old CPU gets a message instead of SIGILL.
pub fn missing_cpu_feature() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! check {
            ($($f:tt),*) => {$(
                if cfg!(target_feature = $f) && !std::arch::is_x86_feature_detected!($f) {
                    return Some($f);
                }
            )*};
        }
        check!(
            "sse4.2",
            "avx",
            "avx2",
            "pclmulqdq",
            "bmi1",
            "bmi2",
            "popcnt",
            "lzcnt",
            "fma"
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_runs_this_binary() {
        assert_eq!(missing_cpu_feature(), None);
    }

    #[test]
    fn runtime_builds_and_runs_a_future() {
        let (mut rt, driver) = build_runtime().unwrap();
        let v = rt.block_on(async {
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            7
        });
        assert_eq!(v, 7);
        assert!(matches!(driver, Driver::IoUring | Driver::Epoll));
    }

    /// Ready once it has been polled once: a turn of the loop without a park.
    struct YieldNow(bool);

    impl std::future::Future for YieldNow {
        type Output = ();

        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    #[test]
    fn the_loop_clock_stands_within_an_iteration_and_moves_between_them() {
        use std::time::{Duration, Instant};
        let before = Instant::now();
        assert!(loop_now() >= before, "off a runtime it is a clock read");
        let (mut rt, _) = build_runtime().unwrap();
        rt.block_on(async {
            let t0 = loop_now();
            std::thread::sleep(Duration::from_millis(3));
            assert_eq!(loop_now(), t0, "no turn of the loop, no new read");
            // A busy loop (a task always ready) never parks: its clock
            // must move all the same.
            let mut turns = 0;
            while loop_now() == t0 {
                YieldNow(false).await;
                turns += 1;
                assert!(turns < 1000, "the loop clock stood still in a busy loop");
            }
            assert!(loop_now() >= t0 + Duration::from_millis(3));
            // A timer from the loop clock: never before its deadline.
            let t1 = loop_now();
            monoio::time::sleep(Duration::from_millis(5)).await;
            assert!(Instant::now() >= t1 + Duration::from_millis(5));
            assert!(
                loop_now() >= t1 + Duration::from_millis(5),
                "the wake read the clock"
            );
        });
        let after = Instant::now();
        assert!(loop_now() >= after, "after the runtime, a clock read again");
    }
}
