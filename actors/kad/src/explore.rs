//! Exploring a prefix of the key space until every peer under it is known, as a state machine
//! without I/O: it says which key to look up next, and takes each lookup's answer (the closest
//! peers that answered), one lookup at a time (go-libp2p-kad-dht's `closestPeersToPrefix`).
//!
//! A lookup of a part's first key finds the part's closest peers. When one of them is outside
//! the part, every peer under the part that answers is closer than it, so all were found, as far
//! as the lookup saw: a lookup can miss a few of its key's closest, so a part whose answer brought
//! new peers has its upper half looked up once more. When none is outside, the part may hold
//! more: each half is explored, the lower with the answer in hand (its first key is the part's). Once the prefix is known, it is widened to its parent (and the
//! sibling explored) while it holds fewer than `k` peers: the keys under a prefix with fewer
//! peers have closest peers outside it, and regions cut from it would send their records to the
//! wrong peers (go-libp2p-kad-dht #1263 dropped such keys).

use crate::{key::Key, region::Prefix};

/// The closest peers of one lookup, by key.
type Answer<T> = Vec<(Key, T)>;

/// An exploration in progress; `T` names a peer.
#[derive(Debug)]
pub struct Exploration<T> {
    k: usize,
    /// The prefix whose peers are being found (widened as needed).
    prefix: Prefix,
    /// Parts still to explore, with the closest peers of their first key when already known.
    pending: Vec<(Prefix, Option<Answer<T>>)>,
    /// The part whose lookup is out.
    asked: Option<Prefix>,
    /// Parts looked up to confirm their parent's answer (not confirmed again).
    confirmed: Vec<Prefix>,
    found: Vec<(Key, T)>,
    lookups: u32,
    max_lookups: u32,
}

/// What the driver should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExploreStep {
    /// Look up this key and report its closest peers with [`Exploration::on_answer`].
    Lookup(Key),
    /// Every peer under [`Exploration::prefix`] is known (or the lookups ran out).
    Done,
}

impl<T: Copy + Ord> Exploration<T> {
    /// Explores `prefix` for regions of `k` peers, with at most `max_lookups` lookups.
    pub fn new(prefix: Prefix, k: usize, max_lookups: u32) -> Self {
        Self {
            k: k.max(1),
            prefix,
            pending: vec![(prefix, None)],
            asked: None,
            confirmed: Vec::new(),
            found: Vec::new(),
            lookups: 0,
            max_lookups,
        }
    }

    /// The next step.
    pub fn step(&mut self) -> ExploreStep {
        loop {
            if let Some(part) = self.asked {
                // One lookup at a time: the one out is still the next step.
                return ExploreStep::Lookup(part.first_key());
            }
            let Some((part, known)) = self.pending.pop() else {
                if !self.widen() {
                    return ExploreStep::Done;
                }
                continue;
            };
            match known {
                Some(closest) => self.take(part, closest),
                None if self.lookups < self.max_lookups => {
                    self.lookups += 1;
                    self.asked = Some(part);
                    return ExploreStep::Lookup(part.first_key());
                }
                None => {}
            }
        }
    }

    /// The closest peers that answered the lookup [`step`](Self::step) asked for.
    pub fn on_answer(&mut self, closest: Vec<(Key, T)>) {
        if let Some(part) = self.asked.take() {
            self.take(part, closest);
        }
    }

    fn take(&mut self, part: Prefix, closest: Vec<(Key, T)>) {
        let before = self.found.len();
        self.found.extend(closest.iter().copied());
        self.found.sort_unstable();
        self.found.dedup();
        let fresh = self.found.len() > before;
        let full = !closest.is_empty() && closest.iter().all(|(key, _)| part.contains(key));
        if full && part.bit_len() < 256 {
            self.pending.push((part.child(true), None));
            self.pending.push((part.child(false), Some(closest)));
        } else if fresh && part.bit_len() < 256 && !self.confirmed.contains(&part) {
            // A lookup can miss a few of its key's closest peers: the upper half is looked up
            // too, once, and splits further if it turns out fuller than this answer showed.
            self.confirmed.push(part.child(true));
            self.pending.push((part.child(true), None));
        }
    }

    /// With the prefix explored: widens it to its parent, queuing the sibling, when it holds
    /// fewer than `k` peers; false when it needs no widening (or cannot be widened).
    fn widen(&mut self) -> bool {
        self.found.sort_unstable();
        self.found.dedup();
        let under = self.prefix.range_in(&self.keys()).len();
        if under >= self.k || self.prefix.is_root() || self.lookups >= self.max_lookups {
            return false;
        }
        let last_bit = self.prefix.first_key().bit(self.prefix.bit_len() - 1);
        self.prefix = self.prefix.parent();
        self.pending.push((self.prefix.child(!last_bit), None));
        true
    }

    fn keys(&self) -> Vec<Key> {
        self.found.iter().map(|(key, _)| *key).collect()
    }

    /// The part whose lookup is out: [`ExploreStep::Lookup`] asks for its first key.
    pub fn asked(&self) -> Option<Prefix> {
        self.asked
    }

    /// The prefix explored: the one asked for, or the ancestor it was widened to.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// Lookups asked for so far.
    pub fn lookups(&self) -> u32 {
        self.lookups
    }

    /// The peers found, ascending by key and without repeats; those under [`prefix`](Self::prefix)
    /// are all of them there once [`ExploreStep::Done`].
    pub fn into_found(mut self) -> Vec<(Key, T)> {
        self.found.sort_unstable();
        self.found.dedup();
        self.found
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Explores `prefix` in a network of `peers` (ascending) where a lookup answers with the `k`
    /// closest that answer (`answers`), as a converged lookup would.
    fn explore(
        peers: &[Key],
        answers: impl Fn(&Key) -> bool,
        prefix: Prefix,
        k: usize,
    ) -> (Prefix, Vec<Key>, u32) {
        let mut exploration = Exploration::new(prefix, k, 64);
        while let ExploreStep::Lookup(target) = exploration.step() {
            let mut closest: Vec<(Key, u32)> = peers.iter().filter(|p| answers(p)).map(|p| (*p, 0)).collect();
            closest.sort_by_key(|(p, _)| p.distance(&target));
            closest.truncate(k);
            exploration.on_answer(closest);
        }
        let (explored, lookups) = (exploration.prefix(), exploration.lookups());
        let found = exploration.into_found().into_iter().map(|(key, _)| key).collect();
        (explored, found, lookups)
    }

    fn network(count: usize, seed: u64) -> Vec<Key> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut peers: Vec<Key> = (0..count).map(|_| Key::random(&mut rng)).collect();
        peers.sort();
        peers
    }

    #[test]
    fn every_answering_peer_under_the_prefix_is_found_in_a_few_lookups() {
        let peers = network(5_000, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for len in [4, 6, 8, 10] {
            let prefix = Prefix::of(&Key::random(&mut rng), len);
            // A fifth of the peers never answer.
            let answers = |p: &Key| !p.to_bytes()[31].is_multiple_of(5);
            let (explored, found, lookups) = explore(&peers, answers, prefix, 20);
            let expected: Vec<Key> = peers[explored.range_in(&peers)]
                .iter()
                .copied()
                .filter(answers)
                .collect();
            assert!(explored.covers(&prefix));
            assert!(expected.len() >= 20, "{explored} holds {}", expected.len());
            assert_eq!(found[explored.range_in(&found)], expected[..], "{prefix}");
            // About two lookups per 20 peers found.
            assert!(
                lookups as usize <= 4 + expected.len() / 5,
                "{lookups} lookups for {}",
                expected.len()
            );
        }
    }

    #[test]
    fn a_prefix_with_too_few_peers_is_widened_and_its_sibling_explored() {
        let peers = network(2_000, 3);
        // 10 bits: about 2 peers each, far fewer than 20.
        let prefix = Prefix::of(&peers[1000], 10);
        let (explored, found, _) = explore(&peers, |_| true, prefix, 20);
        assert!(explored.bit_len() < 10 && explored.covers(&prefix));
        let under = explored.range_in(&peers);
        assert!(under.len() >= 20);
        assert_eq!(found[explored.range_in(&found)], peers[under]);
        // A network smaller than k: the whole key space, every peer.
        let tiny = network(7, 4);
        let (explored, found, _) = explore(&tiny, |_| true, prefix, 20);
        assert!(explored.is_root());
        assert_eq!(found, tiny);
    }

    #[test]
    fn lookups_are_bounded() {
        let peers = network(5_000, 5);
        let mut exploration = Exploration::<u32>::new(Prefix::ROOT, 20, 3);
        let mut lookups = 0;
        while let ExploreStep::Lookup(target) = exploration.step() {
            lookups += 1;
            let mut closest: Vec<(Key, u32)> = peers.iter().map(|p| (*p, 0)).collect();
            closest.sort_by_key(|(p, _)| p.distance(&target));
            closest.truncate(20);
            exploration.on_answer(closest);
        }
        assert_eq!(lookups, 3);
    }
}
