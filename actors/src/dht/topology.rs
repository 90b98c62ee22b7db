//! Fast start: fill routing tables the way a converged network would, without lookups.
//!
//! Each peer gets, for every bucket (distance range 2^i..2^(i+1)), the `k` peers closest to it
//! in that range, which is what a Kademlia routing table holds once the network has converged
//! (py-dht's trick). Knowing every peer up front, this replaces thousands of bootstrap lookups
//! that would connect nearly every peer to every other. The tables come from the engine's
//! sorted-key construction ([`parsec_kad::table`]), as the simulator's do.

use libp2p::{Multiaddr, PeerId};
use parsec_kad::{table::converged_peers, Key};

/// A peer and an address it listens on.
pub type Contact = (PeerId, Multiaddr);

/// A peer's key in libp2p's key space (what `kbucket::Key<PeerId>` holds): SHA-256 of its id.
pub fn peer_key(peer: &PeerId) -> Key {
    Key::hash_of(&peer.to_bytes())
}

/// For each contact (same order as `contacts`), the contacts its routing table should hold.
pub fn converged_routing_tables(contacts: &[Contact], k: usize) -> Vec<Vec<Contact>> {
    let (sorted_keys, order) = sorted(contacts);
    contacts
        .iter()
        .map(|(peer, _)| table_of(&peer_key(peer), &sorted_keys, &order, contacts, k))
        .collect()
}

/// The routing table a peer `own` (which need not be among `candidates`, e.g. a DHT client) holds
/// once the network of `candidates` has converged.
pub fn converged_routing_table(own: PeerId, candidates: &[Contact], k: usize) -> Vec<Contact> {
    let (sorted_keys, order) = sorted(candidates);
    table_of(&peer_key(&own), &sorted_keys, &order, candidates, k)
}

/// The contacts' keys sorted, and for each sorted position the contact's index.
fn sorted(contacts: &[Contact]) -> (Vec<Key>, Vec<usize>) {
    let mut keyed: Vec<(Key, usize)> = contacts
        .iter()
        .enumerate()
        .map(|(i, (peer, _))| (peer_key(peer), i))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().unzip()
}

fn table_of(own: &Key, sorted_keys: &[Key], order: &[usize], contacts: &[Contact], k: usize) -> Vec<Contact> {
    converged_peers(sorted_keys, own, k)
        .into_iter()
        .map(|position| contacts[order[position]].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use libp2p::kad::KBucketKey;

    use super::*;

    #[test]
    fn our_peer_keys_are_libp2p_kbucket_keys() {
        for _ in 0..20 {
            let peer = PeerId::random();
            let ours = peer_key(&peer).to_bytes();
            let theirs = KBucketKey::from(peer);
            assert_eq!(ours.as_slice(), theirs.hashed_bytes());
        }
    }

    fn contacts(n: usize) -> Vec<Contact> {
        (0..n)
            .map(|i| (PeerId::random(), format!("/memory/{}", i + 1).parse().unwrap()))
            .collect()
    }

    #[test]
    fn small_network_knows_everyone() {
        let contacts = contacts(15);
        for (i, table) in converged_routing_tables(&contacts, 20).iter().enumerate() {
            assert_eq!(table.len(), 14);
            assert!(!table.iter().any(|(p, _)| *p == contacts[i].0));
        }
    }

    #[test]
    fn a_client_gets_a_table_without_being_in_it() {
        // Fewer contacts than k: no bucket can overflow, whatever the random ids (with 30, the
        // farthest bucket held more than 20 about once in 50 runs).
        let contacts = contacts(20);
        let client = PeerId::random();
        let table = converged_routing_table(client, &contacts, 20);
        assert_eq!(table.len(), 20);
    }

    #[test]
    fn buckets_are_capped_and_hold_the_closest() {
        let contacts = contacts(400);
        let k = 5;
        let tables = converged_routing_tables(&contacts, k);
        let own = KBucketKey::from(contacts[0].0);
        let mut per_bucket = std::collections::HashMap::<u32, Vec<_>>::new();
        for (peer, _) in &tables[0] {
            let d = own.distance(&KBucketKey::from(*peer));
            per_bucket.entry(d.ilog2().unwrap()).or_default().push(d);
        }
        assert!(per_bucket.values().all(|v| v.len() <= k));
        // The farthest bucket (half the network) is full and holds its k closest members.
        let mut far = per_bucket[&255].clone();
        far.sort();
        let mut all_far: Vec<_> = contacts[1..]
            .iter()
            .map(|(p, _)| own.distance(&KBucketKey::from(*p)))
            .filter(|d| d.ilog2() == Some(255))
            .collect();
        all_far.sort();
        all_far.truncate(k);
        assert_eq!(far, all_far);
    }
}
