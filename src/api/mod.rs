//! The client-facing dialects (OpenAI, Anthropic), translation between them,
//! and the SSE stream scanner.

pub mod output_meter;
pub mod sse;
pub mod translate;
pub mod usage;
