//! What one peer carries: connections, inbound DHT requests by kind, bytes in and out of its
//! protocol streams, and the CPU time of its swarm task and connection tasks. Counted as it
//! happens (atomics, no locks), read at any time with [`DhtHandle::load`](crate::DhtHandle::load):
//! the ground of the bootstrap-load experiment.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, OnceLock,
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::{
    core::muxing::{StreamMuxer, StreamMuxerEvent},
    kad, PeerId,
};

/// The kinds of inbound Kademlia requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// FIND_NODE.
    FindNode,
    /// GET_PROVIDERS.
    GetProviders,
    /// ADD_PROVIDER.
    AddProvider,
    /// GET_VALUE.
    GetRecord,
    /// PUT_VALUE.
    PutRecord,
}

impl RequestKind {
    /// Every kind, in wire-message order.
    pub const ALL: [RequestKind; 5] = [
        RequestKind::FindNode,
        RequestKind::GetProviders,
        RequestKind::AddProvider,
        RequestKind::GetRecord,
        RequestKind::PutRecord,
    ];

    /// The message's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::FindNode => "FIND_NODE",
            RequestKind::GetProviders => "GET_PROVIDERS",
            RequestKind::AddProvider => "ADD_PROVIDER",
            RequestKind::GetRecord => "GET_VALUE",
            RequestKind::PutRecord => "PUT_VALUE",
        }
    }

    fn of(request: &kad::InboundRequest) -> Self {
        match request {
            kad::InboundRequest::FindNode { .. } => RequestKind::FindNode,
            kad::InboundRequest::GetProvider { .. } => RequestKind::GetProviders,
            kad::InboundRequest::AddProvider { .. } => RequestKind::AddProvider,
            kad::InboundRequest::GetRecord { .. } => RequestKind::GetRecord,
            kad::InboundRequest::PutRecord { .. } => RequestKind::PutRecord,
        }
    }
}

/// The live counters of one peer, shared by its swarm task, its connections and its handles.
#[derive(Debug, Default)]
pub(crate) struct PeerLoad {
    connections: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    cpu_nanos: AtomicU64,
    requests: [AtomicU64; RequestKind::ALL.len()],
    first_connection: OnceLock<PeerId>,
}

/// What a peer carried up to one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadSnapshot {
    /// Connections established, inbound and outbound, in total.
    pub connections: u64,
    /// Bytes read from its protocol streams (after decryption, as the protocols see them).
    pub bytes_in: u64,
    /// Bytes written to its protocol streams.
    pub bytes_out: u64,
    /// CPU time its swarm task and connection tasks spent being polled.
    pub cpu: Duration,
    /// Inbound Kademlia requests per kind, in [`RequestKind::ALL`] order.
    pub requests: [u64; RequestKind::ALL.len()],
    /// The peer of its first connection.
    pub first_connection: Option<PeerId>,
}

impl LoadSnapshot {
    /// Inbound Kademlia requests of every kind.
    pub fn total_requests(&self) -> u64 {
        self.requests.iter().sum()
    }
}

impl PeerLoad {
    pub(crate) fn snapshot(&self) -> LoadSnapshot {
        LoadSnapshot {
            connections: self.connections.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            cpu: Duration::from_nanos(self.cpu_nanos.load(Relaxed)),
            requests: std::array::from_fn(|i| self.requests[i].load(Relaxed)),
            first_connection: self.first_connection.get().copied(),
        }
    }

    pub(crate) fn on_connection(&self, peer: PeerId) {
        self.connections.fetch_add(1, Relaxed);
        let _ = self.first_connection.set(peer);
    }

    pub(crate) fn on_request(&self, request: &kad::InboundRequest) {
        let kind = RequestKind::of(request);
        if let Some(index) = RequestKind::ALL.iter().position(|k| *k == kind) {
            self.requests[index].fetch_add(1, Relaxed);
        }
    }
}

/// The CPU time the calling thread has used so far.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// A future whose polls' CPU time is added to a peer's load: a task's CPU time is the thread's
/// CPU time while it is polled, whichever runtime thread polls it.
pub(crate) struct CpuTimed<F> {
    inner: Pin<Box<F>>,
    load: Arc<PeerLoad>,
}

impl<F> CpuTimed<F> {
    pub(crate) fn new(inner: F, load: Arc<PeerLoad>) -> Self {
        Self {
            inner: Box::pin(inner),
            load,
        }
    }
}

impl<F: Future> Future for CpuTimed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = thread_cpu_time();
        let polled = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_time().saturating_sub(started);
        self.load.cpu_nanos.fetch_add(spent.as_nanos() as u64, Relaxed);
        polled
    }
}

/// Spawns the swarm's connection tasks on tokio, each timed into the peer's load.
pub(crate) struct TimedExecutor(pub(crate) Arc<PeerLoad>);

impl libp2p::swarm::Executor for TimedExecutor {
    fn exec(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        tokio::spawn(CpuTimed::new(future, self.0.clone()));
    }
}

/// A muxer whose substreams count their bytes into a peer's load.
#[derive(Debug)]
pub(crate) struct MeteredMuxer<M> {
    inner: M,
    load: Arc<PeerLoad>,
}

impl<M> MeteredMuxer<M> {
    pub(crate) fn new(inner: M, load: Arc<PeerLoad>) -> Self {
        Self { inner, load }
    }
}

impl<M> StreamMuxer for MeteredMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = MeteredStream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let load = this.load.clone();
        Pin::new(&mut this.inner)
            .poll_inbound(cx)
            .map_ok(|inner| MeteredStream { inner, load })
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let load = this.load.clone();
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|inner| MeteredStream { inner, load })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A substream that counts the bytes read from and written to it.
#[derive(Debug)]
pub(crate) struct MeteredStream<S> {
    inner: S,
    load: Arc<PeerLoad>,
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            this.load.bytes_in.fetch_add(n as u64, Relaxed);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.load.bytes_out.fetch_add(n as u64, Relaxed);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn streams_count_their_bytes_and_tasks_their_cpu_time() {
        let load = Arc::new(PeerLoad::default());
        let mut stream = MeteredStream {
            inner: futures::io::Cursor::new(vec![0u8; 10]),
            load: load.clone(),
        };
        let mut read = [0u8; 4];
        stream.read_exact(&mut read).await.unwrap();
        stream.write_all(b"abc").await.unwrap();
        // Busy for 20 ms of this thread's CPU time, however long that takes on the wall clock.
        let busy = CpuTimed::new(
            async {
                let started = thread_cpu_time();
                let mut spins = 0u64;
                while thread_cpu_time().saturating_sub(started) < Duration::from_millis(20) {
                    spins = std::hint::black_box(spins + 1);
                }
            },
            load.clone(),
        );
        busy.await;
        let snapshot = load.snapshot();
        assert_eq!((snapshot.bytes_in, snapshot.bytes_out), (4, 3));
        assert!(snapshot.cpu >= Duration::from_millis(20), "{:?}", snapshot.cpu);
    }
}
