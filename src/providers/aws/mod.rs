//! AWS (Bedrock) building blocks, each sans-IO and tested alone: request
//! signing in `sigv4`, credentials and region from the standard environment
//! and shared files in `credentials`, the InvokeModel body and stream for
//! Anthropic models in `invoke`. The event-stream framing Bedrock
//! streams in lives with the other wire codecs, in `api::eventstream`.
//!
//! The Converse translations are in `api::translate` (`request_to_converse`,
//! `response_bedrock`, `stream_bedrock_to_openai`); the provider family that
//! puts them together (targets, signing, the credential refresh) is
//! `providers::bedrock`, and the relay that decodes its streams
//! `proxy::translated`.

pub mod credentials;
pub mod invoke;
pub mod sigv4;
