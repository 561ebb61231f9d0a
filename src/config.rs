//! Typed configuration: file format, defaults, validation.
