//! The simulator through its public library API: lookups against brute force, provide and
//! retrieve, errors, churn and determinism.

use std::time::Duration;

use parsec::sim::{
    Churn, ChurnConfig, DelayModel, KademliaConfig, Key, LatencyModel, LookupConfig, OperationKind, Profile,
    ReprovideStrategy, SimConfig, Simulation, Strategy, Termination,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A network without failures: the range model, nobody unreachable.
fn perfect(nodes: usize, k: usize, alpha: usize, seed: u64) -> SimConfig {
    SimConfig {
        nodes,
        kademlia: KademliaConfig {
            lookup: LookupConfig {
                k,
                alpha,
                steps_to_stop: 0,
                peer_timeout: None,
            },
            beta: k,
        },
        latency: LatencyModel {
            delay: DelayModel::Range {
                min: Duration::from_millis(10),
                max: Duration::from_millis(100),
            },
            ..LatencyModel::ipfs()
        },
        unreachable: 0.0,
        seed,
    }
}

/// The property tests' runner: `cases` cases from `PROPTEST_RNG_SEED` when it is set (to replay a
/// failure), from a fresh seed otherwise; printed either way, so a failing run says how to replay
/// it.
fn replayable(cases: u32) -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("proptest seed {seed}: replay with PROPTEST_RNG_SEED={seed}");
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

fn build(config: &SimConfig) -> Simulation {
    Simulation::build(config, |_| {}).expect("valid configuration")
}

proptest! {
    #![proptest_config(replayable(24))]

    /// With no errors and no churn, a lookup finds exactly the true k closest nodes.
    #[test]
    fn lookups_find_the_true_k_closest(
        nodes in 30usize..3000,
        k in 1usize..25,
        alpha in 1usize..5,
        seed in any::<u64>(),
    ) {
        lookups_are_exact(nodes, k, alpha, seed)?;
    }
}

/// Eight lookups from random nodes for random keys return the true `k` closest.
fn lookups_are_exact(nodes: usize, k: usize, alpha: usize, seed: u64) -> Result<(), TestCaseError> {
    let sim = build(&perfect(nodes, k, alpha, seed));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..8 {
        let from = rng.gen_range(0..nodes as u32);
        let target = Key::random(&mut rng);
        let outcome = sim.lookup(from, target);
        prop_assert_eq!(outcome.error, None);
        let expected_end = if nodes > k {
            Termination::Converged
        } else {
            Termination::Exhausted
        };
        prop_assert_eq!(outcome.termination, Some(expected_end));
        let expected: Vec<u32> = sim
            .network()
            .true_closest(&target, k + 1)
            .into_iter()
            .filter(|&n| n != from)
            .take(k)
            .collect();
        prop_assert_eq!(outcome.peers, expected);
        prop_assert!(outcome.hops >= 1);
    }
    Ok(())
}

/// Found by the property test: with alpha = k, answers from farther peers used to end a lookup
/// while closer peers were still in flight, two hops in, far from the target.
#[test]
fn a_lookup_waits_for_closer_peers_in_flight() {
    lookups_are_exact(1848, 4, 4, 264_523_082_969_102_132).unwrap();
}

#[test]
fn a_provided_record_is_retrieved_from_every_region() {
    let mut sim = build(&SimConfig {
        nodes: 5_000,
        ..SimConfig::default()
    });
    let content = Key::hash_of(b"provide then retrieve");
    // The provider must answer others' requests; node 0 may be drawn unreachable.
    sim.network_mut().set_reachable(0, true);
    let provided = sim.provide(0, content);
    assert_eq!(provided.error, None, "{provided:?}");
    assert_eq!(provided.kind, OperationKind::Provide);
    assert!(
        provided.peers.len() >= 10,
        "stored at {} peers",
        provided.peers.len()
    );
    assert!(provided.messages > 20);
    assert!(provided.duration > Duration::ZERO);
    let mut found = 0;
    for from in 1..=50 {
        let outcome = sim.retrieve(from, content);
        if outcome.error.is_none() {
            found += 1;
            assert!(sim.network().holds_record(outcome.peers[0], &content));
            assert!(outcome.hops >= 1 || outcome.peers[0] == from);
        }
    }
    assert_eq!(found, 50);
    let unknown = sim.retrieve(7, Key::hash_of(b"never provided"));
    assert!(unknown.error.unwrap().contains("no provider record"));
}

#[test]
fn with_every_request_failing_nothing_is_found_and_errors_are_reported() {
    let mut config = perfect(2_000, 20, 3, 4);
    config.latency.error_rate = 1.0;
    let mut sim = build(&config);
    let content = Key::hash_of(b"unreachable");
    let provided = sim.provide(0, content);
    assert!(
        provided.error.as_deref().unwrap().contains("no peer answered"),
        "{provided:?}"
    );
    assert_eq!(provided.failures, provided.messages);
    let retrieved = sim.retrieve(1, content);
    assert!(retrieved.error.as_deref().unwrap().contains("no provider record"));
    assert!(retrieved.failures > 0);
    assert!(retrieved.peers.is_empty());
    // Each failure costs its timeout: the failed lookup took at least one failure delay.
    assert!(retrieved.duration >= config.latency.failure_delay.0);
}

#[test]
fn lookups_mostly_succeed_under_moderate_churn_and_dead_peers_are_forgotten() {
    let mut sim = build(&perfect(5_000, 20, 3, 8));
    let mut churn = Churn::new(ChurnConfig {
        leave_per_hour: 0.2,
        join_per_hour: 0.1,
    })
    .unwrap();
    let keep = [0, 1, 2, 3];
    let mut left = 0;
    let mut joined = 0;
    let mut found = 0;
    let mut failures = 0;
    for round in 0..20u32 {
        let step = churn.advance(sim.network_mut(), Duration::from_secs(300), &keep);
        left += step.left.len();
        joined += step.joined.len();
        let content = Key::hash_of(&round.to_be_bytes());
        assert_eq!(sim.provide(0, content).error, None);
        for from in 1..4 {
            let outcome = sim.retrieve(from, content);
            failures += outcome.failures;
            found += usize::from(outcome.error.is_none());
        }
    }
    // 20 × 5 virtual minutes at 20 %/h: about a third of the network left.
    assert!(left > 1_000 && joined > 500, "left {left}, joined {joined}");
    assert_eq!(sim.network().alive_count(), 5_000 - left + joined);
    assert!(found >= 57, "found {found} of 60");
    assert!(failures > 0, "dead peers in routing tables cost failed requests");
    // The retrievers dropped the dead peers they met.
    for from in 1..4 {
        let dead_left = sim
            .network()
            .routing_table(from)
            .filter(|&p| !sim.network().is_alive(p))
            .count();
        assert!(dead_left < sim.network().routing_table_size(from));
    }
}

#[test]
fn the_same_seed_gives_the_same_results() {
    let run = |seed: u64| {
        let mut sim = build(&SimConfig {
            nodes: 3_000,
            seed,
            ..SimConfig::default()
        });
        let mut results = Vec::new();
        for round in 0..5u32 {
            let content = Key::hash_of(&round.to_be_bytes());
            results.push(sim.provide(round, content));
            for from in 10..15 {
                results.push(sim.retrieve(from, content));
            }
        }
        results
    };
    let first = run(11);
    assert_eq!(first, run(11));
    assert_ne!(first, run(12));
}

#[test]
fn bad_configurations_are_errors_not_panics() {
    let mut config = perfect(100, 20, 3, 1);
    config.nodes = 1;
    assert!(Simulation::build(&config, |_| {})
        .unwrap_err()
        .contains("between 2"));
    let mut config = perfect(100, 20, 3, 1);
    config.kademlia.lookup.k = 0;
    assert!(Simulation::build(&config, |_| {}).unwrap_err().contains("k must"));
    let mut config = perfect(100, 20, 3, 1);
    config.latency.error_rate = 2.0;
    assert!(Simulation::build(&config, |_| {})
        .unwrap_err()
        .contains("error rate"));
    assert!(Churn::new(ChurnConfig {
        leave_per_hour: -1.0,
        join_per_hour: 0.0
    })
    .is_err());
}

proptest! {
    #![proptest_config(replayable(16))]

    /// An accelerated client stores at exactly the true k closest nodes (itself aside), and finds
    /// the record again from another accelerated client in one hop.
    #[test]
    fn a_fullrt_provide_stores_at_exactly_the_true_k_closest(
        nodes in 30usize..3000,
        k in 1usize..25,
        seed in any::<u64>(),
    ) {
        let mut sim = build(&perfect(nodes, k, 3, seed));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let from = rng.gen_range(0..nodes as u32);
        let other = (from + 1) % nodes as u32;
        sim.set_strategy(from, Strategy::FullRoutingTable);
        sim.set_strategy(other, Strategy::FullRoutingTable);
        let content = Key::random(&mut rng);
        let provided = sim.provide(from, content);
        prop_assert_eq!(provided.error, None);
        let mut stored = provided.peers.clone();
        stored.sort_unstable_by_key(|&p| sim.network().key(p).distance(&content));
        let expected: Vec<u32> = sim
            .network()
            .true_closest(&content, k + 1)
            .into_iter()
            .filter(|&n| n != from)
            .take(k)
            .collect();
        prop_assert_eq!(stored, expected);
        prop_assert_eq!(provided.termination, None, "no lookup");
        let found = sim.retrieve(other, content);
        prop_assert_eq!(found.error, None);
        prop_assert!(found.hops <= 1);
    }
}

#[test]
fn every_strategy_provides_and_the_others_retrieve_and_faster_strategies_are_faster() {
    // The calibrated network (20 % unreachable, timeouts), where the strategies differ.
    let mut sim = build(&SimConfig {
        nodes: 10_000,
        seed: 3,
        ..SimConfig::default()
    });
    let providers = [
        (0, Strategy::Classic),
        (1, Strategy::Optimistic),
        (2, Strategy::FullRoutingTable),
    ];
    for (node, strategy) in providers {
        sim.network_mut().set_reachable(node, true);
        sim.set_strategy(node, strategy);
        assert_eq!(sim.strategy(node), strategy);
    }
    // The optimistic node estimates the size from its warm-up lookups (8,000 reachable servers
    // answer, 10,000 are in the tables): within the estimator's ±20 % of either.
    let estimate = sim.network_view(1).expect("an estimate after the warm-up");
    assert!((6_400.0..=12_000.0).contains(&estimate), "estimate {estimate:.0}");
    // The accelerated client's table is its crawl: the reachable nodes.
    let crawled = sim.routing_table_size(2);
    assert!((7_500..=8_500).contains(&crawled), "crawled {crawled}");

    let mut durations: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    for round in 0..30u32 {
        for (index, (node, strategy)) in providers.into_iter().enumerate() {
            let content = Key::hash_of(&[round.to_be_bytes(), (index as u32).to_be_bytes()].concat());
            let provided = sim.provide(node, content);
            assert_eq!(provided.error, None, "{strategy}: {provided:?}");
            assert!(
                provided.peers.len() >= 5,
                "{strategy} stored at {}",
                provided.peers.len()
            );
            if strategy == Strategy::FullRoutingTable {
                // Every provide, not just the first: no lookup, one store at each of the k closest.
                assert_eq!(
                    (provided.termination, provided.messages),
                    (None, 20),
                    "round {round}"
                );
            }
            durations[index].push(provided.duration);
            // Every other strategy finds it.
            for (other, _) in providers.into_iter().filter(|&(n, _)| n != node) {
                let found = sim.retrieve(other, content);
                assert_eq!(found.error, None, "{strategy} provided, node {other} retrieved");
            }
        }
    }
    let median = |d: &mut Vec<Duration>| {
        d.sort_unstable();
        d[d.len() / 2]
    };
    let (classic, optimistic, full) = (
        median(&mut durations[0]),
        median(&mut durations[1]),
        median(&mut durations[2]),
    );
    assert!(
        optimistic < classic,
        "optprov {optimistic:?} vs classic {classic:?}"
    );
    assert!(full < classic, "fullrt {full:?} vs classic {classic:?}");
}

#[test]
fn an_optimistic_node_keeps_its_estimate_as_virtual_time_passes() {
    let mut sim = build(&SimConfig {
        nodes: 5_000,
        seed: 9,
        ..SimConfig::default()
    });
    sim.network_mut().set_reachable(0, true);
    sim.set_strategy(0, Strategy::Optimistic);
    // Five virtual hours: the warm-up's samples expired long ago, the refreshes replaced them.
    for _ in 0..30 {
        sim.advance_clock(Duration::from_secs(600));
    }
    let estimate = sim.network_view(0).expect("refreshes keep an estimate");
    assert!((3_000.0..=6_000.0).contains(&estimate), "estimate {estimate:.0}");
    let provided = sim.provide(0, Key::hash_of(b"late"));
    assert_eq!(provided.termination, Some(Termination::Satisfied), "{provided:?}");
}

#[test]
fn a_per_peer_timeout_frees_slots_held_by_silent_peers() {
    let run = |peer_timeout: Option<Duration>| {
        let mut config = SimConfig {
            nodes: 5_000,
            seed: 21,
            ..SimConfig::default()
        };
        config.kademlia.lookup.peer_timeout = peer_timeout;
        let mut sim = build(&config);
        sim.network_mut().set_reachable(0, true);
        let mut total = Duration::ZERO;
        for round in 0..40u32 {
            let content = Key::hash_of(&round.to_be_bytes());
            assert_eq!(sim.provide(0, content).error, None);
            let found = sim.retrieve(1, content);
            assert_eq!(found.error, None, "round {round}");
            total += found.duration;
        }
        total
    };
    let waiting = run(None);
    let with_timeout = run(Some(Duration::from_secs(1)));
    // Retrievals no longer wait out 2–34 s timeouts with all alpha slots held.
    assert!(with_timeout < waiting, "{with_timeout:?} vs {waiting:?}");
}

/// Both calibrations against what they were fitted to: one server in each measuring region, the
/// provider rotating, the others retrieving; every region's retrieval p50 within ±25 % of the
/// published one (docs/simulator.md, "Calibration").
#[test]
fn each_profile_keeps_every_region_within_a_quarter_of_its_published_median() {
    // (profile, [(region, published retrieval p50 in seconds)]): parsec's 2023 per-region
    // analysis (midpoints of its ranges), ProbeLab's November 2025 month.
    let published: [(Profile, &[(&str, f64)]); 2] = [
        (
            Profile::Ipfs2023,
            &[
                ("na", 0.335),
                ("eu", 0.175),
                ("as", 0.81),
                ("sa", 0.92),
                ("oc", 1.09),
                ("af", 1.05),
            ],
        ),
        (
            Profile::Ipfs2025,
            &[("eu", 0.11), ("na-east", 0.25), ("na-west", 0.46), ("oc", 1.24)],
        ),
    ];
    for (profile, regions) in published {
        let mut sim = build(&SimConfig {
            latency: profile.latency(),
            unreachable: profile.unreachable(),
            ..SimConfig::default()
        });
        let names = sim.network().region_model().names.clone();
        let servers: Vec<u32> = regions
            .iter()
            .map(|(region, _)| {
                let wanted = names.iter().position(|n| n == region).unwrap() as u8;
                (0..sim.network().len() as u32)
                    .find(|&n| sim.network().region(n) == wanted)
                    .unwrap()
            })
            .collect();
        for &node in &servers {
            sim.network_mut().set_reachable(node, true);
        }
        let mut found: Vec<Vec<Duration>> = vec![Vec::new(); servers.len()];
        for round in 0..300u64 {
            let provider = servers[round as usize % servers.len()];
            let content = Key::hash_of(&round.to_be_bytes());
            sim.provide(provider, content);
            for (index, &node) in servers.iter().enumerate().filter(|(_, n)| **n != provider) {
                let retrieved = sim.retrieve(node, content);
                if retrieved.error.is_none() {
                    found[index].push(retrieved.duration);
                }
            }
            sim.advance_clock(Duration::from_secs(60));
        }
        for ((region, published), durations) in regions.iter().zip(&mut found) {
            durations.sort_unstable();
            let median = durations[durations.len() / 2].as_secs_f64();
            let off = median / published - 1.0;
            assert!(
                off.abs() <= 0.25,
                "{profile} {region}: retrieval p50 {median:.3} s against {published} s published ({:+.0} %)",
                off * 100.0
            );
        }
    }
}

/// The provide sweep against one provide per key, side by side from one node of one network: the
/// sweep's records land at the same place (every key at its true `k` closest peers, and found by
/// other nodes) for a small fraction of the lookups and requests.
#[test]
fn a_sweep_stores_every_key_at_its_k_closest_for_a_fraction_of_the_lookups() {
    let config = perfect(2_000, 20, 3, 41);
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let mut keys: Vec<Key> = (0..20_000).map(|_| Key::random(&mut rng)).collect();
    keys.sort();
    let mut rounds = Vec::new();
    for strategy in [ReprovideStrategy::Classic, ReprovideStrategy::Sweep] {
        let mut sim = build(&config);
        let round = sim.reprovide(0, &keys, strategy, 4);
        eprintln!(
            "{strategy:?}: {} lookups ({:.4} a key), {:.1} requests a key, {} walks, {:.0} keys/h, {} failures",
            round.lookups,
            round.lookups_per_key(),
            round.messages_per_key(),
            round.walks(),
            round.keys_per_hour(),
            round.failures
        );
        assert_eq!(round.keys, keys.len());
        assert_eq!(round.failures, 0, "a perfect network");
        assert_eq!(
            round.copies_stored,
            keys.len() as u64 * 20,
            "{strategy:?}: k copies a key"
        );
        // Every key at each of its true k closest peers (node 0, the provider, stores nothing).
        for key in keys.iter().step_by(97) {
            let closest = sim.network().true_closest(key, 20);
            let missing: Vec<_> = closest
                .iter()
                .filter(|&&peer| peer != 0 && !sim.network().holds_record(peer, key))
                .collect();
            assert!(missing.is_empty(), "{strategy:?}: {key} missing at {missing:?}");
        }
        // And found by others.
        for (i, key) in (1u32..).zip(keys.iter().step_by(997)) {
            assert_eq!(sim.retrieve(i, *key).error, None, "{strategy:?}");
        }
        rounds.push(round);
    }
    let (classic, sweep) = (&rounds[0], &rounds[1]);
    assert_eq!(classic.lookups, keys.len() as u64);
    // A few lookups per region of 20–40 peers, over the whole network: a few hundred.
    assert!(
        sweep.lookups * 50 <= classic.lookups,
        "{} vs {}",
        sweep.lookups,
        classic.lookups
    );
    assert!(sweep.messages_per_key() < classic.messages_per_key() / 2.0);
    assert!(sweep.keys_per_hour() > classic.keys_per_hour() * 10.0);
}
