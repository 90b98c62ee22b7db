//! Our Kademlia engine on real peers: parsec-kad's lookup and strategies, driven over the
//! `/ipfs/kad/1.0.0` requests of [`wire`].
//!
//! The swarm task owns an [`Engine`] when the peer's client is one of ours (`classic`, `optprov`,
//! `fullrt`). It starts operations, hands the engine the answers of its requests and wakes it at
//! the deadlines it asks for; the engine sends through the request-response behaviour and queues
//! the operations that finished. rust-libp2p's kad still answers inbound requests and keeps the
//! routing table, which seeds our lookups (docs/architecture.md).
//!
//! - `classic`: a FIND_NODE lookup, then ADD_PROVIDER to the `k` closest that answered; returns
//!   when every store answered.
//! - `optprov`: the same lookup with optimistic provide's hook: stores go out during the lookup to
//!   peers that are among the `k` closest with certainty 0.9; returns after 75 % of the stores
//!   answered, the rest finish in the background. Falls back to `classic` until the network size
//!   estimate has data; converged lookups (its own refresh lookups included) feed it.
//! - `fullrt`: no lookup. ADD_PROVIDER or GET_PROVIDERS go to the `k` closest peers of the last
//!   complete crawl at once ([`crawl`]).
//!
//! Retrievals run parsec-kad's `Retrieve`: a GET_PROVIDERS lookup (or, for `fullrt`, GET_PROVIDERS to
//! the closest crawled peers at once) that ends at the first provider record from another peer.

pub(crate) mod crawl;
pub(crate) mod reprovide;
pub(crate) mod wire;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use libp2p::{
    kad,
    request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport},
    Multiaddr, PeerId, StreamProtocol,
};
use parsec_kad::{
    key::MAX_PREIMAGE_BITS,
    normed_distance,
    region::Prefix,
    reprovide::{ReprovideRound, ReprovideStrategy},
    sweep::estimated_prefix_len,
    EstimateUpkeep, Key, Lookup, LookupConfig, NetworkSizeEstimator, Provide, ProvideStep, Retrieve,
    RetrieveStep, Strategy,
};
use rand::{rngs::StdRng, RngCore, SeedableRng};
use tokio::time::{Instant, Sleep};

use self::{
    crawl::{peer_key, Crawl, CrawlTable},
    reprovide::{Round, RoundEvent, RoundStep, PREIMAGE_EXTRA_BITS},
    wire::{Answer, KadCodec, Message},
};
use super::{store::Kad, QueryCounts};
use crate::{DhtConfig, Libp2pMetrics, NOT_FOUND, NO_PEER_REACHED, STORED_AT_NO_PEER};

/// The request-response behaviour our requests go through (outbound only).
pub(crate) type Wire = request_response::Behaviour<KadCodec>;

/// A peer silent this long no longer holds a lookup up (rust-libp2p's `ClosestPeersIter` uses
/// the same 10 s); its answer still counts if it comes later.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// A request not answered this long fails (dial and answer together).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Streams of ours open at once on one connection.
const MAX_STREAMS_PER_CONNECTION: usize = 64;

/// FIND_NODE requests a crawl keeps in flight (go's crawler: 200 workers; ours run in one task).
const CRAWL_PARALLELISM: usize = 64;

/// Operations of ours at once, background stores and refresh lookups included (the pending
/// table bounds what callers start).
const MAX_OPERATIONS: usize = 2048;

/// Peers with addresses one operation remembers (a lookup hears of a few hundred).
const MAX_ADDRESSED_PEERS: usize = 4096;

/// How often the engine checks whether a crawl or estimate refresh is due, and retries one that
/// could not start (no peer known yet).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// The request-response behaviour for `protocol`, sending only: kad answers inbound requests.
pub(crate) fn wire_behaviour(protocol: StreamProtocol) -> Wire {
    request_response::Behaviour::with_codec(
        KadCodec,
        [(protocol, ProtocolSupport::Outbound)],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MAX_STREAMS_PER_CONNECTION),
    )
}

/// One operation of the engine, named in the swarm task's pending table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct OperationId(u64);

/// An operation whose caller can be answered.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) id: OperationId,
    pub(crate) error: Option<String>,
    pub(crate) counts: QueryCounts,
    /// A retrieval's provider.
    pub(crate) provider: Option<PeerId>,
    /// A provide's acknowledged stores.
    pub(crate) record_peers: Option<u32>,
}

/// What the swarm task lends the engine to send with: its kad (routing table) and our wire.
pub(crate) struct Net<'a> {
    pub(crate) kad: &'a mut Kad,
    pub(crate) wire: &'a mut Wire,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Provide,
    Retrieve,
    /// A lookup of a random key that only feeds the size estimate.
    Sample,
    /// A FIND_NODE lookup of a reprovide round's walk: its closest go to the round.
    Explore,
}

/// Why a request was sent.
#[derive(Clone, Copy, Debug)]
enum Purpose {
    /// A lookup's FIND_NODE or GET_PROVIDERS, or a GET_PROVIDERS sent straight to one of the
    /// closest peers (fullrt).
    Query(OperationId),
    Store(OperationId),
    Crawl {
        cpl: u32,
    },
    /// ADD_PROVIDERs of a reprovide round's walk, on one stream.
    Batch {
        walk: Prefix,
        messages: u32,
    },
}

struct Operation {
    kind: Kind,
    key: Vec<u8>,
    /// A retrieval, or a sample (a FIND_NODE lookup: a retrieval of nothing), as the simulator
    /// runs them.
    retrieve: Option<Retrieve<PeerId>>,
    /// A provide: lookup, stores and return rule, as the simulator runs them.
    provide: Option<Provide<PeerId>>,
    /// Our announced addresses, for the provider record.
    own_addrs: Vec<Multiaddr>,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    counts: QueryCounts,
    provider: Option<PeerId>,
    answered: bool,
    /// Started by the reprovide round, which takes its end (no caller waits for it).
    for_round: bool,
}

impl Operation {
    fn new(kind: Kind, key: Vec<u8>) -> Self {
        Self {
            kind,
            key,
            retrieve: None,
            provide: None,
            own_addrs: Vec::new(),
            addresses: HashMap::new(),
            counts: QueryCounts::default(),
            provider: None,
            answered: false,
            for_round: false,
        }
    }

    fn remember(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty()
            || (self.addresses.len() >= MAX_ADDRESSED_PEERS && !self.addresses.contains_key(&peer))
        {
            return;
        }
        self.addresses.entry(peer).or_insert(addrs);
    }

    /// Whether a retrieval's answer carries a provider record from another peer (one of our
    /// own says nothing about the network); the first such provider is the retrieval's.
    fn note_providers(&mut self, message: &Message, local: PeerId) -> bool {
        if self.kind != Kind::Retrieve {
            return false;
        }
        let provider = message.providers().map(|(p, _)| p).find(|p| *p != local);
        self.provider = self.provider.or(provider);
        provider.is_some()
    }

    /// Whether nothing of it is left in flight once answered.
    fn is_over(&self) -> bool {
        let retrieve_idle = self.retrieve.as_ref().is_none_or(Retrieve::is_idle);
        let provide_idle = self.provide.as_ref().is_none_or(Provide::is_idle);
        self.answered && retrieve_idle && provide_idle
    }
}

/// A running crawl and the last complete one.
#[derive(Default)]
struct Crawler {
    running: Option<(Crawl, Instant)>,
    table: Option<CrawlTable>,
    next: Option<Instant>,
}

/// The engine of one peer.
pub(crate) struct Engine {
    strategy: Strategy,
    lookup: LookupConfig,
    local: PeerId,
    epoch: Instant,
    next_id: u64,
    operations: HashMap<OperationId, Operation>,
    requests: HashMap<OutboundRequestId, (Purpose, PeerId)>,
    estimator: NetworkSizeEstimator,
    /// When the estimate's lookups are due, and whether it is warm.
    upkeep: EstimateUpkeep,
    crawler: Crawler,
    crawl_interval: Duration,
    rng: StdRng,
    finished: Vec<Finished>,
    wake: Pin<Box<Sleep>>,
    metrics: Option<Libp2pMetrics>,
    /// The reprovide round running, what its work became since it last ran, and the report of
    /// the one that finished.
    round: Option<Round>,
    round_events: Vec<RoundEvent>,
    round_report: Option<ReprovideRound>,
}

impl Engine {
    pub(crate) fn new(strategy: Strategy, config: &DhtConfig, local: PeerId) -> Self {
        let now = Instant::now();
        Self {
            strategy,
            lookup: LookupConfig {
                k: config.k.get(),
                alpha: config.alpha.get(),
                steps_to_stop: 0,
                peer_timeout: Some(PEER_TIMEOUT),
            },
            local,
            epoch: now,
            next_id: 0,
            operations: HashMap::new(),
            requests: HashMap::new(),
            estimator: NetworkSizeEstimator::new(config.k.get()),
            upkeep: EstimateUpkeep::default(),
            crawler: Crawler {
                next: Some(now),
                ..Crawler::default()
            },
            crawl_interval: config.crawl_interval,
            rng: StdRng::from_entropy(),
            finished: Vec::new(),
            wake: Box::pin(tokio::time::sleep(Duration::ZERO)),
            metrics: config.metrics.clone(),
            round: None,
            round_events: Vec::new(),
            round_report: None,
        }
    }

    /// The strategy's view of the routing-table size: for `fullrt` the peers of the last complete
    /// crawl (0 until the first finished, which keeps the peer unready), otherwise `None` (kad's).
    pub(crate) fn routing_table_size(&self) -> Option<usize> {
        (self.strategy == Strategy::FullRoutingTable)
            .then(|| self.crawler.table.as_ref().map_or(0, CrawlTable::len))
    }

    /// Optimistic provide's network size estimate, once warmed up.
    pub(crate) fn network_size_estimate(&mut self) -> Option<f64> {
        let now = self.now();
        let warm = self.strategy == Strategy::Optimistic && self.upkeep.is_warm();
        warm.then(|| self.estimator.estimate(now).ok()).flatten()
    }

    /// Whether another operation may start.
    pub(crate) fn has_room(&self) -> bool {
        self.operations.len() < MAX_OPERATIONS
    }

    /// Starts publishing a provider record of `key` (a CID's multihash) announcing `own_addrs`.
    pub(crate) fn provide(
        &mut self,
        net: &mut Net<'_>,
        key: Vec<u8>,
        own_addrs: Vec<Multiaddr>,
    ) -> OperationId {
        // The provider holds its own record first, as go-libp2p-kad-dht's and kad's provides do:
        // a lookup that reaches it is answered, whatever became of the stores.
        let own_record = kad::ProviderRecord::new(key.clone(), self.local, own_addrs.clone());
        if let Err(e) = kad::store::RecordStore::add_provider(net.kad.store_mut(), own_record) {
            tracing::warn!(error = %e, "could not keep our own provider record");
        }
        self.start_provide(net, key, own_addrs, false)
    }

    /// A provide's lookup and stores; `for_round`: a reprovide round's (it sends records the node
    /// already holds).
    fn start_provide(
        &mut self,
        net: &mut Net<'_>,
        key: Vec<u8>,
        own_addrs: Vec<Multiaddr>,
        for_round: bool,
    ) -> OperationId {
        let id = self.allocate();
        let k = self.lookup.k;
        let mut operation = Operation::new(Kind::Provide, key);
        operation.own_addrs = own_addrs;
        operation.for_round = for_round;
        let provide = match self.strategy {
            Strategy::FullRoutingTable => Provide::direct(self.closest_crawled(&mut operation), k),
            strategy => {
                // Without an estimate optprov provides classically, as go does (classic has none).
                let estimate = self.network_size_estimate();
                if strategy == Strategy::Optimistic {
                    tracing::debug!(estimate, "optprov: provide (classic while there is no estimate)");
                }
                Provide::with_lookup(self.start_lookup(net, &operation.key), k, estimate)
            }
        };
        operation.provide = Some(provide);
        self.operations.insert(id, operation);
        self.advance(net, id);
        self.rearm();
        id
    }

    /// Starts looking up the first provider record of `key`.
    pub(crate) fn retrieve(&mut self, net: &mut Net<'_>, key: Vec<u8>) -> OperationId {
        let id = self.allocate();
        let mut operation = Operation::new(Kind::Retrieve, key);
        let retrieve = if self.strategy == Strategy::FullRoutingTable {
            Retrieve::direct(self.closest_crawled(&mut operation))
        } else {
            Retrieve::with_lookup(self.start_lookup(net, &operation.key))
        };
        operation.retrieve = Some(retrieve);
        self.operations.insert(id, operation);
        self.advance(net, id);
        self.rearm();
        id
    }

    /// Starts a reprovide round: the records of `record_keys` (CIDs' multihashes) sent again with
    /// `strategy`, `workers` provides or walks at once; returns the distinct keys. Refused while
    /// a round runs.
    pub(crate) fn start_reprovide(
        &mut self,
        net: &mut Net<'_>,
        record_keys: Vec<Vec<u8>>,
        strategy: ReprovideStrategy,
        workers: usize,
        own_addrs: Vec<Multiaddr>,
    ) -> Result<usize, String> {
        if self.round.is_some() {
            return Err("a reprovide round is already running on this peer".to_owned());
        }
        let k = self.lookup.k;
        let size = network_size_from_table(net.kad, self.local, k);
        let prefix_len = estimated_prefix_len(size, k);
        let now = self.now();
        let round = Round::new(
            record_keys,
            own_addrs,
            strategy,
            workers,
            k,
            peer_key(&self.local),
            prefix_len,
            now,
        );
        let keys = round.len();
        tracing::info!(keys, %strategy, workers, network_size = size, prefix_len, "reprovide round started");
        self.round = Some(round);
        self.round_report = None;
        self.drive_round(net);
        self.rearm();
        Ok(keys)
    }

    /// The report of the reprovide round that finished since the last call.
    pub(crate) fn take_round_report(&mut self) -> Option<ReprovideRound> {
        self.round_report.take()
    }

    /// Takes what the round's work became and starts what it asks for next, until it waits;
    /// a round with nothing left reports.
    fn drive_round(&mut self, net: &mut Net<'_>) {
        let Some(mut round) = self.round.take() else {
            self.round_events.clear();
            return;
        };
        loop {
            for event in std::mem::take(&mut self.round_events) {
                round.on_event(event);
            }
            let steps = round.poll(self.now());
            if steps.is_empty() && self.round_events.is_empty() {
                break;
            }
            for step in steps {
                self.start_round_step(net, &mut round, step);
            }
        }
        if round.is_done() {
            let strategy = round.strategy();
            let report = round.into_report();
            tracing::info!(
                %strategy,
                keys = report.keys,
                lookups = report.lookups,
                copies = report.copies_stored,
                failures = report.failures,
                seconds = report.duration.as_secs_f64(),
                "reprovide round finished"
            );
            self.round_report = Some(report);
        } else {
            self.round = Some(round);
        }
    }

    fn start_round_step(&mut self, net: &mut Net<'_>, round: &mut Round, step: RoundStep) {
        match &step {
            RoundStep::Provide(position) => {
                let key = round.record_key(*position).to_vec();
                let id = self.start_provide(net, key, round.own_addrs.clone(), true);
                round.started(&step, id);
            }
            RoundStep::Explore { part, .. } => {
                // Peers hash a FIND_NODE's key: ask for bytes whose hash lies at the part's start.
                let bits = (part.bit_len() + PREIMAGE_EXTRA_BITS).min(MAX_PREIMAGE_BITS);
                let preimage = part.first_key().preimage(bits, self.rng.next_u64()).to_vec();
                let id = self.allocate();
                let mut operation = Operation::new(Kind::Explore, preimage);
                operation.for_round = true;
                operation.retrieve = Some(Retrieve::with_lookup(self.start_lookup(net, &operation.key)));
                self.operations.insert(id, operation);
                round.started(&step, id);
                self.advance(net, id);
            }
            RoundStep::Send {
                walk,
                peer,
                addrs,
                positions,
            } => {
                let batch: Vec<Message> = positions
                    .iter()
                    .map(|&i| {
                        Message::add_provider(round.record_key(i).to_vec(), self.local, &round.own_addrs)
                    })
                    .collect();
                let messages = batch.len() as u32;
                let request = net.wire.send_request_with_addresses(peer, batch, addrs.clone());
                let purpose = Purpose::Batch {
                    walk: *walk,
                    messages,
                };
                self.requests.insert(request, (purpose, *peer));
                round.batch_sent(*walk, u64::from(messages));
            }
        }
    }

    /// Ends an operation its caller gave up on (deadline): its counts so far. Requests in flight
    /// are ignored when they answer.
    pub(crate) fn cancel(&mut self, id: OperationId) -> QueryCounts {
        self.operations
            .remove(&id)
            .map(|op| op.counts)
            .unwrap_or_default()
    }

    /// Peers with a request of ours in flight (background stores, crawls, estimate lookups):
    /// closing their connections would fail work that is not over.
    pub(crate) fn peers_in_flight(&self) -> std::collections::HashSet<PeerId> {
        self.requests.values().map(|(_, peer)| *peer).collect()
    }

    /// Operations that finished since the last call.
    pub(crate) fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// An answer, or the failure, of one of our requests.
    pub(crate) fn on_wire_event(
        &mut self,
        net: &mut Net<'_>,
        event: request_response::Event<Vec<Message>, Answer>,
    ) {
        let (request_id, answer) = match event {
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, response },
                ..
            } => (request_id, Ok(response)),
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => (request_id, Err(error)),
            _ => return,
        };
        let Some((purpose, peer)) = self.requests.remove(&request_id) else {
            return;
        };
        match purpose {
            Purpose::Crawl { cpl } => self.on_crawl_answer(net, peer, cpl, answer.map(|a| a.message)),
            Purpose::Query(id) | Purpose::Store(id) => {
                self.on_answer(id, purpose, peer, answer.map(|a| a.message));
                self.advance(net, id);
            }
            Purpose::Batch { walk, messages } => self.round_events.push(RoundEvent::Batch {
                walk,
                peer,
                messages,
                // ADD_PROVIDER has no answer: the peer closing the stream acknowledges the batch.
                stored: answer.map_or(0, |a| a.stored_of(messages)),
            }),
        }
        self.drive_round(net);
        self.rearm();
    }

    /// Waits for the next deadline of an operation, a crawl or a refresh.
    pub(crate) fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.wake.as_mut().poll(cx)
    }

    /// A deadline passed: time out silent peers, end quiet provides, start due maintenance.
    pub(crate) fn on_wake(&mut self, net: &mut Net<'_>) {
        let ids: Vec<OperationId> = self.operations.keys().copied().collect();
        for id in ids {
            self.advance(net, id);
        }
        self.maintain(net);
        self.drive_round(net);
        self.rearm();
    }

    fn allocate(&mut self) -> OperationId {
        self.next_id += 1;
        OperationId(self.next_id)
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// A lookup of `key` seeded with the `k` peers of kad's routing table closest to it.
    fn start_lookup(&self, net: &mut Net<'_>, key: &[u8]) -> Lookup<PeerId> {
        let target = kad::KBucketKey::new(key.to_vec());
        let seeds: Vec<(PeerId, Key)> = net
            .kad
            .get_closest_local_peers(&target)
            .take(self.lookup.k)
            .map(|entry| (*entry.preimage(), Key::from_bytes(hashed(&entry))))
            .collect();
        Lookup::new(Key::hash_of(key), self.lookup, seeds)
    }

    /// The `k` closest peers of the operation's key in the last complete crawl (none before the
    /// first), their addresses remembered for the requests the operation sends them.
    fn closest_crawled(&self, operation: &mut Operation) -> Vec<PeerId> {
        let target = Key::hash_of(&operation.key);
        let closest = self
            .crawler
            .table
            .as_ref()
            .map(|table| table.closest(&target, self.lookup.k))
            .unwrap_or_default();
        closest
            .into_iter()
            .map(|(peer, addrs)| {
                operation.remember(peer, addrs);
                peer
            })
            .collect()
    }

    fn send(
        &mut self,
        net: &mut Net<'_>,
        purpose: Purpose,
        operation: &mut Operation,
        peer: PeerId,
        message: Message,
    ) {
        let addrs = operation.addresses.get(&peer).cloned().unwrap_or_default();
        let request = net.wire.send_request_with_addresses(&peer, vec![message], addrs);
        self.requests.insert(request, (purpose, peer));
        operation.counts.requests += 1;
    }

    /// Sends operation `id`'s ADD_PROVIDER to `peer` and counts it among its stores.
    fn send_store(&mut self, net: &mut Net<'_>, id: OperationId, operation: &mut Operation, peer: PeerId) {
        let message = Message::add_provider(operation.key.clone(), self.local, &operation.own_addrs);
        self.send(net, Purpose::Store(id), operation, peer, message);
    }

    fn on_answer(
        &mut self,
        id: OperationId,
        purpose: Purpose,
        peer: PeerId,
        answer: Result<Option<Message>, OutboundFailure>,
    ) {
        let now = self.now();
        let local = self.local;
        let Some(operation) = self.operations.get_mut(&id) else {
            return;
        };
        let message = match (&purpose, answer) {
            // ADD_PROVIDER has no answer: the peer closing the stream acknowledges it.
            (Purpose::Store(_), Ok(_)) => Ok(None),
            (_, Ok(Some(message))) => Ok(Some(message)),
            (_, Ok(None) | Err(_)) => Err(()),
        };
        if message.is_ok() {
            operation.counts.successes += 1;
        } else {
            operation.counts.failures += 1;
        }
        match (purpose, message) {
            (Purpose::Store(_), answer) => {
                if let Some(provide) = &mut operation.provide {
                    provide.on_stored(now, peer, answer.is_ok());
                }
            }
            (Purpose::Query(_), Ok(Some(message))) => {
                let has_record = operation.note_providers(&message, local);
                let closer: Vec<(PeerId, Key)> = message
                    .closer()
                    .filter(|(p, _)| *p != local)
                    .map(|(p, addrs)| {
                        operation.remember(p, addrs);
                        (p, peer_key(&p))
                    })
                    .collect();
                if let Some(retrieve) = &mut operation.retrieve {
                    retrieve.on_answer(peer, closer, has_record);
                } else if let Some(provide) = &mut operation.provide {
                    provide.on_answer(peer, closer);
                }
            }
            (Purpose::Query(_), _) => {
                if let Some(retrieve) = &mut operation.retrieve {
                    retrieve.on_failure(peer);
                } else if let Some(provide) = &mut operation.provide {
                    provide.on_failure(peer);
                }
            }
            // Crawl answers go to the crawl (`on_crawl_answer`), batches to the round, never here.
            (Purpose::Crawl { .. } | Purpose::Batch { .. }, _) => {}
        }
    }

    /// Sends what operation `id` can send now, and finishes it if it is done.
    fn advance(&mut self, net: &mut Net<'_>, id: OperationId) {
        let now = self.now();
        let Some(mut operation) = self.operations.remove(&id) else {
            return;
        };
        self.drive_retrieve(net, id, &mut operation, now);
        self.drive_provide(net, id, &mut operation, now);
        if !operation.answered {
            if let Some(finished) = self.finish(id, &operation, now) {
                operation.answered = true;
                if operation.for_round {
                    self.round_events.push(round_event(&operation, finished));
                } else if operation.kind != Kind::Sample {
                    self.finished.push(finished);
                }
            }
        }
        if !operation.is_over() {
            self.operations.insert(id, operation);
        }
    }

    /// Sends what a retrieval or a sample asks for now; a lookup's end feeds the estimate.
    fn drive_retrieve(
        &mut self,
        net: &mut Net<'_>,
        id: OperationId,
        operation: &mut Operation,
        now: Duration,
    ) {
        let Some(mut retrieve) = operation.retrieve.take() else {
            return;
        };
        loop {
            match retrieve.poll(now) {
                RetrieveStep::Query(peer) => {
                    let message = match operation.kind {
                        Kind::Sample | Kind::Explore => Message::find_node(operation.key.clone()),
                        _ => Message::get_providers(operation.key.clone()),
                    };
                    self.send(net, Purpose::Query(id), operation, peer, message);
                }
                RetrieveStep::LookupEnded => {
                    if let Some(lookup) = retrieve.lookup() {
                        self.track(net, &operation.key, lookup, now);
                    }
                    if operation.kind == Kind::Sample {
                        self.upkeep.batch_lookup_ended(now);
                    }
                }
                RetrieveStep::Wait => break,
            }
        }
        operation.retrieve = Some(retrieve);
    }

    /// Sends what a provide asks for now: its queries, then its stores; its ended lookup feeds
    /// the estimate.
    fn drive_provide(
        &mut self,
        net: &mut Net<'_>,
        id: OperationId,
        operation: &mut Operation,
        now: Duration,
    ) {
        let Some(mut provide) = operation.provide.take() else {
            return;
        };
        loop {
            match provide.poll(now) {
                ProvideStep::Query(peer) => {
                    let message = Message::find_node(operation.key.clone());
                    self.send(net, Purpose::Query(id), operation, peer, message);
                }
                ProvideStep::Store(peer) => self.send_store(net, id, operation, peer),
                ProvideStep::LookupEnded => {
                    if let Some(lookup) = provide.lookup() {
                        self.track(net, &operation.key, lookup, now);
                    }
                }
                ProvideStep::Wait => break,
            }
        }
        operation.provide = Some(provide);
    }

    /// The answer of operation `id`, once its caller can have it.
    fn finish(&self, id: OperationId, operation: &Operation, now: Duration) -> Option<Finished> {
        let decided = operation.retrieve.as_ref().is_none_or(Retrieve::is_decided);
        let reached_nobody = operation.counts.successes == 0;
        let error = match operation.kind {
            Kind::Sample | Kind::Explore => {
                if !decided {
                    return None;
                }
                None
            }
            Kind::Provide => {
                let provide = operation.provide.as_ref()?;
                if !provide.has_returned(now) {
                    return None;
                }
                match provide.stores().succeeded() {
                    0 if reached_nobody => Some(NO_PEER_REACHED),
                    0 => Some(STORED_AT_NO_PEER),
                    _ => None,
                }
            }
            Kind::Retrieve => {
                if operation.provider.is_some() {
                    None
                } else if !decided {
                    return None;
                } else if reached_nobody {
                    Some(NO_PEER_REACHED)
                } else {
                    Some(NOT_FOUND)
                }
            }
        };
        let error = match (error, &self.crawler.table) {
            (Some(_), None) if self.strategy == Strategy::FullRoutingTable => {
                Some("the full routing table is not ready: the first crawl has not finished")
            }
            (error, _) => error,
        };
        Some(Finished {
            id,
            error: error.map(str::to_owned),
            counts: operation.counts,
            provider: operation.provider,
            record_peers: operation.provide.as_ref().map(|p| p.stores().succeeded() as u32),
        })
    }

    /// Feeds optimistic provide's estimate with a converged lookup's `k` closest.
    fn track(&mut self, net: &mut Net<'_>, key: &[u8], lookup: &Lookup<PeerId>, now: Duration) {
        if self.strategy != Strategy::Optimistic {
            return;
        }
        let closest: Vec<Key> = lookup.closest_answered().map(|(p, _)| peer_key(&p)).collect();
        let level = net
            .kad
            .kbucket(key.to_vec())
            .map_or(0, |bucket| bucket.num_entries());
        if self
            .estimator
            .track_lookup(now, &lookup.target(), lookup.termination(), &closest, level)
        {
            self.upkeep.record_sample();
        }
    }

    /// Starts the crawl or the estimate refresh that is due.
    fn maintain(&mut self, net: &mut Net<'_>) {
        let now = Instant::now();
        match self.strategy {
            Strategy::FullRoutingTable => self.maintain_crawl(net, now),
            Strategy::Optimistic => self.maintain_estimate(net),
            Strategy::Classic => {}
        }
    }

    fn maintain_estimate(&mut self, net: &mut Net<'_>) {
        let now = self.now();
        let estimator = &mut self.estimator;
        let lookups = self.upkeep.due(now, || estimator.estimate(now).is_ok());
        if lookups == 0 {
            return;
        }
        if self.metrics.is_some() {
            let estimate = self.network_size_estimate().unwrap_or(0.0);
            if let Some(metrics) = &self.metrics {
                metrics.network_size_estimate.set(estimate);
            }
        }
        for _ in 0..lookups {
            let mut key = vec![0u8; 32];
            self.rng.fill_bytes(&mut key);
            let id = self.allocate();
            let mut operation = Operation::new(Kind::Sample, key);
            let lookup = self.start_lookup(net, &operation.key);
            operation.retrieve = Some(Retrieve::with_lookup(lookup));
            self.operations.insert(id, operation);
            self.advance(net, id);
        }
    }

    fn maintain_crawl(&mut self, net: &mut Net<'_>, now: Instant) {
        if self.crawler.running.is_none() && self.crawler.next.is_some_and(|next| now >= next) {
            let seeds: Vec<(PeerId, Vec<Multiaddr>)> = net
                .kad
                .kbuckets()
                .flat_map(|bucket| {
                    bucket
                        .iter()
                        .map(|entry| {
                            (
                                *entry.node.key.preimage(),
                                entry.node.value.iter().cloned().collect(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            if seeds.is_empty() {
                return; // nobody to ask yet: retried at the next maintenance
            }
            tracing::info!(seeds = seeds.len(), "fullrt: crawl started");
            self.crawler.running = Some((Crawl::new(self.lookup.k, self.local, seeds), now));
            self.crawler.next = None;
        }
        self.send_crawl_requests(net);
    }

    fn send_crawl_requests(&mut self, net: &mut Net<'_>) {
        let Some((crawl, started)) = &mut self.crawler.running else {
            return;
        };
        while let Some(request) = crawl.next_request(CRAWL_PARALLELISM, &mut self.rng) {
            let id = net.wire.send_request_with_addresses(
                &request.peer,
                vec![Message::find_node(request.key)],
                request.addrs,
            );
            self.requests
                .insert(id, (Purpose::Crawl { cpl: request.cpl }, request.peer));
        }
        if crawl.is_done() {
            let took = started.elapsed();
            let (crawl, _) = self.crawler.running.take().expect("running");
            let found = crawl.found();
            let table = crawl.into_table();
            tracing::info!(
                peers = table.len(),
                found,
                requests = table.requests,
                failures = table.failures,
                seconds = took.as_secs_f64(),
                "fullrt: crawl finished"
            );
            if let Some(metrics) = &self.metrics {
                metrics
                    .crawl_peers
                    .set(i64::try_from(table.len()).unwrap_or(i64::MAX));
                metrics.crawl_seconds.set(took.as_secs_f64());
            }
            self.crawler.table = Some(table);
            self.crawler.next = Some(Instant::now() + self.crawl_interval);
        }
    }

    fn on_crawl_answer(
        &mut self,
        net: &mut Net<'_>,
        peer: PeerId,
        cpl: u32,
        answer: Result<Option<Message>, OutboundFailure>,
    ) {
        if let Some((crawl, _)) = &mut self.crawler.running {
            match answer {
                Ok(Some(message)) => crawl.on_answer(peer, cpl, message.closer()),
                Ok(None) | Err(_) => crawl.on_failure(peer),
            }
        }
        self.send_crawl_requests(net);
    }

    /// Sets the wake-up to the earliest deadline: a silent peer, a quiet provide, maintenance.
    fn rearm(&mut self) {
        let mut next = self.now() + MAINTENANCE_INTERVAL;
        for operation in self.operations.values() {
            if let Some(deadline) = operation.retrieve.as_ref().and_then(Retrieve::next_deadline) {
                next = next.min(deadline);
            }
            let provide = operation.provide.as_ref().filter(|_| !operation.answered);
            if let Some(deadline) = provide.and_then(Provide::next_deadline) {
                next = next.min(deadline);
            }
        }
        let at = self.epoch + next;
        if self.wake.deadline() != at {
            self.wake.as_mut().reset(at);
        }
    }
}

/// What a reprovide round's operation became, for the round.
fn round_event(operation: &Operation, finished: Finished) -> RoundEvent {
    match operation.kind {
        Kind::Explore => {
            let lookup = operation.retrieve.as_ref().and_then(Retrieve::lookup);
            let closest = lookup
                .map(|lookup| {
                    lookup
                        .closest_answered()
                        .map(|(peer, _)| {
                            let addrs = operation.addresses.get(&peer).cloned().unwrap_or_default();
                            (peer_key(&peer), peer, addrs)
                        })
                        .collect()
                })
                .unwrap_or_default();
            RoundEvent::Explored {
                id: finished.id,
                counts: finished.counts,
                closest,
            }
        }
        _ => RoundEvent::Provided {
            id: finished.id,
            counts: finished.counts,
            record_peers: finished.record_peers.unwrap_or(0),
        },
    }
}

/// The network's size as our routing table shows it: `k` peers within the distance of our
/// `k`-th closest (the table knows our neighbourhood best); the peers known when fewer.
fn network_size_from_table(kad: &mut Kad, local: PeerId, k: usize) -> f64 {
    let own = kad::KBucketKey::from(local);
    let closest: Vec<PeerId> = kad
        .get_closest_local_peers(&own)
        .take(k)
        .map(|entry| *entry.preimage())
        .collect();
    match closest.last() {
        Some(kth) if closest.len() == k => {
            let distance = normed_distance(&peer_key(&local).distance(&peer_key(kth)));
            k as f64 / distance.max(f64::MIN_POSITIVE)
        }
        _ => closest.len() as f64,
    }
}

fn hashed(entry: &kad::KBucketKey<PeerId>) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(entry.hashed_bytes());
    bytes
}
