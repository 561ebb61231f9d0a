//! A shard's housekeeping task, off the request path: the access log's
//! and the tracer's batches flushed, scrapes answered, stale pooled connections closed, memory
//! given back once the load is gone.

use std::rc::Rc;
use std::time::Duration;

use super::give_back::GiveBack;
use super::Shard;

/// The shard's housekeeping, off the request path: flush the access log
/// batch, answer scrapes, close stale pooled connections, give memory back
/// once the load is gone.
pub async fn housekeeping(shard: Rc<Shard>) {
    const TICK: Duration = Duration::from_millis(50);
    let mut ticks: u64 = 0;
    let mut give_back = GiveBack::new(std::time::Instant::now());
    loop {
        monoio::time::sleep(TICK).await;
        ticks += 1;
        give_back.on_tick(std::time::Instant::now());
        if let Some(log) = shard.access_log.borrow_mut().as_mut() {
            log.maybe_flush(std::time::Instant::now());
        }
        if let Some(tracer) = &shard.tracer {
            tracer
                .borrow_mut()
                .sender
                .maybe_flush(std::time::Instant::now());
        }
        shard.answer_scrape();
        // Twice a second: a few comparisons per idle connection.
        if ticks % 10 == 0 {
            for pool in &shard.generation().pools {
                pool.sweep();
            }
        }
    }
}
