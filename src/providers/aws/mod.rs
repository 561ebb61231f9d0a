//! AWS (Bedrock) building blocks, each sans-IO and tested alone: request
//! signing in `sigv4`, credentials and region from the standard environment
//! and shared files in `credentials`. The event-stream framing Bedrock
//! streams in lives with the other wire codecs, in `api::eventstream`.
//!
//! Not wired into the proxy yet: the Bedrock provider family (Converse,
//! ConverseStream, Anthropic models through InvokeModel), its translation
//! and the off-shard credential refresh come next.

pub mod credentials;
pub mod sigv4;
