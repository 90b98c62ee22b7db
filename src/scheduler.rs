//! `parsec scheduler`: the long-running service that measures fleets of parsec servers.
//!
//! Its set-up is a [`Membership`] discovered in `nodes_ecs` before every round, whose members are
//! reached over their HTTP API only; the [round runner](crate::job) does the rest. Nothing a
//! server or the database does ends the process: every request has a timeout, failed rounds back
//! off, database errors are retried, and the recorder holds rows through outages. On shutdown
//! the round in flight gets a grace period, then it is abandoned and held rows are flushed.
//!
//! ```text
//! interval timer ──RunRound──▶ FleetSupervisor ──discover──▶ Registry (nodes_ecs)
//!                                   │ readiness / provide / retrieve (HTTP, RemoteNode)
//!                                   ▼
//!                          MeasurementRecorder ──▶ provides_ecs / retrievals_ecs
//! ```

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use parsec_actors::{
    node::pubsub::PubsubRecipients, Discovery, MemberEndpoints, Membership, NodeConnector, NodeRecipients,
    RoundConfig,
};

use crate::{
    api::{
        client::{ClientTimeouts, RemoteNode},
        ApiToken,
    },
    db::{
        fleet_lock::{FleetLock, LockRefused},
        DatabaseTarget,
    },
    job::{self, Fleet, Job, Pacing, RoundKind, RunOptions, RunReport, SetUp, Shutdown, StorageOptions},
    telemetry::{
        self,
        metrics::{MetricsEndpoint, SchedulerMetrics},
    },
};

/// What a scheduler does.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Fleets measured (and registered in `schedulers_ecs`).
    pub fleets: Vec<String>,
    /// Fleets whose servers provide (default: all of `fleets`).
    pub provide_fleets: Option<Vec<String>>,
    /// Fleets whose servers retrieve (default: all of `fleets`).
    pub retrieve_fleets: Option<Vec<String>>,
    /// From one round's start to the next (a longer round is followed at once).
    pub interval: Duration,
    /// Round settings: probes, settle, readiness timeout.
    pub round: RoundConfig,
    /// Servers whose last heartbeat is older are not measured.
    pub max_heartbeat_age: Duration,
    /// HTTP timeouts per request kind.
    pub timeouts: ClientTimeouts,
    /// Bearer token sent to the servers.
    pub token: Option<ApiToken>,
    /// Stop after this many rounds (default: run until signalled).
    pub rounds: Option<u64>,
    /// After a shutdown signal, how long the round in flight may take before it is abandoned.
    pub shutdown_grace: Duration,
    /// Where nodes are discovered and measurements go.
    pub database: DatabaseTarget,
    /// Whether the scheduler migrates the database at start (`--no-migrate`: no).
    pub schema: crate::db::SchemaPolicy,
    /// Where rounds are counted (`None`: not counted).
    pub metrics: Option<SchedulerMetrics>,
    /// Run rounds but store nothing: no scheduler row, measurements discarded, no offline marks.
    pub dry_run: bool,
    /// What every round measures (`Dht`: parsec's rounds).
    pub kind: RoundKind,
    /// What to do when another scheduler measures one of the fleets.
    pub if_fleet_locked: IfFleetLocked,
}

/// What a scheduler does when another one holds the lock of a fleet it would measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum IfFleetLocked {
    /// Wait until the other one stops (a rolling deploy: the new task takes over when the old
    /// one has gone).
    #[default]
    Wait,
    /// Exit at once, saying who holds it.
    Exit,
}

/// How often a waiting scheduler tries the lock again.
const LOCK_RETRY: Duration = Duration::from_secs(2);

/// Takes the lock of `config`'s fleets, waiting for it or refusing as `config` says.
async fn lock_fleets(config: &SchedulerConfig) -> anyhow::Result<FleetLock> {
    let fleets = config.all_fleets();
    let mut waiting_since: Option<std::time::Instant> = None;
    let mut backoff = parsec_actors::backoff::Backoff::default();
    loop {
        match FleetLock::try_acquire(&config.database, &fleets).await {
            Ok(lock) => {
                if let Some(since) = waiting_since {
                    tracing::info!(fleets = ?lock.fleets(), waited = ?since.elapsed(), "fleet lock taken: the other scheduler has stopped");
                }
                return Ok(lock);
            }
            Err(refused @ LockRefused::Held { .. }) => match config.if_fleet_locked {
                IfFleetLocked::Exit => anyhow::bail!("{refused}; not starting (--if-fleet-locked exit)"),
                IfFleetLocked::Wait => {
                    // Say it once a minute, not at every try.
                    if waiting_since.is_none_or(|since| since.elapsed().as_secs() % 60 < LOCK_RETRY.as_secs())
                    {
                        tracing::warn!(
                            "{refused}; waiting for it to stop (--if-fleet-locked exit to exit instead)"
                        );
                    }
                    waiting_since.get_or_insert_with(std::time::Instant::now);
                    tokio::time::sleep(LOCK_RETRY).await;
                }
            },
            Err(LockRefused::Database(e)) => {
                let pause = backoff.step();
                tracing::warn!(error = %e, retry_in = ?pause, "taking the fleet lock failed; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

impl SchedulerConfig {
    /// Every fleet a round may involve.
    fn all_fleets(&self) -> Vec<String> {
        let mut fleets = self.fleets.clone();
        for fleet in self.provide_fleets.iter().chain(&self.retrieve_fleets).flatten() {
            if !fleets.contains(fleet) {
                fleets.push(fleet.clone());
            }
        }
        fleets
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            kind: self.kind.clone(),
            storage: StorageOptions {
                target: Some(self.database.clone()),
                dry_run: self.dry_run,
                keep_rows: false,
                // parsec exits on any database error; a scheduler meant to run for weeks waits.
                wait_for_database: true,
                schema: self.schema,
            },
            pacing: Pacing {
                rounds: self.rounds,
                interval: self.interval,
                backoff_after_failure: true,
                shutdown_grace: Some(self.shutdown_grace),
            },
            metrics: self.metrics.clone(),
            progress: false,
        }
    }
}

/// The scheduler as a job: its fleet is whatever the registry lists, measured by it alone.
#[derive(Debug)]
struct SchedulerJob<'a> {
    config: &'a SchedulerConfig,
    /// The lock of its fleets, from set-up to the end of the run.
    lock: Option<FleetLock>,
}

impl Job for SchedulerJob<'_> {
    async fn set_up(&mut self, setup: &SetUp) -> anyhow::Result<Fleet> {
        let config = self.config;
        // Before anything is registered: a scheduler that waits has done nothing yet.
        let lock = lock_fleets(config).await?;
        tracing::info!(fleets = ?lock.fleets(), "fleet lock taken: no other scheduler measures these fleets");
        self.lock = Some(lock);
        let mut round = config.round.clone();
        round
            .set_fleet(config.fleets.join(","))
            .set_provide_fleets(config.provide_fleets.clone())
            .set_retrieve_fleets(config.retrieve_fleets.clone());
        Ok(Fleet {
            membership: Membership::discovered(Discovery {
                registry: setup.registry.clone(),
                fleets: config.all_fleets(),
                max_heartbeat_age: config.max_heartbeat_age,
                connect: connector(config.timeouts, config.token.clone()),
            }),
            round,
            fleets: config.fleets.clone(),
        })
    }

    async fn before_round(&mut self, _: u64) -> anyhow::Result<()> {
        if let Some(lock) = &mut self.lock {
            lock.ensure_held().await.map_err(|e| {
                anyhow::anyhow!("{e}: it took the lock while this scheduler's connection was lost; stopping")
            })?;
        }
        Ok(())
    }

    async fn tear_down(&mut self) {
        self.lock = None;
    }
}

/// Runs the scheduler on an actix `System` of its own until SIGINT/SIGTERM or the round limit,
/// its metrics served at `metrics` (what `parsec scheduler` does).
pub fn run_until_signalled(
    mut config: SchedulerConfig,
    metrics: MetricsEndpoint,
) -> anyhow::Result<RunReport> {
    System::new().block_on(async move {
        // No fleet label on the whole registry: a scheduler may measure several; the series
        // that concern one fleet label it themselves.
        let mut registry = telemetry::metrics::registry(None);
        config.metrics = Some(SchedulerMetrics::register(&mut registry));
        metrics.start(registry);
        run(config, Shutdown::on_signals("")).await
    })
}

/// Runs the scheduler inside the current actix `System` until `shutdown` or the round limit.
pub async fn run(config: SchedulerConfig, shutdown: Shutdown) -> anyhow::Result<RunReport> {
    tracing::info!(fleets = ?config.fleets, database = %config.database, dry_run = config.dry_run, "scheduler starting");
    job::run(
        &mut SchedulerJob {
            config: &config,
            lock: None,
        },
        config.run_options(),
        shutdown,
    )
    .await
}

/// Reaches discovered servers over their HTTP API, one client actor per node.
fn connector(timeouts: ClientTimeouts, token: Option<ApiToken>) -> NodeConnector {
    Arc::new(move |node| {
        let url = format!(
            "http://{}",
            std::net::SocketAddr::new(node.ip_address, node.server_port)
        );
        let remote = RemoteNode::new(url, timeouts).with_token(token.clone()).start();
        MemberEndpoints {
            node: NodeRecipients::of(&remote),
            pubsub: Some(PubsubRecipients::of(&remote)),
            reprovide: Some(remote.recipient()),
        }
    })
}
