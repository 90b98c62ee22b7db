//! The task that owns one libp2p `Swarm` and drives it on the multi-thread runtime.
//!
//! Commands arrive over a bounded channel from [`DhtHandle`](super::DhtHandle); each starts a
//! kad query whose id is kept in [`PendingQueries`] with the reply channel, the monotonic start
//! and a deadline. Query events and deadlines answer the reply with a [`DhtOutcome`].

use std::{
    collections::{HashMap, HashSet},
    future::poll_fn,
    sync::Arc,
    task::Poll,
};

use futures::StreamExt;
use libp2p::{
    gossipsub, identify,
    identity::Keypair,
    kad::{self, GetProvidersOk, QueryId, QueryResult, QueryStats},
    multiaddr::Protocol,
    swarm::{self, dial_opts::DialOpts, SwarmEvent},
    Multiaddr, PeerId, StreamProtocol, Swarm,
};
use parsec_kad::reprovide::{ReprovideRound, ReprovideStrategy};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    behaviour::{DhtBehaviour, DhtBehaviourEvent},
    engine::{Engine, Finished, Net},
    gossip::{self, Deliveries},
    load::{PeerLoad, TimedExecutor},
    pending::{OperationKey, PendingQueries, PendingQuery},
    redial::{Dial, Redial},
    topology::Contact,
    transport, DhtOutcome, QueryCounts,
};
use crate::{
    pubsub::{Delivery, FrameShape, MessageId, Published, TopicPeers, MAX_FRAME_BYTES},
    Connections, ContentId, DhtClient, DhtConfig, DhtError, DEADLINE_EXCEEDED, NOT_FOUND, NO_PEER_REACHED,
    STORED_AT_NO_PEER,
};

/// Confirmed peers remembered at most; past it, those no longer in the routing table are
/// forgotten (weeks on a public network meet far more peers than a table holds).
const MAX_CONFIRMED_PEERS: usize = 20_000;

/// Requests from the handle to the swarm task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start a kad query; the reply comes when it finished.
    Query {
        query: Query,
        reply: oneshot::Sender<Result<DhtOutcome, DhtError>>,
        span: tracing::Span,
    },
    RoutingTableSize {
        reply: oneshot::Sender<usize>,
    },
    NetworkSizeEstimate {
        reply: oneshot::Sender<Option<f64>>,
    },
    AddPeers {
        peers: Vec<Contact>,
    },
    /// Connect to a peer; the reply comes once connected, or when the dial failed.
    Connect {
        peer: Contact,
        reply: oneshot::Sender<Result<(), DhtError>>,
    },
    /// Close every connection (the routing table and what we reached stay); the reply is the
    /// number of peers still connected, while their connections close.
    DisconnectAll {
        reply: oneshot::Sender<usize>,
    },
    ExternalAddresses {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Send the provider records of `keys` (CIDs' multihashes) again with `strategy`; the reply
    /// comes when the round finished.
    Reprovide {
        keys: Vec<Vec<u8>>,
        strategy: ReprovideStrategy,
        workers: usize,
        reply: oneshot::Sender<Result<ReprovideRound, DhtError>>,
    },
    /// The providers of `cid` in this peer's own record store.
    StoredProviders {
        cid: ContentId,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Publish/subscribe (a peer with gossipsub).
    Pubsub(PubsubCommand),
    /// Answer every operation in flight as cancelled, then stop.
    Shutdown,
}

/// Gossipsub requests from the handle.
#[derive(Debug)]
pub(crate) enum PubsubCommand {
    Subscribe {
        topic: String,
        reply: oneshot::Sender<Result<(), DhtError>>,
    },
    Unsubscribe {
        topic: String,
        reply: oneshot::Sender<Result<(), DhtError>>,
    },
    /// Publish `payload` (which starts with its message id) on `topic`.
    Publish {
        topic: String,
        payload: bytes::Bytes,
        reply: oneshot::Sender<Result<Published, DhtError>>,
    },
    /// Answer once message `id` has arrived (at once if it already has).
    AwaitDelivery {
        id: MessageId,
        reply: oneshot::Sender<Result<Delivery, DhtError>>,
    },
    /// What we know of message `id` now.
    Delivery {
        id: MessageId,
        reply: oneshot::Sender<Option<Delivery>>,
    },
    TopicPeers {
        topic: String,
        reply: oneshot::Sender<TopicPeers>,
    },
}

/// The kad queries a caller can start.
#[derive(Debug)]
pub(crate) enum Query {
    /// Publish the provider record of a CID.
    Provide(ContentId),
    /// Look up the first provider record of a CID.
    Retrieve(ContentId),
    /// Join through the known peers and refresh the buckets.
    Bootstrap,
}

impl Query {
    fn cid(&self) -> Option<ContentId> {
        match self {
            Query::Provide(cid) | Query::Retrieve(cid) => Some(cid.clone()),
            Query::Bootstrap => None,
        }
    }
}

/// What a started peer reports back.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) peer_id: PeerId,
    pub(crate) listen_addrs: Vec<Multiaddr>,
}

/// Owns the swarm and the operations in flight.
pub(crate) struct SwarmTask {
    swarm: Swarm<DhtBehaviour>,
    commands: mpsc::Receiver<Command>,
    pending: PendingQueries,
    /// Bootstrap queries started only to cancel kad's automatic bootstrap (see `quiet_bootstrap`).
    silenced: HashSet<QueryId>,
    /// Peers we connected to and that answered identify listing our DHT protocol. Only they
    /// count in the routing-table size we report (readiness, rows): kad also keeps entries it
    /// was merely told about (bootstrap addresses, converged tables), reachable or not.
    confirmed: HashSet<PeerId>,
    /// Bootstrap entries without a peer id (`/dnsaddr/…`), dialled at every bootstrap.
    dial_only: Vec<Multiaddr>,
    config: DhtConfig,
    kad_protocol: StreamProtocol,
    /// Our engine, when it (not kad) publishes and looks up.
    engine: Option<Engine>,
    /// What this peer carries (connections and inbound requests are counted here).
    load: Arc<PeerLoad>,
    /// Callers of `Connect` waiting for their connection (one dial per peer at a time).
    connecting: HashMap<PeerId, Vec<oneshot::Sender<Result<(), DhtError>>>>,
    /// The gossipsub messages that arrived, for the callers that wait for them.
    deliveries: Deliveries,
    /// The envelope of the messages this peer publishes (with gossipsub on).
    frame: Option<FrameShape>,
    /// Topic peers lost by accident, dialled again (with gossipsub on and redial kept).
    redial: Option<Redial>,
    /// The caller of the reprovide round running.
    reprovide_reply: Option<oneshot::Sender<Result<ReprovideRound, DhtError>>>,
}

impl SwarmTask {
    /// Builds the swarm, starts every listener and waits for their addresses.
    pub(crate) async fn start(
        config: DhtConfig,
        commands: mpsc::Receiver<Command>,
        load: Arc<PeerLoad>,
    ) -> Result<(Self, Started), DhtError> {
        let keypair = config.keypair.clone().unwrap_or_else(Keypair::generate_ed25519);
        let peer_id = keypair.public().to_peer_id();
        let transport = transport::build(&keypair, &config, load.clone())?;
        let deliveries = Deliveries::default();
        let behaviour = DhtBehaviour::new(&keypair, &config, deliveries.counter())?;
        // Connection tasks run on tokio, their CPU time counted into the peer's load.
        let swarm_config = swarm::Config::with_executor(TimedExecutor(load.clone()))
            .with_idle_connection_timeout(config.idle_connection_timeout);
        let mut swarm = Swarm::new(transport, behaviour, peer_id, swarm_config);

        let mut listen_addrs = Vec::new();
        for requested in &config.listen {
            let requested = same_port_as_tcp(requested, &listen_addrs);
            let id = swarm
                .listen_on(requested.clone())
                .map_err(|e| DhtError::Setup(format!("listen on {requested}: {}", error_chain(&e))))?;
            let address = first_listen_addr(&mut swarm, id, &requested).await?;
            if config.announce_listen_addrs {
                swarm.add_external_address(address.clone());
            }
            listen_addrs.push(address);
        }
        for address in &config.external_addrs {
            swarm.add_external_address(address.clone());
        }
        let mut dial_only = Vec::new();
        for address in &config.bootstrap {
            match address.iter().last() {
                Some(Protocol::P2p(peer)) => {
                    let mut transport_addr = address.clone();
                    transport_addr.pop();
                    swarm.behaviour_mut().kad.add_address(&peer, transport_addr);
                }
                // A `/dnsaddr` name without a peer id stands for the peers its TXT records list:
                // dialled as it is, and whoever answers joins the table through identify.
                _ if matches!(address.iter().next(), Some(Protocol::Dnsaddr(_))) => {
                    dial_only.push(address.clone());
                }
                _ => {
                    return Err(DhtError::Setup(format!(
                        "bootstrap address {address} lacks the /p2p/<peer id> suffix"
                    )));
                }
            }
        }

        let kad_protocol = StreamProtocol::try_from_owned(config.protocol.clone())
            .map_err(|e| DhtError::Setup(e.to_string()))?;
        let engine = match config.client {
            DhtClient::Engine(strategy) => Some(Engine::new(strategy, &config, peer_id)),
            DhtClient::Libp2p => None,
        };
        let task = Self {
            load,
            deliveries,
            frame: config
                .pubsub
                .as_ref()
                .map(|pubsub| FrameShape::new(&keypair, pubsub.validation)),
            redial: config
                .pubsub
                .as_ref()
                .filter(|pubsub| pubsub.keep_topic_peers_connected)
                .map(|_| Redial::default()),
            connecting: HashMap::new(),
            reprovide_reply: None,
            engine,
            swarm,
            commands,
            pending: PendingQueries::default(),
            silenced: HashSet::new(),
            confirmed: HashSet::new(),
            dial_only,
            config,
            kad_protocol,
        };
        Ok((
            task,
            Started {
                peer_id,
                listen_addrs,
            },
        ))
    }

    /// Serves commands until every handle is dropped.
    pub(crate) async fn run(mut self) {
        loop {
            let redial_due = self.redial.as_ref().and_then(Redial::next_due);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) => {
                        self.cancel_pending();
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some((id, query)) = poll_fn(|cx| self.pending.poll_expired(cx)) => {
                    self.on_deadline(id, query);
                }
                () = poll_fn(|cx| self.engine.as_mut().map_or(Poll::Pending, |e| e.poll_wake(cx))) => {
                    self.on_engine_wake();
                }
                () = tokio::time::sleep_until(redial_due.unwrap_or_else(Instant::now)), if redial_due.is_some() => {
                    self.dial_topic_peers_again();
                }
            }
        }
        tracing::debug!(peer = %self.swarm.local_peer_id(), "DHT peer stopped");
    }

    fn cancel_pending(&mut self) {
        if let Some(reply) = self.reprovide_reply.take() {
            let _ = reply.send(Err(DhtError::Cancelled));
        }
        let cancelled = self.pending.drain();
        if !cancelled.is_empty() {
            tracing::info!(
                operations = cancelled.len(),
                "shutting down: cancelling DHT operations in flight"
            );
        }
        for query in cancelled {
            query.answer(Err(DhtError::Cancelled));
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Query { query, reply, span } => self.start_query(query, reply, span),
            Command::RoutingTableSize { reply } => {
                let _ = reply.send(self.routing_table_size());
            }
            Command::NetworkSizeEstimate { reply } => {
                let _ = reply.send(self.engine.as_mut().and_then(Engine::network_size_estimate));
            }
            Command::AddPeers { peers } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                for (peer, address) in peers {
                    kad.add_address(&peer, address);
                }
                self.quiet_bootstrap();
            }
            Command::ExternalAddresses { reply } => {
                let _ = reply.send(self.swarm.external_addresses().cloned().collect());
            }
            Command::Connect {
                peer: (peer, address),
                reply,
            } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                let waiting = self.connecting.entry(peer).or_default();
                waiting.push(reply);
                if waiting.len() == 1 {
                    let dial = DialOpts::peer_id(peer).addresses(vec![address]).build();
                    if let Err(e) = self.swarm.dial(dial) {
                        self.connected(peer, Err(DhtError::Setup(format!("dialling {peer}: {e}"))));
                    }
                }
            }
            Command::DisconnectAll { reply } => {
                let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                for peer in connected {
                    self.close_on_purpose(peer);
                }
                let _ = reply.send(self.swarm.connected_peers().count());
            }
            Command::Reprovide {
                keys,
                strategy,
                workers,
                reply,
            } => self.start_reprovide(keys, strategy, workers, reply),
            Command::StoredProviders { cid, reply } => {
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let records = kad::store::RecordStore::providers(store, &cid.record_key());
                let _ = reply.send(records.into_iter().map(|record| record.provider).collect());
            }
            Command::Pubsub(command) => self.on_pubsub_command(command),
            // Handled by `run`, which stops the loop.
            Command::Shutdown => self.cancel_pending(),
        }
    }

    fn on_pubsub_command(&mut self, command: PubsubCommand) {
        let Some(pubsub) = self.swarm.behaviour_mut().gossipsub.as_mut() else {
            let refused = || DhtError::Pubsub("this peer does not speak gossipsub".to_owned());
            match command {
                PubsubCommand::Subscribe { reply, .. } | PubsubCommand::Unsubscribe { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                PubsubCommand::Publish { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                PubsubCommand::AwaitDelivery { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                PubsubCommand::Delivery { reply, .. } => {
                    let _ = reply.send(None);
                }
                PubsubCommand::TopicPeers { reply, .. } => {
                    let _ = reply.send(TopicPeers::default());
                }
            }
            return;
        };
        match command {
            PubsubCommand::Subscribe { topic, reply } => {
                let result = pubsub.subscribe(&gossip::topic(&topic));
                let _ = reply.send(result.map(|_| ()).map_err(|e| DhtError::Pubsub(e.to_string())));
            }
            PubsubCommand::Unsubscribe { topic, reply } => {
                pubsub.unsubscribe(&gossip::topic(&topic));
                let _ = reply.send(Ok(()));
            }
            PubsubCommand::Publish {
                topic,
                payload,
                reply,
            } => {
                if let Some(frame) = &self.frame {
                    let frame_bytes = frame.frame_bytes(&topic, payload.len());
                    if frame_bytes > MAX_FRAME_BYTES {
                        let _ = reply.send(Err(DhtError::MessageTooLarge {
                            payload: payload.len(),
                            frame: frame_bytes,
                            limit: MAX_FRAME_BYTES,
                            largest: frame.largest_payload(&topic),
                        }));
                        return;
                    }
                }
                let hash = gossip::topic(&topic).hash();
                let topic_peers = pubsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .count();
                let mesh_peers = pubsub.mesh_peers(&hash).count();
                let sent_at = Instant::now();
                let result = pubsub.publish(hash, payload).map(|_| Published {
                    sent_at,
                    topic_peers,
                    mesh_peers,
                });
                let _ = reply.send(result.map_err(|e| match e {
                    gossipsub::PublishError::Duplicate => DhtError::DuplicateMessage,
                    e => DhtError::Pubsub(publish_error(&e)),
                }));
            }
            PubsubCommand::AwaitDelivery { id, reply } => self.deliveries.wait(id, reply),
            PubsubCommand::Delivery { id, reply } => {
                let _ = reply.send(self.deliveries.delivery(id));
            }
            PubsubCommand::TopicPeers { topic, reply } => {
                let hash = gossip::topic(&topic).hash();
                let _ = reply.send(TopicPeers {
                    subscribed: pubsub
                        .all_peers()
                        .filter(|(_, topics)| topics.contains(&&hash))
                        .count(),
                    mesh: pubsub.mesh_peers(&hash).count(),
                });
            }
        }
    }

    /// Starts `query` and tracks it until it finishes or its deadline passes.
    fn start_query(
        &mut self,
        query: Query,
        reply: oneshot::Sender<Result<DhtOutcome, DhtError>>,
        span: tracing::Span,
    ) {
        // An engine peer never falls back to kad's client: that would measure another client.
        if !self.pending.has_room() || self.engine.as_ref().is_some_and(|e| !e.has_room()) {
            let _ = reply.send(Err(busy()));
            return;
        }
        let started = Instant::now();
        let timeout = match query {
            Query::Retrieve(_) => self.config.retrieve_timeout,
            Query::Provide(_) | Query::Bootstrap => self.config.provide_timeout,
        };
        let cid = query.cid();
        if let Some(id) = self.start_engine_operation(&query) {
            self.pending
                .insert(OperationKey::Engine(id), reply, cid, started, timeout, span);
            self.answer_engine_operations();
            return;
        }
        match self.start_kad_query(query) {
            Ok(id) => self
                .pending
                .insert(OperationKey::Kad(id), reply, cid, started, timeout, span),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Starts a provide or retrieval on our engine, if the peer runs it and it has room.
    fn start_engine_operation(&mut self, query: &Query) -> Option<super::engine::OperationId> {
        let engine = self.engine.as_mut()?;
        let own_addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        let mut net = engine_net(self.swarm.behaviour_mut());
        match query {
            Query::Provide(cid) => Some(engine.provide(&mut net, cid.record_key().to_vec(), own_addrs)),
            Query::Retrieve(cid) => Some(engine.retrieve(&mut net, cid.record_key().to_vec())),
            Query::Bootstrap => None,
        }
    }

    /// Starts a reprovide round on our engine (a `default` peer has none: kad has no round).
    fn start_reprovide(
        &mut self,
        keys: Vec<Vec<u8>>,
        strategy: ReprovideStrategy,
        workers: usize,
        reply: oneshot::Sender<Result<ReprovideRound, DhtError>>,
    ) {
        let own_addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        let Some(engine) = self.engine.as_mut() else {
            let client = self.config.client;
            let _ = reply.send(Err(DhtError::Reprovide(format!(
                "a {client} peer has no reprovide round: run a client of ours (classic, optprov or fullrt)"
            ))));
            return;
        };
        if self.reprovide_reply.is_some() {
            let _ = reply.send(Err(DhtError::Reprovide(
                "a reprovide round is already running on this peer".to_owned(),
            )));
            return;
        }
        let mut net = engine_net(self.swarm.behaviour_mut());
        match engine.start_reprovide(&mut net, keys, strategy, workers, own_addrs) {
            Ok(_) => self.reprovide_reply = Some(reply),
            Err(e) => {
                let _ = reply.send(Err(DhtError::Reprovide(e)));
            }
        }
        self.answer_engine_operations();
    }

    fn on_engine_wake(&mut self) {
        if let Some(engine) = &mut self.engine {
            engine.on_wake(&mut engine_net(self.swarm.behaviour_mut()));
        }
        self.answer_engine_operations();
    }

    /// Answers the callers of the engine's finished operations.
    fn answer_engine_operations(&mut self) {
        let Some(engine) = &mut self.engine else {
            return;
        };
        if let Some(report) = engine.take_round_report() {
            if let Some(reply) = self.reprovide_reply.take() {
                // A round that left no record anywhere reached no peer: an error, not a figure.
                let outcome = if report.keys > 0 && report.copies_stored == 0 {
                    Err(DhtError::Reprovide(format!(
                        "no peer stored any of the {} records ({} lookups, {} requests failed)",
                        report.keys, report.lookups, report.failures
                    )))
                } else {
                    Ok(report)
                };
                let _ = reply.send(outcome);
            }
        }
        for finished in engine.take_finished() {
            let Some(query) = self.pending.remove(&OperationKey::Engine(finished.id)) else {
                continue;
            };
            let Finished {
                error,
                counts,
                provider,
                record_peers,
                ..
            } = finished;
            query.span.in_scope(|| {
                tracing::debug!(
                    requests = counts.requests,
                    successes = counts.successes,
                    failures = counts.failures,
                    provider = ?provider.map(|p| p.to_string()),
                    record_peers,
                    error,
                    "dht step: engine operation finished"
                );
            });
            let outcome = match provider {
                Some(provider) => {
                    self.close_after_lookup(provider);
                    Outcome::Found(provider)
                }
                None => Outcome::Provided { record_peers },
            };
            self.answer(query, counts, error, outcome);
        }
    }

    fn start_kad_query(&mut self, query: Query) -> Result<QueryId, DhtError> {
        match query {
            Query::Provide(cid) => self
                .swarm
                .behaviour_mut()
                .kad
                .start_providing(cid.record_key())
                .map_err(|e| DhtError::Store {
                    cid: cid.to_string(),
                    reason: e.to_string(),
                }),
            Query::Retrieve(cid) => Ok(self.swarm.behaviour_mut().kad.get_providers(cid.record_key())),
            Query::Bootstrap => {
                for address in self.dial_only.clone() {
                    if let Err(e) = self.swarm.dial(address.clone()) {
                        tracing::info!(%address, error = %e, "could not dial a bootstrap address");
                    }
                }
                self.swarm
                    .behaviour_mut()
                    .kad
                    .bootstrap()
                    .map_err(|kad::NoKnownPeers()| DhtError::NoKnownPeers)
            }
        }
    }

    /// Cancels the bootstrap kad schedules on its own after peers are added.
    ///
    /// kad 0.49 starts a bootstrap 500 ms after any insert that leaves the routing table below
    /// k, and the switch to turn that off is test-only. Peers of a converged network are not
    /// bootstrapping, and a thousand simultaneous bootstraps connect every peer to most others
    /// (gigabytes, and every file descriptor). Starting a bootstrap resets kad's timer; finishing
    /// each of its steps before kad polls it sends no request at all.
    fn quiet_bootstrap(&mut self) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        if let Ok(id) = kad.bootstrap() {
            if let Some(mut query) = kad.query_mut(&id) {
                query.finish();
            }
            self.silenced.insert(id);
        }
    }

    /// Inbound connections do not reveal where a peer listens; identify does. Only peers that
    /// serve our DHT protocol belong in the routing table.
    fn on_identified(&mut self, peer_id: PeerId, info: identify::Info) {
        if !info.protocols.contains(&self.kad_protocol) {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        for address in info.listen_addrs {
            kad.add_address(&peer_id, address);
        }
        self.confirm(peer_id);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<DhtBehaviourEvent>) {
        if let Some(metrics) = &self.config.metrics {
            record_metrics(&metrics.libp2p, &event);
        }
        self.follow_topic_peers(&event);
        match event {
            SwarmEvent::Behaviour(DhtBehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            })) => self.on_query_progressed(id, result, &stats, step),
            SwarmEvent::Behaviour(DhtBehaviourEvent::Kad(kad::Event::InboundRequest { request })) => {
                self.load.on_request(&request);
            }
            SwarmEvent::Behaviour(DhtBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            })) => self.deliveries.on_message(&message, propagation_source),
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.load.on_connection(peer_id);
                self.connected(peer_id, Ok(()));
            }
            SwarmEvent::Behaviour(DhtBehaviourEvent::Wire(event)) => {
                if let Some(engine) = &mut self.engine {
                    engine.on_wire_event(&mut engine_net(self.swarm.behaviour_mut()), event);
                }
                self.answer_engine_operations();
            }
            SwarmEvent::Behaviour(DhtBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identified(peer_id, info),
            SwarmEvent::NewListenAddr { address, .. } if self.config.announce_listen_addrs => {
                self.swarm.add_external_address(address);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                let count = self.swarm.external_addresses().count();
                tracing::info!(%address, external_addresses = count, "reachable: a peer dialled this address back");
                self.set_reachability_metric(count);
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                let count = self.swarm.external_addresses().count();
                tracing::warn!(%address, external_addresses = count, "no longer confirmed as reachable");
                self.set_reachability_metric(count);
            }
            SwarmEvent::Behaviour(DhtBehaviourEvent::AutonatClient(event)) => {
                tracing::debug!(tested = %event.tested_addr, server = %event.server, ok = event.result.is_ok(), "AutoNAT probe");
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } if self.connecting.contains_key(&peer_id) => {
                self.connected(
                    peer_id,
                    Err(DhtError::Setup(format!(
                        "dialling {peer_id}: {}",
                        error_chain(&error)
                    ))),
                );
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                // Bootstrap peers are few and decide whether we join at all: say why they failed.
                if peer_id.is_some_and(|p| self.is_bootstrap_peer(&p)) {
                    tracing::info!(?peer_id, %error, "could not reach a bootstrap peer");
                } else {
                    tracing::trace!(?peer_id, %error, "dial failed");
                }
            }
            _ => {}
        }
    }

    /// Answers the callers waiting to connect to `peer`.
    fn connected(&mut self, peer: PeerId, result: Result<(), DhtError>) {
        for reply in self.connecting.remove(&peer).unwrap_or_default() {
            let _ = reply.send(result.clone());
        }
    }

    /// A provide ended: each store was acknowledged or failed.
    fn on_provided(&mut self, key: &OperationKey, result: kad::AddProviderResult, stats: &QueryStats) {
        let Some(query) = self.pending.remove(key) else {
            return;
        };
        let (error, peers) = match result {
            Err(e) => (Some(e.to_string()), None),
            Ok(ok) => {
                // Peers that acknowledged the record (our kad patch): the query ended once each
                // store was acknowledged or failed.
                let peers = u32::try_from(ok.stored_at.len()).unwrap_or(u32::MAX);
                let error = match peers {
                    0 if stats.num_successes() == 0 => Some(NO_PEER_REACHED),
                    0 => Some(STORED_AT_NO_PEER),
                    _ => None,
                };
                (error.map(str::to_owned), Some(peers))
            }
        };
        let outcome = Outcome::Provided { record_peers: peers };
        self.answer(query, counts(stats), error, outcome);
    }

    /// Another peer sent provider records: the first naming someone else ends the lookup (a
    /// record naming ourselves is no answer either).
    fn on_providers_found(&mut self, id: QueryId, providers: &HashSet<PeerId>, stats: &QueryStats) {
        let local = *self.swarm.local_peer_id();
        let Some(provider) = providers.iter().copied().find(|p| *p != local) else {
            return;
        };
        let Some(query) = self.pending.remove(&OperationKey::Kad(id)) else {
            return;
        };
        if let Some(mut running) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            running.finish();
        }
        self.close_after_lookup(provider);
        self.answer(query, counts(stats), None, Outcome::Found(provider));
    }

    fn on_query_progressed(
        &mut self,
        id: QueryId,
        result: QueryResult,
        stats: &QueryStats,
        step: kad::ProgressStep,
    ) {
        let last = step.last;
        if self.silenced.contains(&id) {
            // Each finished bootstrap step continues with the next bucket under the same id.
            if last {
                self.silenced.remove(&id);
            } else if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                query.finish();
            }
            return;
        }
        let key = OperationKey::Kad(id);
        if let Some(span) = self.pending.span(&key) {
            record_step(span, &result, stats, step.count.get(), last);
        }
        match result {
            QueryResult::StartProviding(result) => self.on_provided(&key, result, stats),
            // kad reports the records of our own store first, before any request was sent. They
            // say nothing about the network: the lookup goes on, and only a record another peer
            // sent us ends it (docs/method.md, "What a retrieval is").
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { .. }))
                if is_from_local_store(stats) => {}
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                self.on_providers_found(id, &providers, stats);
            }
            QueryResult::GetProviders(Err(kad::GetProvidersError::Timeout { .. })) => {
                if let Some(query) = self.pending.remove(&key) {
                    self.answer(
                        query,
                        counts(stats),
                        Some(DEADLINE_EXCEEDED.to_owned()),
                        Outcome::Nothing,
                    );
                }
            }
            QueryResult::GetProviders(Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { .. })) => {}
            QueryResult::Bootstrap(result) if last => {
                if let Some(query) = self.pending.remove(&key) {
                    let error = result.err().map(|e| e.to_string());
                    self.answer(query, counts(stats), error, Outcome::Nothing);
                }
            }
            _ => {}
        }
        // A lookup that ends without a provider record found nothing, or reached nobody to ask.
        if last {
            if let Some(query) = self.pending.remove(&key) {
                let error = if stats.num_successes() == 0 {
                    NO_PEER_REACHED
                } else {
                    NOT_FOUND
                };
                self.answer(query, counts(stats), Some(error.to_owned()), Outcome::Nothing);
            }
        }
    }

    fn on_deadline(&mut self, id: OperationKey, query: PendingQuery) {
        let counts = match id {
            OperationKey::Kad(id) => match self.swarm.behaviour_mut().kad.query_mut(&id) {
                Some(mut running) => {
                    let stats = *running.stats();
                    running.finish();
                    counts(&stats)
                }
                None => QueryCounts::default(),
            },
            OperationKey::Engine(id) => self.engine.as_mut().map(|e| e.cancel(id)).unwrap_or_default(),
        };
        tracing::debug!(?id, cid = ?query.cid.as_ref().map(ToString::to_string), "DHT operation hit its deadline");
        self.answer(
            query,
            counts,
            Some(DEADLINE_EXCEEDED.to_owned()),
            Outcome::Nothing,
        );
    }

    /// Replies to the waiter of a finished query with its measurement.
    fn answer(&mut self, query: PendingQuery, counts: QueryCounts, error: Option<String>, outcome: Outcome) {
        let measured = query.cid.is_some();
        let (provider, record_peers) = match outcome {
            Outcome::Found(provider) => (Some(provider), None),
            Outcome::Provided { record_peers } => (None, record_peers),
            Outcome::Nothing => (None, None),
        };
        let outcome = DhtOutcome {
            duration: query.started.elapsed(),
            error,
            routing_table_size: self.routing_table_size(),
            counts,
            provider,
            record_peers,
        };
        query.answer(Ok(outcome));
        if measured && self.config.connections == Connections::Cold && !self.pending.measuring() {
            self.close_connections();
        }
    }

    /// Cold connections: closes every connection once the measured operations are over, so the
    /// next one dials afresh. Kept: peers our engine still has requests with (background stores,
    /// a crawl) and our gossipsub peers, whose meshes are not part of a DHT operation.
    fn close_connections(&mut self) {
        let mut keep = self
            .engine
            .as_ref()
            .map(Engine::peers_in_flight)
            .unwrap_or_default();
        keep.extend(self.subscribed_peers());
        let connected: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|peer| !keep.contains(peer))
            .copied()
            .collect();
        tracing::debug!(
            closed = connected.len(),
            kept = keep.len(),
            "cold connections: closing"
        );
        for peer in connected {
            self.close_on_purpose(peer);
        }
    }

    /// Peers subscribed to some topic (with gossipsub on): their connections carry meshes, not
    /// DHT operations, and stay open for cold lookups too.
    fn subscribed_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        let gossipsub = self.swarm.behaviour().gossipsub.as_ref();
        gossipsub
            .into_iter()
            .flat_map(|g| g.all_peers())
            .filter(|(_, topics)| !topics.is_empty())
            .map(|(peer, _)| *peer)
    }

    /// The next lookup must not be answered over a warm connection to the provider just found,
    /// unless it is a pubsub peer (see [`subscribed_peers`](Self::subscribed_peers)).
    fn close_after_lookup(&mut self, provider: PeerId) {
        if !self.subscribed_peers().any(|p| p == provider) {
            self.close_on_purpose(provider);
        }
    }

    /// Closes every connection to `peer`; this close is not undone by redial.
    fn close_on_purpose(&mut self, peer: PeerId) {
        if let Some(redial) = &mut self.redial {
            redial.closing_on_purpose(peer);
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// Dials the topic peers due a dial again.
    fn dial_topic_peers_again(&mut self) {
        let Some(redial) = &mut self.redial else {
            return;
        };
        let now = Instant::now();
        for Dial { peer, addresses } in redial.take_due(now) {
            tracing::info!(%peer, "a topic peer's last connection closed: dialling it again");
            let dial = DialOpts::peer_id(peer)
                .addresses(addresses)
                .extend_addresses_through_behaviour()
                .build();
            if let Err(e) = self.swarm.dial(dial) {
                self.on_redial_failed(peer, &e.to_string());
            }
        }
    }

    /// A dial of `peer` failed; a topic peer is tried again later or given up.
    fn on_redial_failed(&mut self, peer: PeerId, error: &str) {
        if let Some(redial) = &mut self.redial {
            if redial.on_dial_failed(peer, Instant::now()) {
                tracing::warn!(%peer, error, "a topic peer could not be dialled again: given up");
            }
        }
    }

    /// Follows the connections and subscriptions redial needs.
    fn follow_topic_peers(&mut self, event: &SwarmEvent<DhtBehaviourEvent>) {
        let Some(redial) = &mut self.redial else {
            return;
        };
        match event {
            SwarmEvent::Behaviour(DhtBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
            })) => redial.on_subscribed(*peer_id, topic.as_str()),
            SwarmEvent::Behaviour(DhtBehaviourEvent::Gossipsub(gossipsub::Event::Unsubscribed {
                peer_id,
                topic,
            })) => redial.on_unsubscribed(*peer_id, topic.as_str()),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => redial.on_connected(
                *peer_id,
                endpoint
                    .is_dialer()
                    .then(|| endpoint.get_remote_address().clone()),
            ),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                let ours = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .as_ref()
                    .map(|g| g.topics().map(|t| t.as_str()));
                if redial.on_closed(
                    *peer_id,
                    *num_established,
                    ours.into_iter().flatten(),
                    Instant::now(),
                ) {
                    tracing::debug!(peer = %peer_id, "a topic peer's last connection closed");
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } => self.on_redial_failed(*peer_id, &error_chain(error)),
            _ => {}
        }
    }

    /// Routing-table entries we reached ourselves (see `confirmed`); for the accelerated client
    /// the peers of its last complete crawl.
    fn routing_table_size(&mut self) -> usize {
        if let Some(size) = self.engine.as_ref().and_then(Engine::routing_table_size) {
            return size;
        }
        let confirmed = &self.confirmed;
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|bucket| {
                bucket
                    .iter()
                    .filter(|entry| confirmed.contains(entry.node.key.preimage()))
                    .count()
            })
            .sum()
    }

    /// Remembers that `peer` answered us, forgetting peers that left the table when the set is
    /// full.
    fn confirm(&mut self, peer: PeerId) {
        if self.confirmed.insert(peer) && self.confirmed.len() > MAX_CONFIRMED_PEERS {
            let in_table: HashSet<PeerId> = self
                .swarm
                .behaviour_mut()
                .kad
                .kbuckets()
                .flat_map(|bucket| bucket.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
                .collect();
            self.confirmed.retain(|p| in_table.contains(p));
        }
    }

    fn set_reachability_metric(&self, count: usize) {
        if let Some(metrics) = &self.config.metrics {
            metrics
                .external_addresses
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    fn is_bootstrap_peer(&self, peer: &PeerId) -> bool {
        self.config
            .bootstrap
            .iter()
            .any(|a| matches!(a.iter().last(), Some(Protocol::P2p(p)) if p == *peer))
    }
}

/// The engine's view of the swarm's behaviours.
fn engine_net(behaviour: &mut DhtBehaviour) -> Net<'_> {
    Net {
        kad: &mut behaviour.kad,
        wire: behaviour
            .wire
            .as_mut()
            .expect("the wire behaviour is enabled whenever the engine is"),
    }
}

/// kad's query statistics as our counts.
fn counts(stats: &QueryStats) -> QueryCounts {
    QueryCounts {
        requests: stats.num_requests(),
        successes: stats.num_successes(),
        failures: stats.num_failures(),
    }
}

/// What a finished query produced besides its timing.
enum Outcome {
    /// A retrieval found this provider.
    Found(PeerId),
    /// A provide sent its record to this many peers (`None`: unknown, the query failed).
    Provided {
        record_peers: Option<u32>,
    },
    Nothing,
}

/// Whether a kad query step was answered before any request went out: kad's `get_providers`
/// reports the records of the local store that way, with empty statistics.
fn is_from_local_store(stats: &QueryStats) -> bool {
    stats.num_requests() == 0
}

/// Why gossipsub refused a message, in words (`NoPeersSubscribedToTopic`: it reached nobody).
fn publish_error(error: &gossipsub::PublishError) -> String {
    match error {
        gossipsub::PublishError::NoPeersSubscribedToTopic => {
            "reached no peer: nobody we know is subscribed".to_owned()
        }
        gossipsub::PublishError::MessageTooLarge => "the message is too large".to_owned(),
        gossipsub::PublishError::AllQueuesFull(peers) => {
            format!("the send queues of all {peers} peers are full")
        }
        other => other.to_string(),
    }
}

fn busy() -> DhtError {
    DhtError::Busy {
        limit: super::pending::MAX_PENDING_QUERIES,
    }
}

/// QUIC on port 0 should share the port TCP was given, so a server is reachable on one port.
fn same_port_as_tcp(requested: &Multiaddr, bound: &[Multiaddr]) -> Multiaddr {
    let is_quic_on_port_zero = requested.iter().any(|p| p == Protocol::Udp(0))
        && requested.iter().any(|p| matches!(p, Protocol::QuicV1));
    if !is_quic_on_port_zero {
        return requested.clone();
    }
    let tcp_port = bound.iter().find_map(|a| {
        a.iter().find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
    });
    match tcp_port {
        Some(port) => requested
            .iter()
            .map(|p| {
                if p == Protocol::Udp(0) {
                    Protocol::Udp(port)
                } else {
                    p
                }
            })
            .collect(),
        None => requested.clone(),
    }
}

/// Drives the swarm until listener `id` reports its first address.
async fn first_listen_addr(
    swarm: &mut Swarm<DhtBehaviour>,
    id: libp2p::core::transport::ListenerId,
    requested: &Multiaddr,
) -> Result<Multiaddr, DhtError> {
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { listener_id, address } if listener_id == id => return Ok(address),
            SwarmEvent::ListenerClosed {
                listener_id, reason, ..
            } if listener_id == id => {
                return Err(DhtError::Setup(format!(
                    "listener {requested} closed: {reason:?}"
                )));
            }
            SwarmEvent::ListenerError { listener_id, error } if listener_id == id => {
                return Err(DhtError::Setup(format!(
                    "listen on {requested}: {}",
                    error_chain(&error)
                )));
            }
            _ => {}
        }
    }
}

/// An error with its causes (`a: b: c`). Transport errors often print nothing themselves and
/// keep the reason (`Address already in use`) in a source, or only in their debug form.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        format!("{error:?}")
    } else {
        parts.join(": ")
    }
}

/// Counts a swarm event, and the protocol event inside it, in libp2p's metrics.
fn record_metrics(metrics: &libp2p::metrics::Metrics, event: &SwarmEvent<DhtBehaviourEvent>) {
    use libp2p::metrics::Recorder;
    match event {
        SwarmEvent::Behaviour(DhtBehaviourEvent::Kad(event)) => metrics.record(event),
        SwarmEvent::Behaviour(DhtBehaviourEvent::Identify(event)) => metrics.record(event),
        SwarmEvent::Behaviour(DhtBehaviourEvent::Ping(event)) => metrics.record(event),
        _ => {}
    }
    metrics.record(event);
}

/// Records one step of a DHT query on its operation's span (a span event in the trace): what the
/// step returned and the query's request counts so far. Debug level: traces export it, the
/// default log does not print it.
fn record_step(span: &tracing::Span, result: &QueryResult, stats: &QueryStats, step: usize, last: bool) {
    let (requests, successes, failures) = (stats.num_requests(), stats.num_successes(), stats.num_failures());
    span.in_scope(|| match result {
        QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
            let providers: Vec<String> = providers.iter().map(ToString::to_string).collect();
            if is_from_local_store(stats) {
                tracing::debug!(step, last, providers = ?providers, "dht step: records in our own store, not counted");
            } else {
                tracing::debug!(step, last, requests, successes, failures, providers = ?providers, "dht step: providers found");
            }
        }
        QueryResult::GetProviders(Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { closest_peers })) => {
            let closest: Vec<String> = closest_peers.iter().map(ToString::to_string).collect();
            tracing::debug!(step, last, requests, successes, failures, closest_peers = ?closest, "dht step: lookup finished");
        }
        QueryResult::StartProviding(Ok(ok)) => {
            let stored_at: Vec<String> = ok.stored_at.iter().map(ToString::to_string).collect();
            tracing::debug!(step, last, requests, successes, failures, stored_at = ?stored_at, "dht step: provider record acknowledged by the closest peers");
        }
        QueryResult::StartProviding(Err(e)) | QueryResult::RepublishProvider(Err(e)) => {
            tracing::debug!(step, last, requests, successes, failures, error = %e, "dht step: providing failed");
        }
        QueryResult::GetProviders(Err(e)) => {
            tracing::debug!(step, last, requests, successes, failures, error = %e, "dht step: lookup failed");
        }
        _ => tracing::debug!(step, last, requests, successes, failures, "dht step"),
    });
}
