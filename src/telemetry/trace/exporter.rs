//! The OTLP exporter: a thread of its own (`otel-export`) that takes the
//! shards' batches of encoded spans through a bounded queue, gathers them
//! into exports (by size, or once a second) and POSTs each as one
//! `ExportTraceServiceRequest` through the `post` it was given (the
//! binary's blocking HTTP/1.1 client, `upstream::blocking::OtlpPost`).
//!
//! Each shard owns a [`TraceSender`]: it encodes spans into a reusable
//! buffer and hands the buffer over when it holds `shard_batch_spans`
//! spans or, on the shard's periodic tick, when its oldest span is
//! `flush_interval` old. The thread keeps the batches as they came and
//! writes them one after another behind the export's envelope (they are
//! not copied into one body); once exported, each buffer goes back to its
//! shard for reuse.
//!
//! Invariants: a shard never blocks on the exporter — a full queue drops
//! the batch, counted in [`TraceCounters::dropped`]; so does an export the
//! collector refused or never answered (after `post`'s own timeouts).
//! Memory is bounded: the queue holds at most `queue_batches` batches, and
//! the thread at most `export_spans` spans (plus one batch) before it
//! exports.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::otlp::{self, Resource, SpanWriter};
use super::span::Span;

/// Sends one export's body, given in parts (the envelope, then the spans,
/// so they are not copied together); the HTTP status, or why there was
/// none.
pub type Post = Box<dyn FnMut(&[&[u8]]) -> Result<u16, String> + Send>;

/// Bounds on batching and queueing (`[tracing]`'s).
#[derive(Clone, Copy, Debug)]
pub struct ExporterOptions {
    /// Spans a shard gathers before handing its batch over.
    pub shard_batch_spans: u32,
    /// A shard's batch goes at least this often (on its tick), and the
    /// thread exports at least this often while it holds spans.
    pub flush_interval: Duration,
    /// Batches waiting for the thread, from all shards together.
    pub queue_batches: usize,
    /// Spans in one export at most.
    pub export_spans: u32,
}

impl Default for ExporterOptions {
    fn default() -> Self {
        ExporterOptions {
            shard_batch_spans: 64,
            flush_interval: Duration::from_secs(1),
            queue_batches: 64,
            export_spans: 512,
        }
    }
}

/// What the exporter has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct TraceCounters {
    /// Spans a collector accepted (a 2xx answer).
    pub exported: AtomicU64,
    /// Spans lost: a full queue, or an export that failed.
    pub dropped: AtomicU64,
    /// Exports that failed (no answer, or not a 2xx).
    pub failed_exports: AtomicU64,
}

impl TraceCounters {
    /// The counters as Prometheus text families.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, help, v) in [
            (
                "shardgate_trace_spans_exported_total",
                "Spans an OTLP collector accepted.",
                &self.exported,
            ),
            (
                "shardgate_trace_spans_dropped_total",
                "Spans dropped: the exporter's queue was full, or their export failed.",
                &self.dropped,
            ),
            (
                "shardgate_trace_exports_failed_total",
                "OTLP exports that failed (no answer, or not a 2xx).",
                &self.failed_exports,
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

struct Batch {
    buf: Vec<u8>,
    spans: u32,
    recycle: SyncSender<Vec<u8>>,
}

enum Msg {
    Batch(Batch),
    Shutdown,
}

/// The exporter thread and the handle the main thread keeps.
pub struct Exporter {
    tx: SyncSender<Msg>,
    counters: Arc<TraceCounters>,
    opts: ExporterOptions,
    thread: JoinHandle<()>,
}

impl Exporter {
    /// Starts the thread; `post` sends each export's body.
    pub fn start(service_name: String, opts: ExporterOptions, post: Post) -> io::Result<Exporter> {
        let (tx, rx) = sync_channel(opts.queue_batches.max(1));
        let counters = Arc::new(TraceCounters::default());
        let thread = {
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("otel-export".into())
                .spawn(move || run(rx, &service_name, opts, post, &counters))?
        };
        Ok(Exporter {
            tx,
            counters,
            opts,
            thread,
        })
    }

    /// A sender for one shard (`Send`: built here, moved to its thread).
    pub fn sender(&self) -> TraceSender {
        // Room for every batch this shard can have out (an export's worth
        // held by the thread, one more arriving, one queued), so that each
        // comes back for reuse.
        let out = self.opts.export_spans / self.opts.shard_batch_spans.max(1);
        let (recycle_tx, recycle_rx) = sync_channel(out as usize + 3);
        TraceSender {
            tx: self.tx.clone(),
            recycle_tx,
            recycle_rx,
            buf: Vec::new(),
            capacity: 0,
            spans: 0,
            oldest: None,
            opts: self.opts,
            counters: self.counters.clone(),
        }
    }

    pub fn counters(&self) -> Arc<TraceCounters> {
        self.counters.clone()
    }

    /// Exports what is queued, then stops the thread. Flush (or drop) the
    /// shards' senders first, or their unsent spans are lost.
    pub fn shutdown(self) {
        let _ = self.tx.send(Msg::Shutdown);
        let _ = self.thread.join();
    }
}

fn run(
    rx: Receiver<Msg>,
    service_name: &str,
    opts: ExporterOptions,
    mut post: Post,
    counters: &TraceCounters,
) {
    let resource = Resource {
        service_name,
        service_version: env!("CARGO_PKG_VERSION"),
    };
    // The batches to export, kept as they came (each goes back to its
    // shard once exported): the POST writes them one after another, so
    // their bytes are not copied together.
    let (mut pending, mut pending_spans) = (Vec::<Batch>::new(), 0u32);
    let mut prefix = Vec::new();
    // When the oldest pending span arrived: exported at most one
    // `flush_interval` later.
    let mut since: Option<Instant> = None;
    let mut failing = false;
    let mut export = |pending: &mut Vec<Batch>, spans: &mut u32| {
        if *spans == 0 {
            return;
        }
        prefix.clear();
        let len = pending.iter().map(|b| b.buf.len()).sum();
        otlp::encode_request_prefix(&mut prefix, &resource, len);
        let n = u64::from(*spans);
        let mut body = Vec::with_capacity(1 + pending.len());
        body.push(&prefix[..]);
        body.extend(pending.iter().map(|b| &b.buf[..]));
        let answer = post(&body);
        drop(body);
        match answer {
            Ok(status) if (200..300).contains(&status) => {
                counters.exported.fetch_add(n, Ordering::Relaxed);
                failing = false;
            }
            answer => {
                counters.dropped.fetch_add(n, Ordering::Relaxed);
                counters.failed_exports.fetch_add(1, Ordering::Relaxed);
                // Once per failure episode, not once per export.
                if !failing {
                    failing = true;
                    let why = match answer {
                        Ok(status) => format!("the collector answered {status}"),
                        Err(e) => e,
                    };
                    super::super::log_warn(format_args!("tracing: an export failed: {why}"));
                }
            }
        }
        for Batch {
            mut buf, recycle, ..
        } in pending.drain(..)
        {
            // A buffer grown by an unusual burst is not kept.
            if buf.capacity() <= 16 << 20 {
                buf.clear();
                let _ = recycle.try_send(buf);
            }
        }
        *spans = 0;
    };
    loop {
        let msg = match since {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => rx.recv_timeout(opts.flush_interval.saturating_sub(t.elapsed())),
        };
        match msg {
            Ok(Msg::Batch(batch)) => {
                pending_spans += batch.spans;
                pending.push(batch);
                since.get_or_insert_with(Instant::now);
                if pending_spans >= opts.export_spans {
                    export(&mut pending, &mut pending_spans);
                    since = None;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                export(&mut pending, &mut pending_spans);
                since = None;
            }
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                export(&mut pending, &mut pending_spans);
                return;
            }
        }
    }
}

/// One shard's end of the exporter. Not shared: the shard owns it.
pub struct TraceSender {
    tx: SyncSender<Msg>,
    recycle_tx: SyncSender<Vec<u8>>,
    recycle_rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    /// The last batch's capacity, for a new buffer's.
    capacity: usize,
    spans: u32,
    oldest: Option<Instant>,
    opts: ExporterOptions,
    counters: Arc<TraceCounters>,
}

impl TraceSender {
    /// Encodes a span into the batch — the attributes and events `fill`
    /// writes, then `span`'s own fields — and hands the batch over when it
    /// is full.
    pub fn record(
        &mut self,
        span: &Span<'_>,
        now: Instant,
        fill: impl FnOnce(&mut SpanWriter<'_>),
    ) {
        let mut w = SpanWriter::begin(&mut self.buf);
        fill(&mut w);
        w.finish(span);
        self.spans += 1;
        self.oldest.get_or_insert(now);
        if self.spans >= self.opts.shard_batch_spans {
            self.flush();
        }
    }

    /// Hands the batch over if its oldest span is `flush_interval` old.
    /// Call from the shard's periodic tick.
    pub fn maybe_flush(&mut self, now: Instant) {
        if let Some(oldest) = self.oldest {
            if now.saturating_duration_since(oldest) >= self.opts.flush_interval {
                self.flush();
            }
        }
    }

    /// Hands the batch over now, or drops it (counted) when the queue is
    /// full.
    pub fn flush(&mut self) {
        if self.spans == 0 {
            return;
        }
        self.capacity = self.buf.capacity().min(1 << 20);
        let batch = Batch {
            buf: std::mem::take(&mut self.buf),
            spans: self.spans,
            recycle: self.recycle_tx.clone(),
        };
        match self.tx.try_send(Msg::Batch(batch)) {
            Ok(()) => {
                // None back yet: a new one, as large as the last.
                self.buf = self
                    .recycle_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(self.capacity));
            }
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => {
                self.counters
                    .dropped
                    .fetch_add(u64::from(self.spans), Ordering::Relaxed);
                let Msg::Batch(batch) = msg else {
                    unreachable!("a sender only sends batches")
                };
                self.buf = batch.buf;
                self.buf.clear();
            }
        }
        self.spans = 0;
        self.oldest = None;
    }
}

impl Drop for TraceSender {
    /// A shard that stops hands over what it has.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::super::span::sample as span;
    use super::*;
    use std::sync::Mutex;

    fn opts() -> ExporterOptions {
        ExporterOptions {
            shard_batch_spans: 2,
            flush_interval: Duration::from_millis(50),
            queue_batches: 1,
            export_spans: 4,
        }
    }

    #[test]
    fn batches_reach_the_post_and_are_counted() {
        let bodies = Arc::new(Mutex::new(Vec::<usize>::new()));
        let seen = bodies.clone();
        let exporter = Exporter::start(
            "svc".into(),
            opts(),
            Box::new(move |parts| {
                seen.lock()
                    .unwrap()
                    .push(parts.iter().map(|p| p.len()).sum());
                Ok(200)
            }),
        )
        .unwrap();
        let mut sender = exporter.sender();
        let now = Instant::now();
        for _ in 0..5 {
            sender.record(&span(), now, |w| w.int("n", 1));
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(sender); // the fifth span goes with the drop
        let counters = exporter.counters();
        exporter.shutdown();
        assert_eq!(counters.exported.load(Ordering::Relaxed), 5);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
        assert!(!bodies.lock().unwrap().is_empty());
    }

    #[test]
    fn a_stuck_collector_drops_and_never_blocks_the_shard() {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let exporter = Exporter::start(
            "svc".into(),
            opts(),
            Box::new(move |_| {
                let _ = release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(5));
                Err("stuck".into())
            }),
        )
        .unwrap();
        let mut sender = exporter.sender();
        let started = Instant::now();
        for _ in 0..1000 {
            sender.record(&span(), Instant::now(), |_| {});
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let counters = exporter.counters();
        assert!(counters.dropped.load(Ordering::Relaxed) > 900);
        drop(sender);
        drop(release_tx);
        exporter.shutdown();
        let c = &counters;
        assert_eq!(
            c.dropped.load(Ordering::Relaxed) + c.exported.load(Ordering::Relaxed),
            1000
        );
    }
}
