//! Reprovide rounds in the simulator, one provide per key (`classic`) against the provide sweep,
//! side by side on one network for each key count: lookups and requests per key, walks, keys per
//! hour of virtual time with `--workers` walks at once, the wall time and peak memory of the run,
//! and afterwards, over a sample of the keys, the share of each key's true `k` closest answering
//! peers that hold its record (`placed`, averaged) and the share of keys other nodes find.
//!
//! Run: `cargo bench --bench reprovide` (options: `-- --nodes 2000 --keys 10000,100000 --workers 4
//! --sample 200 --classic-max-keys 100000`). The network is the calibrated IPFS-like one
//! (`SimConfig::default()`: regional delays, 20 % unreachable peers, errors) at `--nodes` nodes.
//! The sweep keeps only the sampled keys' records in the network (every copy is counted): 10⁸
//! keys × 20 copies would not fit in memory. Classic runs up to `--classic-max-keys` keys (one
//! lookup each).

#[path = "common/args.rs"]
mod args;

use std::{collections::HashSet, time::Instant};

use parsec::sim::{Key, ReprovideStrategy, SimConfig, Simulation};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The `--keys` counts (comma-separated), or the default.
fn key_counts() -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|pair| pair[0] == "--keys")
        .map(|pair| {
            pair[1]
                .split(',')
                .map(|n| n.trim().parse().expect("--keys takes numbers, e.g. 10000,100000"))
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 100_000])
}

/// Over `sample`: the share of each key's true `k` closest answering peers (the provider aside)
/// that hold its record, on average; and the share of keys a random other node finds.
fn check(sim: &mut Simulation, from: u32, sample: &[Key], rng: &mut impl Rng) -> (f64, f64) {
    let k = sim.network().k();
    let nodes = sim.network().len() as u32;
    let (mut placed, mut found) = (0.0, 0);
    for key in sample {
        let closest: Vec<u32> = sim
            .network()
            .true_closest(key, k)
            .into_iter()
            .filter(|&peer| peer != from && sim.network().answers(peer))
            .collect();
        let held = closest
            .iter()
            .filter(|&&peer| sim.network().holds_record(peer, key))
            .count();
        placed += held as f64 / closest.len().max(1) as f64;
        let looker = loop {
            let node = rng.gen_range(0..nodes);
            if node != from && sim.network().answers(node) {
                break node;
            }
        };
        found += usize::from(sim.retrieve(looker, *key).error.is_none());
    }
    let count = sample.len().max(1) as f64;
    (placed / count, found as f64 / count)
}

fn main() {
    let nodes = args::option("--nodes", 2_000);
    let workers = args::option("--workers", 4);
    let sample_size = args::option("--sample", 200);
    let classic_max_keys = args::option("--classic-max-keys", 100_000);
    let config = SimConfig {
        nodes,
        ..SimConfig::default()
    };
    println!(
        "{nodes} nodes (calibrated IPFS-like network), {workers} workers; virtual time; simulator figures\n"
    );
    println!(
        "{:>9} {:>8} {:>9} {:>11} {:>10} {:>10} {:>7} {:>13} {:>8} {:>9} {:>8} {:>7}",
        "keys",
        "strategy",
        "lookups",
        "lookups/key",
        "reqs/key",
        "copies/key",
        "walks",
        "keys/h",
        "wall s",
        "peak MiB",
        "placed",
        "found"
    );
    for count in key_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(count as u64);
        let mut keys: Vec<Key> = (0..count).map(|_| Key::random(&mut rng)).collect();
        keys.sort();
        let sample: Vec<Key> = keys.choose_multiple(&mut rng, sample_size).copied().collect();
        let kept: HashSet<Key> = sample.iter().copied().collect();
        let mut lookups = Vec::new();
        for strategy in [ReprovideStrategy::Classic, ReprovideStrategy::Sweep] {
            if strategy == ReprovideStrategy::Classic && count > classic_max_keys {
                continue;
            }
            let mut sim = Simulation::build(&config, |_| {}).expect("valid configuration");
            let from = (0..nodes as u32)
                .find(|&n| sim.network().answers(n))
                .expect("a reachable node");
            let started = Instant::now();
            let round = sim.reprovide_keeping(from, &keys, strategy, workers, &|key| kept.contains(key));
            let wall = started.elapsed().as_secs_f64();
            let peak = parsec::telemetry::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
            let (placed, found) = check(&mut sim, from, &sample, &mut rng);
            println!(
                "{count:>9} {:>8} {:>9} {:>11.4} {:>10.1} {:>10.1} {:>7} {:>13.0} {:>8.1} {:>9.0} {:>7.1}% {:>6.1}%",
                format!("{strategy:?}").to_lowercase(),
                round.lookups,
                round.lookups_per_key(),
                round.messages_per_key(),
                round.copies_stored as f64 / count as f64,
                round.walks(),
                round.keys_per_hour(),
                wall,
                peak,
                placed * 100.0,
                found * 100.0
            );
            lookups.push(round.lookups);
        }
        if let [classic, sweep] = lookups[..] {
            println!(
                "{count:>9} classic/sweep lookups: {:.0}×, measured side by side in this run",
                classic as f64 / sweep.max(1) as f64
            );
        }
    }
}
