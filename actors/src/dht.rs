//! One DHT peer: its swarm runs as a task on a multi-thread tokio runtime (an actix `System` has
//! one thread, and a thousand swarms need more); every [`DhtHandle`] talks to it over a bounded
//! channel. The peer is not an actor of its own: it holds no state an actor would guard (the
//! swarm task owns it), so the [`NodeActor`](crate::NodeActor) calls the handle directly.
//!
//! [`DhtHandle::provide`] and [`DhtHandle::retrieve`] answer with a [`DhtOutcome`] once the
//! operation finished.

mod behaviour;
mod engine;
mod gossip;
mod link_conditions;
pub use link_conditions::LinkConditions;
pub mod load;
mod pending;
pub mod presets;
mod redial;
mod store;
mod swarm;
pub mod topology;
mod transport;
mod wan_delay;

use std::{sync::Arc, time::Duration};

use self::swarm::{Command, PubsubCommand, Query, SwarmTask};
use crate::{
    backoff::Backoff,
    pubsub::{Delivery, MessageId, Published, TopicPeers},
    ContentId, DhtConfig, DhtError,
};
use libp2p::{Multiaddr, PeerId};
use parsec_kad::reprovide::{ReprovideRound, ReprovideStrategy};
use tokio::{
    runtime::Handle,
    sync::{mpsc, oneshot},
};

/// Commands queued per peer before senders wait: backpressure instead of unbounded memory.
const COMMAND_QUEUE_CAPACITY: usize = 64;

/// How often a join in progress checks whether a peer has answered.
const JOIN_POLL: Duration = Duration::from_millis(100);

/// How long [`DhtHandle::disconnect_all`] waits for the connections to close, and how often it
/// looks.
pub const DISCONNECT_WAIT: Duration = Duration::from_secs(5);
const DISCONNECT_POLL: Duration = Duration::from_millis(10);

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
    /// For a provide: peers that acknowledged the record (read it and closed the stream) by the
    /// time it returned, all of which answered the provide's lookup.
    pub record_peers: Option<u32>,
}

/// A cloneable handle to a running DHT peer. The peer stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct DhtHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    load: Arc<load::PeerLoad>,
    speaks_pubsub: bool,
    connections: crate::Connections,
}

impl DhtHandle {
    /// Starts a DHT peer on `runtime` and returns once it listens on every configured address.
    pub async fn spawn(config: DhtConfig, runtime: &Handle) -> Result<Self, DhtError> {
        let speaks_pubsub = config.pubsub.is_some();
        let connections = config.connections;
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let (started_tx, started_rx) = oneshot::channel();
        let load = Arc::new(load::PeerLoad::default());
        let task_load = load.clone();
        runtime.spawn(load::CpuTimed::new(
            async move {
                match SwarmTask::start(config, commands_rx, task_load).await {
                    Ok((task, started)) => {
                        let _ = started_tx.send(Ok(started));
                        task.run().await;
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
            },
            load.clone(),
        ));
        let started = started_rx.await.map_err(|_| DhtError::Stopped)??;
        Ok(Self {
            commands: commands_tx,
            peer_id: started.peer_id,
            listen_addrs: started.listen_addrs,
            load,
            speaks_pubsub,
            connections,
        })
    }

    /// What the peer does with its connections when a measured operation ends.
    pub fn connections(&self) -> crate::Connections {
        self.connections
    }

    /// What the peer has carried so far: connections, inbound requests, bytes, CPU time.
    pub fn load(&self) -> load::LoadSnapshot {
        self.load.snapshot()
    }

    /// Whether the peer speaks gossipsub (its configuration had pubsub settings).
    pub fn speaks_pubsub(&self) -> bool {
        self.speaks_pubsub
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
        self.query(Query::Provide(cid)).await
    }

    /// Looks up providers of `cid`; answers at the first provider found.
    pub async fn retrieve(&self, cid: ContentId) -> Result<DhtOutcome, DhtError> {
        self.query(Query::Retrieve(cid)).await
    }

    /// Sends the provider records of `cids` again, one provide per CID (`classic`) or region by
    /// region (`sweep`), `workers` provides or walks at once; answers with the round's report
    /// when every record was sent. Needs a client of ours (not `default`); one round at a time.
    pub async fn reprovide(
        &self,
        cids: &[ContentId],
        strategy: ReprovideStrategy,
        workers: usize,
    ) -> Result<ReprovideRound, DhtError> {
        let keys = cids.iter().map(|cid| cid.record_key().to_vec()).collect();
        self.ask(|reply| Command::Reprovide {
            keys,
            strategy,
            workers,
            reply,
        })
        .await?
    }

    /// The providers of `cid` this peer holds in its own record store (what others stored here):
    /// a view independent of any lookup, for checking where records landed.
    pub async fn stored_providers(&self, cid: ContentId) -> Result<Vec<PeerId>, DhtError> {
        self.ask(|reply| Command::StoredProviders { cid, reply }).await
    }

    /// Runs a bootstrap lookup through the known peers; answers when it finished.
    pub async fn bootstrap(&self) -> Result<DhtOutcome, DhtError> {
        self.query(Query::Bootstrap).await
    }

    /// Joins the network: bootstrap lookups, retried with backoff (1 s, doubling up to
    /// `max_backoff`) until the routing table holds a peer we reached ourselves; answers that
    /// number. A peer whose bootstrap peers are all unreachable keeps trying for as long as it
    /// runs (a server that starts before its peers joins once they are up).
    pub async fn join(&self, max_backoff: Duration) -> Result<usize, DhtError> {
        let mut backoff = Backoff::new(Duration::from_secs(1), max_backoff);
        for attempt in 1u64.. {
            let reached = self.routing_table_size().await?;
            if reached > 0 {
                return Ok(reached);
            }
            if attempt > 1 {
                tokio::time::sleep(backoff.step()).await;
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
                Ok(outcome) if outcome.routing_table_size == 0 && outcome.counts.successes == 0 => {
                    tracing::warn!(attempt, "bootstrap reached no peer; retrying with backoff");
                }
                // Peers answered, yet nothing counts as reached: fullrt counts its first crawl.
                Ok(outcome) if outcome.routing_table_size == 0 => {
                    tracing::debug!(attempt, "bootstrap reached peers; not ready yet");
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
        self.ask(|reply| Command::RoutingTableSize { reply }).await
    }

    /// Optimistic provide's estimate of the network's size (`None`: another client, or too few
    /// converged lookups yet; optprov provides classically until it has one).
    pub async fn network_size_estimate(&self) -> Result<Option<f64>, DhtError> {
        self.ask(|reply| Command::NetworkSizeEstimate { reply }).await
    }

    /// Adds peers to the routing table directly (testnet fast start).
    pub async fn add_peers(&self, peers: Vec<topology::Contact>) -> Result<(), DhtError> {
        self.send(Command::AddPeers { peers }).await
    }

    /// Connects to `peer` (a local network's star topology dials its hub this way); returns once
    /// connected, or why the dial failed.
    pub async fn connect(&self, peer: topology::Contact) -> Result<(), DhtError> {
        self.ask(|reply| Command::Connect { peer, reply }).await?
    }

    /// The addresses this peer announces as its own (in provider records): the configured ones,
    /// or those AutoNAT confirmed.
    pub async fn external_addresses(&self) -> Result<Vec<Multiaddr>, DhtError> {
        self.ask(|reply| Command::ExternalAddresses { reply }).await
    }

    /// Closes every connection and waits, at most [`DISCONNECT_WAIT`], until none is left; the
    /// routing table keeps what it holds. A local network calls it after joining, so the first
    /// measured lookups are not answered over the join's connections, nor sent into connections
    /// still closing (a request handed to one fails at once).
    pub async fn disconnect_all(&self) -> Result<(), DhtError> {
        let give_up = tokio::time::Instant::now() + DISCONNECT_WAIT;
        loop {
            let connected = self.ask(|reply| Command::DisconnectAll { reply }).await?;
            if connected == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= give_up {
                tracing::warn!(connected, "connections still open after closing them all");
                return Ok(());
            }
            tokio::time::sleep(DISCONNECT_POLL).await;
        }
    }

    /// Subscribes to gossipsub `topic` (the peer must have been configured with pubsub).
    pub async fn subscribe(&self, topic: &str) -> Result<(), DhtError> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Pubsub(PubsubCommand::Subscribe { topic, reply }))
            .await?
    }

    /// Leaves gossipsub `topic`.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), DhtError> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Pubsub(PubsubCommand::Unsubscribe { topic, reply }))
            .await?
    }

    /// Publishes `payload` (made by [`MessageId::payload`]) on `topic`; answers when gossipsub has
    /// queued it to the peers, with the instant just before.
    pub async fn publish(&self, topic: &str, payload: bytes::Bytes) -> Result<Published, DhtError> {
        let topic = topic.to_owned();
        self.ask(|reply| {
            Command::Pubsub(PubsubCommand::Publish {
                topic,
                payload,
                reply,
            })
        })
        .await?
    }

    /// Waits until message `id` has arrived (answers at once if it has); the caller bounds the
    /// wait.
    pub async fn await_delivery(&self, id: MessageId) -> Result<Delivery, DhtError> {
        self.ask(|reply| Command::Pubsub(PubsubCommand::AwaitDelivery { id, reply }))
            .await?
    }

    /// The first copy of `id` if it arrived by `deadline`: waits until then, and a copy that came
    /// before the wait began counts too, however late the caller asks (a receiver asked after the
    /// deadline still reports what it got in time).
    pub async fn delivery_by(
        &self,
        id: MessageId,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Delivery>, DhtError> {
        match tokio::time::timeout_at(deadline, self.await_delivery(id)).await {
            Ok(delivery) => delivery.map(Some),
            Err(_) => Ok(self.delivery(id).await?.filter(|d| d.received_at <= deadline)),
        }
    }

    /// What this peer knows of message `id` now (`None`: it has not arrived), with the copies
    /// counted so far.
    pub async fn delivery(&self, id: MessageId) -> Result<Option<Delivery>, DhtError> {
        self.ask(|reply| Command::Pubsub(PubsubCommand::Delivery { id, reply }))
            .await
    }

    /// The connected peers subscribed to `topic`, and those in our mesh.
    pub async fn topic_peers(&self, topic: &str) -> Result<TopicPeers, DhtError> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Pubsub(PubsubCommand::TopicPeers { topic, reply }))
            .await
    }

    /// Stops the peer: operations in flight answer [`DhtError::Cancelled`] (never a measurement),
    /// later requests [`DhtError::Stopped`].
    pub async fn shutdown(&self) -> Result<(), DhtError> {
        self.send(Command::Shutdown).await
    }

    /// Starts a kad query; its steps are recorded on the caller's span.
    async fn query(&self, query: Query) -> Result<DhtOutcome, DhtError> {
        let span = tracing::Span::current();
        self.ask(|reply| Command::Query { query, reply, span }).await?
    }

    /// Sends a command that carries a reply channel and waits for the answer.
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, DhtError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| DhtError::Stopped)
    }

    async fn send(&self, command: Command) -> Result<(), DhtError> {
        self.commands.send(command).await.map_err(|_| DhtError::Stopped)
    }
}
