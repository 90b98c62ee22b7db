//! `parsec simulate`: parsec rounds over a simulated Kademlia network (see [`crate::sim`]).

use std::{collections::HashMap, process::ExitCode, time::Duration};

use actix::System;
use clap::Args;
use parsec_actors::{NodeId, Operation, RoundConfig};

use crate::{
    db::DatabaseArgs,
    report,
    sim::{
        run::{self, SimRunConfig, SimRunReport},
        ChurnConfig, DelayModel, KademliaConfig, LatencyModel, LookupConfig, OperationKind, SimConfig,
        DEFAULT_UNREACHABLE,
    },
};

/// Arguments of `parsec simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Nodes of the simulated network.
    #[arg(long, env = "PARSEC_SIM_NODES", default_value_t = 25_000)]
    nodes: usize,
    /// Bucket size, and the peers a lookup converges on.
    #[arg(long, env = "PARSEC_SIM_K", default_value_t = 20)]
    k: usize,
    /// Queries a lookup keeps in flight.
    #[arg(long, env = "PARSEC_SIM_ALPHA", default_value_t = 3)]
    alpha: usize,
    /// Peers a node returns per answer.
    #[arg(long, env = "PARSEC_SIM_BETA", default_value_t = 20)]
    beta: usize,
    /// Answers in a row without a closer peer that end a lookup (0: only when the k closest
    /// answered, as libp2p).
    #[arg(long, env = "PARSEC_SIM_STEPS_TO_STOP", default_value_t = 0)]
    steps_to_stop: usize,
    /// Rounds to run.
    #[arg(long, env = "PARSEC_SIM_ROUNDS", default_value_t = 100)]
    rounds: usize,
    /// Seed of the network, the delays and the content: the same seed gives the same results.
    #[arg(long, env = "PARSEC_SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// Simulated parsec servers, spread over the regions in turn (na, eu, as, sa, oc, af).
    #[arg(long, env = "PARSEC_SIM_SERVERS", default_value_t = 6)]
    servers: usize,
    /// Lookups per retrieving server per round.
    #[arg(long, env = "PARSEC_SIM_PROBES", default_value_t = 1)]
    probes: u32,
    /// Virtual time between rounds, in which churn happens.
    #[arg(long, env = "PARSEC_SIM_ROUND_INTERVAL", default_value = "60s", value_parser = super::parse_duration)]
    round_interval: Duration,
    /// A uniform delay range per request instead of the region RTT matrix (py-dht's
    /// delay_range), e.g. 50ms..500ms.
    #[arg(long, env = "PARSEC_SIM_DELAY_RANGE", value_parser = parse_range)]
    delay_range: Option<(Duration, Duration)>,
    /// Relative jitter on the region RTTs.
    #[arg(long, env = "PARSEC_SIM_JITTER", default_value_t = 0.3)]
    jitter: f64,
    /// Extra round trips to open a connection before the first request to a peer.
    #[arg(long, env = "PARSEC_SIM_CONNECT_RTTS", default_value_t = 0.0)]
    connect_rtts: f64,
    /// Share of requests that fail although the peer is up (0..=1).
    #[arg(long, env = "PARSEC_SIM_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,
    /// Share of nodes that are in routing tables but never answer (0..=1).
    #[arg(long, env = "PARSEC_SIM_UNREACHABLE", default_value_t = DEFAULT_UNREACHABLE)]
    unreachable: f64,
    /// How long a quick failure (refused, reset) takes, e.g. 100ms..1s.
    #[arg(long, env = "PARSEC_SIM_FAILURE_DELAY", default_value = "100ms..1s", value_parser = parse_range)]
    failure_delay: (Duration, Duration),
    /// Share of failures that are silent and wait for the timeout instead (0..=1).
    #[arg(long, env = "PARSEC_SIM_TIMEOUT_SHARE", default_value_t = 0.105)]
    timeout_share: f64,
    /// How long a silent failure takes, e.g. 2s..34s.
    #[arg(long, env = "PARSEC_SIM_TIMEOUT", default_value = "2s..34s", value_parser = parse_range)]
    timeout: (Duration, Duration),
    /// Share of live nodes that leave per virtual hour.
    #[arg(long, env = "PARSEC_SIM_LEAVE_RATE", default_value_t = 0.0)]
    leave_rate: f64,
    /// New nodes per virtual hour, as a share of live nodes.
    #[arg(long, env = "PARSEC_SIM_JOIN_RATE", default_value_t = 0.0)]
    join_rate: f64,
    /// Fleet name of the simulated servers' rows.
    #[arg(long, env = "PARSEC_SIM_FLEET", default_value = "sim")]
    fleet: String,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// Parses `MIN..MAX` durations, e.g. `50ms..500ms`.
fn parse_range(text: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = text
        .split_once("..")
        .ok_or_else(|| format!("expected MIN..MAX (e.g. 50ms..500ms), not {text:?}"))?;
    let (min, max) = (
        super::parse_duration(min.trim())?,
        super::parse_duration(max.trim())?,
    );
    if min > max {
        return Err(format!("the minimum {min:?} is above the maximum {max:?}"));
    }
    Ok((min, max))
}

fn share(name: &str, value: f64) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&value) {
        anyhow::bail!("--{name} must be within 0 and 1, not {value}");
    }
    Ok(value)
}

impl SimulateArgs {
    fn config(&self, database: &DatabaseArgs) -> anyhow::Result<SimRunConfig> {
        if self.k == 0 || self.alpha == 0 || self.beta == 0 {
            anyhow::bail!("--k, --alpha and --beta must be at least 1");
        }
        if self.nodes < 2 {
            anyhow::bail!("--nodes must be at least 2");
        }
        let mut latency = LatencyModel::ipfs();
        if let Some((min, max)) = self.delay_range {
            latency.delay = DelayModel::Range { min, max };
        } else if let DelayModel::Regions { jitter, .. } = &mut latency.delay {
            *jitter = self.jitter.max(0.0);
        }
        latency.connect_round_trips = self.connect_rtts.max(0.0);
        latency.error_rate = share("error-rate", self.error_rate)?;
        latency.failure_delay = self.failure_delay;
        latency.timeout_share = share("timeout-share", self.timeout_share)?;
        latency.timeout = self.timeout;
        let mut round = RoundConfig::default();
        round
            .set_fleet(self.fleet.clone())
            .set_probes(self.probes)
            .set_seed(Some(self.seed));
        Ok(SimRunConfig {
            sim: SimConfig {
                nodes: self.nodes,
                kademlia: KademliaConfig {
                    lookup: LookupConfig {
                        k: self.k,
                        alpha: self.alpha,
                        steps_to_stop: self.steps_to_stop,
                    },
                    beta: self.beta,
                },
                latency,
                unreachable: share("unreachable", self.unreachable)?,
                seed: self.seed,
            },
            servers: self.servers,
            rounds: self.rounds,
            round_interval: self.round_interval,
            churn: ChurnConfig {
                leave_per_hour: self.leave_rate,
                join_per_hour: self.join_rate,
            },
            round,
            database: Some(database.target()?),
            progress: !self.no_progress,
        })
    }

    pub(crate) fn run(self, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
        let config = self.config(database)?;
        let report = System::new().block_on(run::run(config.clone()))?;
        println!(
            "\nparsec simulate: {} nodes (k={}, alpha={}, beta={}, steps to stop {}), {} servers, {} rounds run, seed {}",
            config.sim.nodes,
            self.k,
            self.alpha,
            self.beta,
            self.steps_to_stop,
            config.servers,
            report.rounds_run,
            self.seed,
        );
        println!("durations are virtual time\n");
        print!("{}", report::render_table(&report::summarize(&report.rows)));
        println!();
        print!("{}", effort_table(&report));
        println!();
        print!("{}", region_table(&report));
        println!();
        for (operation, error, count) in report::top_errors(&report.rows, 5) {
            println!("{count:>6} × {operation} error: {error}");
        }
        for error in &report.round_errors {
            println!("round failed: {error}");
        }
        if report.churned != (0, 0) {
            println!(
                "churn: {} nodes left, {} joined",
                report.churned.0, report.churned.1
            );
        }
        println!(
            "network built in {:.2}s, wall time {:.1}s, peak RSS {}",
            report.build.as_secs_f64(),
            report.wall.as_secs_f64(),
            report::mebibytes(report.peak_rss_bytes)
        );
        if !super::print_storage(report.stored.as_ref(), report.storage_error.as_deref()) {
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Hops and messages per operation (p50 / p90 / max).
fn effort_table(report: &SimRunReport) -> String {
    let mut out = format!(
        "{:<10} {:>6} {:>16} {:>20} {:>16}\n",
        "operation", "count", "hops p50/p90/max", "messages p50/p90/max", "failed requests"
    );
    for kind in [OperationKind::Provide, OperationKind::Retrieve] {
        let of_kind: Vec<_> = report.outcomes.iter().filter(|(_, o)| o.kind == kind).collect();
        let mut hops: Vec<u32> = of_kind.iter().map(|(_, o)| o.hops).collect();
        let mut messages: Vec<u32> = of_kind.iter().map(|(_, o)| o.messages).collect();
        hops.sort_unstable();
        messages.sort_unstable();
        let failures: u64 = of_kind.iter().map(|(_, o)| u64::from(o.failures)).sum();
        let triple = |v: &[u32]| {
            format!(
                "{}/{}/{}",
                percentile(v, 50.0),
                percentile(v, 90.0),
                v.last().copied().unwrap_or(0)
            )
        };
        out.push_str(&format!(
            "{:<10} {:>6} {:>16} {:>20} {:>16}\n",
            format!("{kind:?}").to_lowercase(),
            of_kind.len(),
            triple(&hops),
            triple(&messages),
            failures
        ));
    }
    out
}

/// Median retrieval and provide time per region of the server.
fn region_table(report: &SimRunReport) -> String {
    let region_of: HashMap<NodeId, &str> = report
        .servers
        .iter()
        .map(|(_, region, id)| (*id, region.as_str()))
        .collect();
    let mut out = format!(
        "{:<8} {:>14} {:>14} {:>12}\n",
        "region", "retrieval p50", "provide p50", "found"
    );
    let mut regions: Vec<&str> = report.servers.iter().map(|(_, r, _)| r.as_str()).collect();
    regions.dedup();
    regions.sort_unstable();
    regions.dedup();
    for region in regions {
        let rows: Vec<_> = report
            .rows
            .iter()
            .filter(|r| region_of.get(&r.node) == Some(&region))
            .cloned()
            .collect();
        let stats = report::summarize(&rows);
        let p50 = |op: Operation| {
            stats
                .iter()
                .find(|s| s.operation == op)
                .and_then(|s| s.p50)
                .map_or_else(|| "-".to_owned(), |d| format!("{:.3}s", d.as_secs_f64()))
        };
        let retrievals = stats.iter().find(|s| s.operation == Operation::Retrieval);
        out.push_str(&format!(
            "{:<8} {:>14} {:>14} {:>12}\n",
            region,
            p50(Operation::Retrieval),
            p50(Operation::Provide),
            retrievals.map_or_else(|| "-".to_owned(), |s| format!("{}/{}", s.successes, s.count)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_reject_nonsense() {
        assert_eq!(
            parse_range("50ms..500ms").unwrap(),
            (Duration::from_millis(50), Duration::from_millis(500))
        );
        assert!(parse_range("500ms..50ms").unwrap_err().contains("above"));
        assert!(parse_range("50ms").unwrap_err().contains("MIN..MAX"));
    }

    #[test]
    fn the_flag_defaults_are_the_calibrated_library_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SimulateArgs,
            #[command(flatten)]
            database: DatabaseArgs,
        }
        let wrapper = Wrapper::parse_from(["parsec"]);
        let config = wrapper.args.config(&wrapper.database).unwrap();
        assert_eq!(config.sim, SimConfig::default());
    }
}
