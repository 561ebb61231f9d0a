//! A streamed answer recorded as it passes to the client, sans-IO: the
//! body bytes after the head, bounded, its chunk framing (when the
//! upstream's was relayed as is) taken off at the end, so what is kept is
//! the event stream the client read.
//!
//! Invariants: never holds more than its limit (past it the recording is
//! given up and [`Recorder::finish`] gives nothing); a chunked recording
//! whose framing does not end whole gives nothing.

use crate::http1::chunked::{ChunkLimits, ChunkedDecoder};

/// One stream's recording.
pub struct Recorder {
    bytes: Vec<u8>,
    limit: usize,
    chunked: bool,
    over: bool,
}

impl Recorder {
    /// Records up to `limit` bytes of a body framed chunked or not.
    pub fn new(limit: usize, chunked: bool) -> Recorder {
        Recorder {
            bytes: Vec::new(),
            limit,
            chunked,
            over: false,
        }
    }

    /// Takes the next bytes the client got.
    pub fn push(&mut self, data: &[u8]) {
        if self.over {
            return;
        }
        if self.bytes.len() + data.len() > self.limit {
            self.over = true;
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(data);
    }

    /// The event stream recorded, unframed, if it was kept whole.
    pub fn finish(self) -> Option<Vec<u8>> {
        if self.over {
            return None;
        }
        if !self.chunked {
            return Some(self.bytes);
        }
        let mut payload = Vec::with_capacity(self.bytes.len());
        let progress = ChunkedDecoder::new(ChunkLimits::default())
            .feed(&self.bytes, |d| payload.extend_from_slice(d))
            .ok()?;
        progress.done.then_some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_recording_is_unframed_and_a_bare_one_kept_as_is() {
        let mut r = Recorder::new(1024, true);
        r.push(b"6\r\ndata: ");
        r.push(b"\r\n3\r\nhi\n\r\n0\r\n\r\n");
        assert_eq!(r.finish().unwrap(), b"data: hi\n");
        let mut r = Recorder::new(1024, false);
        r.push(b"data: hi\n\n");
        assert_eq!(r.finish().unwrap(), b"data: hi\n\n");
    }

    #[test]
    fn past_its_limit_or_cut_inside_its_framing_nothing_is_kept() {
        let mut r = Recorder::new(8, false);
        r.push(b"12345");
        r.push(b"6789");
        r.push(b"0");
        assert_eq!(r.finish(), None);
        let mut r = Recorder::new(1024, true);
        r.push(b"6\r\ndata: \r\n");
        assert_eq!(r.finish(), None);
    }
}
