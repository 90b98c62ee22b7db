//! One walk of a provide sweep, as a state machine without I/O: explore a prefix until every
//! peer under it is known ([`explore`](crate::explore)), cut the peers into
//! [`regions`](crate::region::regions), then send each peer the records of the keys it is among
//! the `k` closest to, a bounded number of peers at a time (go-libp2p-kad-dht's
//! `SweepingProvider` worker: one exploration, then up to 20 connections).
//!
//! The driver runs the lookups and the sends; the keys stay in the driver's sorted slice, and a
//! send names them as ranges of positions in it, so a region of many keys costs memory per range.
//!
//! A walk skips the keys of regions the round already sent: a prefix of fewer than `k` peers is
//! widened over its sibling, and when the sibling was walked already its keys sit at their `k`
//! closest (a region of `k` peers or more holds every key's `k` closest), so sending them again
//! would only repeat records.

use std::{
    collections::{BTreeSet, VecDeque},
    ops::Range,
};

use crate::{
    explore::{Exploration, ExploreStep},
    key::Key,
    region::{self, Prefix},
};

/// Lookups one walk may run before it stops exploring (go-libp2p-kad-dht's
/// `maxExplorationPrefixSearches`).
pub const MAX_EXPLORATION_LOOKUPS: u32 = 64;

/// Peers one walk sends to at once (go-libp2p-kad-dht: 20 connections a worker).
pub const CONNECTIONS_PER_WALK: usize = 20;

/// What the driver should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkStep<T> {
    /// Look up the first key of this part of the prefix, then report the closest peers that
    /// answered with [`Walk::on_lookup`].
    Lookup(Prefix),
    /// Send `peer` the records of the keys at these positions of the sorted keys, then report
    /// [`Walk::on_sent`].
    Send { peer: T, keys: Vec<Range<usize>> },
    /// Nothing to start until a lookup or a send in flight reports.
    Wait,
    /// Every send reported.
    Done,
}

#[derive(Debug)]
enum Phase<T> {
    Exploring(Exploration<T>),
    Sending,
}

/// A walk in progress; `T` names a peer.
#[derive(Debug)]
pub struct Walk<T> {
    prefix: Prefix,
    k: usize,
    phase: Phase<T>,
    lookup_out: bool,
    lookups: u32,
    sends: VecDeque<(T, Vec<Range<usize>>)>,
    sends_out: usize,
    max_sends_out: usize,
    regions: Vec<Prefix>,
    peers_found: usize,
    /// Keys whose records the walk sends (each to its `k` closest).
    keys: usize,
}

impl<T: Copy + Ord> Walk<T> {
    /// A walk of `prefix` for `k` copies a key, sending to at most `connections` peers at once.
    pub fn new(prefix: Prefix, k: usize, max_lookups: u32, connections: usize) -> Self {
        Self {
            prefix,
            k,
            phase: Phase::Exploring(Exploration::new(prefix, k, max_lookups)),
            lookup_out: false,
            lookups: 0,
            sends: VecDeque::new(),
            sends_out: 0,
            max_sends_out: connections.max(1),
            regions: Vec::new(),
            peers_found: 0,
            keys: 0,
        }
    }

    /// The next step; `sorted_keys` are every key of the node, ascending (the same slice each
    /// call), and `sent` the regions whose keys the round already sent (read once, when the
    /// exploration ends).
    pub fn step(&mut self, sorted_keys: &[Key], sent: &BTreeSet<Prefix>) -> WalkStep<T> {
        if let Phase::Exploring(exploration) = &mut self.phase {
            if self.lookup_out {
                return WalkStep::Wait;
            }
            match exploration.step() {
                ExploreStep::Lookup(target) => {
                    self.lookup_out = true;
                    let part = exploration.asked().unwrap_or_else(|| Prefix::of(&target, 256));
                    return WalkStep::Lookup(part);
                }
                ExploreStep::Done => self.plan_sends(sorted_keys, sent),
            }
        }
        if self.sends_out >= self.max_sends_out {
            return WalkStep::Wait;
        }
        match self.sends.pop_front() {
            Some((peer, keys)) => {
                self.sends_out += 1;
                WalkStep::Send { peer, keys }
            }
            None if self.sends_out == 0 => WalkStep::Done,
            None => WalkStep::Wait,
        }
    }

    /// The closest peers that answered the lookup [`WalkStep::Lookup`] asked for.
    pub fn on_lookup(&mut self, closest: Vec<(Key, T)>) {
        if let Phase::Exploring(exploration) = &mut self.phase {
            self.lookup_out = false;
            exploration.on_answer(closest);
        }
    }

    /// A send ended (stored or failed).
    pub fn on_sent(&mut self) {
        self.sends_out = self.sends_out.saturating_sub(1);
    }

    /// Cuts the explored prefix into regions and queues each peer's keys, but those under a
    /// region already sent.
    fn plan_sends(&mut self, sorted_keys: &[Key], sent: &BTreeSet<Prefix>) {
        let Phase::Exploring(exploration) = std::mem::replace(&mut self.phase, Phase::Sending) else {
            return;
        };
        self.lookups = exploration.lookups();
        let explored = exploration.prefix();
        let peers = exploration.into_found();
        self.peers_found = peers.len();
        let peer_keys: Vec<Key> = peers.iter().map(|(key, _)| *key).collect();
        for cut in region::regions(&peer_keys, explored, self.k) {
            let parts = unsent_keys(cut.prefix, sorted_keys, sent);
            if parts.is_empty() {
                continue;
            }
            self.regions.push(cut.prefix);
            let region_peers = &peer_keys[cut.peers.clone()];
            let mut per_peer: Vec<Vec<Range<usize>>> = vec![Vec::new(); region_peers.len()];
            for part in parts {
                self.keys += part.len();
                let batches = region::allocate(region_peers, &sorted_keys[part.clone()], self.k);
                for (ranges, into) in batches.into_iter().zip(&mut per_peer) {
                    into.extend(
                        ranges
                            .into_iter()
                            .map(|r| part.start + r.start..part.start + r.end),
                    );
                }
            }
            for (offset, ranges) in per_peer.into_iter().enumerate() {
                if !ranges.is_empty() {
                    self.sends.push_back((peers[cut.peers.start + offset].1, ranges));
                }
            }
        }
    }

    /// The prefix scheduled for this walk.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// Lookups run (final once the sends started).
    pub fn lookups(&self) -> u32 {
        match &self.phase {
            Phase::Exploring(exploration) => exploration.lookups(),
            Phase::Sending => self.lookups,
        }
    }

    /// Peers the exploration found (0 while exploring).
    pub fn peers_found(&self) -> usize {
        self.peers_found
    }

    /// Keys whose records the walk sends (0 while exploring).
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// The prefixes of the regions that held keys, once the sends were planned.
    pub fn regions(&self) -> &[Prefix] {
        &self.regions
    }
}

/// The positions of `region`'s keys in `sorted_keys` outside every region of `sent`, as
/// ascending non-empty ranges.
fn unsent_keys(region: Prefix, sorted_keys: &[Key], sent: &BTreeSet<Prefix>) -> Vec<Range<usize>> {
    let mut ancestor = region;
    loop {
        if sent.contains(&ancestor) {
            return Vec::new();
        }
        if ancestor.is_root() {
            break;
        }
        ancestor = ancestor.parent();
    }
    let whole = region.range_in(sorted_keys);
    let mut parts = Vec::new();
    let mut start = whole.start;
    for hole in sent.range(region..=region.last()).filter(|d| region.covers(d)) {
        let skipped = hole.range_in(sorted_keys);
        // A sent region inside another sent one is already skipped.
        if skipped.start < start {
            start = start.max(skipped.end);
            continue;
        }
        if skipped.start > start {
            parts.push(start..skipped.start);
        }
        start = skipped.end;
    }
    if start < whole.end {
        parts.push(start..whole.end);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(first: u8) -> Key {
        let mut bytes = [0u8; 32];
        bytes[0] = first;
        Key::from_bytes(bytes)
    }

    /// The `k` of `peers` closest to `part`'s first key, as a lookup of it answers.
    fn closest(peers: &[(Key, u32)], part: Prefix, k: usize) -> Vec<(Key, u32)> {
        let mut closest = peers.to_vec();
        closest.sort_by_key(|(p, _)| p.distance(&part.first_key()));
        closest.truncate(k);
        closest
    }

    /// A walk of the root over 40 peers: one lookup that finds all of them (every one under
    /// the root), so the exploration splits and looks up the halves; answered from the full set.
    #[test]
    fn a_walk_explores_then_sends_each_key_to_k_peers_at_most_connections_at_once() {
        let peers: Vec<(Key, u32)> = (0..40u32).map(|i| (key((i * 6) as u8), i)).collect();
        let mut keys: Vec<Key> = (0..100u32).map(|i| key((i * 2 + 1) as u8)).collect();
        keys.sort_unstable();
        let k = 4;
        let mut walk: Walk<u32> = Walk::new(Prefix::ROOT, k, MAX_EXPLORATION_LOOKUPS, 3);
        let mut copies = vec![0usize; keys.len()];
        let mut out = Vec::new();
        loop {
            match walk.step(&keys, &BTreeSet::new()) {
                WalkStep::Lookup(part) => walk.on_lookup(closest(&peers, part, k)),
                WalkStep::Send { peer, keys: ranges } => {
                    for position in ranges.into_iter().flatten() {
                        copies[position] += 1;
                    }
                    out.push(peer);
                }
                WalkStep::Wait => {
                    assert!((1..=3).contains(&out.len()), "at most 3 sends out at once");
                    for _ in out.drain(..) {
                        walk.on_sent();
                    }
                }
                WalkStep::Done => break,
            }
        }
        assert!(walk.lookups() > 1);
        assert!(!walk.regions().is_empty());
        assert_eq!(walk.peers_found(), 40);
        assert!(
            copies.iter().all(|&c| c == k),
            "every key to exactly k peers: {copies:?}"
        );
    }

    #[test]
    fn keys_of_regions_already_sent_are_skipped() {
        let keys: Vec<Key> = (0..=255u32).map(|i| key(i as u8)).collect();
        let region = Prefix::of(&key(0), 1); // keys 0..=127
        let sent: BTreeSet<Prefix> =
            [Prefix::of(&key(0b0010_0000), 3), Prefix::of(&key(0b0100_0000), 2)].into();
        // 001xxxxx (32..=63) and 01xxxxxx (64..=127) were sent: 0..=31 is left.
        assert_eq!(unsent_keys(region, &keys, &sent), vec![0..32]);
        assert_eq!(
            unsent_keys(Prefix::of(&key(0b0100_0000), 3), &keys, &sent),
            Vec::<Range<usize>>::new()
        );
        assert_eq!(unsent_keys(Prefix::ROOT, &keys, &sent), vec![0..32, 128..256]);
        assert_eq!(unsent_keys(region, &keys, &BTreeSet::new()), vec![0..128]);
    }

    #[test]
    fn a_walk_of_a_prefix_without_keys_sends_nothing() {
        let peers: Vec<(Key, u32)> = (0..10u32).map(|i| (key(i as u8), i)).collect();
        let keys = vec![key(200)];
        let mut walk: Walk<u32> = Walk::new(Prefix::of(&key(0), 1), 2, 8, 20);
        loop {
            match walk.step(&keys, &BTreeSet::new()) {
                WalkStep::Lookup(part) => walk.on_lookup(closest(&peers, part, 2)),
                WalkStep::Send { .. } => panic!("no key under the prefix"),
                WalkStep::Wait => panic!("nothing in flight"),
                WalkStep::Done => break,
            }
        }
        assert!(walk.regions().is_empty());
    }
}
