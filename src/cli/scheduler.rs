//! `parsec scheduler`: the long-running measurement service (see [`crate::scheduler`]).

use std::{process::ExitCode, time::Duration};

use anyhow::bail;
use clap::Args;
use parsec_actors::{config::DEFAULT_PROVIDE_TIMEOUT, PubsubRoundConfig, RoundConfig};

use crate::{
    api::{client::ClientTimeouts, ApiToken},
    cli::global::DatabaseArgs,
    job::RoundKind,
    report,
    scheduler::{self, IfFleetLocked, SchedulerConfig},
};

/// Arguments of `parsec scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Fleets to measure, comma-separated (the `fleet` of their servers' `nodes_ecs` rows).
    #[arg(
        long,
        env = "PARSEC_SCHEDULER_FLEETS",
        value_delimiter = ',',
        default_value = "default"
    )]
    fleets: Vec<String>,
    /// Only servers of these fleets provide (cross-fleet rounds); default: every measured fleet.
    #[arg(long, env = "PARSEC_SCHEDULER_PROVIDE_FLEETS", value_delimiter = ',')]
    provide_fleets: Vec<String>,
    /// Only servers of these fleets retrieve (cross-fleet rounds); default: every measured fleet.
    #[arg(long, env = "PARSEC_SCHEDULER_RETRIEVE_FLEETS", value_delimiter = ',')]
    retrieve_fleets: Vec<String>,
    /// From one round's start to the next; 0 runs rounds back to back.
    #[arg(long, env = "PARSEC_SCHEDULER_INTERVAL", default_value = "1m", value_parser = super::parse_duration)]
    interval: Duration,
    /// Lookups per retrieving server per round.
    #[arg(long, env = "PARSEC_SCHEDULER_PROBES", default_value_t = 1)]
    probes: u32,
    /// Pause between the provide's answer and the retrievals.
    #[arg(long, env = "PARSEC_SCHEDULER_SETTLE", default_value = "0s", value_parser = super::parse_duration)]
    settle: Duration,
    /// Servers whose last heartbeat is older than this are not measured.
    #[arg(long, env = "PARSEC_SCHEDULER_MAX_HEARTBEAT_AGE", default_value = "2m", value_parser = super::parse_duration)]
    max_heartbeat_age: Duration,
    /// A server that does not answer `GET /readiness` within this is skipped and marked offline.
    #[arg(long, env = "PARSEC_SCHEDULER_READINESS_TIMEOUT", default_value = "5s", value_parser = super::parse_duration)]
    readiness_timeout: Duration,
    /// HTTP timeout of a provide; keep it above the servers' own 3 min deadline so their answer
    /// (a measurement, possibly with an error) arrives.
    #[arg(long, env = "PARSEC_SCHEDULER_PROVIDE_TIMEOUT", default_value = "190s", value_parser = super::parse_duration)]
    provide_timeout: Duration,
    /// HTTP timeout of a retrieval; keep it above the servers' retrieval deadline (60 s).
    #[arg(long, env = "PARSEC_SCHEDULER_RETRIEVE_TIMEOUT", default_value = "70s", value_parser = super::parse_duration)]
    retrieve_timeout: Duration,
    /// Shared secret sent as `Authorization: Bearer <token>`. Prefer the environment variable.
    #[arg(long, env = "PARSEC_API_TOKEN", hide_env_values = true, value_parser = super::server::parse_token)]
    api_token: Option<ApiToken>,
    /// Stop after this many rounds (default: run until SIGINT/SIGTERM).
    #[arg(long, env = "PARSEC_SCHEDULER_ROUNDS")]
    rounds: Option<u64>,
    /// After SIGINT/SIGTERM, how long the round in flight may finish before it is abandoned
    /// (its unfinished operations are not recorded). ECS kills after 30 s by default.
    #[arg(long, env = "PARSEC_SCHEDULER_SHUTDOWN_GRACE", default_value = "25s", value_parser = super::parse_duration)]
    shutdown_grace: Duration,
    /// When another scheduler measures one of the fleets (one per fleet: a lock in the
    /// database): `wait` until it stops (rolling deploys), or `exit` saying who holds it.
    #[arg(long, env = "PARSEC_SCHEDULER_IF_FLEET_LOCKED", value_enum, default_value_t = IfFleetLocked::Wait)]
    if_fleet_locked: IfFleetLocked,
    /// What every round measures: `dht` (provide and retrieve, parsec's rounds) or `gossipsub`
    /// (one server publishes --messages messages, the others report each first copy; the servers
    /// run with --gossipsub).
    #[arg(long, env = "PARSEC_SCHEDULER_PROTOCOL", value_enum, default_value_t = Protocol::Dht)]
    protocol: Protocol,
    /// Gossipsub rounds: the topic.
    #[arg(long, env = "PARSEC_SCHEDULER_TOPIC", default_value = "parsec-pubsub")]
    topic: String,
    /// Gossipsub rounds: messages the publisher sends per round.
    #[arg(long, env = "PARSEC_SCHEDULER_MESSAGES", default_value_t = 10)]
    messages: usize,
    /// Gossipsub rounds: size of a message in bytes (its 16-byte id included).
    #[arg(long, env = "PARSEC_SCHEDULER_MESSAGE_BYTES", default_value_t = 1024)]
    message_bytes: usize,
    /// Gossipsub rounds: after the first send, later copies count as lost.
    #[arg(long, env = "PARSEC_SCHEDULER_DELIVERY_DEADLINE", default_value = "10s", value_parser = super::parse_duration)]
    delivery_deadline: Duration,
    /// Gossipsub rounds: HTTP round trips each server's clock offset is estimated from.
    #[arg(long, env = "PARSEC_SCHEDULER_CLOCK_SAMPLES", default_value_t = 8)]
    clock_samples: usize,
    /// Reprovide rounds: CIDs the providing server reprovides per strategy.
    #[arg(long, env = "PARSEC_SCHEDULER_REPROVIDE_KEYS", default_value_t = 10_000)]
    reprovide_keys: usize,
    /// Reprovide rounds: the strategies, one request each per round: classic (a provide per
    /// CID), sweep (region by region).
    #[arg(
        long,
        env = "PARSEC_SCHEDULER_REPROVIDE_STRATEGIES",
        value_delimiter = ',',
        default_value = "classic,sweep"
    )]
    reprovide_strategies: Vec<parsec_actors::ReprovideStrategy>,
    /// Reprovide rounds: provides or walks at once.
    #[arg(long, env = "PARSEC_SCHEDULER_REPROVIDE_WORKERS", default_value_t = 4)]
    reprovide_workers: usize,
    /// Reprovide rounds: CIDs the other servers look up afterwards.
    #[arg(long, env = "PARSEC_SCHEDULER_REPROVIDE_SAMPLE", default_value_t = 100)]
    reprovide_sample: usize,
    /// Reprovide rounds: how long one strategy's round may take (the request lasts it).
    #[arg(long, env = "PARSEC_SCHEDULER_REPROVIDE_TIMEOUT", default_value = "1h", value_parser = super::parse_duration)]
    reprovide_timeout: Duration,
}

/// What a scheduler's rounds measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Protocol {
    Dht,
    Gossipsub,
    Reprovide,
}

/// Empty list → `None` (every fleet).
fn fleets_or_all(fleets: &[String]) -> Option<Vec<String>> {
    (!fleets.is_empty()).then(|| fleets.to_vec())
}

impl SchedulerArgs {
    fn config(&self, database: &DatabaseArgs, dry_run: bool) -> anyhow::Result<SchedulerConfig> {
        let named = |list: &[String]| list.iter().all(|f| !f.trim().is_empty());
        if self.fleets.is_empty() || !named(&self.fleets) {
            bail!("--fleets needs at least one fleet name, e.g. --fleets default,optprov");
        }
        if self.rounds == Some(0) {
            bail!("--rounds must be at least 1 (leave it out to run until stopped)");
        }
        if !named(&self.provide_fleets) || !named(&self.retrieve_fleets) {
            bail!("--provide-fleets and --retrieve-fleets take fleet names, e.g. --provide-fleets optprov");
        }
        if self.provide_timeout < DEFAULT_PROVIDE_TIMEOUT {
            tracing::warn!(
                provide_timeout = ?self.provide_timeout,
                "the provide timeout is below the servers' own {DEFAULT_PROVIDE_TIMEOUT:?} deadline: \
                 slow provides will be cut off and not recorded"
            );
        }
        let kind = match self.protocol {
            Protocol::Dht => RoundKind::Dht,
            Protocol::Reprovide => {
                let config = parsec_actors::ReprovideRoundConfig {
                    keys: self.reprovide_keys,
                    strategies: self.reprovide_strategies.clone(),
                    workers: self.reprovide_workers,
                    sample: self.reprovide_sample,
                };
                if config.strategies.is_empty() {
                    bail!("--reprovide-strategies needs at least one of classic, sweep");
                }
                // The servers refuse what they cannot serve; say it before the first round.
                parsec_actors::node::reprovide::ReprovideContent {
                    cids: config.keys,
                    strategy: parsec_actors::ReprovideStrategy::Sweep,
                    workers: config.workers,
                    sample: config.sample,
                    seed: 0,
                    scheduler: None,
                    span: tracing::Span::none(),
                }
                .check()
                .map_err(|e| {
                    anyhow::anyhow!("--reprovide-keys, --reprovide-workers, --reprovide-sample: {e}")
                })?;
                RoundKind::Reprovide(config)
            }
            Protocol::Gossipsub => {
                if self.messages == 0 || self.clock_samples == 0 {
                    bail!("--messages and --clock-samples must be at least 1");
                }
                // The servers sign (gossipsub's default validation) with ed25519 keys, unless told
                // otherwise; one with a larger key refuses what does not fit with a 413 row.
                parsec_actors::pubsub::check_message_bytes(
                    self.message_bytes,
                    &self.topic,
                    parsec_actors::pubsub::Validation::Strict,
                )
                .map_err(|e| anyhow::anyhow!("--message-bytes must be {e}"))?;
                RoundKind::Pubsub(PubsubRoundConfig {
                    topic: self.topic.clone(),
                    messages: self.messages,
                    message_bytes: self.message_bytes,
                    deadline: self.delivery_deadline,
                    clock_samples: self.clock_samples,
                    ..PubsubRoundConfig::default()
                })
            }
        };
        let mut round = RoundConfig::default();
        round
            .set_probes(self.probes)
            .set_settle(self.settle)
            .set_readiness_timeout(self.readiness_timeout);
        Ok(SchedulerConfig {
            fleets: self.fleets.clone(),
            provide_fleets: fleets_or_all(&self.provide_fleets),
            retrieve_fleets: fleets_or_all(&self.retrieve_fleets),
            interval: self.interval,
            round,
            max_heartbeat_age: self.max_heartbeat_age,
            timeouts: ClientTimeouts {
                provide: self.provide_timeout,
                retrieve: self.retrieve_timeout,
                readiness: self.readiness_timeout,
                reprovide: self.reprovide_timeout,
            },
            token: self.api_token.clone(),
            rounds: self.rounds,
            shutdown_grace: self.shutdown_grace,
            database: database.target()?,
            schema: database.schema_policy(),
            if_fleet_locked: self.if_fleet_locked,
            metrics: None,
            dry_run,
            kind,
        })
    }

    pub(crate) fn run(self, global: super::GlobalArgs) -> anyhow::Result<ExitCode> {
        let dry_run = global.dry_run;
        let config = self.config(&global.database, dry_run)?;
        let report = scheduler::run_until_signalled(config, global.telemetry.endpoint())?;
        let scheduler = report.scheduler.map_or_else(
            || if dry_run { "(dry run)" } else { "unregistered" }.to_owned(),
            |id| id.to_string(),
        );
        println!(
            "parsec scheduler {scheduler}: {} rounds run, {} failed, {} rows recorded, {} stored, {} dropped, \
             {} failed writes, {:.1}s",
            report.rounds_run,
            report.rounds_failed,
            report.recorder.received,
            report.recorder.written,
            report.recorder.dropped,
            report.recorder.failed_writes,
            report.wall.as_secs_f64()
        );
        if !report::print_run(&report, &[], &[]) {
            return Ok(ExitCode::FAILURE);
        }
        if let Some(reason) = report.nothing_measured() {
            eprintln!("error: {reason}");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}
