//! Wide-area delay on loopback: every byte read from a wrapped stream becomes visible only
//! half a round-trip time after it arrived, so each request/response pays one full RTT.
//!
//! Stream transports (TCP, memory) are wrapped below the security handshake, so connection
//! set-up pays its real number of round trips too. QUIC is wrapped per substream (its streams
//! live inside the connection), and [`QUIC_HANDSHAKE_RTTS`] round trips are added when a
//! connection is established instead.

use std::{
    collections::VecDeque,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use tokio::time::{Instant, Sleep};

/// Round trips a QUIC connection set-up costs (QUIC's 1-RTT handshake).
pub(crate) const QUIC_HANDSHAKE_RTTS: u32 = 1;

/// Bytes held back per stream at most; beyond it the wrapper stops reading (backpressure).
const MAX_HELD_BYTES: usize = 1 << 20;

/// Bytes read from the inner stream per call.
const READ_CHUNK: usize = 16 * 1024;

/// Data that arrived from the inner stream and is released at `due`.
#[derive(Debug)]
struct Arrival {
    due: Instant,
    data: Vec<u8>,
    /// Bytes of `data` already handed to the reader.
    consumed: usize,
}

/// A stream whose reads are delayed by a fixed one-way latency. A zero latency passes through.
#[derive(Debug)]
pub(crate) struct DelayedStream<S> {
    inner: S,
    one_way: Duration,
    arrivals: VecDeque<Arrival>,
    held_bytes: usize,
    /// End of stream seen on the inner stream, released at this instant.
    eof_due: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> DelayedStream<S> {
    /// Wraps `inner`, delaying reads by `one_way`.
    pub(crate) fn new(inner: S, one_way: Duration) -> Self {
        Self {
            inner,
            one_way,
            arrivals: VecDeque::new(),
            held_bytes: 0,
            eof_due: None,
            timer: None,
        }
    }

    /// Waits until `due`; `Ready` once it has passed.
    fn poll_until(&mut self, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DelayedStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.one_way.is_zero() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // Stamp everything the inner stream has now with its release time.
        while this.eof_due.is_none() && this.held_bytes < MAX_HELD_BYTES {
            let mut chunk = vec![0u8; READ_CHUNK];
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) => this.eof_due = Some(Instant::now() + this.one_way),
                Poll::Ready(Ok(n)) => {
                    chunk.truncate(n);
                    this.held_bytes += n;
                    this.arrivals.push_back(Arrival {
                        due: Instant::now() + this.one_way,
                        data: chunk,
                        consumed: 0,
                    });
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        loop {
            let due = match (this.arrivals.front(), this.eof_due) {
                (Some(arrival), _) => arrival.due,
                (None, Some(eof)) => eof,
                // Nothing held: the inner stream registered our waker.
                (None, None) => return Poll::Pending,
            };
            if this.poll_until(due, cx).is_pending() {
                return Poll::Pending;
            }
            let Some(arrival) = this.arrivals.front_mut() else {
                return Poll::Ready(Ok(0)); // end of stream is due
            };
            let n = buf.len().min(arrival.data.len() - arrival.consumed);
            buf[..n].copy_from_slice(&arrival.data[arrival.consumed..arrival.consumed + n]);
            arrival.consumed += n;
            this.held_bytes -= n;
            if arrival.consumed == arrival.data.len() {
                this.arrivals.pop_front();
            }
            if n > 0 || buf.is_empty() {
                return Poll::Ready(Ok(n));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DelayedStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A stream muxer (QUIC) whose substreams are [`DelayedStream`]s.
#[derive(Debug)]
pub(crate) struct DelayedMuxer<M> {
    inner: M,
    one_way: Duration,
}

impl<M> DelayedMuxer<M> {
    /// Wraps `inner`, delaying every substream's reads by `one_way`.
    pub(crate) fn new(inner: M, one_way: Duration) -> Self {
        Self { inner, one_way }
    }
}

impl<M> StreamMuxer for DelayedMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = DelayedStream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let one_way = this.one_way;
        Pin::new(&mut this.inner)
            .poll_inbound(cx)
            .map_ok(|s| DelayedStream::new(s, one_way))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let one_way = this.one_way;
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|s| DelayedStream::new(s, one_way))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An in-memory duplex pipe built from the memory transport's channel is overkill here;
    /// a byte slice reader shows the release timing.
    #[tokio::test(start_paused = true)]
    async fn reads_are_released_after_the_one_way_delay() {
        let data: &[u8] = b"ping";
        let mut stream = DelayedStream::new(futures::io::Cursor::new(data), Duration::from_millis(50));
        let start = Instant::now();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"ping");
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < Duration::from_millis(60),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_delay_passes_through() {
        let mut stream = DelayedStream::new(futures::io::Cursor::new(vec![1u8, 2, 3]), Duration::ZERO);
        let start = Instant::now();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_not_delayed() {
        let mut stream = DelayedStream::new(futures::io::Cursor::new(Vec::new()), Duration::from_secs(1));
        let start = Instant::now();
        stream.write_all(b"abc").await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
