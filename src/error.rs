//! The one error type: what failed, who failed, and whether a retry is safe.
