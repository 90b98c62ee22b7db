//! `parsec simulate`: parsec rounds over a simulated Kademlia network (see [`crate::sim`]).

use std::{collections::HashMap, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Args;
use parsec_actors::{NodeId, RoundConfig};

use crate::{
    cli::global::DatabaseArgs,
    report,
    sim::{
        reprovide,
        run::{self, SimFleet, SimRunConfig},
        ChurnConfig, DelayModel, KademliaConfig, LookupConfig, Profile, ReprovideStrategy, SimConfig,
        Strategy,
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
    /// The calibration: `ipfs-2023` (parsec's 2023 deployment, six regions) or `ipfs-2025`
    /// (ProbeLab's November 2025 month, seven regions); docs/simulator.md has both tables.
    #[arg(long, env = "PARSEC_SIM_PROFILE", default_value = "ipfs-2023")]
    profile: Profile,
    /// Simulated parsec servers, spread over the profile's regions in turn (ipfs-2023: na, eu, as,
    /// sa, oc, af; ipfs-2025: eu, na-east, na-west, oc, as, sa, af).
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
    /// Share of nodes that are in routing tables but never answer (0..=1; default: the
    /// profile's, 0.2).
    #[arg(long, env = "PARSEC_SIM_UNREACHABLE")]
    unreachable: Option<f64>,
    /// How long a quick failure (refused, reset) takes, e.g. 100ms..1s.
    #[arg(long, env = "PARSEC_SIM_FAILURE_DELAY", default_value = "100ms..1s", value_parser = parse_range)]
    failure_delay: (Duration, Duration),
    /// Share of failures that are silent and wait for the timeout instead (0..=1; default: the
    /// profile's, 0.105 for ipfs-2023).
    #[arg(long, env = "PARSEC_SIM_TIMEOUT_SHARE")]
    timeout_share: Option<f64>,
    /// How long a silent failure takes, e.g. 2s..34s.
    #[arg(long, env = "PARSEC_SIM_TIMEOUT", default_value = "2s..34s", value_parser = parse_range)]
    timeout: (Duration, Duration),
    /// Share of live nodes that leave per virtual hour.
    #[arg(long, env = "PARSEC_SIM_LEAVE_RATE", default_value_t = 0.0)]
    leave_rate: f64,
    /// New nodes per virtual hour, as a share of live nodes.
    #[arg(long, env = "PARSEC_SIM_JOIN_RATE", default_value_t = 0.0)]
    join_rate: f64,
    /// Fleet name of the simulated servers' rows (without --fleets).
    #[arg(long, env = "PARSEC_SIM_FLEET", default_value = "sim")]
    fleet: String,
    /// How the servers provide and retrieve (without --fleets): classic (lookup, then store at
    /// the k closest), optprov (optimistic provide) or fullrt (a crawled full routing table).
    #[arg(long, env = "PARSEC_SIM_STRATEGY", default_value = "classic")]
    strategy: Strategy,
    /// Several fleets side by side, each named after its strategy (e.g. classic,optprov,fullrt;
    /// `default` is the classic strategy under parsec's default fleet name). --servers servers
    /// each; every round, one server provides and the servers of every fleet retrieve.
    #[arg(long, env = "PARSEC_SIM_FLEETS", value_delimiter = ',', value_parser = parse_fleet)]
    fleets: Vec<SimFleet>,
    /// After this long without an answer a lookup's query no longer holds one of the alpha slots
    /// (unset: a query holds its slot until it answers or fails).
    #[arg(long, env = "PARSEC_SIM_PEER_TIMEOUT", value_parser = super::parse_duration)]
    peer_timeout: Option<Duration>,
    /// At the end, write the run's report (html, md with SVG charts, csv, json; with hops and
    /// messages) into this folder, as `parsec report --scheduler ID` would.
    #[arg(long, env = "PARSEC_SIM_REPORT")]
    report: Option<std::path::PathBuf>,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Instead of rounds: reprovide rounds at these key counts (e.g. 100000,1000000): one node
    /// sends the records of all its keys again with each of --reprovide-strategies, on a network
    /// built afresh for each (docs/method.md, "Reprovide rounds").
    #[arg(long, env = "PARSEC_SIM_REPROVIDE", value_delimiter = ',')]
    reprovide: Vec<usize>,
    /// The reprovide strategies: classic (a provide per key), sweep (region by region).
    #[arg(
        long,
        env = "PARSEC_SIM_REPROVIDE_STRATEGIES",
        value_delimiter = ',',
        default_value = "classic,sweep"
    )]
    reprovide_strategies: Vec<ReprovideStrategy>,
    /// Provides (classic) or walks (sweep) at once.
    #[arg(long, env = "PARSEC_SIM_REPROVIDE_WORKERS", default_value_t = 4)]
    reprovide_workers: usize,
    /// Keys of each reprovide round checked afterwards (placed at their true k closest, found by
    /// another node).
    #[arg(long, env = "PARSEC_SIM_REPROVIDE_SAMPLE", default_value_t = 200)]
    reprovide_sample: usize,
}

/// Parses a fleet of `--fleets`: a strategy's name, or `default` (the classic strategy).
fn parse_fleet(text: &str) -> Result<SimFleet, String> {
    match text.trim() {
        "default" => Ok(SimFleet {
            name: "default".to_owned(),
            strategy: Strategy::Classic,
        }),
        name => name.parse().map(SimFleet::of),
    }
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
    /// Reprovide rounds at each key count: a line per strategy, and the lookup ratio.
    fn run_reprovide(
        &self,
        sim: &SimConfig,
        database: Option<&crate::db::DatabaseTarget>,
    ) -> anyhow::Result<ExitCode> {
        if self.reprovide.contains(&0) {
            anyhow::bail!("--reprovide takes key counts of at least 1, e.g. 100000,1000000");
        }
        if self.reprovide_strategies.is_empty() || self.reprovide_workers == 0 {
            anyhow::bail!(
                "--reprovide-strategies needs classic or sweep, and --reprovide-workers at least 1"
            );
        }
        println!(
            "parsec simulate --reprovide: {} nodes ({} profile), {} workers, {} sampled keys; virtual time, \
             simulator figures\n",
            sim.nodes, self.profile, self.reprovide_workers, self.reprovide_sample
        );
        println!("{}", reprovide::header());
        let storing = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime that stores the rounds")?;
        let mut failed = false;
        for &keys in &self.reprovide {
            let runs = reprovide::run(
                sim,
                keys,
                &self.reprovide_strategies,
                self.reprovide_workers,
                self.reprovide_sample,
            )?;
            for run in &runs {
                println!("{}", reprovide::line(run));
            }
            if let Some(ratio) = reprovide::ratio_line(&runs) {
                println!("{ratio}");
            }
            let measured: Vec<_> = runs.iter().map(reprovide::ReprovideRun::measured).collect();
            for round in &measured {
                if let Some(error) = &round.error {
                    eprintln!("error: the {} round of {keys} keys: {error}", round.fleet);
                    failed = true;
                }
            }
            // Each key count stored once measured: a later count's failure loses nothing.
            if let Some(target) = database {
                let scheduler = storing.block_on(crate::job::store_reprovide_rounds(target, measured))?;
                println!("{:>9} stored in {target} as scheduler {scheduler}", keys);
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    fn config(&self, database: &DatabaseArgs) -> anyhow::Result<SimRunConfig> {
        if self.k == 0 || self.alpha == 0 || self.beta == 0 {
            anyhow::bail!("--k, --alpha and --beta must be at least 1");
        }
        if self.nodes < 2 {
            anyhow::bail!("--nodes must be at least 2");
        }
        let mut latency = self.profile.latency();
        if let Some((min, max)) = self.delay_range {
            latency.delay = DelayModel::Range { min, max };
        } else if let DelayModel::Regions { jitter, .. } = &mut latency.delay {
            *jitter = self.jitter.max(0.0);
        }
        latency.connect_round_trips = self.connect_rtts.max(0.0);
        latency.error_rate = share("error-rate", self.error_rate)?;
        latency.failure_delay = self.failure_delay;
        latency.timeout_share = share(
            "timeout-share",
            self.timeout_share.unwrap_or(latency.timeout_share),
        )?;
        latency.timeout = self.timeout;
        let fleets = if self.fleets.is_empty() {
            vec![SimFleet {
                name: self.fleet.clone(),
                strategy: self.strategy,
            }]
        } else {
            self.fleets.clone()
        };
        let label: Vec<&str> = fleets.iter().map(|f| f.name.as_str()).collect();
        let mut round = RoundConfig::default();
        round
            .set_fleet(label.join(","))
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
                        peer_timeout: self.peer_timeout,
                    },
                    beta: self.beta,
                },
                latency,
                unreachable: share(
                    "unreachable",
                    self.unreachable.unwrap_or(self.profile.unreachable()),
                )?,
                seed: self.seed,
            },
            servers: self.servers,
            fleets,
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
        if !self.reprovide.is_empty() {
            return self.run_reprovide(&config.sim, config.database.as_ref());
        }
        let report = run::run_until_signalled(config.clone(), super::INTERRUPT_HINT)?;
        println!(
            "\nparsec simulate: {} nodes (k={}, alpha={}, beta={}, steps to stop {}), {} servers in {}, {} rounds run, seed {}",
            config.sim.nodes,
            self.k,
            self.alpha,
            self.beta,
            self.steps_to_stop,
            config.servers * config.fleets.len(),
            config
                .fleets
                .iter()
                .map(|f| format!("{} ({})", f.name, f.strategy))
                .collect::<Vec<_>>()
                .join(", "),
            report.run.rounds_run,
            self.seed,
        );
        println!("durations are virtual time\n");
        let region_of: HashMap<NodeId, String> = report
            .servers
            .iter()
            .map(|(_, region, id)| (*id, region.clone()))
            .collect();
        let mut sections = vec![
            report::effort_table(&report.outcomes),
            report::region_table(&report.run.rows, &region_of),
        ];
        if config.fleets.len() > 1 {
            sections.push(report::group_table("fleet", &report.run.rows, &report.fleet_of));
        }
        let mut notes = Vec::new();
        if report.churned != (0, 0) {
            notes.push(format!(
                "churn: {} nodes left, {} joined",
                report.churned.0, report.churned.1
            ));
        }
        notes.push(format!("network built in {:.2}s", report.build.as_secs_f64()));
        if !report::print_run(&report.run, &sections, &notes) {
            return Ok(ExitCode::FAILURE);
        }
        if let Some(dir) = &self.report {
            let title = format!("parsec simulate: {} nodes (virtual time)", config.sim.nodes);
            let effort = report::effort_histograms(&report.outcomes);
            if !report::write_run_report(report.run.stored.as_ref(), title, effort, dir) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
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
