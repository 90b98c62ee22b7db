//! Reprovide rounds on real peers: a node of ours sends the records of many CIDs again, one
//! provide per CID (`classic`) or region by region (`sweep`), into a network of stock rust-libp2p
//! kad peers. Checked against what the peers themselves hold and count, not against the round's
//! own report:
//!
//! - every sampled CID's record sits in the own store of each of its `k` true closest peers
//!   (computed from every peer id), and another peer finds it;
//! - the ADD_PROVIDERs the peers read add up to at least the copies the round counted;
//! - the sweep needs far fewer lookups than one per CID.

use std::{collections::HashSet, time::Duration};

use parsec_actors::{
    local_network::{self, dht_runtime},
    testing::{add_providers_read, memory_server_config, retrieve_until_found},
    ContentId, DhtClient, DhtError, DhtHandle, PeerId, ReprovideStrategy, Strategy,
};
use parsec_kad::Key;

const BACKGROUND_PEERS: usize = 100;
const K: usize = 20;
const KEYS: usize = 400;
const WORKERS: usize = 8;
/// CIDs of a round whose placement and retrieval are checked.
const SAMPLE: usize = 20;

fn cids(label: &str) -> Vec<ContentId> {
    (0..KEYS)
        .map(|i| ContentId::for_content(format!("{label} {i}").as_bytes()))
        .collect()
}

/// The `K` peers of `peers` closest to `cid` in the key space.
fn true_closest<'a>(cid: &ContentId, peers: &[&'a DhtHandle]) -> Vec<&'a DhtHandle> {
    let target = Key::hash_of(&cid.record_key().to_vec());
    let mut by_distance: Vec<&DhtHandle> = peers.to_vec();
    by_distance.sort_by_key(|p| Key::hash_of(&p.peer_id().to_bytes()).distance(&target));
    by_distance.truncate(K);
    by_distance
}

/// Of the sampled CIDs' (CID, true closest peer) pairs, those whose peer holds `provider`'s
/// record, and all of them.
async fn placed(sample: &[ContentId], peers: &[&DhtHandle], provider: PeerId) -> (usize, usize) {
    let mut held = 0;
    let mut pairs = 0;
    for cid in sample {
        for peer in true_closest(cid, peers) {
            pairs += 1;
            if peer
                .stored_providers(cid.clone())
                .await
                .unwrap()
                .contains(&provider)
            {
                held += 1;
            }
        }
    }
    (held, pairs)
}

#[test]
fn a_sweep_places_every_record_with_far_fewer_lookups_than_one_provide_per_cid() {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        let (background, nodes) = local_network::spawn_with_nodes(
            BACKGROUND_PEERS,
            &memory_server_config(DhtClient::Libp2p),
            &[memory_server_config(DhtClient::Engine(Strategy::Classic))],
            runtime.handle(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let node = &nodes[0];
        let others: Vec<&DhtHandle> = background.iter().collect();
        let retriever = &background[0];

        let mut lookups = Vec::new();
        for strategy in ReprovideStrategy::ALL {
            // Each round its own CIDs, so that one's records never answer for the other.
            let round_cids = cids(&format!("reprovide {strategy}"));
            let read_before = add_providers_read(&others);
            let round = node.reprovide(&round_cids, strategy, WORKERS).await.unwrap();
            let read = add_providers_read(&others) - read_before;
            eprintln!(
                "{strategy}: {} keys in {:.2} s, {} lookups over {} walks, {:.1} requests and {:.1} copies a key, {read} ADD_PROVIDERs read",
                round.keys,
                round.duration.as_secs_f64(),
                round.lookups,
                round.walks(),
                round.messages_per_key(),
                round.copies_per_key()
            );

            assert_eq!(round.keys, KEYS, "{strategy}: {round:?}");
            assert_eq!(round.failures, 0, "{strategy}: nothing fails on this network");
            assert!(
                read >= round.copies_stored && round.copies_stored >= (KEYS * K) as u64,
                "{strategy}: the round counted {} copies, the peers read {read} ADD_PROVIDERs",
                round.copies_stored
            );

            let sample: Vec<ContentId> = round_cids.iter().step_by(KEYS / SAMPLE).cloned().collect();
            let (held, pairs) = placed(&sample, &others, node.peer_id()).await;
            assert_eq!(held, pairs, "{strategy}: every true closest peer holds the record");
            for cid in sample.iter().take(5) {
                let found = retrieve_until_found(retriever, cid, 3, Duration::from_millis(100))
                    .await
                    .unwrap();
                assert_eq!(found.error, None, "{strategy}: {cid} is found by another peer");
            }
            lookups.push((strategy, round.lookups, round.walks()));
        }
        let [(_, classic, _), (_, sweep, walks)] = lookups[..] else {
            unreachable!("two strategies")
        };
        assert_eq!(classic, KEYS as u64, "classic: one lookup per CID");
        assert!(
            sweep * 20 <= classic && walks >= 2,
            "sweep: {sweep} lookups over {walks} walks, against classic's {classic}"
        );
    });
}

#[test]
fn a_default_peer_a_second_round_and_an_isolated_node_are_refused() {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        let nodes = [
            memory_server_config(DhtClient::Libp2p),
            memory_server_config(DhtClient::Engine(Strategy::Classic)),
        ];
        let (_background, nodes) = local_network::spawn_with_nodes(
            30,
            &memory_server_config(DhtClient::Libp2p),
            &nodes,
            runtime.handle(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let keys: Vec<ContentId> = cids("refused").into_iter().take(50).collect();
        // A node that reaches nobody stores nothing: an error with either strategy.
        let isolated = DhtHandle::spawn(
            memory_server_config(DhtClient::Engine(Strategy::Classic)),
            runtime.handle(),
        )
        .await
        .unwrap();
        for strategy in ReprovideStrategy::ALL {
            let alone = isolated.reprovide(&keys, strategy, 2).await.unwrap_err();
            assert!(
                matches!(&alone, DhtError::Reprovide(why) if why.contains("no peer stored")),
                "{strategy}: {alone}"
            );
        }
        let refused = nodes[0]
            .reprovide(&keys, ReprovideStrategy::Sweep, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, DhtError::Reprovide(why) if why.contains("default")),
            "{refused}"
        );
        // Two rounds asked at once: one runs, the other is refused while it does.
        let (first, second) = tokio::join!(
            nodes[1].reprovide(&keys, ReprovideStrategy::Classic, 1),
            nodes[1].reprovide(&keys, ReprovideStrategy::Sweep, 1),
        );
        let outcomes = [first.is_ok(), second.is_ok()];
        assert_eq!(
            outcomes.iter().filter(|ok| **ok).count(),
            1,
            "{first:?} / {second:?}"
        );
        let distinct: HashSet<bool> = outcomes.into_iter().collect();
        assert_eq!(distinct.len(), 2);
    });
}
