//! The access log: one JSON line per request, formatted on the shard, written
//! by one writer thread.
//!
//! Each shard owns an [`AccessLogSender`]: it formats lines into a reusable
//! buffer and hands the buffer to the writer as one batch when it reaches
//! `batch_bytes` or, on the shard's periodic tick ([`AccessLogSender::maybe_flush`]),
//! when its oldest line is `flush_interval` old. Batches travel through one
//! bounded channel to the [`AccessLog`] writer thread, which writes them to a
//! [`LogTarget`] and sends emptied buffers back for reuse.
//!
//! Invariants: a shard never blocks on the log (`try_send`; when the channel
//! is full the batch is dropped and its lines counted in
//! [`AccessLog::dropped_lines`]); memory is bounded (the channel holds at
//! most `queue_batches` batches, each sender keeps one buffer plus at most
//! two recycled ones); in steady state formatting allocates nothing.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::log_file::LogSink;
pub use super::log_file::LogTarget;

/// Batching and queueing limits.
#[derive(Clone, Copy, Debug)]
pub struct AccessLogOptions {
    /// A sender hands its buffer over once it holds this many bytes.
    pub batch_bytes: usize,
    /// … or once its oldest line is this old (checked by `maybe_flush`).
    pub flush_interval: Duration,
    /// Batches the channel holds, from all shards together.
    pub queue_batches: usize,
}

impl Default for AccessLogOptions {
    fn default() -> AccessLogOptions {
        AccessLogOptions {
            batch_bytes: 64 * 1024,
            flush_interval: Duration::from_millis(100),
            queue_batches: 64,
        }
    }
}

/// One finished request, as the access log records it.
#[derive(Clone, Copy, Debug)]
pub struct AccessRecord<'a> {
    pub time: SystemTime,
    pub request_id: &'a str,
    /// The client key's id (never the key itself), when the request had one.
    pub key_id: Option<&'a str>,
    /// The key's team id, when it has one.
    pub team: Option<&'a str>,
    pub route: &'a str,
    /// The model the client asked for.
    pub model: &'a str,
    pub provider: Option<&'a str>,
    pub status: u16,
    /// Every prompt token, the cache reads and writes included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` read from a prompt cache.
    pub cache_read_tokens: u64,
    /// The part of `input_tokens` written to a prompt cache.
    pub cache_write_tokens: u64,
    /// Billionths of a US dollar.
    pub cost_nanos: u64,
    /// Time spent in the gateway itself.
    pub overhead: Duration,
    pub upstream: Option<Duration>,
    pub ttft: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The upstream cut the response before its end (the client got part).
    pub truncated: bool,
    /// With the response cache on: `hit`, `miss` or `bypass`.
    pub cache: Option<&'static str>,
}

impl AccessRecord<'_> {
    /// Appends the record as one JSON object and a newline.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use crate::json::push_json_string as string;
        out.extend_from_slice(b"{\"ts\":\"");
        crate::civil::push_rfc3339_millis(out, self.time);
        out.extend_from_slice(b"\",\"request_id\":");
        string(out, self.request_id);
        out.extend_from_slice(b",\"key_id\":");
        match self.key_id {
            Some(k) => string(out, k),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"team\":");
        match self.team {
            Some(t) => string(out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"route\":");
        string(out, self.route);
        out.extend_from_slice(b",\"model\":");
        string(out, self.model);
        out.extend_from_slice(b",\"provider\":");
        match self.provider {
            Some(p) => string(out, p),
            None => out.extend_from_slice(b"null"),
        }
        push_field(out, b",\"status\":", self.status as u64);
        if let Some(cache) = self.cache {
            out.extend_from_slice(b",\"cache\":\"");
            out.extend_from_slice(cache.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(if self.truncated {
            b",\"truncated\":true"
        } else {
            b",\"truncated\":false"
        });
        push_field(out, b",\"input_tokens\":", self.input_tokens);
        push_field(out, b",\"output_tokens\":", self.output_tokens);
        push_field(out, b",\"cache_read_tokens\":", self.cache_read_tokens);
        push_field(out, b",\"cache_write_tokens\":", self.cache_write_tokens);
        out.extend_from_slice(b",\"cost_usd\":");
        push_fixed(out, self.cost_nanos, 1_000_000_000, 9);
        push_field(
            out,
            b",\"overhead_us\":",
            u64::try_from(self.overhead.as_micros()).unwrap_or(u64::MAX),
        );
        push_ms(out, b",\"upstream_ms\":", self.upstream);
        push_ms(out, b",\"ttft_ms\":", self.ttft);
        push_field(out, b",\"bytes_in\":", self.bytes_in);
        push_field(out, b",\"bytes_out\":", self.bytes_out);
        out.extend_from_slice(b"}\n");
    }
}

fn push_field(out: &mut Vec<u8>, key: &[u8], v: u64) {
    out.extend_from_slice(key);
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Milliseconds with microsecond precision (`12.345`), or `null`.
fn push_ms(out: &mut Vec<u8>, key: &[u8], d: Option<Duration>) {
    out.extend_from_slice(key);
    match d {
        Some(d) => push_fixed(
            out,
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            1_000,
            3,
        ),
        None => out.extend_from_slice(b"null"),
    }
}

/// `v / scale` with exactly `digits` decimals (`scale == 10^digits`).
fn push_fixed(out: &mut Vec<u8>, v: u64, scale: u64, digits: usize) {
    out.extend_from_slice(itoa::Buffer::new().format(v / scale).as_bytes());
    out.push(b'.');
    let frac = v % scale;
    let mut buf = itoa::Buffer::new();
    let s = buf.format(frac).as_bytes();
    out.extend(std::iter::repeat_n(b'0', digits - s.len()));
    out.extend_from_slice(s);
}

struct Batch {
    buf: Vec<u8>,
    /// Where the writer returns the emptied buffer.
    recycle: SyncSender<Vec<u8>>,
}

enum Msg {
    Batch(Batch),
    Reopen,
    Shutdown,
}

/// The writer thread and the handle the main thread keeps.
pub struct AccessLog {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    opts: AccessLogOptions,
    thread: JoinHandle<()>,
}

impl AccessLog {
    /// Opens `target` (errors surface here, at start-up) and starts the
    /// writer thread.
    pub fn start(target: LogTarget, opts: AccessLogOptions) -> io::Result<AccessLog> {
        let mut sink = LogSink::open(target)?;
        let (tx, rx) = sync_channel(opts.queue_batches.max(1));
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || run_writer(&mut sink, rx, opts.batch_bytes))?;
        Ok(AccessLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            opts,
            thread,
        })
    }

    /// A sender for one shard. It is `Send`, so it can be built here and
    /// moved into the shard's thread.
    pub fn sender(&self) -> AccessLogSender {
        let (recycle_tx, recycle_rx) = sync_channel(2);
        AccessLogSender {
            tx: self.tx.clone(),
            recycle_tx,
            recycle_rx,
            buf: Vec::with_capacity(buffer_capacity(self.opts.batch_bytes)),
            lines: 0,
            oldest: None,
            opts: self.opts,
            dropped: self.dropped.clone(),
        }
    }

    /// Asks the writer to reopen its file (call on SIGHUP, after logrotate
    /// moved it). Batches queued before the request go to the old file.
    /// May wait for room in the queue: call from the main thread, not a shard.
    pub fn reopen(&self) {
        let _ = self.tx.send(Msg::Reopen);
    }

    /// The dropped-lines counter, for a reader on another thread (metrics).
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Lines dropped so far because the writer fell behind.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued, then stops the writer. Flush (or drop) the
    /// shards' senders first, or their unsent lines are lost.
    pub fn shutdown(self) {
        let _ = self.tx.send(Msg::Shutdown);
        let _ = self.thread.join();
    }
}

/// Room for a full batch plus the line that crossed the threshold.
fn buffer_capacity(batch_bytes: usize) -> usize {
    batch_bytes + 4096
}

fn run_writer(sink: &mut LogSink, rx: Receiver<Msg>, batch_bytes: usize) {
    let mut failing = false;
    let mut report = |what: &str, r: io::Result<()>| match r {
        Ok(()) => failing = false,
        // Say it once per failure episode, not once per batch.
        Err(e) if !failing => {
            failing = true;
            super::log_error(format_args!("access log: {what} failed: {e}"));
        }
        Err(_) => {}
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch(Batch { mut buf, recycle }) => {
                report("write", sink.write_batch(&buf));
                // An unusually grown buffer is freed rather than kept.
                if buf.capacity() <= 2 * buffer_capacity(batch_bytes) {
                    buf.clear();
                    let _ = recycle.try_send(buf);
                }
            }
            Msg::Reopen => report("reopen", sink.reopen()),
            Msg::Shutdown => break,
        }
    }
}

/// One shard's end of the access log. Not shared: the shard owns it (in a
/// `RefCell` if its tasks share the shard state).
pub struct AccessLogSender {
    tx: SyncSender<Msg>,
    recycle_tx: SyncSender<Vec<u8>>,
    recycle_rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    /// Lines in `buf`.
    lines: u64,
    /// When the first line in `buf` was written.
    oldest: Option<Instant>,
    opts: AccessLogOptions,
    dropped: Arc<AtomicU64>,
}

impl AccessLogSender {
    /// Formats `rec` into the batch; hands the batch over when it is full.
    pub fn log(&mut self, rec: &AccessRecord<'_>, now: Instant) {
        rec.write_json(&mut self.buf);
        self.lines += 1;
        self.oldest.get_or_insert(now);
        if self.buf.len() >= self.opts.batch_bytes {
            self.flush();
        }
    }

    /// Hands the batch over if its oldest line is `flush_interval` old. Call
    /// from the shard's periodic tick.
    pub fn maybe_flush(&mut self, now: Instant) {
        if let Some(oldest) = self.oldest {
            if now.saturating_duration_since(oldest) >= self.opts.flush_interval {
                self.flush();
            }
        }
    }

    /// Hands the batch over now (or drops it, counted, when the queue is full).
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let batch = Batch {
            buf: std::mem::take(&mut self.buf),
            recycle: self.recycle_tx.clone(),
        };
        match self.tx.try_send(Msg::Batch(batch)) {
            Ok(()) => {
                self.buf = self
                    .recycle_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(buffer_capacity(self.opts.batch_bytes)));
            }
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => {
                self.dropped.fetch_add(self.lines, Ordering::Relaxed);
                let Msg::Batch(batch) = msg else {
                    unreachable!("a sender only sends batches")
                };
                self.buf = batch.buf;
                self.buf.clear();
            }
        }
        self.lines = 0;
        self.oldest = None;
    }
}

impl Drop for AccessLogSender {
    /// A shard that stops hands over what it has.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: u64, millis: u32) -> String {
        let mut out = Vec::new();
        crate::civil::push_rfc3339_millis(
            &mut out,
            std::time::UNIX_EPOCH + Duration::new(secs, millis * 1_000_000),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(ts(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(ts(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
        assert_eq!(ts(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn fixed_point_decimals() {
        let f = |v, scale, digits| {
            let mut out = Vec::new();
            push_fixed(&mut out, v, scale, digits);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f(1_500, 1_000_000, 6), "0.001500");
        assert_eq!(f(12_345, 1_000, 3), "12.345");
        assert_eq!(f(7, 1_000, 3), "0.007");
        assert_eq!(f(3_000_000, 1_000_000, 6), "3.000000");
    }
}
