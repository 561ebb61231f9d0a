//! One client connection: requests read in order (pipelining answered in
//! order), until either side closes. Each request runs the phases in
//! turn on one [`RequestCtx`]: admit → (route and) upstream attempts →
//! respond → settle.
//!
//! Invariant: every request's body is consumed whole before the next head is
//! parsed, and any response the gateway makes itself is complete and
//! correctly framed, so a keep-alive connection never loses sync; on any
//! doubt the connection is closed instead.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use super::admit::{admit, Admitted, Refused};
use super::attempt::run_attempts;
use super::context::RequestCtx;
use super::downstream::{Downstream, HeadWait};
use super::headers::PeerAddr;
use super::respond::{respond_error, respond_local, respond_relayed, Next};
use super::settle::settle;
use super::trace;
use crate::net::{ClientIo, ClientStream};
use crate::shard::Shard;

/// Serves one accepted client connection (plain, or TLS with the
/// handshake done), from `peer`, to the end.
pub async fn serve_connection<S: ClientIo>(stream: S, peer: SocketAddr, shard: Rc<Shard>) {
    // Responses (and stream chunks) must leave as soon as they are written.
    let _ = stream.tcp().set_nodelay(true);
    let mut down = Downstream::new(ClientStream::new(stream), PeerAddr::new(peer.ip()));
    let mut ctx = RequestCtx::new();
    let mut first = true;
    loop {
        // The wait's few limits, copied: an idle connection's task holds
        // them, not the generation (see `HeadWait`).
        let wait = HeadWait::of(&shard.generation().gateway.config.limits);
        let read = down.read_head(wait, first).await;
        first = false;
        let next = match read {
            Ok(true) => {
                let _in_flight = shard.request_guard();
                // A clock read, not the loop clock: the request's duration
                // and its time to first token run from here.
                ctx.begin(shard.generation(), Instant::now());
                trace::begin(&shard, &mut ctx, Some((&down.head, &down.rbuf)));
                handle_request(&shard, &mut ctx, &mut down).await
            }
            Ok(false) => return,
            Err(e) => {
                // A head that cannot be read is answered, counted and
                // logged like any other refusal; the connection ends.
                ctx.begin(shard.generation(), Instant::now());
                trace::begin(&shard, &mut ctx, None);
                respond_error(&mut ctx, &mut down, &e, true).await
            }
        };
        ctx.outcome.bytes_out = down.stream.take_written();
        settle(&shard, &mut ctx);
        ctx.end();
        match next {
            Next::KeepAlive => {}
            Next::Close => return,
        }
    }
}

/// Runs the phases for the request whose head was just read; whether the
/// connection goes on.
async fn handle_request<S: ClientIo>(
    shard: &Shard,
    ctx: &mut RequestCtx,
    down: &mut Downstream<S>,
) -> Next {
    match admit(shard, ctx, down).await {
        Ok(Admitted::Upstream(request)) => {
            let relayed = run_attempts(shard, ctx, down, request).await;
            respond_relayed(ctx, down, relayed).await
        }
        Ok(Admitted::Local(answer)) => respond_local(ctx, down, answer).await,
        Err(Refused { error, close }) => respond_error(ctx, down, &error, close).await,
    }
}
