//! Metrics, Prometheus text, and logs.

mod log;

pub use log::{log_error, log_info, log_warn};
