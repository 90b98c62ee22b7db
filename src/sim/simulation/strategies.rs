//! Per-node strategies in the simulator: optimistic nodes keep a network size estimate fed by
//! their refresh lookups; accelerated clients provide and retrieve from a crawl, without a lookup.

use parsec_kad::{EstimateUpkeep, Key, NetworkSizeEstimator, SortedPeers, Strategy};

use super::{OperationKind, Outcome, Simulation};
use crate::sim::network::NodeIndex;

/// What a node that does not use the classic strategy keeps.
#[derive(Clone, Debug)]
pub(super) enum NodeState {
    /// Optimistic provide: the network size estimate from its converged lookups.
    Optimistic(Estimate),
    /// The accelerated client: the peers its last crawl reached, sorted by key.
    FullRoutingTable(Crawl),
}

/// An optimistic node's network size estimate, and when it needs lookups (the engine's schedule).
#[derive(Clone, Debug)]
pub(super) struct Estimate {
    pub(super) estimator: NetworkSizeEstimator,
    pub(super) upkeep: EstimateUpkeep,
}

/// The result of a crawl: every peer that answered, sorted by key.
pub(super) type Crawl = SortedPeers<NodeIndex>;

impl Simulation {
    /// Optimistic nodes whose upkeep is due look up random keys, as a routing-table refresh
    /// does, and track them.
    pub(super) fn refresh_estimates(&mut self) {
        for node in self.nodes_where(|state| matches!(state, NodeState::Optimistic(_))) {
            // Out of the map while its lookups run (they read no strategy): no copy each round.
            let Some(NodeState::Optimistic(mut estimate)) = self.strategies.remove(&node) else {
                continue;
            };
            self.keep_up(node, &mut estimate);
            self.strategies.insert(node, NodeState::Optimistic(estimate));
        }
    }

    /// The batches of random-key lookups `node`'s upkeep asks for now, tracked. Virtual time
    /// stands still meanwhile, so batches follow each other while they bring samples, until the
    /// estimate is warm, and stop at the first that brings none (the next waits for the clock).
    fn keep_up(&mut self, node: NodeIndex, estimate: &mut Estimate) {
        let mut rng = self.rng_for(
            OperationKind::Lookup,
            node,
            &Key::hash_of(&self.clock.as_nanos().to_be_bytes()),
        );
        loop {
            let (estimator, clock) = (&mut estimate.estimator, self.clock);
            let lookups = estimate.upkeep.due(clock, || estimator.estimate(clock).is_ok());
            if lookups == 0 {
                return;
            }
            for _ in 0..lookups {
                let target = Key::random(&mut rng);
                let outcome = self.lookup(node, target);
                self.forget_dead(node, &outcome.dead);
                if self.track(&mut estimate.estimator, node, &target, &outcome) {
                    estimate.upkeep.record_sample();
                }
                estimate.upkeep.batch_lookup_ended(self.clock);
            }
        }
    }

    /// Makes `node` provide and retrieve with `strategy`. An optimistic node warms its network
    /// size estimator up with lookups of random keys; an accelerated client crawls.
    pub fn set_strategy(&mut self, node: NodeIndex, strategy: Strategy) {
        match strategy {
            Strategy::Classic => {
                self.strategies.remove(&node);
            }
            Strategy::Optimistic => {
                let mut estimate = Estimate {
                    estimator: NetworkSizeEstimator::new(self.kademlia.lookup.k),
                    upkeep: EstimateUpkeep::default(),
                };
                self.keep_up(node, &mut estimate);
                self.strategies.insert(node, NodeState::Optimistic(estimate));
            }
            Strategy::FullRoutingTable => {
                let crawl = self.crawl();
                self.strategies.insert(node, NodeState::FullRoutingTable(crawl));
            }
        }
    }

    /// The strategy `node` uses.
    pub fn strategy(&self, node: NodeIndex) -> Strategy {
        match self.strategies.get(&node) {
            None => Strategy::Classic,
            Some(NodeState::Optimistic(_)) => Strategy::Optimistic,
            Some(NodeState::FullRoutingTable(_)) => Strategy::FullRoutingTable,
        }
    }

    /// The network size `node` estimates (optimistic nodes), or the peers of its last crawl
    /// (accelerated clients).
    pub fn network_view(&mut self, node: NodeIndex) -> Option<f64> {
        let clock = self.clock;
        match self.strategies.get_mut(&node)? {
            NodeState::Optimistic(estimate) => estimate
                .upkeep
                .is_warm()
                .then(|| estimate.estimator.estimate(clock).ok())
                .flatten(),
            NodeState::FullRoutingTable(crawl) => Some(crawl.len() as f64),
        }
    }

    /// The nodes whose strategy state matches.
    fn nodes_where(&self, matches: impl Fn(&NodeState) -> bool) -> Vec<NodeIndex> {
        self.strategies
            .iter()
            .filter(|(_, state)| matches(state))
            .map(|(&node, _)| node)
            .collect()
    }

    /// Accelerated clients crawl again (the network changed).
    pub(super) fn recrawl(&mut self) {
        let nodes = self.nodes_where(|state| matches!(state, NodeState::FullRoutingTable(_)));
        if nodes.is_empty() {
            return;
        }
        let crawl = self.crawl();
        for node in nodes {
            self.strategies
                .insert(node, NodeState::FullRoutingTable(crawl.clone()));
        }
    }

    /// The routing table size `node` reports: its crawled peers for an accelerated client.
    pub fn routing_table_size(&self, node: NodeIndex) -> usize {
        match self.strategies.get(&node) {
            Some(NodeState::FullRoutingTable(crawl)) => crawl.len(),
            _ => self.network.routing_table_size(node),
        }
    }

    /// A crawl reaches every peer that answers (the simulated crawl is a snapshot; its duration
    /// is not modelled).
    fn crawl(&self) -> Crawl {
        Crawl::new(
            (0..self.network.len() as NodeIndex)
                .filter(|&n| self.network.answers(n))
                .map(|n| (self.network.key(n), n))
                .collect(),
        )
    }

    /// Feeds a converged lookup to an estimator; true if it took it as a sample.
    pub(super) fn track(
        &self,
        estimator: &mut NetworkSizeEstimator,
        from: NodeIndex,
        target: &Key,
        outcome: &Outcome,
    ) -> bool {
        // A provide's stores went to `peers`; its lookup's result is `answered`.
        let answered = match outcome.kind {
            OperationKind::Provide => &outcome.answered,
            OperationKind::Lookup | OperationKind::Retrieve => &outcome.peers,
        };
        let closest: Vec<Key> = answered.iter().map(|&p| self.network.key(p)).collect();
        let bucket = self.network.key(from).common_prefix_len(target);
        let level = self.network.bucket_level(from, bucket);
        estimator.track_lookup(self.clock, target, outcome.termination, &closest, level)
    }

    /// The `k` closest crawled peers of `key` (the node itself excluded).
    pub(super) fn closest_crawled(&self, crawl: &Crawl, from: NodeIndex, key: &Key) -> Vec<NodeIndex> {
        let k = self.kademlia.lookup.k;
        let mut closest = Vec::with_capacity(k + 1);
        crawl.closest(key, k + 1, &mut closest);
        closest.retain(|&p| p != from);
        closest.truncate(k);
        closest
    }
}
