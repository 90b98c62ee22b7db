//! A reprovide round in virtual time: one node sends the provider records of all its keys again,
//! one lookup per key (`classic`: rust-libp2p's republish, Kubo's reprovider before 0.39), or
//! region by region (`sweep`: go-libp2p-kad-dht's provide sweep, on [`parsec_kad::sweep`]).
//!
//! A sweep walk explores its prefix with lookups until it knows every peer under it
//! ([`parsec_kad::explore`], widening a prefix of fewer than `k` peers), cuts the peers into
//! [`regions`](parsec_kad::region::regions), and sends each peer the records of the keys it is
//! among the `k` closest to, one ADD_PROVIDER per key over one connection, 20 peers at a time.

use std::{
    collections::{BTreeSet, BinaryHeap},
    ops::Range,
    time::Duration,
};

use parsec_kad::reprovide::WalkReport;
pub use parsec_kad::reprovide::{ReprovideRound, ReprovideStrategy};
use parsec_kad::{
    region::Prefix,
    sweep::{estimated_prefix_len, Sweep, SweepConfig, SweepStep},
    walk::{Walk, WalkStep, CONNECTIONS_PER_WALK, MAX_EXPLORATION_LOOKUPS},
    Key,
};

use super::{OperationKind, Simulation};
use crate::sim::NodeIndex;

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
                    round.add_walk(WalkReport {
                        keys: 1,
                        lookups: 1,
                        messages: u64::from(provided.messages),
                        failures: u64::from(provided.failures),
                        copies_stored: provided.peers.len() as u64,
                        duration: provided.duration,
                        ..WalkReport::default()
                    });
                }
            }
            ReprovideStrategy::Sweep => self.sweep_all(from, sorted_keys, workers, keep, &mut round),
        }
        let durations: Vec<Duration> = round.walks.iter().map(|walk| walk.duration).collect();
        round.duration = makespan(&durations, workers);
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
        let mut sent = BTreeSet::new();
        while let SweepStep::Walk { prefix, kind } = sweep.poll(Duration::ZERO) {
            let (walk, regions) = self.walk(from, prefix, sorted_keys, &sent, keep);
            sent.extend(regions.iter().copied());
            sweep.on_walked(prefix, kind, &regions, Duration::ZERO);
            round.add_walk(walk);
        }
    }

    /// Explores `prefix` (widened while it holds fewer than `k` peers), then sends every key of
    /// its regions to the key's `k` closest peers, [`CONNECTIONS_PER_WALK`] peers at a time;
    /// returns its report and the prefixes of the regions that held keys.
    fn walk(
        &mut self,
        from: NodeIndex,
        prefix: Prefix,
        sorted_keys: &[Key],
        sent: &BTreeSet<Prefix>,
        keep: &dyn Fn(&Key) -> bool,
    ) -> (WalkReport, Vec<Prefix>) {
        let mut walk = Walk::new(
            prefix,
            self.network.k(),
            MAX_EXPLORATION_LOOKUPS,
            CONNECTIONS_PER_WALK,
        );
        let mut done = WalkReport {
            prefix: Some(prefix),
            ..WalkReport::default()
        };
        let mut rng = self.rng_for(OperationKind::Provide, from, &prefix.first_key());
        // The sends out at once, answered together: the wave lasts as long as its slowest.
        let mut wave: Vec<(NodeIndex, Vec<Range<usize>>)> = Vec::new();
        loop {
            match walk.step(sorted_keys, sent) {
                WalkStep::Lookup(part) => {
                    let looked_up = self.lookup(from, part.first_key());
                    self.forget_dead(from, &looked_up.dead);
                    done.messages += u64::from(looked_up.messages);
                    done.failures += u64::from(looked_up.failures);
                    done.duration += looked_up.duration;
                    let closest = looked_up
                        .peers
                        .iter()
                        .map(|&p| (self.network.key(p), p))
                        .collect();
                    walk.on_lookup(closest);
                }
                WalkStep::Send { peer, keys } => wave.push((peer, keys)),
                WalkStep::Wait | WalkStep::Done if !wave.is_empty() => {
                    let mut longest = Duration::ZERO;
                    for (peer, ranges) in wave.drain(..) {
                        let (stored, delay) = self.store_once(from, peer, &mut rng);
                        longest = longest.max(self.with_connect(stored, delay));
                        let count: u64 = ranges.iter().map(|r| r.len() as u64).sum();
                        done.messages += count;
                        walk.on_sent();
                        if !stored {
                            done.failures += count;
                            continue;
                        }
                        done.copies_stored += count;
                        for key in ranges.iter().flat_map(|r| &sorted_keys[r.clone()]) {
                            if keep(key) {
                                self.network.store_record(peer, *key);
                            }
                        }
                    }
                    done.duration += longest;
                }
                WalkStep::Wait => unreachable!("a walk waits only for what it asked for"),
                WalkStep::Done => break,
            }
        }
        done.lookups = u64::from(walk.lookups());
        done.regions = walk.regions().len() as u32;
        done.peers = walk.peers_found() as u32;
        done.keys = walk.keys() as u64;
        (done, walk.regions().to_vec())
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
