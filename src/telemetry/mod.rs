//! Metrics, Prometheus text, the access log, OpenTelemetry traces, and the
//! systemd notify protocol.

pub mod access_log;
mod log;
mod log_file;
pub mod metrics;
pub mod notify;
pub mod prometheus;
pub mod request_id;
pub mod trace;

pub use access_log::{AccessLog, AccessLogOptions, AccessLogSender, AccessRecord, LogTarget};
pub use log::{log_error, log_info, log_warn};
pub use metrics::{
    LabelTable, MergedMetrics, MetricsSnapshot, ModelId, ProviderId, RequestMetrics, RouteId,
    ShardMetrics, Usage,
};
pub use request_id::{RequestId, RequestIdGen};
