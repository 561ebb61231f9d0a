//! Sans-IO tracking of an upstream response body as it is relayed: which
//! bytes of each read belong to the body (by its framing), its chunked
//! payload decoded on the side, token usage scanned on the side, and where
//! the client's copy of the stream stands, so a response that breaks after
//! it was committed can still be ended properly.
//!
//! Invariants: `advance` never reports more bytes than it was given nor
//! bytes past the body's end. After [`BodyFailure::Framing`] the body cannot
//! be followed further (the decoder stays failed until reset) and none of
//! that read may be relayed. After [`BodyFailure::Unmetered`] the usage
//! scanner stays failed and the stream must be cut: for chunks relayed as
//! is, the read's first `consumed` bytes (up to its first point between
//! chunks) may still be relayed, and [`BodyProgress::advance_to_chunk_end`]
//! follows the chunk the client is inside to its end, where the cut goes.

use crate::api::sse::SseError;
use crate::api::usage::StreamUsageScanner;
use crate::error::{Error, Kind};
use crate::http1::chunked::{ChunkError, ChunkedDecoder};
use crate::http1::framing::BodyKind;

/// Why the body could not be followed past some read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFailure {
    /// The chunked framing is malformed.
    Framing(ChunkError),
    /// A stream event larger than the usage scanner reads: the rest of the
    /// stream cannot be metered. The read's framing is sound: its first
    /// `consumed` bytes are body (for chunks relayed as is, up to the read's
    /// first point between chunks; else all of its body bytes).
    Unmetered { error: SseError, consumed: usize },
}

impl From<BodyFailure> for Error {
    /// An upstream protocol error (502, not retry-safe: the upstream read
    /// the request), for a body that failed before the client got a byte.
    fn from(failure: BodyFailure) -> Error {
        let why = match failure {
            BodyFailure::Framing(e) => format!("bad chunked response: {e:?}"),
            BodyFailure::Unmetered { error, .. } => {
                format!("response stream too large to meter: {error}")
            }
        };
        Error::upstream(Kind::UpstreamProtocol, false, why)
    }
}

/// Where the client's copy of a relayed stream stands after the bytes
/// relayed so far: what may still be written to end it cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientPosition {
    /// The upstream's chunk framing, relayed as is, is between two chunks:
    /// a chunk of the gateway's own (and the last chunk) may follow. Always
    /// true for a body whose framing is not relayed chunked.
    pub between_chunks: bool,
    /// The event stream is inside an event: a blank line must end it before
    /// an event of the gateway's own.
    pub mid_event: bool,
}

impl ClientPosition {
    /// Before any body byte.
    pub const START: ClientPosition = ClientPosition {
        between_chunks: true,
        mid_event: false,
    };
}

/// Tracks how much of the upstream byte stream is response body.
pub struct BodyProgress {
    kind: BodyKind,
    remaining: u64,
    done: bool,
}

impl BodyProgress {
    pub fn new(kind: BodyKind) -> BodyProgress {
        let remaining = if let BodyKind::Length(n) = kind { n } else { 0 };
        BodyProgress {
            kind,
            remaining,
            done: matches!(kind, BodyKind::Empty | BodyKind::Length(0)),
        }
    }

    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Returns how many leading bytes of `data` belong to the body. With
    /// `decoded`, chunked payload is also copied there (HTTP/1.0 clients,
    /// translation). With `usage`, the payload is also scanned for token
    /// usage. On `Err`, none of `data` can be relayed.
    pub fn advance(
        &mut self,
        data: &[u8],
        decoder: &mut ChunkedDecoder,
        mut decoded: Option<&mut Vec<u8>>,
        mut usage: Option<&mut StreamUsageScanner>,
    ) -> Result<usize, BodyFailure> {
        match self.kind {
            BodyKind::Empty => {
                self.done = true;
                Ok(0)
            }
            BodyKind::Length(_) | BodyKind::CloseDelimited => {
                let take = match self.kind {
                    BodyKind::Length(_) => (data.len() as u64).min(self.remaining) as usize,
                    _ => data.len(),
                };
                if let BodyKind::Length(_) = self.kind {
                    self.remaining -= take as u64;
                    self.done = self.remaining == 0;
                }
                match usage.map(|u| u.feed(&data[..take])) {
                    Some(Err(error)) => Err(BodyFailure::Unmetered {
                        error,
                        consumed: take,
                    }),
                    _ => Ok(take),
                }
            }
            BodyKind::Chunked => {
                // Kept to rewind to, should the usage scan fail inside this
                // read: the stream must then stop at a chunk boundary.
                let before = (usage.is_some() && decoded.is_none()).then(|| decoder.clone());
                let mut unmetered = None;
                let progress = decoder
                    .feed(data, |d| {
                        if let Some(out) = decoded.as_deref_mut() {
                            out.extend_from_slice(d);
                        }
                        if let Some(u) = usage.as_deref_mut() {
                            if let Err(e) = u.feed(d) {
                                unmetered.get_or_insert(e);
                            }
                        }
                    })
                    .map_err(BodyFailure::Framing)?;
                self.done = progress.done;
                let Some(error) = unmetered else {
                    return Ok(progress.consumed);
                };
                let consumed = match before {
                    Some(before) => {
                        *decoder = before;
                        self.advance_to_chunk_end(data, decoder)?
                    }
                    None => progress.consumed,
                };
                Err(BodyFailure::Unmetered { error, consumed })
            }
        }
    }

    /// Follows a chunked body relayed as is, unscanned, up to its next
    /// point between chunks (where it stands, if it is at one): how many
    /// leading bytes of `data` the client may still get before a chunk of
    /// the gateway's own. Fails only on malformed framing.
    pub fn advance_to_chunk_end(
        &mut self,
        data: &[u8],
        decoder: &mut ChunkedDecoder,
    ) -> Result<usize, BodyFailure> {
        debug_assert_eq!(self.kind, BodyKind::Chunked);
        let progress = decoder
            .feed_to_chunk_end(data, |_| {})
            .map_err(BodyFailure::Framing)?;
        self.done = progress.done;
        Ok(progress.consumed)
    }

    /// Where the client's copy stands once everything advanced so far has
    /// been relayed to it, its chunk framing as is unless `reframed`.
    pub fn position(
        &self,
        decoder: &ChunkedDecoder,
        usage: Option<&StreamUsageScanner>,
        reframed: bool,
    ) -> ClientPosition {
        ClientPosition {
            between_chunks: reframed || self.kind != BodyKind::Chunked || decoder.between_chunks(),
            mid_event: usage.is_some_and(StreamUsageScanner::mid_event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Retry;
    use crate::http1::chunked::ChunkLimits;

    fn decoder() -> ChunkedDecoder {
        ChunkedDecoder::new(ChunkLimits::default())
    }

    #[test]
    fn a_length_body_stops_at_its_end() {
        let mut p = BodyProgress::new(BodyKind::Length(5));
        let mut d = decoder();
        assert_eq!(p.advance(b"abc", &mut d, None, None), Ok(3));
        assert!(!p.is_done());
        assert_eq!(p.advance(b"deXTRA", &mut d, None, None), Ok(2));
        assert!(p.is_done());
    }

    #[test]
    fn a_malformed_chunk_is_a_framing_failure_and_stays_one() {
        let mut p = BodyProgress::new(BodyKind::Chunked);
        let mut d = decoder();
        let mut out = Vec::new();
        assert_eq!(
            p.advance(b"3\r\nabc\r\n", &mut d, Some(&mut out), None),
            Ok(8)
        );
        assert!(p.position(&d, None, false).between_chunks);
        let failed = p.advance(b"zz\r\n", &mut d, None, None);
        assert!(matches!(failed, Err(BodyFailure::Framing(_))), "{failed:?}");
        assert!(p.advance(b"0\r\n\r\n", &mut d, None, None).is_err());
        let err = Error::from(failed.unwrap_err());
        assert_eq!((err.status(), err.retry), (502, Retry::Never));
    }

    #[test]
    fn the_client_position_follows_chunks_and_events() {
        let mut p = BodyProgress::new(BodyKind::Chunked);
        let mut d = decoder();
        let mut usage = StreamUsageScanner::new();
        usage.reset(false);
        p.advance(
            b"9\r\ndata: a\n\n\r\n4\r\ndata",
            &mut d,
            None,
            Some(&mut usage),
        )
        .unwrap();
        let at = p.position(&d, Some(&usage), false);
        assert_eq!((at.between_chunks, at.mid_event), (false, true));
        assert!(p.position(&d, Some(&usage), true).between_chunks);
        p.advance(b"\r\n", &mut d, None, Some(&mut usage)).unwrap();
        let at = p.position(&d, Some(&usage), false);
        assert_eq!((at.between_chunks, at.mid_event), (true, true));
        p.advance(b"2\r\n\n\n\r\n", &mut d, None, Some(&mut usage))
            .unwrap();
        assert_eq!(p.position(&d, Some(&usage), false), ClientPosition::START);
    }

    #[test]
    fn an_unmeterable_chunked_stream_stops_at_its_next_chunk_boundary() {
        let mut usage = StreamUsageScanner::new();
        usage.reset(false);
        let mut p = BodyProgress::new(BodyKind::Chunked);
        let mut d = decoder();
        let head = b"8\r\ndata: xx";
        p.advance(head, &mut d, None, Some(&mut usage)).unwrap();
        // The rest of the over-long event, a chunk's end, and more chunks.
        let mut read = vec![b'x'; StreamUsageScanner::MAX_EVENT];
        read.splice(0..0, *b"\r\n800000\r\n");
        let boundary = 2 + 8 + 0x800000 + 2;
        read.truncate(boundary - 2);
        read.extend_from_slice(b"\r\n6\r\ndata: \r\n");
        let failed = p.advance(&read, &mut d, None, Some(&mut usage));
        assert!(
            matches!(failed, Err(BodyFailure::Unmetered { consumed: 2, .. })),
            "relayed up to the first boundary in the read: {failed:?}"
        );
        assert!(d.between_chunks() && !p.is_done());

        // Already inside a chunk when the read starts: its end is found
        // across later reads.
        usage.reset(false);
        let mut p = BodyProgress::new(BodyKind::Chunked);
        let mut d = decoder();
        p.advance(b"fffff\r\ndata: ", &mut d, None, Some(&mut usage))
            .unwrap();
        assert_eq!(p.advance_to_chunk_end(&[b'x'; 100], &mut d), Ok(100));
        assert!(!d.between_chunks());
        let mut rest = vec![b'x'; 0xfffff - 6 - 100];
        rest.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(p.advance_to_chunk_end(&rest, &mut d), Ok(rest.len() - 5));
        assert!(
            d.between_chunks() && !p.is_done(),
            "stops before the last chunk"
        );
    }

    #[test]
    fn an_event_too_large_to_meter_fails_the_body() {
        let mut p = BodyProgress::new(BodyKind::CloseDelimited);
        let mut d = decoder();
        let mut usage = StreamUsageScanner::new();
        usage.reset(true);
        let block = vec![b'x'; 1 << 20];
        p.advance(b"data: ", &mut d, None, Some(&mut usage))
            .unwrap();
        let failed = (0..=StreamUsageScanner::MAX_EVENT >> 20)
            .find_map(|_| p.advance(&block, &mut d, None, Some(&mut usage)).err());
        assert!(
            matches!(failed, Some(BodyFailure::Unmetered { consumed, .. }) if consumed == block.len()),
            "{failed:?}"
        );
    }
}
