//! Metrics, Prometheus text, the access log, and the systemd notify protocol.

mod log;
pub mod metrics;
pub mod notify;
pub mod prometheus;

pub use log::{log_error, log_info, log_warn};
pub use metrics::{
    LabelTable, MergedMetrics, MetricsSnapshot, ModelId, ProviderId, RequestMetrics, RouteId,
    ShardMetrics, Usage,
};
