//! The network size estimator of optimistic provide (go-libp2p-kad-dht's `netsize`, after the
//! optimistic-provide proposal).
//!
//! In a network of `N` ids spread uniformly, the `i`-th closest id to a random key lies at an
//! expected normed distance (XOR distance / 2^256) of `i / (N + 1)`. Every lookup that converged
//! on a key's `k` closest peers is a sample of those `k` distances; the estimator averages the
//! recent samples per rank, fits a line through the origin and reads `N = 1 / slope - 1`.
//!
//! One deliberate difference from go-libp2p-kad-dht: the fit weighs each rank by the inverse
//! variance of its mean (weighted least squares). Go multiplies by the standard deviation, which
//! gives the noisiest (farthest) ranks the most say.

use std::{collections::VecDeque, time::Duration};

use crate::{
    key::{Distance, Key},
    lookup::Termination,
};

/// Samples older than this are dropped (go: 2 h).
pub const MAX_SAMPLE_AGE: Duration = Duration::from_secs(2 * 60 * 60);
/// Samples kept per rank, newest first (go: 150).
pub const MAX_SAMPLES: usize = 150;
/// Samples per rank before there is an estimate (go: 5).
pub const MIN_SAMPLES: usize = 5;

/// The normed XOR distance of `distance`: its value over 2^256, in `[0, 1)`.
pub fn normed_distance(distance: &Distance) -> f64 {
    distance.words().iter().rev().fold(0.0, |acc, &word| {
        (acc + word as f64) / 18_446_744_073_709_551_616.0
    })
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    distance: f64,
    weight: f64,
    at: Duration,
}

/// Why there is no estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EstimateError {
    /// Fewer than [`MIN_SAMPLES`] recent lookups.
    NotEnoughData,
    /// A lookup's closest peers were not `k` many.
    WrongNumberOfPeers,
}

impl std::fmt::Display for EstimateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotEnoughData => "not enough recent lookups to estimate the network size",
            Self::WrongNumberOfPeers => "a lookup's closest peers must be k many",
        })
    }
}

impl std::error::Error for EstimateError {}

/// Estimates the number of DHT servers from the lookups a node made recently.
#[derive(Clone, Debug)]
pub struct NetworkSizeEstimator {
    /// Samples per rank (rank 1 first), oldest first.
    ranks: Vec<VecDeque<Sample>>,
    cached: Option<f64>,
}

impl NetworkSizeEstimator {
    /// An estimator for lookups that converge on `k` peers.
    pub fn new(k: usize) -> Self {
        Self {
            ranks: vec![VecDeque::new(); k.max(1)],
            cached: None,
        }
    }

    /// The weight of a lookup's sample (go's `calcWeight`): halved for every slot missing from
    /// the local bucket the key falls in, since a sparse bucket means a sample less likely to be
    /// the true closest. `bucket_level` is the number of peers in that bucket.
    pub fn weight(&self, bucket_level: usize) -> f64 {
        let k = self.ranks.len() as i32;
        2f64.powi((bucket_level.min(self.ranks.len()) as i32) - k)
    }

    /// Feeds a lookup of `target` that ended at `now`, with `closest` its closest peers that
    /// answered (closest first) and `bucket_level` the peers of the local bucket `target` falls
    /// in; returns whether it was a sample. Only a lookup that converged is one, and only with
    /// `k` peers: the rule the real engine and the simulator share.
    pub fn track_lookup(
        &mut self,
        now: Duration,
        target: &Key,
        termination: Option<Termination>,
        closest: &[Key],
        bucket_level: usize,
    ) -> bool {
        if termination != Some(Termination::Converged) {
            return false;
        }
        let weight = self.weight(bucket_level);
        self.track(now, target, closest, weight).is_ok()
    }

    /// Adds a converged lookup of `target` at time `now`: its `k` closest peers, closest first.
    pub fn track(
        &mut self,
        now: Duration,
        target: &Key,
        closest: &[Key],
        weight: f64,
    ) -> Result<(), EstimateError> {
        if closest.len() != self.ranks.len() {
            return Err(EstimateError::WrongNumberOfPeers);
        }
        self.cached = None;
        for (samples, key) in self.ranks.iter_mut().zip(closest) {
            samples.push_back(Sample {
                distance: normed_distance(&key.distance(target)),
                weight,
                at: now,
            });
            if samples.len() > MAX_SAMPLES {
                samples.pop_front();
            }
        }
        Ok(())
    }

    /// The estimated network size at time `now`.
    pub fn estimate(&mut self, now: Duration) -> Result<f64, EstimateError> {
        let mut expired = false;
        let cutoff = now.checked_sub(MAX_SAMPLE_AGE);
        for samples in &mut self.ranks {
            while samples.front().is_some_and(|s| cutoff.is_some_and(|c| s.at < c)) {
                samples.pop_front();
                expired = true;
            }
        }
        if expired {
            self.cached = None;
        }
        if let Some(size) = self.cached {
            return Ok(size);
        }
        let (mut xy, mut xx) = (0.0, 0.0);
        for (index, samples) in self.ranks.iter().enumerate() {
            if samples.len() < MIN_SAMPLES {
                return Err(EstimateError::NotEnoughData);
            }
            let weights: f64 = samples.iter().map(|s| s.weight).sum();
            let mean = samples.iter().map(|s| s.weight * s.distance).sum::<f64>() / weights;
            let variance = samples
                .iter()
                .map(|s| s.weight * (s.distance - mean).powi(2))
                .sum::<f64>()
                / weights;
            // The variance of the mean; a floor keeps identical samples from dividing by zero.
            let variance_of_mean = (variance / samples.len() as f64).max(f64::MIN_POSITIVE);
            let x = (index + 1) as f64;
            xy += x * mean / variance_of_mean;
            xx += x * x / variance_of_mean;
        }
        let slope = xy / xx;
        let size = (1.0 / slope - 1.0).max(1.0);
        self.cached = Some(size);
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::table::closest_sorted;

    /// Estimates the size of a network of `nodes` random ids from `lookups` converged lookups.
    fn estimate(nodes: usize, lookups: usize, seed: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut keys: Vec<Key> = (0..nodes).map(|_| Key::random(&mut rng)).collect();
        keys.sort_unstable();
        let mut estimator = NetworkSizeEstimator::new(20);
        let mut closest = Vec::new();
        for i in 0..lookups {
            let target = Key::random(&mut rng);
            closest.clear();
            closest_sorted(&keys, &keys, &target, 20, &mut closest);
            estimator
                .track(Duration::from_secs(i as u64), &target, &closest, 1.0)
                .unwrap();
        }
        estimator.estimate(Duration::from_secs(lookups as u64)).unwrap()
    }

    #[test]
    fn only_a_converged_lookup_with_k_answers_is_a_sample() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut keys: Vec<Key> = (0..500).map(|_| Key::random(&mut rng)).collect();
        keys.sort_unstable();
        let target = Key::random(&mut rng);
        let mut closest = Vec::new();
        closest_sorted(&keys, &keys, &target, 20, &mut closest);
        let mut estimator = NetworkSizeEstimator::new(20);
        let now = Duration::from_secs(1);
        for ended in [
            None,
            Some(Termination::NoProgress),
            Some(Termination::Satisfied),
            Some(Termination::Stopped),
            Some(Termination::Exhausted),
        ] {
            assert!(
                !estimator.track_lookup(now, &target, ended, &closest, 20),
                "{ended:?}"
            );
        }
        let converged = Some(Termination::Converged);
        assert!(!estimator.track_lookup(now, &target, converged, &closest[..19], 20));
        assert!(estimator.track_lookup(now, &target, converged, &closest, 20));
        // One sample, weighted by the bucket's level: a full bucket counts fully.
        assert_eq!(estimator.ranks[0].len(), 1);
        assert_eq!(estimator.ranks[0][0].weight, 1.0);
        assert!(estimator.track_lookup(now, &target, converged, &closest, 18));
        assert_eq!(estimator.ranks[0][1].weight, 0.25);
    }

    #[test]
    fn estimates_within_twenty_percent_from_1k_to_100k_nodes() {
        for (nodes, seed) in [(1_000, 1), (5_000, 2), (25_000, 3), (100_000, 4)] {
            let size = estimate(nodes, 60, seed);
            let error = size / nodes as f64 - 1.0;
            assert!(
                error.abs() <= 0.2,
                "{nodes} nodes estimated as {size:.0} ({:+.1} %)",
                error * 100.0
            );
        }
    }

    #[test]
    fn needs_five_lookups_and_forgets_old_ones() {
        let mut estimator = NetworkSizeEstimator::new(2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let target = Key::random(&mut rng);
        let closest = [Key::random(&mut rng), Key::random(&mut rng)];
        for i in 0..4 {
            estimator
                .track(Duration::from_secs(i), &target, &closest, 1.0)
                .unwrap();
        }
        assert_eq!(
            estimator.estimate(Duration::from_secs(4)),
            Err(EstimateError::NotEnoughData)
        );
        estimator
            .track(Duration::from_secs(4), &target, &closest, 1.0)
            .unwrap();
        assert!(estimator.estimate(Duration::from_secs(5)).is_ok());
        assert_eq!(
            estimator.estimate(MAX_SAMPLE_AGE + Duration::from_secs(60)),
            Err(EstimateError::NotEnoughData)
        );
        assert_eq!(
            estimator.track(Duration::ZERO, &target, &closest[..1], 1.0),
            Err(EstimateError::WrongNumberOfPeers)
        );
    }

    #[test]
    fn normed_distances_span_zero_to_one() {
        assert_eq!(normed_distance(&Key::default().distance(&Key::default())), 0.0);
        let mut half = [0u8; 32];
        half[0] = 0x80;
        let d = Key::from_bytes(half).distance(&Key::default());
        assert!((normed_distance(&d) - 0.5).abs() < 1e-12);
        let d = Key::from_bytes([0xff; 32]).distance(&Key::default());
        assert!(normed_distance(&d) <= 1.0 && normed_distance(&d) > 0.999_999);
    }
}
