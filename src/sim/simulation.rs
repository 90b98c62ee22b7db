//! Operations in virtual time: each lookup is a discrete-event loop over its own queue of message
//! arrivals, driving the sans-IO [`Lookup`] with delays from the [`LatencyModel`].
//!
//! Every operation draws its randomness from a generator seeded by the simulation seed, the
//! operation kind, the node and the key, so results do not depend on the order in which
//! independent operations run (or on the thread that runs them).

use std::{
    cell::RefCell,
    collections::HashMap,
    hash::{Hash, Hasher},
    time::Duration,
};

#[cfg(doc)]
use parsec_kad::EstimateUpkeep;
use parsec_kad::{
    upkeep::CRAWL_INTERVAL, Distance, Key, Lookup, LookupConfig, PeerState, Provide, ProvideStep, Retrieve,
    RetrieveStep, StoresStart, Termination,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod reprovide;
mod strategies;

pub use reprovide::{ReprovideRound, ReprovideStrategy};

use strategies::NodeState;

use super::{
    latency::LatencyModel,
    network::{Network, NodeIndex},
};

thread_local! {
    /// The memory of the last operation on this thread, reused by the next (see [`Scratch`]).
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// What an operation's event loop needs besides the network: kept per thread and reused, since
/// allocating it for each of millions of lookups was a tenth of their time.
#[derive(Debug, Default)]
struct Scratch {
    heard: Heard,
    /// An answer being built.
    answer: Vec<(Distance, NodeIndex)>,
    events: Events,
    lookup: Option<Lookup<NodeIndex>>,
}

impl Scratch {
    /// This thread's scratch, taken rather than borrowed: an operation within an operation
    /// starts afresh.
    fn take() -> Self {
        SCRATCH.with(RefCell::take)
    }

    /// Gives the memory back to this thread, `lookup`'s too.
    fn put_back(mut self, lookup: Option<Lookup<NodeIndex>>) {
        self.lookup = lookup.or(self.lookup);
        SCRATCH.with(|scratch| scratch.replace(self));
    }
}

/// The peers one lookup heard of, stamped with the lookup's epoch so that starting the next
/// lookup costs nothing. Answers mostly repeat peers the lookup knows; dropping them here saves
/// the lookup's sorted insert a binary search each (the simulator's hottest loop).
#[derive(Debug, Default)]
struct Heard {
    epoch: u32,
    stamps: Vec<u32>,
}

impl Heard {
    /// Forgets every peer, for a lookup in a network of `nodes`.
    fn start(&mut self, nodes: usize) {
        if self.stamps.len() < nodes {
            self.stamps.resize(nodes, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamps.fill(0);
            self.epoch = 1;
        }
    }

    /// Whether `node` was heard of in this lookup.
    fn knows(&self, node: NodeIndex) -> bool {
        self.stamps[node as usize] == self.epoch
    }

    /// Whether `node` is heard of for the first time in this lookup (and marks it heard).
    fn first_time(&mut self, node: NodeIndex) -> bool {
        let stamp = &mut self.stamps[node as usize];
        let first = *stamp != self.epoch;
        *stamp = self.epoch;
        first
    }
}

/// Kademlia parameters of every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KademliaConfig {
    /// Lookup parameters (k, alpha, steps to stop).
    pub lookup: LookupConfig,
    /// Peers a node returns per answer (beta).
    pub beta: usize,
}

impl Default for KademliaConfig {
    fn default() -> Self {
        Self {
            lookup: LookupConfig::default(),
            beta: 20,
        }
    }
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// Find the k closest peers of a key.
    Lookup,
    /// Lookup, then store a provider record at the k closest.
    Provide,
    /// Lookup that ends at the first provider record.
    Retrieve,
}

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Which operation.
    pub kind: OperationKind,
    /// Virtual time from start to result (for a provide: until it returned to the caller).
    pub duration: Duration,
    /// Hops to the peer that gave the result (the provider record's holder, or the closest peer).
    pub hops: u32,
    /// Requests sent (lookup queries and, for provides, record stores).
    pub messages: u32,
    /// Requests that failed.
    pub failures: u32,
    /// Why the operation failed, if it did.
    pub error: Option<String>,
    /// The peers found: the k closest (lookup), those storing the record (provide), or the
    /// provider record's holder (retrieve).
    pub peers: Vec<NodeIndex>,
    /// For a provide: its lookup's result, the `k` closest peers that answered (or those known,
    /// if it ended early), which an optimistic node's estimate tracks. Empty otherwise.
    pub answered: Vec<NodeIndex>,
    /// Peers found dead on the way (the caller drops them from the node's routing table).
    pub dead: Vec<NodeIndex>,
    /// Why the lookup phase ended (`None` without a lookup: the full routing table's provide).
    pub termination: Option<Termination>,
    /// Stores still unanswered when the provide returned (they finish in the background).
    pub background: usize,
}

impl Outcome {
    fn new(kind: OperationKind) -> Self {
        Self {
            kind,
            duration: Duration::ZERO,
            hops: 0,
            messages: 0,
            failures: 0,
            error: None,
            peers: Vec::new(),
            answered: Vec::new(),
            dead: Vec::new(),
            termination: None,
            background: 0,
        }
    }
}

/// A provide's stores as they are sent (the simulator knows each one's fate when it goes out).
#[derive(Debug, Default)]
struct Stores {
    sent: u32,
    stored: Vec<NodeIndex>,
}

/// Something that happens at a point of virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The query to `peer` answers, or fails.
    Query { peer: NodeIndex, answered: bool },
    /// The store at `peer` is acknowledged, or fails.
    Store { peer: NodeIndex, stored: bool },
}

/// The event queue of one operation, in virtual time: events happen in time order, and those at
/// the same time in the order they were queued.
///
/// A list searched for its earliest event, not a heap: it holds the `alpha` queries in flight and
/// an optimistic provide's stores (tens), and a heap's upkeep was 7 % of a simulated lookup.
#[derive(Debug, Default)]
struct Events {
    now: Duration,
    sequence: u64,
    queue: Vec<(Duration, u64, Event)>,
}

impl Events {
    /// Empties the queue and sets the clock to zero, keeping its memory.
    fn clear(&mut self) {
        self.now = Duration::ZERO;
        self.sequence = 0;
        self.queue.clear();
    }

    /// `event` happens `delay` from now.
    fn push(&mut self, delay: Duration, event: Event) {
        self.sequence += 1;
        self.queue.push((self.now + delay, self.sequence, event));
    }

    /// The next event, unless `deadline` comes first (then time moves to the deadline).
    fn pop_before(&mut self, deadline: Option<Duration>) -> Option<(Duration, Event)> {
        let next = (0..self.queue.len()).min_by_key(|&i| (self.queue[i].0, self.queue[i].1));
        if let Some(deadline) = deadline {
            if next.is_none_or(|i| deadline < self.queue[i].0) {
                self.now = self.now.max(deadline);
                return None;
            }
        }
        let (at, _, event) = self.queue.swap_remove(next?);
        self.now = at;
        Some((at, event))
    }
}

/// A network with its latency model and protocol parameters.
#[derive(Debug)]
pub struct Simulation {
    network: Network,
    latency: LatencyModel,
    kademlia: KademliaConfig,
    seed: u64,
    /// Nodes with another strategy than classic (the simulated servers of those fleets).
    strategies: HashMap<NodeIndex, NodeState>,
    /// Virtual time passed between operations (churn), for the estimator's sample ages.
    clock: Duration,
    /// When accelerated clients last crawled.
    crawled_at: Duration,
}

impl Simulation {
    /// A simulation over `network`.
    pub fn new(network: Network, latency: LatencyModel, kademlia: KademliaConfig, seed: u64) -> Self {
        Self {
            network,
            latency,
            kademlia,
            seed,
            strategies: HashMap::new(),
            clock: Duration::ZERO,
            crawled_at: Duration::ZERO,
        }
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network, to change (churn, reachability).
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// The Kademlia parameters.
    pub fn kademlia(&self) -> KademliaConfig {
        self.kademlia
    }

    /// The latency model.
    pub fn latency(&self) -> &LatencyModel {
        &self.latency
    }

    /// Virtual time passes between operations: optimistic nodes look up random keys for their
    /// size estimates when their upkeep says so (the engine's schedule, [`EstimateUpkeep`]),
    /// accelerated clients crawl every [`CRAWL_INTERVAL`]. Without refreshes, samples older than
    /// two hours expire and an optimistic node falls back to the classic provide, as go's does
    /// without an estimate.
    pub fn advance_clock(&mut self, by: Duration) {
        self.clock += by;
        self.refresh_estimates();
        if self.clock >= self.crawled_at + CRAWL_INTERVAL {
            self.crawled_at = self.clock;
            self.recrawl();
        }
    }

    fn rng_for(&self, kind: OperationKind, from: NodeIndex, key: &Key) -> ChaCha8Rng {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.seed, kind, from, key).hash(&mut hasher);
        ChaCha8Rng::seed_from_u64(hasher.finish())
    }

    /// Finds the k closest peers of `target` from `from`, without changing the network (so that
    /// lookups can run in parallel); apply [`Outcome::dead`] with [`Simulation::forget_dead`].
    pub fn lookup(&self, from: NodeIndex, target: Key) -> Outcome {
        let mut rng = self.rng_for(OperationKind::Lookup, from, &target);
        self.run(OperationKind::Lookup, from, target, None, &mut rng)
    }

    /// Stores a provider record of `content` from `from`, with `from`'s strategy: a lookup of the
    /// closest peers then a store at those that answered (classic), stores decided during the
    /// lookup (optimistic), or stores at the closest peers of the crawl (accelerated).
    pub fn provide(&mut self, from: NodeIndex, content: Key) -> Outcome {
        let mut rng = self.rng_for(OperationKind::Provide, from, &content);
        let clock = self.clock;
        let estimate = match self.strategies.get_mut(&from) {
            Some(NodeState::Optimistic(state)) if state.upkeep.is_warm() => {
                state.estimator.estimate(clock).ok()
            }
            _ => None,
        };
        let direct = match self.strategies.get(&from) {
            Some(NodeState::FullRoutingTable(crawl)) => Some(self.closest_crawled(crawl, from, &content)),
            // Classic, or optimistic: without a warm estimate classic (go falls back the same way).
            _ => None,
        };
        let mut outcome = self.run_provide(from, content, direct, estimate, &mut rng);
        for &peer in &outcome.peers {
            self.network.store_record(peer, content);
        }
        self.forget_dead(from, &outcome.dead);
        // Out of the map while it tracks (which reads no strategy): no copy each provide.
        match self.strategies.remove(&from) {
            Some(NodeState::Optimistic(mut state)) => {
                if self.track(&mut state.estimator, from, &content, &outcome) {
                    state.upkeep.record_sample();
                }
                self.strategies.insert(from, NodeState::Optimistic(state));
            }
            Some(other) => {
                self.strategies.insert(from, other);
            }
            None => {}
        }
        if outcome.error.is_some() {
            outcome.peers.clear();
        }
        outcome
    }

    /// A request's delay over a new connection (the connection's round trips come first).
    fn with_connect(&self, answered: bool, delay: Duration) -> Duration {
        if answered {
            delay.mul_f64(1.0 + self.latency.connect_round_trips)
        } else {
            delay
        }
    }

    /// Looks up the first provider record of `content` from `from`. The accelerated client asks
    /// the `k` closest peers of its crawl at once, and takes the first record.
    pub fn retrieve(&mut self, from: NodeIndex, content: Key) -> Outcome {
        let mut rng = self.rng_for(OperationKind::Retrieve, from, &content);
        let direct = match self.strategies.get(&from) {
            Some(NodeState::FullRoutingTable(crawl)) => Some(self.closest_crawled(crawl, from, &content)),
            _ => None,
        };
        let outcome = self.run(OperationKind::Retrieve, from, content, direct, &mut rng);
        self.forget_dead(from, &outcome.dead);
        outcome
    }

    /// `from` drops the peers it found dead from its routing table.
    pub fn forget_dead(&mut self, from: NodeIndex, dead: &[NodeIndex]) {
        for &peer in dead {
            self.network.forget(from, peer);
        }
    }

    /// The discrete-event loop of one lookup or retrieval: the queries its [`Retrieve`] asks for
    /// (along a lookup, or to `direct`'s peers at once), each answered or failed after its delay.
    /// A retrieval ends at the first answer that carries a record; otherwise the operation runs
    /// until its last event. A lookup is a retrieval of nothing: no answer carries a record.
    fn run(
        &self,
        kind: OperationKind,
        from: NodeIndex,
        target: Key,
        direct: Option<Vec<NodeIndex>>,
        rng: &mut ChaCha8Rng,
    ) -> Outcome {
        let net = &self.network;
        // A retriever that holds the record itself still looks it up: a lookup is a lookup in
        // the network (docs/method.md, "What a retrieval is").
        let mut outcome = Outcome::new(kind);
        let mut scratch = Scratch::take();
        scratch.events.clear();
        let mut retrieve = match direct {
            Some(targets) => Retrieve::direct(targets),
            None => Retrieve::with_lookup(self.start_lookup(&mut scratch, from, target)),
        };
        let Scratch {
            heard,
            answer,
            events,
            ..
        } = &mut scratch;
        let from_region = net.region(from);
        loop {
            let now = events.now;
            while let step @ (RetrieveStep::Query(_) | RetrieveStep::LookupEnded) = retrieve.poll(now) {
                if let RetrieveStep::Query(peer) = step {
                    self.send_query(peer, &target, from_region, events, rng);
                }
            }
            // Timeouts matter while the lookup runs; after it, only the queued events do.
            let wake = retrieve.next_deadline();
            let Some((_, event)) = events.pop_before(wake) else {
                if wake.is_some() {
                    continue; // a query timed out: poll again at its deadline
                }
                break; // finished, or nothing in flight
            };
            match event {
                Event::Query {
                    peer,
                    answered: false,
                } => {
                    self.on_query_failed(peer, &mut outcome);
                    retrieve.on_failure(peer);
                }
                Event::Query { peer, answered: true } => {
                    if kind == OperationKind::Retrieve && net.holds_record(peer, &target) {
                        // The peers it knows closer change nothing any more.
                        retrieve.on_answer(peer, [], true);
                        break;
                    }
                    match retrieve.lookup() {
                        Some(_) => retrieve.on_answer(peer, self.closer(peer, &target, heard, answer), false),
                        None => retrieve.on_answer(peer, [], false),
                    }
                }
                // A lookup or a retrieval stores nothing.
                Event::Store { .. } => {}
            }
        }
        outcome.duration = events.now;
        match kind {
            OperationKind::Retrieve => conclude_retrieve(&mut outcome, &retrieve),
            _ => {
                if let Some(lookup) = retrieve.lookup() {
                    self.conclude(&mut outcome, lookup);
                }
            }
        }
        scratch.put_back(retrieve.into_lookup());
        outcome
    }

    /// One provide's discrete-event loop: the queries and stores its [`Provide`] asks for, each
    /// answered after its delay, until it returns (stores still in flight finish in the
    /// background). `direct`: the accelerated client's targets (no lookup); `estimate`: an
    /// optimistic node's network size. A classic provide stores once every query of its lookup
    /// answered ([`StoresStart::AllAnswered`]), as the go network the calibration fits does.
    fn run_provide(
        &self,
        from: NodeIndex,
        content: Key,
        direct: Option<Vec<NodeIndex>>,
        estimate: Option<f64>,
        rng: &mut ChaCha8Rng,
    ) -> Outcome {
        let k = self.kademlia.lookup.k;
        let mut outcome = Outcome::new(OperationKind::Provide);
        let mut scratch = Scratch::take();
        scratch.events.clear();
        let mut provide = match direct {
            Some(targets) => Provide::direct(targets, k),
            None => Provide::with_lookup(self.start_lookup(&mut scratch, from, content), k, estimate)
                .with_stores_start(StoresStart::AllAnswered),
        };
        let Scratch {
            heard,
            answer,
            events,
            ..
        } = &mut scratch;
        let mut stores = Stores::default();
        loop {
            self.send_provide_steps(from, &mut provide, &mut outcome, &mut stores, events, rng);
            if provide.has_returned(events.now) {
                break;
            }
            let wake = provide.next_deadline();
            let Some((at, event)) = events.pop_before(wake) else {
                if wake.is_some() {
                    continue; // a query timed out, or the quiet rule ended: poll again
                }
                break; // nothing in flight
            };
            match event {
                Event::Query {
                    peer,
                    answered: false,
                } => {
                    self.on_query_failed(peer, &mut outcome);
                    provide.on_failure(peer);
                }
                Event::Query { peer, answered: true } => {
                    if let Some(lookup) = provide.lookup_mut() {
                        let target = lookup.target();
                        lookup.on_answer(peer, self.closer(peer, &target, heard, answer));
                    }
                }
                Event::Store { peer, stored } => provide.on_stored(at, peer, stored),
            }
        }
        outcome.duration = events.now;
        outcome.background = provide.stores().in_flight();
        match provide.lookup() {
            Some(lookup) => self.conclude(&mut outcome, lookup),
            None => outcome.hops = 1,
        }
        outcome.messages += stores.sent;
        // The lookup's result (which an optimistic node's estimate tracks); the record's holders.
        outcome.answered = std::mem::replace(&mut outcome.peers, stores.stored);
        if outcome.error.is_none() && outcome.peers.is_empty() {
            outcome.error = Some(format!(
                "no peer stored the provider record ({} stores failed)",
                stores.sent
            ));
        }
        scratch.put_back(provide.into_lookup());
        outcome
    }

    /// Sends what `provide` asks for now: its queries, then its stores, each answered or failed
    /// after its delay.
    fn send_provide_steps(
        &self,
        from: NodeIndex,
        provide: &mut Provide<NodeIndex>,
        outcome: &mut Outcome,
        stores: &mut Stores,
        events: &mut Events,
        rng: &mut ChaCha8Rng,
    ) {
        let from_region = self.network.region(from);
        loop {
            match provide.poll(events.now) {
                ProvideStep::Query(peer) => {
                    let target = provide.lookup().map(Lookup::target).unwrap_or_default();
                    self.send_query(peer, &target, from_region, events, rng);
                }
                ProvideStep::Store(peer) => {
                    // A peer the lookup has not heard from needs a connection first.
                    let connected =
                        provide.lookup().and_then(|l| l.state_of(peer)) == Some(PeerState::Succeeded);
                    let (stored, delay) = self.store_once(from, peer, rng);
                    let delay = if connected {
                        delay
                    } else {
                        self.with_connect(stored, delay)
                    };
                    stores.sent += 1;
                    if stored {
                        stores.stored.push(peer);
                    } else {
                        outcome.failures += 1;
                    }
                    events.push(delay, Event::Store { peer, stored });
                }
                ProvideStep::LookupEnded => {
                    outcome.termination = provide.lookup().and_then(Lookup::termination);
                }
                ProvideStep::Wait => return,
            }
        }
    }

    /// A lookup of `target` from `from`, seeded with the `k` peers of its table closest to it, in
    /// the scratch's memory, with the scratch's peers heard of and events started afresh.
    fn start_lookup(&self, scratch: &mut Scratch, from: NodeIndex, target: Key) -> Lookup<NodeIndex> {
        let Scratch {
            heard,
            answer,
            events,
            lookup: reused,
        } = scratch;
        events.clear();
        let net = &self.network;
        // The lookup sorts its seeds itself.
        net.closest_unordered(from, &target, self.kademlia.lookup.k, answer);
        heard.start(net.len());
        // A node never queries itself, as libp2p drops its own id from answers.
        heard.first_time(from);
        let seeds = answer
            .iter()
            .filter(|&&(_, p)| heard.first_time(p))
            .map(|&(_, p)| (p, net.key(p)));
        match reused.take() {
            Some(mut lookup) => {
                lookup.restart(target, self.kademlia.lookup, seeds);
                lookup
            }
            None => Lookup::new(target, self.kademlia.lookup, seeds),
        }
    }

    /// `peer`'s answer to a lookup of `target`: the peers of its table closest to it, only those
    /// new to the lookup (those it knows would be found and skipped). Inlined: the simulator's
    /// hottest path, and a call here cost 2 % of a lookup.
    #[inline(always)]
    fn closer<'a>(
        &'a self,
        peer: NodeIndex,
        target: &Key,
        heard: &'a mut Heard,
        answer: &'a mut Vec<(Distance, NodeIndex)>,
    ) -> impl Iterator<Item = (NodeIndex, Key)> + 'a {
        let net = &self.network;
        net.closest_unordered_where(peer, target, self.kademlia.beta, |p| !heard.knows(p), answer);
        answer
            .iter()
            .filter(|&&(_, p)| heard.first_time(p))
            .map(|&(_, p)| (p, net.key(p)))
    }

    /// Sends a lookup's query for `target` to `peer`, answered or failed after its delay.
    fn send_query(
        &self,
        peer: NodeIndex,
        target: &Key,
        from_region: u8,
        events: &mut Events,
        rng: &mut ChaCha8Rng,
    ) {
        let net = &self.network;
        let answers = net.answers(peer) && !rng.gen_bool(self.latency.error_rate);
        if answers {
            net.prefetch_answer(peer, target);
        }
        let delay = if answers {
            let rtt = self.latency.round_trip(from_region, net.region(peer), rng);
            rtt.mul_f64(1.0 + self.latency.connect_round_trips)
        } else {
            self.latency.failure(rng)
        };
        events.push(
            delay,
            Event::Query {
                peer,
                answered: answers,
            },
        );
    }

    /// A query to `peer` failed: counted, and the peer noted dead if it is.
    fn on_query_failed(&self, peer: NodeIndex, outcome: &mut Outcome) {
        outcome.failures += 1;
        if !self.network.is_alive(peer) {
            outcome.dead.push(peer);
        }
    }

    /// The outcome's messages, peers, hops and error once the lookup's events are over.
    fn conclude(&self, outcome: &mut Outcome, lookup: &Lookup<NodeIndex>) {
        outcome.messages = lookup.queries();
        outcome.termination = outcome.termination.or(lookup.termination());
        // The answered peers, topped up with known peers when the lookup ended early.
        let Some((_, hops)) = lookup.closest_answered().next() else {
            outcome.error = Some(format!(
                "no peer answered ({} of {} queries failed)",
                outcome.failures, outcome.messages
            ));
            return;
        };
        outcome.hops = hops;
        outcome.peers.reserve_exact(self.kademlia.lookup.k);
        if matches!(
            lookup.termination(),
            Some(Termination::NoProgress | Termination::Satisfied)
        ) {
            outcome.peers.extend(lookup.closest_known());
        } else {
            outcome.peers.extend(lookup.closest_answered().map(|(p, _)| p));
        }
    }

    /// One ADD_PROVIDER from `from` to `peer` over an open connection: whether it succeeds, and
    /// when it answers.
    fn store_once(&self, from: NodeIndex, peer: NodeIndex, rng: &mut ChaCha8Rng) -> (bool, Duration) {
        if peer == from {
            return (true, Duration::ZERO);
        }
        let net = &self.network;
        if !net.answers(peer) || rng.gen_bool(self.latency.error_rate) {
            return (false, self.latency.failure(rng));
        }
        (
            true,
            self.latency.round_trip(net.region(from), net.region(peer), rng),
        )
    }
}

/// A retrieval's messages, record holder, hops and error once its events are over.
fn conclude_retrieve(outcome: &mut Outcome, retrieve: &Retrieve<NodeIndex>) {
    outcome.messages = retrieve.queries();
    outcome.termination = retrieve.lookup().and_then(Lookup::termination);
    match retrieve.found() {
        Some((peer, hops)) => {
            outcome.hops = hops;
            outcome.peers.push(peer);
        }
        None => {
            outcome.error = Some(format!(
                "no provider record found ({} of {} queries failed)",
                outcome.failures, outcome.messages
            ))
        }
    }
}
