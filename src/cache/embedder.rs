//! The semantic cache's embeddings: a request's text embedded by the
//! configured embedding model (`cache.semantic.embedding_model`, routed
//! like any model to an OpenAI-compatible provider), on a thread of its
//! own, `cache-embed`, through the gateway's own blocking upstream client
//! (`upstream::blocking`: the provider's addresses, TLS trust and
//! credentials, each step bounded). A shard hands it the text through a
//! bounded queue and waits for the vector at most
//! `cache.semantic.timeout_ms`.
//!
//! Invariants: an embedding that fails, is late or cannot be asked (the
//! queue full) is no vector, and the request goes on as an exact-cache miss,
//! never an error; the thread lives as long as the generation that made it
//! (it ends when the queue's sender is dropped); the embedding calls'
//! tokens are counted (`tokens`), as they are the cache's own spend.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::handoff::Handoff;
use super::semantic_text::{embedding_from_response, embedding_request};
use crate::providers::Provider;
use crate::upstream::blocking::{send, Peer};

/// Texts waiting for the thread, at most.
const QUEUE: usize = 256;
/// The most of an embeddings answer read (4096 floats as text, and more).
const MAX_ANSWER: usize = 1 << 20;

/// What the shards hold of the embedder.
pub struct Embedder {
    jobs: SyncSender<(String, Arc<Handoff<Vec<f32>>>)>,
    wait: Duration,
    pub counts: Arc<EmbedCounts>,
}

/// The embedder's counters, for its metrics.
#[derive(Default)]
pub struct EmbedCounts {
    pub embedded: AtomicU64,
    /// Not embedded: the call failed, was late, or the queue was full.
    pub failed: AtomicU64,
    /// Input tokens the embedding model reported.
    pub tokens: AtomicU64,
}

/// Where the thread sends its requests.
struct Target {
    addrs: Vec<SocketAddr>,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    head: Vec<u8>,
    model: String,
}

impl Embedder {
    /// Starts `cache-embed` for `upstream_model` at `provider`; a caller
    /// waits at most `wait` for a vector.
    pub fn spawn(
        provider: &Provider,
        upstream_model: &str,
        wait: Duration,
    ) -> Result<Embedder, String> {
        let head = provider
            .embeddings_request_head(upstream_model)
            .ok_or_else(|| {
                format!(
                    "cache.semantic.embedding_model: provider `{}` does not serve OpenAI's embeddings API",
                    provider.name
                )
            })?;
        let peer = provider.blocking_peer();
        let target = Target {
            addrs: peer.addrs.to_vec(),
            tls: peer.tls,
            head,
            model: upstream_model.to_owned(),
        };
        let (jobs, queue) = mpsc::sync_channel(QUEUE);
        let counts = Arc::new(EmbedCounts::default());
        let thread_counts = counts.clone();
        std::thread::Builder::new()
            .name("cache-embed".into())
            .spawn(move || run(queue, target, wait, &thread_counts))
            .map_err(|e| format!("cannot start the cache-embed thread: {e}"))?;
        Ok(Embedder { jobs, wait, counts })
    }

    /// `text`'s embedding, if it comes within the wait.
    pub async fn embed(&self, text: String) -> Option<Vec<f32>> {
        let slot = Arc::new(Handoff::default());
        let vector = match self.jobs.try_send((text, slot.clone())) {
            Ok(()) => monoio::time::timeout(self.wait, Handoff::wait(slot))
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let counter = match vector {
            Some(_) => &self.counts.embedded,
            None => &self.counts.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        vector
    }
}

fn run(
    queue: Receiver<(String, Arc<Handoff<Vec<f32>>>)>,
    target: Target,
    timeout: Duration,
    counts: &EmbedCounts,
) {
    let peer = Peer {
        addrs: &target.addrs,
        tls: target.tls.clone(),
    };
    while let Ok((text, slot)) = queue.recv() {
        let body = embedding_request(&target.model, &text);
        let mut request = target.head.clone();
        crate::http1::write::push_content_length(&mut request, body.len() as u64);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&body);
        let vector = match send(&peer, &request, timeout, MAX_ANSWER) {
            Ok((200, answer)) => {
                let tokens =
                    crate::api::usage::openai_response_usage(&answer).map_or(0, |u| u.input_tokens);
                counts.tokens.fetch_add(tokens, Ordering::Relaxed);
                embedding_from_response(&answer)
            }
            _ => None,
        };
        slot.fill(vector);
    }
}
