//! `DhtActor`: one DHT peer as an actor. Its swarm runs as a task on a multi-thread tokio
//! runtime (an actix `System` has one thread, and a thousand swarms need more); the actor and
//! every [`DhtHandle`] talk to it over a bounded channel.
//!
//! Messages: [`Provide`] and [`Retrieve`] answer with a [`DhtOutcome`] once the operation
//! finished; [`RoutingTableSize`], [`Bootstrap`].

mod behaviour;
mod latency;
mod pending;
pub mod presets;
mod swarm;
pub mod topology;
mod transport;

use std::time::Duration;

use actix::prelude::*;
use libp2p::{Multiaddr, PeerId};
use tokio::{
    runtime::Handle,
    sync::{mpsc, oneshot},
};
use tracing::Instrument;

use self::swarm::{Command, SwarmTask};
use crate::{ContentId, DhtConfig, DhtError};

/// Commands queued per peer before senders wait: backpressure instead of unbounded memory.
const COMMAND_QUEUE_CAPACITY: usize = 64;

/// How often a join in progress checks whether a peer has answered.
const JOIN_POLL: Duration = Duration::from_millis(100);

/// Request counters of a finished query (from kad's `QueryStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// Requests sent.
    pub requests: u32,
    /// Requests answered.
    pub successes: u32,
    /// Requests that failed or timed out.
    pub failures: u32,
}

/// The measurement of one finished DHT operation.
#[derive(Clone, Debug)]
pub struct DhtOutcome {
    /// From the call into kad until the result (monotonic clock).
    pub duration: Duration,
    /// Why the operation failed, if it did (`not found`, `context deadline exceeded`, …).
    pub error: Option<String>,
    /// Routing-table size right after the operation.
    pub routing_table_size: usize,
    /// Requests the query made.
    pub counts: QueryCounts,
    /// For a retrieval: the first provider found.
    pub provider: Option<PeerId>,
    /// For a provide: peers the record was sent to, all of which answered the provide's lookup.
    pub record_peers: Option<u32>,
}

/// A cloneable handle to a running DHT peer. The peer stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct DhtHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
}

impl DhtHandle {
    /// Starts a DHT peer on `runtime` and returns once it listens on every configured address.
    pub async fn spawn(config: DhtConfig, runtime: &Handle) -> Result<Self, DhtError> {
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let (started_tx, started_rx) = oneshot::channel();
        runtime.spawn(async move {
            match SwarmTask::start(config, commands_rx).await {
                Ok((task, started)) => {
                    let _ = started_tx.send(Ok(started));
                    task.run().await;
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                }
            }
        });
        let started = started_rx.await.map_err(|_| DhtError::Stopped)??;
        Ok(Self {
            commands: commands_tx,
            peer_id: started.peer_id,
            listen_addrs: started.listen_addrs,
        })
    }

    /// The peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses the peer listens on (without `/p2p`).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The listen addresses with `/p2p/<peer id>`, as operators paste them into `--bootstrap`.
    pub fn dialable_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs
            .iter()
            .map(|a| a.clone().with(libp2p::multiaddr::Protocol::P2p(self.peer_id)))
            .collect()
    }

    /// Publishes a provider record for `cid`; answers when the publication finished.
    pub async fn provide(&self, cid: ContentId) -> Result<DhtOutcome, DhtError> {
        let span = tracing::Span::current();
        self.request(|reply| Command::Provide { cid, reply, span }).await
    }

    /// Looks up providers of `cid`; answers at the first provider found.
    pub async fn retrieve(&self, cid: ContentId) -> Result<DhtOutcome, DhtError> {
        let span = tracing::Span::current();
        self.request(|reply| Command::Retrieve { cid, reply, span }).await
    }

    /// Runs a bootstrap lookup through the known peers; answers when it finished.
    pub async fn bootstrap(&self) -> Result<DhtOutcome, DhtError> {
        self.request(|reply| Command::Bootstrap { reply }).await
    }

    /// Joins the network: bootstrap lookups, retried with backoff (1 s, doubling up to
    /// `max_backoff`) until the routing table holds a peer we reached ourselves; answers that
    /// number. A peer whose bootstrap peers are all unreachable keeps trying for as long as it
    /// runs (a server that starts before its peers joins once they are up).
    pub async fn join(&self, max_backoff: Duration) -> Result<usize, DhtError> {
        let mut backoff = Duration::from_secs(1).min(max_backoff);
        for attempt in 1u64.. {
            let reached = self.routing_table_size().await?;
            if reached > 0 {
                return Ok(reached);
            }
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
            // Joined as soon as a peer answered: the bootstrap goes on refreshing buckets (which
            // waits on every dead peer it meets) without holding the join up.
            let bootstrap = self.bootstrap();
            tokio::pin!(bootstrap);
            let result = loop {
                tokio::select! {
                    result = &mut bootstrap => break result,
                    () = tokio::time::sleep(JOIN_POLL) => {
                        let reached = self.routing_table_size().await?;
                        if reached > 0 {
                            return Ok(reached);
                        }
                    }
                }
            };
            match result {
                Err(e @ (DhtError::Stopped | DhtError::Cancelled)) => return Err(e),
                Err(e) => tracing::warn!(attempt, error = %e, "bootstrap failed"),
                Ok(outcome) if outcome.routing_table_size == 0 => {
                    tracing::warn!(attempt, retry_in = ?backoff, "bootstrap reached no peer");
                }
                Ok(_) => {}
            }
        }
        unreachable!("attempts are counted in u64")
    }

    /// Peers in the routing table that we reached ourselves (connected, and they answered
    /// identify listing our DHT protocol): what readiness and the reports count. Entries kad was
    /// merely told about (bootstrap addresses, converged tables) count once reached.
    pub async fn routing_table_size(&self) -> Result<usize, DhtError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::RoutingTableSize { reply }).await?;
        answer.await.map_err(|_| DhtError::Stopped)
    }

    /// Adds peers to the routing table directly (testnet fast start).
    pub async fn add_peers(&self, peers: Vec<topology::Contact>) -> Result<(), DhtError> {
        self.send(Command::AddPeers { peers }).await
    }

    /// The addresses this peer announces as its own (in provider records): the configured ones,
    /// or those AutoNAT confirmed.
    pub async fn external_addresses(&self) -> Result<Vec<Multiaddr>, DhtError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::ExternalAddresses { reply }).await?;
        answer.await.map_err(|_| DhtError::Stopped)
    }

    /// Closes every connection; the routing table keeps what it holds. A local network calls it
    /// after joining, so the first measured lookups are not answered over the join's connections.
    pub async fn disconnect_all(&self) -> Result<(), DhtError> {
        self.send(Command::DisconnectAll).await
    }

    /// Stops the peer: operations in flight answer [`DhtError::Cancelled`] (never a measurement),
    /// later requests [`DhtError::Stopped`].
    pub async fn shutdown(&self) -> Result<(), DhtError> {
        self.send(Command::Shutdown).await
    }

    async fn request(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<DhtOutcome, DhtError>>) -> Command,
    ) -> Result<DhtOutcome, DhtError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| DhtError::Stopped)?
    }

    async fn send(&self, command: Command) -> Result<(), DhtError> {
        self.commands.send(command).await.map_err(|_| DhtError::Stopped)
    }
}

/// One DHT peer as an actor; see the module docs.
#[derive(Debug)]
pub struct DhtActor {
    handle: DhtHandle,
}

impl DhtActor {
    /// Wraps a running peer.
    pub fn new(handle: DhtHandle) -> Self {
        Self { handle }
    }
}

impl Actor for DhtActor {
    type Context = Context<Self>;
}

/// Publish the provider record of `cid`; answers when the publication finished.
#[derive(Debug, Message)]
#[rtype(result = "Result<DhtOutcome, DhtError>")]
pub struct Provide {
    /// The content to announce.
    pub cid: ContentId,
    /// The operation's span: the DHT query's steps are recorded on it.
    pub span: tracing::Span,
}

/// Look up providers of `cid`; answers at the first provider record found.
#[derive(Debug, Message)]
#[rtype(result = "Result<DhtOutcome, DhtError>")]
pub struct Retrieve {
    /// The content to look up.
    pub cid: ContentId,
    /// The operation's span: the DHT query's steps are recorded on it.
    pub span: tracing::Span,
}

/// How many peers the routing table holds.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, DhtError>")]
pub struct RoutingTableSize;

/// Join the network through the known (bootstrap) peers; answers when the lookup finished.
#[derive(Debug, Message)]
#[rtype(result = "Result<DhtOutcome, DhtError>")]
pub struct Bootstrap;

// The handlers are interleaved (`ResponseFuture`): many lookups run at once on one peer.

impl Handler<Provide> for DhtActor {
    type Result = ResponseFuture<Result<DhtOutcome, DhtError>>;

    fn handle(&mut self, msg: Provide, _: &mut Context<Self>) -> Self::Result {
        let handle = self.handle.clone();
        Box::pin(async move { handle.provide(msg.cid).instrument(msg.span).await })
    }
}

impl Handler<Retrieve> for DhtActor {
    type Result = ResponseFuture<Result<DhtOutcome, DhtError>>;

    fn handle(&mut self, msg: Retrieve, _: &mut Context<Self>) -> Self::Result {
        let handle = self.handle.clone();
        Box::pin(async move { handle.retrieve(msg.cid).instrument(msg.span).await })
    }
}

impl Handler<RoutingTableSize> for DhtActor {
    type Result = ResponseFuture<Result<usize, DhtError>>;

    fn handle(&mut self, _: RoutingTableSize, _: &mut Context<Self>) -> Self::Result {
        let handle = self.handle.clone();
        Box::pin(async move { handle.routing_table_size().await })
    }
}

impl Handler<Bootstrap> for DhtActor {
    type Result = ResponseFuture<Result<DhtOutcome, DhtError>>;

    fn handle(&mut self, _: Bootstrap, _: &mut Context<Self>) -> Self::Result {
        let handle = self.handle.clone();
        Box::pin(async move { handle.bootstrap().await })
    }
}
