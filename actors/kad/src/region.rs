//! Keyspace regions, the unit of a provide sweep: instead of one lookup per key, a sweep finds
//! every peer under a prefix of the key space once and sends each of them the provider records
//! of all the keys it is among the `k` closest to (go-libp2p-kad-dht's `provider` package, which
//! Kubo runs by default since 0.39).
//!
//! Everything here works on sorted keys: the keys under a prefix are one contiguous slice of a
//! sorted list (numeric order is the order of the binary trie), so a region is a range of the
//! sorted peers, and the keys a peer must store are a few ranges of the sorted keys.
//!
//! - [`Prefix`]: a prefix of the key space.
//! - [`regions`]: the smallest prefixes that hold at least `size` of the peers found, tiling the
//!   prefix that was explored ([`explore`](crate::explore) finds them).
//! - [`allocate`]: each key to its `k` closest peers of a region, as ranges of keys per peer.

use std::ops::Range;

use crate::key::Key;

/// The keys whose first `len` bits are those of `bits`; the empty prefix is the whole key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// The prefix's bits, zero past `len`.
    bits: Key,
    len: u16,
}

impl Prefix {
    /// The whole key space.
    pub const ROOT: Prefix = Prefix {
        bits: Key::ZERO,
        len: 0,
    };

    /// The first `len` bits (at most 256) of `key`.
    pub fn of(key: &Key, len: u32) -> Self {
        let len = len.min(256);
        Self {
            bits: key.with_tail(len, false),
            len: len as u16,
        }
    }

    /// Its length in bits.
    pub fn bit_len(&self) -> u32 {
        u32::from(self.len)
    }

    /// Whether it is the whole key space.
    pub fn is_root(&self) -> bool {
        self.len == 0
    }

    /// Whether `key` is under it.
    pub fn contains(&self, key: &Key) -> bool {
        key.common_prefix_len(&self.bits) >= self.bit_len()
    }

    /// Whether `other` is under it (equal included).
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(&other.bits)
    }

    /// The half of it whose next bit is `bit` (itself when it is a whole key).
    pub fn child(&self, bit: bool) -> Self {
        if self.len == 256 {
            return *self;
        }
        let mut bytes = self.bits.to_bytes();
        if bit {
            bytes[usize::from(self.len) / 8] |= 0x80 >> (self.len % 8);
        }
        Self {
            bits: Key::from_bytes(bytes),
            len: self.len + 1,
        }
    }

    /// The prefix one bit shorter (the root stays the root).
    pub fn parent(&self) -> Self {
        Self::of(&self.bits, self.bit_len().saturating_sub(1))
    }

    /// The first key under it; a lookup of this key finds the peers closest to the prefix.
    pub fn first_key(&self) -> Key {
        self.bits
    }

    /// The greatest prefix under it in prefix order (its last key, 256 bits): every prefix under
    /// it lies in `self..=self.last()`.
    pub fn last(&self) -> Self {
        Self::of(&self.bits.with_tail(self.bit_len(), true), 256)
    }

    /// The positions of the keys under it in `sorted` (ascending keys).
    pub fn range_in(&self, sorted: &[Key]) -> Range<usize> {
        let (first, last) = (self.bits, self.bits.with_tail(self.bit_len(), true));
        let start = sorted.partition_point(|k| *k < first);
        let end = start + sorted[start..].partition_point(|k| *k <= last);
        start..end
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;

    /// Its bits as [`Display`](std::fmt::Display) writes them: `0`s and `1`s, or `ε`.
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "ε" {
            return Ok(Self::ROOT);
        }
        if text.is_empty() || text.len() > 256 || !text.bytes().all(|b| b == b'0' || b == b'1') {
            return Err(format!(
                "{text:?} is not a prefix: up to 256 0s and 1s, or ε for the whole key space"
            ));
        }
        let mut bytes = [0u8; 32];
        for (index, bit) in text.bytes().enumerate() {
            if bit == b'1' {
                bytes[index / 8] |= 0x80 >> (index % 8);
            }
        }
        Ok(Self::of(&Key::from_bytes(bytes), text.len() as u32))
    }
}

impl std::fmt::Display for Prefix {
    /// Its bits as `0`s and `1`s (`ε` for the root), as go-libp2p-kad-dht logs regions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.len == 0 {
            return f.write_str("ε");
        }
        for index in 0..self.bit_len() {
            f.write_str(if self.bits.bit(index) { "1" } else { "0" })?;
        }
        Ok(())
    }
}

/// A region: a prefix and the peers under it, as positions in the sorted peers it was cut from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub prefix: Prefix,
    pub peers: Range<usize>,
}

/// The regions of `covered` among `sorted_peers` (ascending): split in two for as long as both
/// halves hold at least `size` peers, so each region holds at least `size` (when `covered` does)
/// and fewer than `2 × size` in a random network. They tile `covered`: every key under it is
/// under exactly one region, in key order.
pub fn regions(sorted_peers: &[Key], covered: Prefix, size: usize) -> Vec<Region> {
    let mut out = Vec::new();
    split(
        sorted_peers,
        covered,
        covered.range_in(sorted_peers),
        size.max(1),
        &mut out,
    );
    out
}

fn split(sorted_peers: &[Key], prefix: Prefix, peers: Range<usize>, size: usize, out: &mut Vec<Region>) {
    if prefix.bit_len() < 256 {
        let upper = prefix.child(true).first_key();
        let middle = peers.start + sorted_peers[peers.clone()].partition_point(|k| *k < upper);
        if middle - peers.start >= size && peers.end - middle >= size {
            split(sorted_peers, prefix.child(false), peers.start..middle, size, out);
            split(sorted_peers, prefix.child(true), middle..peers.end, size, out);
            return;
        }
    }
    out.push(Region { prefix, peers });
}

/// For each peer of `peers` (ascending, at positions `0..peers.len()`), the keys it must store: a
/// key of `keys` (ascending) goes to its `k` closest peers of `peers` by XOR distance. Each
/// peer's keys come as ranges of positions in `keys`, one per subtrie, so that a region of many
/// keys costs memory per range, not per key and copy.
pub fn allocate(peers: &[Key], keys: &[Key], k: usize) -> Vec<Vec<Range<usize>>> {
    let mut batches = vec![Vec::new(); peers.len()];
    if !keys.is_empty() && k > 0 {
        allocate_at(peers, 0..peers.len(), keys, 0..keys.len(), k, 0, &mut batches);
    }
    batches
}

/// Gives the keys at `key_range` to their `k` closest of the peers at `peer_range`. Every key and
/// peer there agree on the bits before `depth` up to a difference common to all pairs, so
/// their order of XOR distance is decided from bit `depth` on.
fn allocate_at(
    peers: &[Key],
    peer_range: Range<usize>,
    keys: &[Key],
    key_range: Range<usize>,
    k: usize,
    depth: u32,
    batches: &mut [Vec<Range<usize>>],
) {
    if key_range.is_empty() || peer_range.is_empty() {
        return;
    }
    if peer_range.len() <= k || depth == 256 {
        for batch in &mut batches[peer_range.start..peer_range.start + k.min(peer_range.len())] {
            batch.push(key_range.clone());
        }
        return;
    }
    let halves = |range: Range<usize>, sorted: &[Key]| {
        let middle = range.start + sorted[range.clone()].partition_point(|key| !key.bit(depth));
        [range.start..middle, middle..range.end]
    };
    let peer_halves = halves(peer_range, peers);
    let key_halves = halves(key_range, keys);
    for side in 0..2 {
        let (same, other, side_keys) = (&peer_halves[side], &peer_halves[1 - side], &key_halves[side]);
        if side_keys.is_empty() {
            continue;
        }
        if same.len() > k {
            allocate_at(
                peers,
                same.clone(),
                keys,
                side_keys.clone(),
                k,
                depth + 1,
                batches,
            );
            continue;
        }
        // Every peer on the keys' side is closer than any on the other side.
        for batch in &mut batches[same.clone()] {
            batch.push(side_keys.clone());
        }
        let missing = k - same.len();
        if missing > 0 {
            allocate_at(
                peers,
                other.clone(),
                keys,
                side_keys.clone(),
                missing,
                depth + 1,
                batches,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn sorted_random(count: usize, rng: &mut impl Rng) -> Vec<Key> {
        let mut keys: Vec<Key> = (0..count).map(|_| Key::random(rng)).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn a_prefix_holds_the_keys_that_start_with_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let keys = sorted_random(2000, &mut rng);
        for len in [0, 1, 3, 8, 11] {
            let prefix = Prefix::of(&keys[700], len);
            let range = prefix.range_in(&keys);
            assert!(range.contains(&700));
            for (i, key) in keys.iter().enumerate() {
                assert_eq!(prefix.contains(key), range.contains(&i), "{prefix} {key}");
            }
            assert_eq!(
                prefix.child(false).range_in(&keys).len() + prefix.child(true).range_in(&keys).len(),
                range.len()
            );
            assert_eq!(prefix.child(true).parent(), prefix);
            assert!(prefix.covers(&prefix.child(true)) && !prefix.child(true).covers(&prefix));
            assert!(prefix < prefix.child(false) && prefix.child(true).last() <= prefix.last());
            assert!(prefix.covers(&prefix.last()));
        }
        assert_eq!(Prefix::ROOT.range_in(&keys), 0..keys.len());
        assert_eq!(Prefix::ROOT.parent(), Prefix::ROOT);
        assert_eq!(Prefix::ROOT.child(true).child(false).to_string(), "10");
        // Read back as written.
        for prefix in [
            Prefix::ROOT,
            Prefix::ROOT.child(true).child(false),
            Prefix::of(&keys[7], 19),
        ] {
            assert_eq!(prefix.to_string().parse::<Prefix>(), Ok(prefix));
        }
        for bad in ["", "012", &"1".repeat(257)] {
            assert!(
                bad.parse::<Prefix>().unwrap_err().contains("not a prefix"),
                "{bad}"
            );
        }
    }

    #[test]
    fn regions_tile_the_explored_prefix_and_hold_enough_peers() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let peers = sorted_random(5000, &mut rng);
        for (covered, size) in [
            (Prefix::ROOT, 20),
            (Prefix::of(&peers[0], 3), 20),
            (Prefix::ROOT, 21),
        ] {
            let found = regions(&peers, covered, size);
            let peer_range = covered.range_in(&peers);
            assert!(found.len() > 1);
            // Contiguous, in key order, covering exactly the explored peers.
            assert_eq!(found[0].peers.start, peer_range.start);
            assert_eq!(found.last().unwrap().peers.end, peer_range.end);
            for pair in found.windows(2) {
                assert_eq!(pair[0].peers.end, pair[1].peers.start);
                assert!(pair[0].prefix < pair[1].prefix);
            }
            for region in &found {
                assert!(covered.covers(&region.prefix));
                assert_eq!(region.prefix.range_in(&peers), region.peers);
                assert!(
                    region.peers.len() >= size,
                    "{} holds {}",
                    region.prefix,
                    region.peers.len()
                );
                // Minimal: cut once more, one half would hold too few.
                let halves = [false, true].map(|bit| region.prefix.child(bit).range_in(&peers).len());
                assert!(
                    halves.iter().any(|h| *h < size),
                    "{} could split: {halves:?}",
                    region.prefix
                );
            }
            // Every key under the explored prefix falls in exactly one region.
            let keys = sorted_random(3000, &mut rng);
            for key in keys.iter().filter(|k| covered.contains(k)) {
                assert_eq!(found.iter().filter(|r| r.prefix.contains(key)).count(), 1);
            }
        }
    }

    /// The `k` closest of `peers` to `key`, by sorting every distance.
    fn brute_force_closest(peers: &[Key], key: &Key, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..peers.len()).collect();
        order.sort_by_key(|&p| peers[p].distance(key));
        order.truncate(k);
        order.sort_unstable();
        order
    }

    #[test]
    fn every_key_goes_to_exactly_its_k_closest_peers() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for (peer_count, key_count, k) in [
            (60, 500, 20),
            (25, 300, 20),
            (20, 50, 20),
            (7, 40, 20),
            (200, 2000, 3),
            (1, 5, 20),
        ] {
            let peers = sorted_random(peer_count, &mut rng);
            let keys = sorted_random(key_count, &mut rng);
            let batches = allocate(&peers, &keys, k);
            let mut holders = vec![Vec::new(); keys.len()];
            for (peer, ranges) in batches.iter().enumerate() {
                for range in ranges {
                    for key in range.clone() {
                        holders[key].push(peer);
                    }
                }
            }
            for (key, mut holding) in holders.into_iter().enumerate() {
                holding.sort_unstable();
                assert_eq!(
                    holding,
                    brute_force_closest(&peers, &keys[key], k),
                    "{peer_count} peers, k {k}"
                );
            }
            // Ranges, not copies: far fewer ranges than key copies.
            let ranges: usize = batches.iter().map(Vec::len).sum();
            let copies = keys.len() * k.min(peers.len());
            assert!(
                ranges * 4 <= copies || peer_count <= k,
                "{ranges} ranges for {copies} copies"
            );
        }
        assert!(allocate(&[], &[Key::ZERO], 20).is_empty());
        assert!(allocate(&[Key::ZERO], &[], 20).iter().all(Vec::is_empty));
    }
}
