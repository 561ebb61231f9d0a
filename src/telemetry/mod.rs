//! Metrics, Prometheus text, the access log, OpenTelemetry traces, and the
//! systemd notify protocol.

pub mod access_log;
pub mod health;
mod log;
mod log_file;
pub mod metrics;
pub mod notify;
pub mod process;
pub mod prometheus;
pub mod request_id;
pub mod stats;
pub mod trace;

pub use access_log::{AccessLog, AccessLogOptions, AccessLogSender, AccessRecord, LogTarget};
pub use log::{init_log, log_error, log_event, log_info, log_warn, Field, Level, LogFormat};
pub use metrics::{
    LabelTable, MergedMetrics, MetricsSnapshot, ModelId, ProviderId, RequestMetrics, RouteId,
    ShardMetrics, Usage,
};
pub use request_id::{RequestId, RequestIdGen};
