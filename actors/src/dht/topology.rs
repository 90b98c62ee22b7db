//! Fast start: fill routing tables the way a converged network would, without lookups.
//!
//! Each peer gets, for every bucket (distance range 2^i..2^(i+1)), the `k` peers closest to it
//! in that range, which is what a Kademlia routing table holds once the network has converged
//! (py-dht's trick). Knowing every peer up front, this replaces thousands of bootstrap lookups
//! that would connect nearly every peer to every other.

use libp2p::{kad::KBucketKey, Multiaddr, PeerId};

/// A peer and an address it listens on.
pub type Contact = (PeerId, Multiaddr);

/// For each contact (same order as `contacts`), the contacts its routing table should hold.
///
/// Runs in O(n² log n); fine for the few thousand peers an in-process testnet can hold (the
/// simulator uses its own sorted-key construction for millions).
pub fn converged_routing_tables(contacts: &[Contact], k: usize) -> Vec<Vec<Contact>> {
    let keyed = keyed(contacts);
    keyed.iter().map(|(own, _)| table_of(own, &keyed, k)).collect()
}

/// The routing table a peer `own` (which need not be among `candidates`, e.g. a DHT client) holds
/// once the network of `candidates` has converged.
pub fn converged_routing_table(own: PeerId, candidates: &[Contact], k: usize) -> Vec<Contact> {
    table_of(&KBucketKey::from(own), &keyed(candidates), k)
}

fn keyed(contacts: &[Contact]) -> Vec<(KBucketKey<PeerId>, &Contact)> {
    contacts.iter().map(|c| (KBucketKey::from(c.0), c)).collect()
}

/// Up to `k` closest candidates in each bucket of `own`.
fn table_of(
    own: &KBucketKey<PeerId>,
    candidates: &[(KBucketKey<PeerId>, &Contact)],
    k: usize,
) -> Vec<Contact> {
    let mut others: Vec<_> = candidates
        .iter()
        .filter_map(|(key, contact)| {
            let distance = own.distance(key);
            distance.ilog2().map(|bucket| (bucket, distance, *contact))
        })
        .collect();
    others.sort_unstable_by_key(|&(bucket, distance, _)| (bucket, distance));
    let mut table = Vec::new();
    let mut bucket = None;
    let mut taken_in_bucket = 0;
    for (b, _, contact) in others {
        if bucket != Some(b) {
            bucket = Some(b);
            taken_in_bucket = 0;
        }
        if taken_in_bucket < k {
            taken_in_bucket += 1;
            table.push(contact.clone());
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

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
