//! Counting gRPC messages as they cross the wire, for
//! `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`.
//!
//! A gRPC body is a sequence of length-prefixed messages (1 flag byte, a 4-byte
//! big-endian length, the payload), cut into HTTP/2 data frames anywhere: a
//! frame may hold part of a message or several. [`Framing`] follows the
//! prefixes across frames and counts each message once, when its prefix is
//! complete.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

/// Where a body is in its sequence of messages.
#[derive(Debug, Default)]
pub(super) struct Framing {
    prefix: [u8; 5],
    have: usize,
    /// Payload bytes of the current message still to come.
    remaining: u64,
}

impl Framing {
    /// Reads `buf`; returns how many messages began in it.
    pub(super) fn feed(&mut self, mut buf: &[u8]) -> u64 {
        let mut started = 0;
        while !buf.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
                self.remaining -= take as u64;
                buf = &buf[take..];
                continue;
            }
            let take = (5 - self.have).min(buf.len());
            self.prefix[self.have..self.have + take].copy_from_slice(&buf[..take]);
            self.have += take;
            buf = &buf[take..];
            if self.have == 5 {
                started += 1;
                self.have = 0;
                let [_, a, b, c, d] = self.prefix;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
        started
    }
}

/// A request body that counts the messages read from it.
pub(super) struct Counted<B> {
    pub(super) inner: B,
    pub(super) framing: Framing,
    pub(super) counter: metrics::Counter,
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = self.framing.feed(data);
            self.counter.increment(n);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn counts_messages_however_the_frames_cut_them() {
        let body: Vec<u8> = [message(3), message(0), message(300), message(1)].concat();
        for cut in [1, 2, 4, 5, 6, 7, 64, body.len()] {
            let mut f = Framing::default();
            let n: u64 = body.chunks(cut).map(|c| f.feed(c)).sum();
            assert_eq!(n, 4, "frames of {cut} bytes");
        }
        let mut f = Framing::default();
        assert_eq!(f.feed(&[]), 0);
        assert_eq!(f.feed(&message(10)[..4]), 0, "a message counts once its prefix is complete");
    }
}
