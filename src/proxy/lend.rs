//! Lending the client's body buffer to an attempt's upstream request: the
//! read buffer (a body in place) or the decoded chunked body is moved into
//! the request for the write, not copied, and put back after it.
//!
//! Invariant: a buffer lent comes back, or the caller learns it did not
//! (an upstream write that timed out took it with it) and closes the
//! connection after its answer.

use crate::net::ClientIo;
use std::mem;

use super::downstream::{Body, Downstream};
use super::exchange::OutgoingRequest;
use crate::buf::PooledBuf;

/// Which body buffer an attempt lent to the upstream request.
pub(super) enum Lent {
    Nothing,
    ReadBuffer,
    Decoded,
}

impl Lent {
    /// Hands `req` its body: the `translated` one, else the client's, whose
    /// buffer (the read buffer, or the decoded chunked body) is lent.
    pub fn lend<S: ClientIo>(
        req: &mut OutgoingRequest,
        translated: Option<Vec<u8>>,
        down: &mut Downstream<S>,
        body: &mut Body,
    ) -> Lent {
        let (buf, range, lent) = match (translated, body) {
            (Some(new_body), _) => {
                // Not adopted as it is when small: it would join the free
                // list on every translated request and, grown by later
                // takes, fill it to its bound. A large one is not copied.
                let len = new_body.len();
                (Some(PooledBuf::from_vec(new_body)), 0..len, Lent::Nothing)
            }
            (None, Body::Empty) => (None, 0..0, Lent::Nothing),
            (None, Body::InPlace(r)) => (
                Some(mem::replace(&mut down.rbuf, PooledBuf::empty())),
                r.clone(),
                Lent::ReadBuffer,
            ),
            // The start of an upload, in the read buffer; the rest is
            // copied from the client by the exchange.
            (None, Body::Streamed(u)) => {
                req.upload = Some(u.clone());
                (
                    Some(mem::replace(&mut down.rbuf, PooledBuf::empty())),
                    u.prefix.clone(),
                    Lent::ReadBuffer,
                )
            }
            (None, Body::Decoded(b)) => {
                let b = mem::replace(b, PooledBuf::empty());
                let len = b.len();
                (Some(b), 0..len, Lent::Decoded)
            }
        };
        req.body = buf;
        req.body_range = range;
        lent
    }

    /// Puts the lent buffer back from what `forward` handed back; `false`
    /// when it did not come back (the body is gone).
    pub fn put_back<S: ClientIo>(
        self,
        back: Option<PooledBuf>,
        down: &mut Downstream<S>,
        body: &mut Body,
    ) -> bool {
        let lost = !matches!(self, Lent::Nothing) && back.is_none();
        match (self, back) {
            (Lent::ReadBuffer, Some(b)) => down.rbuf = b,
            (Lent::Decoded, Some(b)) => {
                if let Body::Decoded(slot) = body {
                    *slot = b;
                }
            }
            _ => {}
        }
        !lost
    }
}
