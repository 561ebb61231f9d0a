//! Metrics, Prometheus text, and the access log.
