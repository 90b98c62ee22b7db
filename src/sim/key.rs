//! 256-bit Kademlia keys and the XOR metric.
//!
//! A key is four big-endian 64-bit words, so the derived ordering of [`Key`] is the numeric order
//! of the 256-bit number and the ordering of [`Distance`] is the order of XOR distances.

use rand::Rng;
use sha2::{Digest, Sha256};

/// A point of the 256-bit key space: a node id or a content key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u64; 4]);

/// The XOR distance between two keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Distance([u64; 4]);

impl Key {
    /// The key of 32 big-endian bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let word = |i: usize| u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Self([word(0), word(1), word(2), word(3)])
    }

    /// The key of arbitrary bytes in libp2p's key space: their SHA-256 (as `kbucket::Key` does
    /// for peer ids and record keys).
    pub fn hash_of(bytes: &[u8]) -> Self {
        Self::from_bytes(Sha256::digest(bytes).into())
    }

    /// A uniformly random key.
    pub fn random(rng: &mut impl Rng) -> Self {
        Self(rng.gen())
    }

    /// The 32 big-endian bytes.
    pub fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// XOR distance to `other`.
    #[inline]
    pub fn distance(&self, other: &Key) -> Distance {
        Distance([
            self.0[0] ^ other.0[0],
            self.0[1] ^ other.0[1],
            self.0[2] ^ other.0[2],
            self.0[3] ^ other.0[3],
        ])
    }

    /// Bit `index`, counted from the most significant (0) to the least (255).
    #[inline]
    pub fn bit(&self, index: u32) -> bool {
        let word = self.0[(index / 64) as usize];
        (word >> (63 - index % 64)) & 1 == 1
    }

    /// Leading bits shared with `other` (256 for equal keys).
    #[inline]
    pub fn common_prefix_len(&self, other: &Key) -> u32 {
        self.distance(other).leading_zeros()
    }

    /// The smallest and largest keys that share this key's first `len` bits (`len` ≤ 256).
    pub fn prefix_range(&self, len: u32) -> (Key, Key) {
        let (mut low, mut high) = (*self, *self);
        for bit in len.min(256)..256 {
            low.set(bit, false);
            high.set(bit, true);
        }
        (low, high)
    }

    /// The smallest and largest keys that share this key's first `len` bits, then differ from it
    /// at bit `len` (`len` < 256): the key range of k-bucket `len` of a node with this id.
    pub fn bucket_range(&self, len: u32) -> (Key, Key) {
        debug_assert!(len < 256);
        let mut sibling = *self;
        sibling.flip(len);
        sibling.prefix_range(len + 1)
    }

    fn flip(&mut self, index: u32) {
        self.0[(index / 64) as usize] ^= 1 << (63 - index % 64);
    }

    fn set(&mut self, index: u32, value: bool) {
        let mask = 1 << (63 - index % 64);
        let word = &mut self.0[(index / 64) as usize];
        if value {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:016x}{:016x}{:016x}{:016x}",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl Distance {
    /// Leading zero bits: the common prefix length of the two keys.
    #[inline]
    pub fn leading_zeros(&self) -> u32 {
        let mut zeros = 0;
        for word in self.0 {
            if word != 0 {
                return zeros + word.leading_zeros();
            }
            zeros += 64;
        }
        zeros
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn bytes_round_trip_and_order_is_numeric() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let a = Key::random(&mut rng);
        assert_eq!(Key::from_bytes(a.to_bytes()), a);
        let mut small = [0u8; 32];
        small[31] = 1;
        let mut large = [0u8; 32];
        large[0] = 1;
        assert!(Key::from_bytes(small) < Key::from_bytes(large));
    }

    #[test]
    fn bucket_range_holds_exactly_the_keys_of_that_bucket() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let me = Key::random(&mut rng);
        for len in [0, 1, 63, 64, 65, 200, 255] {
            let (low, high) = me.bucket_range(len);
            assert_eq!(me.common_prefix_len(&low), len);
            assert_eq!(me.common_prefix_len(&high), len);
            assert!(low <= high);
            for _ in 0..100 {
                let other = Key::random(&mut rng);
                let inside = low <= other && other <= high;
                assert_eq!(inside, me.common_prefix_len(&other) == len, "len {len}");
            }
        }
        assert_eq!(me.common_prefix_len(&me), 256);
    }
}
