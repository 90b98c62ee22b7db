//! Converged routing tables: what a Kademlia routing table holds once the network has settled,
//! computed directly instead of by thousands of bootstrap lookups (py-dht's trick).
//!
//! Bucket `b` of a node holds peers sharing exactly `b` leading bits with it; once converged, it
//! holds the `k` peers of that range closest to the node. With every id sorted once, a table is
//! one walk down the node's path in the implicit binary trie of the sorted ids: the ids sharing
//! the first `b` bits with the node are one slice, which bit `b` splits into the node's half and
//! the other half, which is bucket `b`. One binary search per bucket, each in a shrinking slice.
//!
//! The same sorted ids give any key's `count` closest peers in `O(count + log n)`
//! ([`closest_sorted`]), which is what a full routing table (the accelerated client) needs.

use crate::key::Key;

/// The converged routing table of the node with id `me`, among the ids `sorted_keys` (sorted,
/// unique; `me` may or may not be among them): for each bucket up to the deepest non-empty one,
/// the up to `k` closest members of the bucket's range, as their `ids`, padded with `empty` to `k`
/// slots a bucket. `ids[i]` names `sorted_keys[i]`.
pub fn converged_table<T: Copy>(sorted_keys: &[Key], ids: &[T], me: &Key, k: usize, empty: T) -> Vec<T> {
    debug_assert_eq!(sorted_keys.len(), ids.len());
    let mut table = Vec::with_capacity(k * 24);
    if sorted_keys.is_empty() {
        return table;
    }
    let (mut start, mut end) = (0, sorted_keys.len());
    for bucket in 0..256u32 {
        let (own, other) = halves(sorted_keys, (start, end), bucket, me);
        let before = table.len();
        closest_in_range(sorted_keys, ids, other, me, bucket + 1, k, false, &mut table);
        table.resize(before + k, empty);
        (start, end) = own;
        // When `me` is alone in its own half, every deeper bucket is empty.
        let me_included = sorted_keys[start..end].binary_search(me).is_ok();
        if end - start == usize::from(me_included) || bucket == 255 {
            break;
        }
    }
    table
}

/// The converged routing table of `me` as a list of positions in `sorted_keys`, bucket by bucket,
/// without padding (for networks small enough to hold tables as lists).
pub fn converged_peers(sorted_keys: &[Key], me: &Key, k: usize) -> Vec<usize> {
    let positions: Vec<usize> = (0..sorted_keys.len()).collect();
    converged_table(sorted_keys, &positions, me, k, usize::MAX)
        .into_iter()
        .filter(|&p| p != usize::MAX && sorted_keys[p] != *me)
        .collect()
}

/// Appends the ids of the up to `count` keys of `sorted_keys` closest to `target`, closest first
/// by trie order (the order of XOR distance).
pub fn closest_sorted<T: Copy>(sorted_keys: &[Key], ids: &[T], target: &Key, count: usize, out: &mut Vec<T>) {
    closest_in_range(
        sorted_keys,
        ids,
        (0, sorted_keys.len()),
        target,
        0,
        count,
        true,
        out,
    );
}

/// Peers sorted by key, for the closest peers of any key in `O(count + log n)`: what an
/// accelerated client's crawl leaves it with, in the simulator and on the network alike.
#[derive(Clone, Debug, Default)]
pub struct SortedPeers<T> {
    keys: Vec<Key>,
    peers: Vec<T>,
}

impl<T: Copy> SortedPeers<T> {
    /// The peers of `keyed`, sorted by key (a key given twice keeps one of its peers).
    pub fn new(mut keyed: Vec<(Key, T)>) -> Self {
        keyed.sort_unstable_by_key(|(key, _)| *key);
        keyed.dedup_by_key(|(key, _)| *key);
        Self {
            keys: keyed.iter().map(|(key, _)| *key).collect(),
            peers: keyed.into_iter().map(|(_, peer)| peer).collect(),
        }
    }

    /// Peers held.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is held.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Appends the up to `count` peers closest to `target` to `out`, closest first.
    pub fn closest(&self, target: &Key, count: usize, out: &mut Vec<T>) {
        closest_sorted(&self.keys, &self.peers, target, count, out);
    }
}

/// Splits `sorted_keys[start..end]`, whose keys share their first `bit` bits, at bit `bit`: the
/// half agreeing with `key` there (closer to it), then the other half.
fn halves(
    sorted_keys: &[Key],
    (start, end): (usize, usize),
    bit: u32,
    key: &Key,
) -> ((usize, usize), (usize, usize)) {
    let split = start + sorted_keys[start..end].partition_point(|k| !k.bit(bit));
    if key.bit(bit) {
        ((split, end), (start, split))
    } else {
        ((start, split), (split, end))
    }
}

/// Appends the up to `need` ids of `sorted_keys[start..end]` closest to `target` (closest first
/// if `ordered`: a bucket's members need no order, a lookup's answer does). All keys of the range share their first `depth` bits, so the range splits at bit `depth` into
/// two sub-ranges; the one agreeing with `target` at that bit is closer.
#[allow(clippy::too_many_arguments)]
fn closest_in_range<T: Copy>(
    sorted_keys: &[Key],
    ids: &[T],
    (start, end): (usize, usize),
    target: &Key,
    depth: u32,
    need: usize,
    ordered: bool,
    out: &mut Vec<T>,
) {
    if need == 0 || start >= end {
        return;
    }
    if end - start == 1 || depth >= 256 {
        out.extend(ids[start..end].iter().take(need));
        return;
    }
    if end - start <= need && !ordered {
        out.extend(&ids[start..end]);
        return;
    }
    let (near, far) = halves(sorted_keys, (start, end), depth, target);
    let before = out.len();
    closest_in_range(sorted_keys, ids, near, target, depth + 1, need, ordered, out);
    let taken = out.len() - before;
    closest_in_range(
        sorted_keys,
        ids,
        far,
        target,
        depth + 1,
        need - taken,
        ordered,
        out,
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn sorted_random(n: usize, seed: u64) -> Vec<Key> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut keys: Vec<Key> = (0..n).map(|_| Key::random(&mut rng)).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    #[test]
    fn buckets_hold_the_closest_peers_of_their_range() {
        let keys = sorted_random(3000, 5);
        for node in [0, 17, 2999] {
            let me = keys[node];
            let mut by_bucket: HashMap<u32, Vec<usize>> = HashMap::new();
            for (peer, key) in keys.iter().enumerate().filter(|&(p, _)| p != node) {
                by_bucket.entry(me.common_prefix_len(key)).or_default().push(peer);
            }
            let table = converged_peers(&keys, &me, 8);
            for (bucket, mut peers) in by_bucket {
                peers.sort_by_key(|&p| keys[p].distance(&me));
                peers.truncate(8);
                peers.sort_unstable();
                let mut held: Vec<usize> = table
                    .iter()
                    .copied()
                    .filter(|&p| me.common_prefix_len(&keys[p]) == bucket)
                    .collect();
                held.sort_unstable();
                assert_eq!(held, peers, "node {node} bucket {bucket}");
            }
        }
    }

    #[test]
    fn a_small_network_knows_everyone_and_an_outsider_gets_a_table() {
        let keys = sorted_random(15, 1);
        for me in &keys {
            assert_eq!(converged_peers(&keys, me, 20).len(), 14);
        }
        let outsider = sorted_random(1, 99)[0];
        assert_eq!(converged_peers(&keys, &outsider, 20).len(), 15);
    }

    #[test]
    fn sorted_peers_find_the_closest_of_unsorted_input() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let keyed: Vec<(Key, u32)> = (0..500).map(|i| (Key::random(&mut rng), i)).collect();
        let peers = SortedPeers::new(keyed.clone());
        assert_eq!(peers.len(), 500);
        for _ in 0..50 {
            let target = Key::random(&mut rng);
            let mut found = Vec::new();
            peers.closest(&target, 20, &mut found);
            let mut expected = keyed.clone();
            expected.sort_by_key(|(key, _)| key.distance(&target));
            let expected: Vec<u32> = expected.into_iter().take(20).map(|(_, id)| id).collect();
            assert_eq!(found, expected);
        }
    }

    #[test]
    fn closest_sorted_agrees_with_brute_force() {
        let keys = sorted_random(2000, 3);
        let positions: Vec<usize> = (0..keys.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for count in [1, 5, 20, 2000, 2500] {
            for _ in 0..50 {
                let target = Key::random(&mut rng);
                let mut found = Vec::new();
                closest_sorted(&keys, &positions, &target, count, &mut found);
                let mut expected = positions.clone();
                expected.sort_by_key(|&p| keys[p].distance(&target));
                expected.truncate(count);
                assert_eq!(found, expected);
            }
        }
    }
}
