//! A reprovide round in virtual time: one node sends the provider records of all its keys again,
//! one lookup per key (`classic`: rust-libp2p's republish, Kubo's reprovider before 0.39), or
//! region by region (`sweep`: go-libp2p-kad-dht's provide sweep, on [`parsec_kad::sweep`]).
//!
//! A sweep walk explores its prefix with lookups until it knows every peer under it
//! ([`parsec_kad::explore`], widening a prefix of fewer than `k` peers), cuts the peers into
//! [`regions`](parsec_kad::region::regions), and sends each peer the records of the keys it is
//! among the `k` closest to, one ADD_PROVIDER per key over one connection, 20 peers at a time.

use std::{collections::BinaryHeap, time::Duration};

use parsec_kad::{
    explore::{Exploration, ExploreStep},
    region::{self, Prefix},
    sweep::{estimated_prefix_len, Sweep, SweepConfig, SweepStep},
    Key,
};

use super::{OperationKind, Simulation};
use crate::sim::NodeIndex;

/// Lookups one walk may run before it stops exploring (go-libp2p-kad-dht's
/// `maxExplorationPrefixSearches`).
const MAX_EXPLORATION_LOOKUPS: u32 = 64;
/// Peers one walk sends to at once (go-libp2p-kad-dht: 20 connections a worker).
const CONNECTIONS_PER_WALK: usize = 20;

/// How a node reprovides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReprovideStrategy {
    /// One provide (lookup, then `k` stores) per key.
    Classic,
    /// Region by region.
    Sweep,
}

/// What a reprovide round did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReprovideRound {
    /// Keys reprovided.
    pub keys: usize,
    /// Lookups run: one per key (classic), the explorations of the regions (sweep).
    pub lookups: u64,
    /// Requests sent: lookup queries and ADD_PROVIDERs (one per key and peer).
    pub messages: u64,
    /// Requests that failed (a store that failed leaves its keys without that copy).
    pub failures: u64,
    /// Walks (sweep: prefixes walked; classic: provides).
    pub walks: usize,
    /// Each walk's virtual time: its lookups one after the other, then its sends.
    pub walk_durations: Vec<Duration>,
    /// The round's virtual time with its walks spread over the workers.
    pub duration: Duration,
}

impl ReprovideRound {
    /// Keys reprovided per hour of the round's virtual time.
    pub fn keys_per_hour(&self) -> f64 {
        self.keys as f64 / self.duration.as_secs_f64().max(f64::MIN_POSITIVE) * 3600.0
    }

    /// Lookups per key.
    pub fn lookups_per_key(&self) -> f64 {
        self.lookups as f64 / self.keys.max(1) as f64
    }

    /// Requests per key.
    pub fn messages_per_key(&self) -> f64 {
        self.messages as f64 / self.keys.max(1) as f64
    }
}

/// One walk's work.
struct Walk {
    /// The prefixes of the regions that held keys.
    regions: Vec<Prefix>,
    lookups: u64,
    messages: u64,
    failures: u64,
    duration: Duration,
}

impl Simulation {
    /// `from` reprovides `sorted_keys` (ascending) with `strategy`, `workers` walks at once; the
    /// records land at the peers that acknowledged them.
    pub fn reprovide(
        &mut self,
        from: NodeIndex,
        sorted_keys: &[Key],
        strategy: ReprovideStrategy,
        workers: usize,
    ) -> ReprovideRound {
        let mut round = ReprovideRound {
            keys: sorted_keys.len(),
            ..ReprovideRound::default()
        };
        match strategy {
            ReprovideStrategy::Classic => {
                for key in sorted_keys {
                    let provided = self.provide(from, *key);
                    round.lookups += 1;
                    round.messages += u64::from(provided.messages);
                    round.failures += u64::from(provided.failures);
                    round.walk_durations.push(provided.duration);
                }
            }
            ReprovideStrategy::Sweep => self.sweep_all(from, sorted_keys, workers, &mut round),
        }
        round.walks = round.walk_durations.len();
        round.duration = makespan(&round.walk_durations, workers);
        round
    }

    /// A forced full sweep: every region holding keys, walked once.
    fn sweep_all(
        &mut self,
        from: NodeIndex,
        sorted_keys: &[Key],
        workers: usize,
        round: &mut ReprovideRound,
    ) {
        let k = self.network.k();
        let config = SweepConfig {
            k,
            max_workers: workers.max(1),
            // A forced reprovide: every worker serves it.
            reserved_periodic: 0,
            reserved_burst: 0,
            ..SweepConfig::default()
        };
        let mut sweep = Sweep::new(config, self.network.key(from), Duration::ZERO);
        let prefix_len = estimated_prefix_len(self.network.alive_count() as f64, k);
        sweep.add_keys(sorted_keys, prefix_len, Duration::ZERO);
        sweep.force_full_reprovide();
        // Walks end before the next starts here; their times are spread over workers after.
        while let SweepStep::Walk { prefix, kind } = sweep.poll(Duration::ZERO) {
            let walk = self.walk(from, prefix, sorted_keys);
            round.lookups += walk.lookups;
            round.messages += walk.messages;
            round.failures += walk.failures;
            round.walk_durations.push(walk.duration);
            sweep.on_walked(prefix, kind, &walk.regions, Duration::ZERO);
        }
    }

    /// Explores `prefix` (widened while it holds fewer than `k` peers), then sends every key of
    /// its regions to the key's `k` closest peers.
    fn walk(&mut self, from: NodeIndex, prefix: Prefix, sorted_keys: &[Key]) -> Walk {
        let k = self.network.k();
        let mut walk = Walk {
            regions: Vec::new(),
            lookups: 0,
            messages: 0,
            failures: 0,
            duration: Duration::ZERO,
        };
        let mut exploration = Exploration::new(prefix, k, MAX_EXPLORATION_LOOKUPS);
        while let ExploreStep::Lookup(target) = exploration.step() {
            let looked_up = self.lookup(from, target);
            self.forget_dead(from, &looked_up.dead);
            walk.messages += u64::from(looked_up.messages);
            walk.failures += u64::from(looked_up.failures);
            walk.duration += looked_up.duration;
            let closest = looked_up
                .peers
                .iter()
                .map(|&p| (self.network.key(p), p))
                .collect();
            exploration.on_answer(closest);
        }
        walk.lookups = u64::from(exploration.lookups());
        let explored = exploration.prefix();
        let peers = exploration.into_found();
        let peer_keys: Vec<Key> = peers.iter().map(|(key, _)| *key).collect();
        let mut rng = self.rng_for(OperationKind::Provide, from, &prefix.first_key());
        let mut sends: Vec<(NodeIndex, Vec<Key>)> = Vec::new();
        for cut in region::regions(&peer_keys, explored, k) {
            let keys = &sorted_keys[cut.prefix.range_in(sorted_keys)];
            if keys.is_empty() {
                continue;
            }
            walk.regions.push(cut.prefix);
            let batches = region::allocate(&peer_keys[cut.peers.clone()], keys, k);
            for (offset, ranges) in batches.into_iter().enumerate() {
                let batch: Vec<Key> = ranges.into_iter().flat_map(|r| keys[r].iter().copied()).collect();
                if !batch.is_empty() {
                    sends.push((peers[cut.peers.start + offset].1, batch));
                }
            }
        }
        for wave in sends.chunks(CONNECTIONS_PER_WALK) {
            let mut longest = Duration::ZERO;
            for (peer, batch) in wave {
                let (stored, delay) = self.store_once(from, *peer, &mut rng);
                longest = longest.max(self.with_connect(stored, delay));
                walk.messages += batch.len() as u64;
                if stored {
                    for key in batch {
                        self.network.store_record(*peer, *key);
                    }
                } else {
                    walk.failures += batch.len() as u64;
                }
            }
            walk.duration += longest;
        }
        walk
    }
}

/// How long `durations` take in order on `workers` workers, each taking the next when free.
fn makespan(durations: &[Duration], workers: usize) -> Duration {
    let mut free_at: BinaryHeap<std::cmp::Reverse<Duration>> = (0..workers.max(1))
        .map(|_| std::cmp::Reverse(Duration::ZERO))
        .collect();
    let mut end = Duration::ZERO;
    for duration in durations {
        let std::cmp::Reverse(start) = free_at.pop().unwrap_or(std::cmp::Reverse(Duration::ZERO));
        end = end.max(start + *duration);
        free_at.push(std::cmp::Reverse(start + *duration));
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_spread_over_workers() {
        let second = Duration::from_secs(1);
        assert_eq!(makespan(&[second; 4], 1), second * 4);
        assert_eq!(makespan(&[second; 4], 2), second * 2);
        assert_eq!(makespan(&[second * 3, second, second, second], 2), second * 3);
        assert_eq!(makespan(&[], 4), Duration::ZERO);
    }
}
