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

/// The longest prefix [`Key::preimage`] matches: 2^28 hashes take about a minute.
pub const MAX_PREIMAGE_BITS: u32 = 28;

impl Key {
    /// The key of all zero bits.
    pub const ZERO: Key = Key([0; 4]);

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

    /// The first `len` bits of this key, and every later bit set to `fill`: the first (`false`)
    /// or last (`true`) key under the prefix of length `len`.
    pub fn with_tail(&self, len: u32, fill: bool) -> Key {
        let mut words = self.0;
        for (i, word) in words.iter_mut().enumerate() {
            let kept = len.saturating_sub(64 * i as u32).min(64);
            // The bits of this word past the prefix.
            let tail = if kept == 64 { 0 } else { u64::MAX >> kept };
            *word = if fill { *word | tail } else { *word & !tail };
        }
        Key(words)
    }

    /// Bytes whose SHA-256 (their place in the key space, as peers hash a FIND_NODE's key) starts
    /// with the first `bits` bits of this key (at most [`MAX_PREIMAGE_BITS`]): the only way to ask
    /// peers for the closest to a point of the hashed space. Found by trying counters after
    /// `seed`, about `2^bits` hashes (go-libp2p-kad-dht's sweep keeps a table of preimages for
    /// up to 15 bits instead).
    pub fn preimage(&self, bits: u32, seed: u64) -> [u8; 16] {
        let bits = bits.min(MAX_PREIMAGE_BITS);
        let wanted = self.leading_bits(bits);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&seed.to_be_bytes());
        for counter in 0u64.. {
            bytes[8..].copy_from_slice(&counter.to_be_bytes());
            if Key::hash_of(&bytes).leading_bits(bits) == wanted {
                break;
            }
        }
        bytes
    }

    /// The first `bits` bits (at most 64) as an unsigned number.
    pub fn leading_bits(&self, bits: u32) -> u64 {
        match bits.min(64) {
            0 => 0,
            bits => self.0[0] >> (64 - bits),
        }
    }
}

/// A key whose first byte is `byte`, the rest zero: tests place peers by it.
#[cfg(test)]
pub(crate) fn test_key(byte: u8) -> Key {
    let mut bytes = [0u8; 32];
    bytes[0] = byte;
    Key::from_bytes(bytes)
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
    /// The four 64-bit words, most significant first.
    pub fn words(&self) -> [u64; 4] {
        self.0
    }

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
    fn a_preimage_hashes_under_the_prefix_asked_for() {
        let target = test_key(0b1011_0110);
        for bits in [0, 1, 8, 14] {
            let bytes = target.preimage(bits, 7);
            assert_eq!(Key::hash_of(&bytes).common_prefix_len(&target).min(bits), bits);
        }
        assert_ne!(
            target.preimage(12, 1),
            target.preimage(12, 2),
            "seeds give other preimages"
        );
    }

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
    fn the_common_prefix_ends_at_the_first_differing_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let me = Key::random(&mut rng);
        for index in 0..256u32 {
            // `me` with bit `index` flipped (bits count from the first byte's top bit).
            let mut bytes = me.to_bytes();
            bytes[index as usize / 8] ^= 0x80 >> (index % 8);
            let other = Key::from_bytes(bytes);
            assert_ne!(me.bit(index), other.bit(index));
            assert_eq!(me.common_prefix_len(&other), index);
        }
        for _ in 0..1000 {
            let other = Key::random(&mut rng);
            let first_difference = (0..256).find(|&i| me.bit(i) != other.bit(i)).unwrap_or(256);
            assert_eq!(me.common_prefix_len(&other), first_difference);
        }
        assert_eq!(me.common_prefix_len(&me), 256);
    }

    #[test]
    fn a_tail_fills_every_bit_past_the_prefix() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let key = Key::random(&mut rng);
        for len in [0, 1, 7, 63, 64, 65, 128, 200, 255, 256] {
            let (first, last) = (key.with_tail(len, false), key.with_tail(len, true));
            assert!(first <= key && key <= last, "{len}");
            for index in 0..256 {
                if index < len {
                    assert_eq!(
                        (first.bit(index), last.bit(index)),
                        (key.bit(index), key.bit(index))
                    );
                } else {
                    assert_eq!(
                        (first.bit(index), last.bit(index)),
                        (false, true),
                        "{len} {index}"
                    );
                }
            }
        }
        assert_eq!(key.leading_bits(0), 0);
        assert_eq!(key.leading_bits(64), key.0[0]);
        assert_eq!(key.leading_bits(3), key.0[0] >> 61);
    }
}
