//! The client-facing dialects (OpenAI, Anthropic), translation between them,
//! the SSE stream scanner, and the AWS event-stream framing Bedrock streams in.

pub mod eventstream;
pub mod multipart;
pub mod output_meter;
pub mod sse;
pub mod translate;
pub mod usage;
