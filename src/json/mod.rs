//! JSON, sans-IO: the top-level field scan and in-place patch of request
//! bodies, and JSON string escaping.
