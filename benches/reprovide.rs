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

use parsec::sim::{reprovide, ReprovideStrategy, SimConfig};

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
    println!("{}", reprovide::header());
    for count in key_counts() {
        let strategies: Vec<ReprovideStrategy> = ReprovideStrategy::ALL
            .into_iter()
            .filter(|s| *s != ReprovideStrategy::Classic || count <= classic_max_keys)
            .collect();
        let runs =
            reprovide::run(&config, count, &strategies, workers, sample_size).expect("valid configuration");
        for run in &runs {
            println!("{}", reprovide::line(run));
        }
        if let Some(ratio) = reprovide::ratio_line(&runs) {
            println!("{ratio}");
        }
    }
}
