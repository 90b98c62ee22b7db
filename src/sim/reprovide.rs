//! Reprovide rounds measured in the simulator, as `parsec simulate --reprovide` and
//! `benches/reprovide.rs` run them: for a key count, each strategy on a network built afresh from
//! the same configuration, one reachable node reprovides the same random keys, and afterwards a
//! sample of the keys is checked (placed at their true `k` closest answering peers, found by a
//! random other node).
//!
//! The sweep keeps in the network only the sampled keys' records (every copy is counted): 10⁸ keys
//! × 20 copies would not fit in memory. The keys and the sample come from a generator seeded with
//! the key count, so every run of a count reprovides the same keys.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use parsec_actors::ReprovideDetails;

use super::{Key, ReprovideStrategy, SimConfig, Simulation};
use crate::job::MeasuredRound;

/// One strategy's round at one key count, and what the checks saw.
#[derive(Clone, Debug)]
pub struct ReprovideRun {
    /// The round (in virtual time) and the sample's checks: placements are (sampled key, true
    /// `k` closest answering peer but the provider) pairs.
    pub details: ReprovideDetails,
    /// The node that reprovided.
    pub provider: u32,
    /// The round's wall time (not its virtual time).
    pub wall: Duration,
    /// The simulator's peak resident memory after the round, when the system says.
    pub peak_bytes: Option<u64>,
}

impl ReprovideRun {
    /// The run as a row to store: virtual time; the simulator's CPU and memory are not a
    /// provider's, so they stay out of the row.
    pub fn measured(&self) -> MeasuredRound {
        MeasuredRound {
            fleet: self.details.strategy.name().to_owned(),
            peer_id: super::servers::SimServer::peer_id(self.provider),
            started_at: chrono::Utc::now(),
            error: self.details.failure(),
            details: self.details.clone(),
        }
    }
}

/// Runs `strategies` at `keys` keys, `workers` walks or provides at once, checking `sample`
/// keys after each round.
pub fn run(
    config: &SimConfig,
    keys: usize,
    strategies: &[ReprovideStrategy],
    workers: usize,
    sample: usize,
) -> anyhow::Result<Vec<ReprovideRun>> {
    let mut rng = ChaCha8Rng::seed_from_u64(keys as u64);
    let mut sorted: Vec<Key> = (0..keys).map(|_| Key::random(&mut rng)).collect();
    sorted.sort_unstable();
    let sampled: Vec<Key> = sorted.choose_multiple(&mut rng, sample).copied().collect();
    let kept: HashSet<Key> = sampled.iter().copied().collect();
    let mut runs = Vec::with_capacity(strategies.len());
    for &strategy in strategies {
        let mut sim = Simulation::build(config, |_| {}).map_err(anyhow::Error::msg)?;
        let nodes = sim.network().len() as u32;
        let from = (0..nodes)
            .find(|&n| sim.network().answers(n))
            .ok_or_else(|| anyhow::anyhow!("no node of the network answers: nobody can reprovide"))?;
        let started = Instant::now();
        let round = sim.reprovide_keeping(from, &sorted, strategy, workers, &|key| kept.contains(key));
        let wall = started.elapsed();
        let peak_bytes = crate::telemetry::peak_rss_bytes();
        let checks = check(&mut sim, from, &sampled, &mut rng);
        runs.push(ReprovideRun {
            details: ReprovideDetails {
                strategy,
                workers: u32::try_from(workers).unwrap_or(u32::MAX),
                round,
                sampled: sampled.len() as u32,
                ..checks
            },
            provider: from,
            wall,
            peak_bytes,
        });
    }
    Ok(runs)
}

/// Over `sample`: the (key, true `k` closest answering peer but the provider) pairs and those
/// whose peer holds the key's record; and the keys a random other node finds.
fn check(sim: &mut Simulation, from: u32, sample: &[Key], rng: &mut impl Rng) -> ReprovideDetails {
    let k = sim.network().k();
    let nodes = sim.network().len() as u32;
    let mut checks = ReprovideDetails::default();
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
        checks.placements += closest.len() as u32;
        checks.placed += held as u32;
        let looker = loop {
            let node = rng.gen_range(0..nodes);
            if node != from && sim.network().answers(node) {
                break node;
            }
        };
        checks.found += u32::from(sim.retrieve(looker, *key).error.is_none());
    }
    checks
}

/// The table's header line.
pub fn header() -> String {
    format!(
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
    )
}

/// A row of the table.
pub fn line(run: &ReprovideRun) -> String {
    let round = &run.details.round;
    format!(
        "{:>9} {:>8} {:>9} {:>11.4} {:>10.1} {:>10.1} {:>7} {:>13.0} {:>8.1} {:>9.0} {:>7.1}% {:>6.1}%",
        round.keys,
        run.details.strategy.name(),
        round.lookups,
        round.lookups_per_key(),
        round.messages_per_key(),
        round.copies_per_key(),
        round.walks(),
        round.keys_per_hour(),
        run.wall.as_secs_f64(),
        run.peak_bytes.unwrap_or(0) as f64 / (1 << 20) as f64,
        run.details.placed_share() * 100.0,
        run.details.found_share() * 100.0
    )
}

/// The side-by-side lookup ratio of a count's runs, when both strategies ran.
pub fn ratio_line(runs: &[ReprovideRun]) -> Option<String> {
    let lookups = |strategy| {
        runs.iter()
            .find(|r| r.details.strategy == strategy)
            .map(|r| r.details.round.lookups)
    };
    let (classic, sweep) = (
        lookups(ReprovideStrategy::Classic)?,
        lookups(ReprovideStrategy::Sweep)?,
    );
    Some(format!(
        "{:>9} classic/sweep lookups: {:.0}×, measured side by side in this run",
        runs.first()?.details.round.keys,
        classic as f64 / sweep.max(1) as f64
    ))
}
