//! Operations in virtual time: each lookup is a discrete-event loop over its own queue of message
//! arrivals, driving the sans-IO [`Lookup`] with delays from the [`LatencyModel`].
//!
//! Every operation draws its randomness from a generator seeded by the simulation seed, the
//! operation kind, the node and the key, so results do not depend on the order in which
//! independent operations run (or on the thread that runs them).

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    hash::{Hash, Hasher},
    time::Duration,
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{
    key::Key,
    latency::LatencyModel,
    lookup::{Lookup, LookupConfig, Next, Termination},
    network::{Network, NodeIndex},
};

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
    /// Virtual time from start to result.
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
    /// Peers found dead on the way (the caller drops them from the node's routing table).
    pub dead: Vec<NodeIndex>,
    /// Why the lookup phase ended.
    pub termination: Option<Termination>,
}

/// A network with its latency model and protocol parameters.
#[derive(Debug)]
pub struct Simulation {
    network: Network,
    latency: LatencyModel,
    kademlia: KademliaConfig,
    seed: u64,
}

/// A message arrival: at `at`, the query to `peer` answers (or fails).
type Arrival = Reverse<(Duration, u64, NodeIndex, bool)>;

impl Simulation {
    /// A simulation over `network`.
    pub fn new(network: Network, latency: LatencyModel, kademlia: KademliaConfig, seed: u64) -> Self {
        Self {
            network,
            latency,
            kademlia,
            seed,
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

    fn rng_for(&self, kind: OperationKind, from: NodeIndex, key: &Key) -> ChaCha8Rng {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.seed, kind, from, key).hash(&mut hasher);
        ChaCha8Rng::seed_from_u64(hasher.finish())
    }

    /// Finds the k closest peers of `target` from `from`, without changing the network (so that
    /// lookups can run in parallel); apply [`Outcome::dead`] with [`Simulation::forget_dead`].
    pub fn lookup(&self, from: NodeIndex, target: Key) -> Outcome {
        let mut rng = self.rng_for(OperationKind::Lookup, from, &target);
        self.run(OperationKind::Lookup, from, target, &mut rng)
    }

    /// Looks up `content`'s closest peers from `from` and stores a provider record at those that
    /// answered; the duration ends when the last store is acknowledged.
    pub fn provide(&mut self, from: NodeIndex, content: Key) -> Outcome {
        let mut rng = self.rng_for(OperationKind::Provide, from, &content);
        let mut outcome = self.run(OperationKind::Provide, from, content, &mut rng);
        self.forget_dead(from, &outcome.dead);
        if outcome.error.is_some() {
            return outcome;
        }
        // Connections to the closest peers are open: each store costs one round trip.
        let mut last_ack = Duration::ZERO;
        let mut stored = Vec::new();
        for &peer in &outcome.peers {
            outcome.messages += 1;
            let fails = !self.network.answers(peer) || rng.gen_bool(self.latency.error_rate);
            if peer != from && fails {
                outcome.failures += 1;
                last_ack = last_ack.max(self.latency.failure(&mut rng));
                continue;
            }
            if peer != from {
                let rtt =
                    self.latency
                        .round_trip(self.network.region(from), self.network.region(peer), &mut rng);
                last_ack = last_ack.max(rtt);
            }
            self.network.store_record(peer, content);
            stored.push(peer);
        }
        outcome.duration += last_ack;
        if stored.is_empty() {
            outcome.error = Some("no peer stored the provider record".to_owned());
        }
        outcome.peers = stored;
        outcome
    }

    /// Looks up the first provider record of `content` from `from`.
    pub fn retrieve(&mut self, from: NodeIndex, content: Key) -> Outcome {
        let mut rng = self.rng_for(OperationKind::Retrieve, from, &content);
        let outcome = self.run(OperationKind::Retrieve, from, content, &mut rng);
        self.forget_dead(from, &outcome.dead);
        outcome
    }

    /// `from` drops the peers it found dead from its routing table.
    pub fn forget_dead(&mut self, from: NodeIndex, dead: &[NodeIndex]) {
        for &peer in dead {
            self.network.forget(from, peer);
        }
    }

    /// The discrete-event loop of one operation's lookup phase.
    fn run(&self, kind: OperationKind, from: NodeIndex, target: Key, rng: &mut ChaCha8Rng) -> Outcome {
        let net = &self.network;
        let mut outcome = Outcome {
            kind,
            duration: Duration::ZERO,
            hops: 0,
            messages: 0,
            failures: 0,
            error: None,
            peers: Vec::new(),
            dead: Vec::new(),
            termination: None,
        };
        if kind == OperationKind::Retrieve && net.holds_record(from, &target) {
            outcome.peers.push(from);
            return outcome;
        }
        let mut scratch = Vec::new();
        net.closest_in_table(from, &target, self.kademlia.lookup.k, &mut scratch);
        let mut lookup = Lookup::new(
            target,
            self.kademlia.lookup,
            scratch.iter().map(|&p| (p, net.key(p))),
        );
        let mut arrivals: BinaryHeap<Arrival> = BinaryHeap::new();
        let mut now = Duration::ZERO;
        let mut sequence = 0u64;
        let from_region = net.region(from);
        loop {
            while let Next::Query(peer) = lookup.poll() {
                sequence += 1;
                let answers = net.answers(peer) && !rng.gen_bool(self.latency.error_rate);
                let delay = if answers {
                    let rtt = self.latency.round_trip(from_region, net.region(peer), rng);
                    rtt.mul_f64(1.0 + self.latency.connect_round_trips)
                } else {
                    self.latency.failure(rng)
                };
                arrivals.push(Reverse((now + delay, sequence, peer, answers)));
            }
            let Some(Reverse((at, _, peer, answered))) = arrivals.pop() else {
                break; // finished, or nothing in flight
            };
            now = at;
            if !answered {
                outcome.failures += 1;
                if !net.is_alive(peer) {
                    outcome.dead.push(peer);
                }
                lookup.on_failure(peer);
                continue;
            }
            if kind == OperationKind::Retrieve && net.holds_record(peer, &target) {
                outcome.hops = lookup.hop_of(peer).unwrap_or(0);
                outcome.peers.push(peer);
                lookup.stop();
                break;
            }
            net.closest_in_table(peer, &target, self.kademlia.beta, &mut scratch);
            // A node never queries itself, as libp2p drops its own id from answers.
            let closer = scratch.iter().filter(|&&p| p != from).map(|&p| (p, net.key(p)));
            lookup.on_answer(peer, closer);
        }
        outcome.duration = now;
        outcome.messages = lookup.queries();
        outcome.termination = lookup.termination();
        match kind {
            OperationKind::Retrieve => {
                if outcome.peers.is_empty() {
                    outcome.error = Some(format!(
                        "no provider record found ({} of {} queries failed)",
                        outcome.failures, outcome.messages
                    ));
                }
            }
            OperationKind::Lookup | OperationKind::Provide => {
                // The answered peers, topped up with known peers when steps-to-stop ended early.
                let answered: Vec<(NodeIndex, u32)> = lookup.closest_answered().collect();
                outcome.hops = answered.first().map_or(0, |(_, hop)| *hop);
                if answered.is_empty() {
                    outcome.error = Some(format!(
                        "no peer answered ({} of {} queries failed)",
                        outcome.failures, outcome.messages
                    ));
                } else if lookup.termination() == Some(Termination::NoProgress) {
                    outcome.peers = lookup.closest_known().collect();
                } else {
                    outcome.peers = answered.into_iter().map(|(p, _)| p).collect();
                }
            }
        }
        outcome
    }
}
