//! The simulator's model of the public network (`parsec testnet --profile`), applied to the
//! testnet's real connections: every peer sits in a region, a pair's round trip is the median RTT
//! between their regions times a jitter fixed for the pair, and a share of the background peers
//! sit in routing tables but never answer (their dials fail quickly or time out, as the profile's
//! failures do). One model serves both: the figures come from `sim::Profile`.

use std::{
    collections::{HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::RwLock,
    time::Duration,
};

use parsec_actors::{LinkConditions, PeerId};
use rand::Rng;

use crate::sim::{DelayModel, LatencyModel, Profile, Regions};

/// A profile's regions, delays and unreachable peers, for real connections.
#[derive(Debug)]
pub struct PublicNetworkConditions {
    profile: Profile,
    latency: LatencyModel,
    regions: Regions,
    jitter: f64,
    region_of: RwLock<HashMap<PeerId, u8>>,
    unreachable: RwLock<HashSet<PeerId>>,
}

impl PublicNetworkConditions {
    /// The conditions of `profile`; no peer placed yet (an unplaced peer is in the first region).
    pub fn new(profile: Profile) -> Self {
        let latency = profile.latency();
        let (regions, jitter) = match &latency.delay {
            DelayModel::Regions { regions, jitter } => (regions.clone(), *jitter),
            DelayModel::Range { .. } => (latency.regions(), 0.0),
        };
        Self {
            profile,
            latency,
            regions,
            jitter,
            region_of: RwLock::default(),
            unreachable: RwLock::default(),
        }
    }

    /// The profile these conditions come from.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The regions peers are placed in.
    pub fn regions(&self) -> &Regions {
        &self.regions
    }

    /// Places `peer` in `region`.
    pub fn place(&self, peer: PeerId, region: u8) {
        self.region_of.write().expect("region table").insert(peer, region);
    }

    /// Places `peer` in a region drawn by the profile's shares.
    pub fn place_at_random(&self, peer: PeerId, rng: &mut impl Rng) {
        self.place(peer, self.regions.draw(rng));
    }

    /// The region `peer` was placed in.
    pub fn region_of(&self, peer: &PeerId) -> u8 {
        self.region_of
            .read()
            .expect("region table")
            .get(peer)
            .copied()
            .unwrap_or(0)
    }

    /// The name of the region `peer` was placed in.
    pub fn region_name(&self, peer: &PeerId) -> String {
        self.regions.names[usize::from(self.region_of(peer))].clone()
    }

    /// The profile's share of peers that never answer.
    pub fn unreachable_share(&self) -> f64 {
        self.profile.unreachable()
    }

    /// From now on, every connection to or from `peer` fails.
    pub fn make_unreachable(&self, peer: PeerId) {
        self.unreachable.write().expect("unreachable set").insert(peer);
    }

    /// How many peers never answer.
    pub fn unreachable_count(&self) -> usize {
        self.unreachable.read().expect("unreachable set").len()
    }

    /// The pair's jitter factor in `[1, 1 + jitter)`: fixed for the pair, as a path's is.
    fn jitter_factor(&self, a: &PeerId, b: &PeerId) -> f64 {
        let (low, high) = if a.to_bytes() <= b.to_bytes() {
            (a, b)
        } else {
            (b, a)
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (low, high).hash(&mut hasher);
        let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        1.0 + unit * self.jitter.max(0.0)
    }
}

impl LinkConditions for PublicNetworkConditions {
    fn round_trip(&self, local: &PeerId, remote: &PeerId) -> Duration {
        let (from, to) = (self.region_of(local), self.region_of(remote));
        let median_ms = self.regions.rtt_ms[usize::from(from)][usize::from(to)];
        Duration::from_secs_f64(median_ms * self.jitter_factor(local, remote) / 1000.0)
    }

    fn failure(&self, local: &PeerId, remote: &PeerId) -> Option<Duration> {
        let unreachable = self.unreachable.read().expect("unreachable set");
        (unreachable.contains(local) || unreachable.contains(remote))
            .then(|| self.latency.failure(&mut rand::thread_rng()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_has_one_round_trip_from_either_end_within_its_regions_jitter() {
        let conditions = PublicNetworkConditions::new(Profile::Ipfs2025);
        let (eu, oc) = (PeerId::random(), PeerId::random());
        conditions.place(eu, 0);
        conditions.place(oc, 3);
        let there = conditions.round_trip(&eu, &oc);
        assert_eq!(there, conditions.round_trip(&oc, &eu));
        let median = Duration::from_millis(conditions.regions().rtt_ms[0][3] as u64);
        assert!(there >= median && there < median.mul_f64(1.0 + 0.3), "{there:?}");
    }

    #[test]
    fn only_connections_of_unreachable_peers_fail_within_the_profiles_failure_delays() {
        let conditions = PublicNetworkConditions::new(Profile::Ipfs2023);
        let (a, b, gone) = (PeerId::random(), PeerId::random(), PeerId::random());
        conditions.make_unreachable(gone);
        assert_eq!(conditions.failure(&a, &b), None);
        let model = Profile::Ipfs2023.latency();
        for _ in 0..100 {
            let after = conditions.failure(&a, &gone).expect("gone never answers");
            assert!(
                after >= model.failure_delay.0 && after <= model.timeout.1,
                "{after:?}"
            );
            assert!(conditions.failure(&gone, &a).is_some());
        }
    }
}
