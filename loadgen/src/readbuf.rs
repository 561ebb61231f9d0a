//! A read buffer for one connection: bytes `start..end` of `data` are received
//! but not yet consumed. Memory is zeroed once when it grows, never per read,
//! and consumed bytes are dropped by moving `start`, so pipelined or streamed
//! input costs no copying until the buffer must be compacted.

use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

pub struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn new(capacity: usize) -> ReadBuf {
        ReadBuf {
            data: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// The received, unconsumed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Reads once from `stream`, appending; `Ok(0)` is end of stream.
    pub async fn fill(&mut self, stream: &mut TcpStream) -> std::io::Result<usize> {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.data.resize(self.data.len() * 2, 0);
            }
        }
        let n = stream.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
