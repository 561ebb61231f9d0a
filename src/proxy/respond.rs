//! The respond phase for answers the gateway makes itself: local answers
//! (health, the model list) and errors, shaped in the caller's dialect,
//! and the end of every request: whether the connection goes on.
//!
//! Invariant: a gateway-made response is complete and correctly framed
//! (a HEAD gets the head only), and is written only when nothing of
//! another response reached the client for this request.

use super::admit::LocalAnswer;
use super::context::RequestCtx;
use super::downstream::Downstream;
use super::exchange::Relayed;
use crate::error::Error;
use crate::net::ClientIo;

/// Whether the client connection goes on after a request.
pub(super) enum Next {
    KeepAlive,
    Close,
}

/// Answers from the gateway's own state.
pub(super) async fn respond_local<S: ClientIo>(
    ctx: &mut RequestCtx,
    down: &mut Downstream<S>,
    answer: LocalAnswer,
) -> Next {
    let gw = &ctx.generation().gateway;
    // A key limited to some models sees only those.
    let (filtered, listed);
    let lists = &gw.router.model_lists;
    let body: &[u8] = match (answer, &ctx.key) {
        (LocalAnswer::Health, _) => b"{\"status\":\"ok\"}",
        (LocalAnswer::Models, Some(key)) if key.spec.models.is_some() => {
            filtered = lists.render_where(|name, resolved| key.allows(name, resolved));
            &filtered
        }
        (LocalAnswer::Models, _) => {
            listed = lists.snapshot();
            &listed.body
        }
    };
    ctx.outcome.status = 200;
    let close = !ctx.facts.keep_alive;
    let written = down
        .write_response(200, body, close, ctx.facts.is_head)
        .await;
    after_answer(ctx, down, written.is_ok() && !close)
}

/// Answers with `err`; the connection closes after it when `close` (or
/// when the client's framing says so).
pub(super) async fn respond_error<S: ClientIo>(
    ctx: &mut RequestCtx,
    down: &mut Downstream<S>,
    err: &Error,
    close: bool,
) -> Next {
    ctx.outcome.status = err.status();
    ctx.outcome.error = Some(err.metric_kind());
    let close = close || !ctx.facts.keep_alive;
    let written = if ctx.facts.is_head {
        // A response to HEAD carries no body (RFC 9110 §9.3.2): a client
        // would read the error's JSON as the start of its next response.
        let mut body = Vec::new();
        err.write_openai_body(&mut body);
        down.write_response(err.status(), &body, close, true).await
    } else {
        down.write_error(err, close, ctx.facts.dialect, ctx.facts.rate.as_ref())
            .await
    };
    after_answer(ctx, down, written.is_ok() && !close)
}

/// After a gateway-made answer: the connection goes on only when it was
/// written whole and may stay open.
fn after_answer<S: ClientIo>(ctx: &RequestCtx, down: &mut Downstream<S>, go_on: bool) -> Next {
    if !go_on {
        return Next::Close;
    }
    down.finish_request(ctx.next_request);
    Next::KeepAlive
}

/// Ends a request the upstream attempts answered (or that still needs its
/// error answer).
pub(super) async fn respond_relayed<S: ClientIo>(
    ctx: &mut RequestCtx,
    down: &mut Downstream<S>,
    relayed: Result<Relayed, Error>,
) -> Next {
    match relayed {
        Ok(Relayed::Complete { close }) => after_answer(ctx, down, !close),
        Ok(Relayed::Broken) | Ok(Relayed::Held) => Next::Close,
        Err(e) => respond_error(ctx, down, &e, false).await,
    }
}
