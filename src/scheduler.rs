//! `parsec scheduler`: the long-running service that measures fleets of parsec servers.
//!
//! It registers in `schedulers_ecs`, then runs one round per interval through a
//! [`FleetSupervisor`] whose members are discovered in `nodes_ecs` before every round and
//! reached over their HTTP API only. Nothing a server or the database does ends the process:
//! every request has a timeout, failed rounds back off, database errors are retried, and the
//! recorder holds rows through outages. On shutdown the round in flight gets a grace period,
//! then it is abandoned (nothing more of it is recorded) and held rows are flushed.
//!
//! ```text
//! interval timer ──RunRound──▶ FleetSupervisor ──discover──▶ Registry (nodes_ecs)
//!                                   │ readiness / provide / retrieve (HTTP, RemoteNode)
//!                                   ▼
//!                          MeasurementRecorder ──▶ provides_ecs / retrievals_ecs
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use anyhow::bail;
use parsec_actors::{
    recorder, DiscardingSink, Discovery, FleetSupervisor, GetStats, MeasurementRecorder, Membership,
    NodeConnector, NodeRecipients, ReadOnlyRegistry, RecorderStats, Registry, RoundConfig, RoundError,
    RunRound, SchedulerId, SchedulerRegistration,
};
use tokio::sync::watch;

use crate::{
    api::{
        client::{ClientTimeouts, RemoteNode},
        ApiToken,
    },
    db::{self, DatabaseTarget, DbError, Store},
    host,
    telemetry::metrics::SchedulerMetrics,
};

/// How long the closing flush may retry a failing database before giving up on the rows.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// First pause after a failed round or database call; doubles per failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
    /// Where rounds are counted (`None`: not counted).
    pub metrics: Option<SchedulerMetrics>,
    /// Run rounds but store nothing: no scheduler row, measurements discarded, no offline marks.
    pub dry_run: bool,
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
}

/// What a scheduler run did, printed when it ends.
#[derive(Debug)]
pub struct SchedulerReport {
    /// The scheduler's `schedulers_ecs` id (`None` if it stopped before registering).
    pub scheduler: Option<SchedulerId>,
    /// Rounds that ran to the end.
    pub rounds_run: u64,
    /// Rounds that could not run or were abandoned.
    pub rounds_failed: u64,
    /// The recorder's counters at the end.
    pub recorder: RecorderStats,
    /// Why some rows could not be stored at the end.
    pub storage_error: Option<String>,
    /// How long the scheduler ran.
    pub wall: Duration,
}

/// A shutdown request: flips to `true` once.
pub type Shutdown = watch::Receiver<bool>;

/// Doubling pauses between retries, capped.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { next: FIRST_BACKOFF }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    /// The pause to take now; the next one is twice as long.
    fn step(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        pause
    }
}

/// Sleeps for `pause`; returns `false` if shutdown was requested meanwhile.
async fn pause_unless_shutdown(pause: Duration, shutdown: &mut Shutdown) -> bool {
    let slept = tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = shutdown.wait_for(|stop| *stop) => false,
    };
    slept && !*shutdown.borrow()
}

/// Retries `call` with backoff until it succeeds, fails for good, or shutdown is requested.
async fn retry<T, F, Fut>(what: &str, shutdown: &mut Shutdown, mut call: F) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let mut backoff = Backoff::new();
    loop {
        match call().await {
            Ok(value) => return Ok(Some(value)),
            Err(DbError::Config(e)) => bail!("{what}: {e}"),
            Err(e) => {
                let pause = backoff.step();
                tracing::warn!(error = %e, retry_in = ?pause, "{what} failed; retrying");
                if !pause_unless_shutdown(pause, shutdown).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// Runs the scheduler inside the current actix `System` until `shutdown` or the round limit.
pub async fn run(config: SchedulerConfig, mut shutdown: Shutdown) -> anyhow::Result<SchedulerReport> {
    let started = Instant::now();
    let mut report = SchedulerReport {
        scheduler: None,
        rounds_run: 0,
        rounds_failed: 0,
        recorder: RecorderStats::default(),
        storage_error: None,
        wall: Duration::ZERO,
    };
    // parsec exits on any database error; a scheduler meant to run for weeks waits instead.
    let target = config.database.clone();
    let Some(store) = retry(&format!("opening the database {target}"), &mut shutdown, || {
        Store::open(&target)
    })
    .await?
    else {
        return Ok(report);
    };
    let (recorder, registry) = if config.dry_run {
        tracing::info!(fleets = ?config.fleets, database = %target, "dry run: measuring, storing nothing");
        let recorder = MeasurementRecorder::new(DiscardingSink::default()).start();
        let registry: Arc<dyn Registry> = Arc::new(ReadOnlyRegistry(db::registry(&store)));
        (recorder, registry)
    } else {
        let registration = SchedulerRegistration {
            fleets: config.fleets.clone(),
            dependencies: host::dependencies(),
        };
        let Some(scheduler) = retry("registering the scheduler", &mut shutdown, || {
            let store = store.clone();
            let registration = registration.clone();
            async move { store.insert_scheduler(registration).await }
        })
        .await?
        else {
            return Ok(report);
        };
        report.scheduler = Some(scheduler);
        tracing::info!(%scheduler, fleets = ?config.fleets, database = %target, "scheduler registered");
        let recorder = MeasurementRecorder::new(store.measurement_sink(scheduler)).start();
        (recorder, db::registry(&store))
    };
    let supervisor = FleetSupervisor::with_membership(
        Membership::discovered(Discovery {
            registry,
            fleets: config.all_fleets(),
            max_heartbeat_age: config.max_heartbeat_age,
            connect: connector(config.timeouts, config.token.clone()),
        }),
        recorder.clone().recipient(),
        round_config(&config),
    )
    .start();

    let mut backoff = Backoff::new();
    while config
        .rounds
        .is_none_or(|limit| report.rounds_run + report.rounds_failed < limit)
    {
        if *shutdown.borrow() {
            break;
        }
        let round_started = Instant::now();
        let outcome = run_round(&supervisor, &mut shutdown, config.shutdown_grace).await;
        if let Some(metrics) = &config.metrics {
            metrics.record_round(&outcome);
        }
        let mut pause = config.interval.saturating_sub(round_started.elapsed());
        match outcome {
            Ok(summary) => {
                backoff.reset();
                report.rounds_run += 1;
                let found = summary
                    .retrievals
                    .iter()
                    .filter(|(_, r)| r.measurements.iter().all(|m| m.error.is_none()))
                    .count();
                tracing::info!(
                    round = %summary.round,
                    cid = %summary.cid,
                    provider = %summary.provider,
                    provide_s = summary.provide.measurements.first().map_or(0.0, |m| m.duration.as_secs_f64()),
                    found = %format!("{found}/{}", summary.retrievals.len()),
                    failed_requests = summary.failures.len(),
                    not_ready = summary.not_ready.len(),
                    took = ?round_started.elapsed(),
                    "round done"
                );
            }
            Err(RoundError::Abandoned) => {
                report.rounds_failed += 1;
                tracing::warn!("round abandoned at shutdown; its unfinished operations are not recorded");
                break;
            }
            Err(e) => {
                report.rounds_failed += 1;
                // With a zero interval a fleet with no ready node must not be hammered.
                let wait = backoff.step();
                tracing::warn!(error = %e, retry_in = ?wait.max(pause), "round failed");
                pause = pause.max(wait);
            }
        }
        if !pause.is_zero() && !pause_unless_shutdown(pause, &mut shutdown).await {
            break;
        }
    }

    if let Err(e) = recorder::drain(&recorder, DRAIN_TIMEOUT).await {
        tracing::error!(error = %e, "measurements could not all be stored");
        report.storage_error = Some(e.to_string());
    }
    report.recorder = recorder.send(GetStats).await.unwrap_or_default();
    report.wall = started.elapsed();
    Ok(report)
}

/// One round; on shutdown it may finish within `grace`, then it is abandoned.
async fn run_round(
    supervisor: &Addr<FleetSupervisor>,
    shutdown: &mut Shutdown,
    grace: Duration,
) -> Result<parsec_actors::RoundSummary, RoundError> {
    let (message, abort) = RunRound::abortable();
    let round = supervisor.send(message);
    tokio::pin!(round);
    let mailbox = |e: MailboxError| RoundError::Discovery(format!("fleet supervisor unavailable: {e}"));
    tokio::select! {
        result = &mut round => return result.map_err(mailbox)?,
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    tracing::info!(?grace, "shutting down: letting the round in flight finish");
    match tokio::time::timeout(grace, &mut round).await {
        Ok(result) => result.map_err(mailbox)?,
        Err(_) => {
            abort.abort();
            round.await.map_err(mailbox)?
        }
    }
}

fn round_config(config: &SchedulerConfig) -> RoundConfig {
    let mut round = config.round.clone();
    round
        .set_fleet(config.fleets.join(","))
        .set_provide_fleets(config.provide_fleets.clone())
        .set_retrieve_fleets(config.retrieve_fleets.clone());
    round
}

/// Reaches discovered servers over their HTTP API, one client actor per node.
fn connector(timeouts: ClientTimeouts, token: Option<ApiToken>) -> NodeConnector {
    Arc::new(move |node| {
        let url = format!(
            "http://{}",
            std::net::SocketAddr::new(node.ip_address, node.server_port)
        );
        NodeRecipients::of(&RemoteNode::new(url, timeouts).with_token(token.clone()).start())
    })
}

/// A shutdown flag set by `signal` (for the CLI: SIGINT/SIGTERM).
pub fn shutdown_on(signal: impl std::future::Future<Output = ()> + 'static) -> Shutdown {
    let (set, shutdown) = watch::channel(false);
    actix::spawn(async move {
        signal.await;
        let _ = set.send(true);
        // Keep the sender alive so receivers never see a closed channel as a signal.
        std::future::pending::<()>().await;
    });
    shutdown
}
