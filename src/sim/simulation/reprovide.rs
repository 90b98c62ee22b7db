//! A reprovide round in virtual time: one node sends the provider records of all its keys again,
//! one lookup per key (`classic`: rust-libp2p's republish, Kubo's reprovider before 0.39), or
//! region by region (`sweep`: go-libp2p-kad-dht's provide sweep, on [`parsec_kad::sweep`]).
//!
//! A sweep walk explores its prefix with lookups until it knows every peer under it
//! ([`parsec_kad::explore`], widening a prefix of fewer than `k` peers), cuts the peers into
//! [`regions`](parsec_kad::region::regions), and sends each peer the records of the keys it is
//! among the `k` closest to, one ADD_PROVIDER per key over one connection, 20 peers at a time.

use std::{collections::BinaryHeap, ops::Range, time::Duration};

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
    /// Records acknowledged: one per key and peer that stored it.
    pub copies_stored: u64,
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

    /// Walks (sweep: prefixes walked; classic: provides).
    pub fn walks(&self) -> usize {
        self.walk_durations.len()
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
    copies_stored: u64,
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
        self.reprovide_keeping(from, sorted_keys, strategy, workers, &|_| true)
    }

    /// As [`reprovide`](Self::reprovide), but a sweep keeps in the network only the records of
    /// the keys `keep` names (the others are sent and counted, not stored): 10⁸ keys × `k` copies
    /// do not fit in memory, a sample for the findability check does. Classic keeps every record.
    pub fn reprovide_keeping(
        &mut self,
        from: NodeIndex,
        sorted_keys: &[Key],
        strategy: ReprovideStrategy,
        workers: usize,
        keep: &dyn Fn(&Key) -> bool,
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
                    round.copies_stored += provided.peers.len() as u64;
                    round.walk_durations.push(provided.duration);
                }
            }
            ReprovideStrategy::Sweep => self.sweep_all(from, sorted_keys, workers, keep, &mut round),
        }
        round.duration = makespan(&round.walk_durations, workers);
        round
    }

    /// A forced full sweep: every region holding keys, walked once.
    fn sweep_all(
        &mut self,
        from: NodeIndex,
        sorted_keys: &[Key],
        workers: usize,
        keep: &dyn Fn(&Key) -> bool,
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
            let walk = self.walk(from, prefix, sorted_keys, keep);
            round.lookups += walk.lookups;
            round.copies_stored += walk.copies_stored;
            round.messages += walk.messages;
            round.failures += walk.failures;
            round.walk_durations.push(walk.duration);
            sweep.on_walked(prefix, kind, &walk.regions, Duration::ZERO);
        }
    }

    /// Explores `prefix` (widened while it holds fewer than `k` peers), then sends every key of
    /// its regions to the key's `k` closest peers.
    fn walk(
        &mut self,
        from: NodeIndex,
        prefix: Prefix,
        sorted_keys: &[Key],
        keep: &dyn Fn(&Key) -> bool,
    ) -> Walk {
        let k = self.network.k();
        let mut walk = Walk {
            regions: Vec::new(),
            lookups: 0,
            messages: 0,
            failures: 0,
            copies_stored: 0,
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
        // Per peer, the keys to send as ranges of `sorted_keys` (no copy of the keys).
        let mut sends: Vec<(NodeIndex, Vec<Range<usize>>)> = Vec::new();
        for cut in region::regions(&peer_keys, explored, k) {
            let key_range = cut.prefix.range_in(sorted_keys);
            if key_range.is_empty() {
                continue;
            }
            walk.regions.push(cut.prefix);
            let batches = region::allocate(&peer_keys[cut.peers.clone()], &sorted_keys[key_range.clone()], k);
            for (offset, ranges) in batches.into_iter().enumerate() {
                if !ranges.is_empty() {
                    let global = ranges
                        .into_iter()
                        .map(|r| key_range.start + r.start..key_range.start + r.end)
                        .collect();
                    sends.push((peers[cut.peers.start + offset].1, global));
                }
            }
        }
        for wave in sends.chunks(CONNECTIONS_PER_WALK) {
            let mut longest = Duration::ZERO;
            for (peer, ranges) in wave {
                let (stored, delay) = self.store_once(from, *peer, &mut rng);
                longest = longest.max(self.with_connect(stored, delay));
                let count: u64 = ranges.iter().map(|r| r.len() as u64).sum();
                walk.messages += count;
                if !stored {
                    walk.failures += count;
                    continue;
                }
                walk.copies_stored += count;
                for key in ranges.iter().flat_map(|r| &sorted_keys[r.clone()]) {
                    if keep(key) {
                        self.network.store_record(*peer, *key);
                    }
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
