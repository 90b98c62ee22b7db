//! The simulator's speed and memory: network initialisation wall time, resident memory, and
//! lookups per second (on every core with rayon, and on one), for growing networks.
//!
//! Run: `cargo bench --bench sim` (options: `-- --sizes 1000,10000,100000,1000000 --lookups 20000`).
//! py-dht, the seed's Python simulator, initialises 10,000 nodes with k=20 in 28 s on 20 cores
//! and ~200 s on one; the ratio against that is printed for the 10,000-node network.

use std::time::Instant;

use parsec::sim::{Key, SimConfig, Simulation};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// py-dht's published initialisation of 10,000 nodes, k=20, on 20 cores (seconds).
const PY_DHT_10K_20_CORES: f64 = 28.0;

struct Options {
    sizes: Vec<usize>,
    lookups: usize,
}

fn options() -> Options {
    let mut options = Options {
        sizes: vec![1_000, 10_000, 100_000, 1_000_000],
        lookups: 20_000,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--sizes" => {
                options.sizes = pair[1]
                    .split(',')
                    .map(|n| n.trim().parse().expect("--sizes takes numbers, e.g. 1000,10000"))
                    .collect()
            }
            "--lookups" => options.lookups = pair[1].parse().expect("--lookups takes a number"),
            _ => {}
        }
    }
    options
}

/// Current resident memory (Linux `VmRSS`).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let options = options();
    let threads = rayon::current_num_threads();
    println!(
        "{:>9} {:>9} {:>9} {:>11} {:>11} {:>13} {:>13} {:>6} {:>6}",
        "nodes", "init s", "RSS MiB", "peak MiB", "table size", "lookups/s", "lookups/s 1c", "hops", "msgs"
    );
    for &nodes in &options.sizes {
        let before = rss_bytes();
        let config = SimConfig {
            nodes,
            ..SimConfig::default()
        };
        let started = Instant::now();
        let sim = Simulation::build(&config, |_| {}).expect("valid configuration");
        let init = started.elapsed().as_secs_f64();
        let rss = rss_bytes().saturating_sub(before);
        let peak = parsec::report::peak_rss_bytes().unwrap_or(0);

        let mut rng = ChaCha8Rng::seed_from_u64(nodes as u64);
        let queries: Vec<(u32, Key)> = (0..options.lookups)
            .map(|_| {
                use rand::Rng;
                (rng.gen_range(0..nodes as u32), Key::random(&mut rng))
            })
            .collect();
        let started = Instant::now();
        let (hops, messages): (u64, u64) = queries
            .par_iter()
            .map(|&(from, target)| {
                let outcome = sim.lookup(from, target);
                (u64::from(outcome.hops), u64::from(outcome.messages))
            })
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let parallel = options.lookups as f64 / started.elapsed().as_secs_f64();
        let single_count = (options.lookups / 4).max(1);
        let started = Instant::now();
        for &(from, target) in &queries[..single_count] {
            std::hint::black_box(sim.lookup(from, target));
        }
        let single = single_count as f64 / started.elapsed().as_secs_f64();
        let table: usize = (0..100.min(nodes) as u32)
            .map(|n| sim.network().routing_table_size(n))
            .sum::<usize>()
            / 100.min(nodes);
        println!(
            "{:>9} {:>9.3} {:>9.0} {:>11.0} {:>11} {:>13.0} {:>13.0} {:>6.2} {:>6.1}",
            nodes,
            init,
            mib(rss),
            mib(peak),
            table,
            parallel,
            single,
            hops as f64 / options.lookups as f64,
            messages as f64 / options.lookups as f64,
        );
        if nodes == 10_000 {
            println!(
                "          py-dht: 10,000 nodes in {PY_DHT_10K_20_CORES} s on 20 cores; here {init:.3} s on {threads} threads: {:.0}× faster",
                PY_DHT_10K_20_CORES / init
            );
        }
        drop(sim);
    }
    println!("(lookups use the calibrated defaults: k=20, alpha=3, beta=20, 20% unreachable nodes; {threads} threads)");
}
