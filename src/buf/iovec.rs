//! Vectored writes over owned buffers: a request assembled as slices of up
//! to two `PooledBuf`s (e.g. a freshly written head, and the client's body
//! around a patched `model` value) goes out in one `writev`, with partial
//! writes resumed where they stopped.
//!
//! Invariant: the iovec array lives on the heap (allocated once per
//! connection and reused), because monoio takes the iovec pointer and then
//! moves the operation's data; an inline array would dangle.

use std::io;
use std::ops::Range;

use monoio::buf::IoVecBuf;
use monoio::io::AsyncWriteRent;

use super::PooledBuf;

const MAX_SEGMENTS: usize = 6;

/// Up to six slices of two owned buffers, written in order.
pub struct IoVecs {
    iov: Box<[libc::iovec; MAX_SEGMENTS]>,
    len: usize,
    /// Index of the first segment not yet fully written.
    first: usize,
    bufs: [Option<PooledBuf>; 2],
}

impl Default for IoVecs {
    fn default() -> Self {
        IoVecs::new()
    }
}

impl IoVecs {
    pub fn new() -> IoVecs {
        const EMPTY: libc::iovec = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        IoVecs {
            iov: Box::new([EMPTY; MAX_SEGMENTS]),
            len: 0,
            first: 0,
            bufs: [None, None],
        }
    }

    /// Takes ownership of the buffers the segments will point into.
    pub fn reset(&mut self, a: PooledBuf, b: Option<PooledBuf>) {
        self.len = 0;
        self.first = 0;
        self.bufs = [Some(a), b];
    }

    /// Appends `range` of buffer `which` (0 or 1). Empty ranges are skipped.
    pub fn push(&mut self, which: usize, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        assert!(self.len < MAX_SEGMENTS, "too many iovec segments");
        let buf = self.bufs[which]
            .as_ref()
            .expect("segment into a missing buffer");
        let slice = &buf[range];
        self.iov[self.len] = libc::iovec {
            iov_base: slice.as_ptr() as *mut _,
            iov_len: slice.len(),
        };
        self.len += 1;
    }

    /// Forgets the segments, keeping the buffers.
    pub fn clear_segments(&mut self) {
        self.len = 0;
        self.first = 0;
    }

    /// Length of owned buffer `which` (0 when absent).
    pub fn buf_len(&self, which: usize) -> usize {
        self.bufs[which].as_ref().map_or(0, |b| b.len())
    }

    /// Bytes not yet written.
    pub fn remaining(&self) -> usize {
        self.iov[self.first..self.len]
            .iter()
            .map(|v| v.iov_len)
            .sum()
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 && self.first < self.len {
            let v = &mut self.iov[self.first];
            if n >= v.iov_len {
                n -= v.iov_len;
                self.first += 1;
            } else {
                // SAFETY: stays within the same buffer slice.
                v.iov_base = unsafe { (v.iov_base as *mut u8).add(n) } as *mut _;
                v.iov_len -= n;
                n = 0;
            }
        }
    }

    /// Returns the owned buffers (the segments are cleared).
    pub fn take_bufs(&mut self) -> (Option<PooledBuf>, Option<PooledBuf>) {
        self.len = 0;
        self.first = 0;
        let [a, b] = std::mem::take(&mut self.bufs);
        (a, b)
    }
}

// SAFETY: the iovecs point into heap buffers owned by `self.bufs`, and the
// iovec array itself is boxed, so both stay put while monoio owns `self`.
unsafe impl IoVecBuf for IoVecs {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iov[self.first..].as_ptr()
    }
    fn read_iovec_len(&self) -> usize {
        self.len - self.first
    }
}

/// Writes every segment, resuming after partial writes. Unlike monoio's
/// `write_vectored_all`, this allocates nothing.
pub async fn write_all_vectored<S: AsyncWriteRent>(
    stream: &mut S,
    mut v: IoVecs,
) -> (io::Result<()>, IoVecs) {
    while v.first < v.len {
        let (res, back) = stream.writev(v).await;
        v = back;
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), v),
            Ok(n) => v.advance(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), v),
        }
    }
    (Ok(()), v)
}

/// Writes the whole buffer, returning it for reuse.
pub async fn write_all<S: AsyncWriteRent>(
    stream: &mut S,
    buf: PooledBuf,
) -> (io::Result<()>, PooledBuf) {
    use monoio::io::AsyncWriteRentExt;
    let (res, buf) = stream.write_all(buf).await;
    (res.map(|_| ()), buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_walks_across_segments() {
        let mut a = PooledBuf::take(16);
        a.extend_from_slice(b"HEADvalue");
        let mut b = PooledBuf::take(16);
        b.extend_from_slice(b"{\"model\":\"x\"}");
        let mut v = IoVecs::new();
        v.reset(a, Some(b));
        v.push(0, 0..4);
        v.push(1, 0..9);
        v.push(0, 4..9);
        v.push(1, 12..13);
        assert_eq!(v.remaining(), 4 + 9 + 5 + 1);
        v.advance(6);
        assert_eq!(v.remaining(), 13);
        assert_eq!(v.read_iovec_len(), 3);
        v.advance(13);
        assert_eq!(v.remaining(), 0);
        assert_eq!(v.read_iovec_len(), 0);
    }
}
