//! The round runner every job shares: the scheduler against server processes, the testnet of
//! real peers in this process and the simulator all set a fleet up, then hand it to [`run`],
//! which owns what follows: storage, the rounds (interval, backoff, shutdown), the closing
//! drain, the clean-up and the [`RunReport`]. A new job is set-up code only: a [`Job`].
//!
//! ```text
//! open storage ─▶ Job::set_up ─▶ register as scheduler ─▶ rounds ─▶ drain ─▶ Job::tear_down
//!                  (raced with        │        ▲ before_round (churn, …)
//!                   shutdown)         ▼        │ interval / backoff / shutdown stages
//!                               FleetSupervisor ──RecordMeasurement──▶ MeasurementRecorder
//! ```

pub mod shutdown;
mod storage;

pub(crate) use storage::store_reprovide_rounds;
pub use storage::MeasuredRound;

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use parsec_actors::{
    backoff::Backoff, FleetSupervisor, GetStats, Measurement, MeasurementRecorder, Membership,
    PubsubRoundConfig, PubsubRoundSummary, RecorderStats, Registry, ReprovideRoundConfig,
    ReprovideRoundSummary, RoundConfig, RoundError, RoundSummary, RunPubsubRound, RunReprovideRound,
    RunRound, SchedulerId, TakeCensus,
};

pub(crate) use self::storage::{JobStorage, Recorded, Recording};
pub use self::{
    shutdown::{Shutdown, ShutdownTrigger, Stage},
    storage::StorageOptions,
};
use crate::{
    db::{DatabaseTarget, Store},
    progress::bar,
    telemetry::{
        self,
        health::{RunHealth, DATABASE_CHECK_INTERVAL},
        metrics::SchedulerMetrics,
    },
};

/// Distinct round errors a report keeps (a scheduler may fail the same way for weeks).
const MAX_DISTINCT_ROUND_ERRORS: usize = 16;

/// What a job's set-up hands the runner: the members to measure and how rounds run.
#[derive(Debug)]
pub struct Fleet {
    /// The members (fixed, or discovered before every round).
    pub membership: Membership,
    /// Probes, settle, readiness timeout, fleet label.
    pub round: RoundConfig,
    /// The fleets the job registers as measuring (`schedulers_ecs.fleets`).
    pub fleets: Vec<String>,
}

/// What the runner gives a job's set-up.
#[derive(Debug)]
pub struct SetUp {
    /// Where the job's servers register (the database, in memory, or read-only in a dry run).
    pub registry: Arc<dyn Registry>,
    /// Whether to draw progress bars.
    pub progress: bool,
}

/// A job: how its fleet is set up, what happens between rounds, and how it is taken down.
pub trait Job {
    /// Starts what the job measures. Anything started is kept on `self` as it starts, so that
    /// [`Job::tear_down`] stops it even when the set-up fails or is interrupted half-way.
    fn set_up(&mut self, setup: &SetUp) -> impl Future<Output = anyhow::Result<Fleet>>;

    /// Runs before round `index` (0-based); the simulator lets virtual time pass here.
    fn before_round(&mut self, index: u64) -> impl Future<Output = anyhow::Result<()>> {
        let _ = index;
        async { Ok(()) }
    }

    /// Runs round `index` itself, in a run of [`RoundKind::Own`], its rows sent to `recorder`;
    /// returns the progress bar's line about it. An error ends the run, counted as a failed round.
    fn run_own_round(
        &mut self,
        index: u64,
        recorder: &Addr<MeasurementRecorder>,
    ) -> impl Future<Output = anyhow::Result<String>> {
        let _ = (index, recorder);
        async { anyhow::bail!("this job runs no rounds of its own") }
    }

    /// Stops what the set-up started (servers offline, peers closed). Runs exactly once.
    fn tear_down(&mut self) -> impl Future<Output = ()>;
}

/// How rounds follow each other.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// Rounds to run (`None`: until shutdown).
    pub rounds: Option<u64>,
    /// From one round's start to the next (a longer round is followed at once).
    pub interval: Duration,
    /// Pause after failed rounds, doubling (a fleet with no ready node is not hammered).
    pub backoff_after_failure: bool,
    /// After the first shutdown signal, how long the round in flight may take before it is
    /// abandoned (`None`: until the second signal).
    pub shutdown_grace: Option<Duration>,
}

/// What every round measures.
#[derive(Clone, Debug, Default)]
pub enum RoundKind {
    /// A provide and its retrievals (parsec's round).
    #[default]
    Dht,
    /// Pubsub messages and their deliveries.
    Pubsub(PubsubRoundConfig),
    /// A member's reprovide rounds and the lookups of their samples.
    Reprovide(ReprovideRoundConfig),
    /// Rounds the job runs itself ([`Job::run_own_round`]): the gossipsub sweep publishes from
    /// peers in this process and counts what no server reports (first copies straight from the
    /// publisher, copies that reached hosts which had left, the js-libp2p peers' deliveries).
    Own,
}

/// What one round did.
#[derive(Debug)]
enum RoundOutcome {
    Dht(RoundSummary),
    Pubsub(PubsubRoundSummary),
    Reprovide(ReprovideRoundSummary),
    /// A job's own round, as its line for the progress bar.
    Own(String),
}

impl RoundOutcome {
    /// Requests that produced no answer.
    fn request_failures(&self) -> usize {
        match self {
            Self::Dht(summary) => summary.failures.len(),
            Self::Pubsub(summary) => summary.failures.len(),
            Self::Reprovide(summary) => summary.strategies.len() - summary.recorded(),
            Self::Own(_) => 0,
        }
    }

    /// Logs the round, which took `took`; returns its line for the progress bar.
    fn log(&self, took: Duration) -> String {
        match self {
            Self::Dht(summary) => {
                tracing::info!(
                    round = %summary.round,
                    cid = %summary.cid,
                    provider = %summary.provider,
                    provide_s = provide_duration(summary).as_secs_f64(),
                    found = %format!("{}/{}", found(summary), summary.retrievals.len()),
                    failed_requests = summary.failures.len(),
                    not_ready = summary.not_ready.len(),
                    ?took,
                    "round done"
                );
                describe(summary)
            }
            Self::Pubsub(summary) => {
                let delivered = format!("{}/{}", summary.deliveries.delivered, summary.deliveries.expected);
                for (node, error) in &summary.failures {
                    tracing::warn!(%node, %error, "pubsub request failed");
                }
                tracing::info!(
                    round = ?summary.round,
                    publisher = ?summary.publisher,
                    published = summary.published,
                    refused = summary.refused,
                    delivered = %delivered,
                    failed_requests = summary.failures.len(),
                    not_ready = summary.not_ready.len(),
                    ?took,
                    "pubsub round done"
                );
                format!("last: delivered {delivered}")
            }
            Self::Reprovide(summary) => {
                let mut parts = Vec::new();
                for (strategy, done) in &summary.strategies {
                    match done {
                        Ok(details) => {
                            tracing::info!(
                                round = ?summary.round,
                                provider = ?summary.provider,
                                %strategy,
                                cids = details.round.keys,
                                seconds = details.round.duration.as_secs_f64(),
                                lookups = details.round.lookups,
                                found = %format!("{}/{}", details.found, details.sampled),
                                "reprovide round done"
                            );
                            parts.push(format!(
                                "{strategy} {:.0} CIDs/h, {} lookups, found {}/{}",
                                details.round.keys_per_hour(),
                                details.round.lookups,
                                details.found,
                                details.sampled
                            ));
                        }
                        Err(error) => {
                            tracing::warn!(round = ?summary.round, provider = ?summary.provider, %strategy, %error, "reprovide round failed");
                            parts.push(format!("{strategy} failed"));
                        }
                    }
                }
                tracing::info!(
                    not_ready = summary.not_ready.len(),
                    ?took,
                    "reprovide rounds done"
                );
                format!("last: {}", parts.join("; "))
            }
            Self::Own(line) => line.clone(),
        }
    }
}

/// Everything [`run`] needs besides the job.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// What every round measures.
    pub kind: RoundKind,
    /// Where servers register and rows go.
    pub storage: StorageOptions,
    /// How rounds follow each other.
    pub pacing: Pacing,
    /// Where rounds are counted (`None`: not counted).
    pub metrics: Option<SchedulerMetrics>,
    /// Draw progress bars.
    pub progress: bool,
}

impl RunOptions {
    /// An offline job (testnet, simulation): `rounds` back to back into `target` (or memory),
    /// failing at once if the database is unreachable, keeping the rows for the report, rounds
    /// abandoned only at the second signal.
    pub fn offline(target: Option<DatabaseTarget>, rounds: u64, progress: bool) -> Self {
        Self {
            kind: RoundKind::Dht,
            storage: StorageOptions {
                target,
                dry_run: false,
                keep_rows: true,
                wait_for_database: false,
                schema: crate::db::SchemaPolicy::Migrate,
            },
            pacing: Pacing {
                rounds: Some(rounds),
                interval: Duration::ZERO,
                backoff_after_failure: false,
                shutdown_grace: None,
            },
            metrics: None,
            progress,
        }
    }
}

/// What a run did, printed when it ends ([`crate::report::print_run`]).
#[derive(Debug, Default)]
pub struct RunReport {
    /// The run's `schedulers_ecs` id (`None`: a dry run, or stopped before registering).
    pub scheduler: Option<SchedulerId>,
    /// Rounds that ran to the end.
    pub rounds_run: u64,
    /// Rounds that could not run or were abandoned.
    pub rounds_failed: u64,
    /// Why rounds failed: distinct messages with their counts (bounded).
    pub round_errors: BTreeMap<String, u64>,
    /// Requests that got no report from their server (not recorded).
    pub request_failures: u64,
    /// Every row recorded, when [`StorageOptions::keep_rows`].
    pub rows: Vec<Measurement>,
    /// The recorder's counters at the end.
    pub recorder: RecorderStats,
    /// Where the rows are stored and under which scheduler id.
    pub stored: Option<(DatabaseTarget, SchedulerId)>,
    /// Why some rows could not be stored (the database stayed unreachable at the end).
    pub storage_error: Option<String>,
    /// From the start until the fleet was set up.
    pub setup: Duration,
    /// The whole run.
    pub wall: Duration,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
}

impl RunReport {
    /// Why the run measured nothing, if it did not: no row recorded a successful operation
    /// (a stored provide, a found record, a delivered message). Such a run exits non-zero with
    /// this reason.
    pub fn nothing_measured(&self) -> Option<String> {
        if self.recorder.succeeded > 0 {
            return None;
        }
        let most_common = self
            .round_errors
            .iter()
            .max_by_key(|(_, count)| **count)
            .map(|(error, _)| format!(" (most often: {error})"))
            .unwrap_or_default();
        Some(if self.rounds_run == 0 {
            format!(
                "no round ran to its end ({} failed{most_common}); nothing was measured",
                self.rounds_failed
            )
        } else {
            format!(
                "{} rounds ran, but none of their {} operations succeeded; nothing was measured",
                self.rounds_run, self.recorder.received
            )
        })
    }

    fn count_round_error(&mut self, error: &dyn std::fmt::Display) {
        let message = error.to_string();
        if self.round_errors.len() < MAX_DISTINCT_ROUND_ERRORS || self.round_errors.contains_key(&message) {
            *self.round_errors.entry(message).or_default() += 1;
        } else {
            *self.round_errors.entry("(other errors)".to_owned()).or_default() += 1;
        }
    }

    fn absorb(&mut self, recorded: Recorded) {
        self.rows = recorded.rows;
        self.recorder = recorded.stats;
        self.scheduler = recorded.scheduler;
        self.stored = recorded.stored;
        self.storage_error = recorded.storage_error;
    }
}

/// Runs `job` inside the current actix `System`: set-up, rounds until the round limit or
/// shutdown, drain, tear-down. A set-up that fails or is interrupted is torn down before the
/// error returns; nothing measured is lost to a shutdown.
pub async fn run(
    job: &mut impl Job,
    options: RunOptions,
    mut shutdown: Shutdown,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let mut report = RunReport::default();
    let Some(storage) = JobStorage::open(options.storage.clone(), &mut shutdown).await? else {
        return Ok(finished(report, started));
    };
    // Whatever the set-up started is torn down exactly once, however the run ends.
    let started_fleet = start_fleet(job, &storage, options.progress, &mut shutdown).await;
    let StartedFleet {
        set_up_at,
        recording,
        supervisor,
        fleets,
    } = match started_fleet {
        Ok(Some(fleet)) => fleet,
        other => {
            job.tear_down().await;
            return other.map(|_| finished(report, started));
        }
    };
    report.setup = set_up_at.duration_since(started);
    tracing::info!(setup = ?report.setup, "fleet set up");
    let watching = options.metrics.as_ref().map(|metrics| {
        metrics.health.started(&fleets, options.pacing.interval);
        actix::spawn(watch_storage(
            metrics.health.clone(),
            recording.recorder.clone(),
            storage.store(),
        ))
    });
    run_rounds(
        job,
        (&supervisor, &recording.recorder, &fleets),
        &options,
        &mut shutdown,
        &mut report,
    )
    .await;
    report.absorb(recording.finish().await);
    if let Some(watching) = watching {
        watching.abort();
    }
    job.tear_down().await;
    Ok(finished(report, started))
}

/// A fleet set up and ready for rounds.
struct StartedFleet {
    /// When the job's set-up finished.
    set_up_at: Instant,
    recording: Recording,
    supervisor: Addr<FleetSupervisor>,
    /// The fleets the run measures.
    fleets: Vec<String>,
}

/// Sets the job's fleet up (raced with shutdown), registers the run as a scheduler and starts
/// its recorder and supervisor; `None` when shutdown came first while registering.
async fn start_fleet(
    job: &mut impl Job,
    storage: &JobStorage,
    progress: bool,
    shutdown: &mut Shutdown,
) -> anyhow::Result<Option<StartedFleet>> {
    let setup = SetUp {
        registry: storage.registry(),
        progress,
    };
    let fleet = tokio::select! {
        fleet = job.set_up(&setup) => fleet?,
        () = shutdown.reached(Stage::Finish) => anyhow::bail!("interrupted while setting up; nothing was measured"),
    };
    let set_up_at = Instant::now();
    let Some(recording) = storage.start_recording(fleet.fleets.clone(), shutdown).await? else {
        return Ok(None);
    };
    let supervisor = FleetSupervisor::with_membership(
        fleet.membership,
        recording.recorder.clone().recipient(),
        fleet.round,
    )
    .start();
    Ok(Some(StartedFleet {
        set_up_at,
        recording,
        supervisor,
        fleets: fleet.fleets,
    }))
}

/// Copies the recorder's counters into `health` and checks the database, every
/// [`DATABASE_CHECK_INTERVAL`], until aborted.
async fn watch_storage(health: RunHealth, recorder: Addr<MeasurementRecorder>, store: Option<Store>) {
    let mut ticks = tokio::time::interval(DATABASE_CHECK_INTERVAL);
    loop {
        ticks.tick().await;
        if let Ok(stats) = recorder.send(GetStats).await {
            health.recorder(stats);
        }
        if let Some(store) = &store {
            health.database_up().check(store).await;
        }
    }
}

fn finished(mut report: RunReport, started: Instant) -> RunReport {
    report.wall = started.elapsed();
    report.peak_rss_bytes = telemetry::peak_rss_bytes();
    report
}

/// The round loop. An error of the job's between-rounds hook ends it, counted as a failed
/// round; what was measured is kept and reported.
async fn run_rounds(
    job: &mut impl Job,
    (supervisor, recorder, fleets): (&Addr<FleetSupervisor>, &Addr<MeasurementRecorder>, &[String]),
    options: &RunOptions,
    shutdown: &mut Shutdown,
    report: &mut RunReport,
) {
    let pacing = &options.pacing;
    let rounds_bar = bar(options.progress, pacing.rounds.unwrap_or(0), "rounds");
    let mut backoff = Backoff::default();
    for index in 0u64.. {
        if pacing.rounds.is_some_and(|limit| index >= limit) || shutdown.requested() {
            break;
        }
        if let Err(e) = job.before_round(index).await {
            report.rounds_failed += 1;
            report.count_round_error(&format!("before round {index}: {e:#}"));
            tracing::error!(error = %e, "the job could not prepare the next round; stopping");
            break;
        }
        let round_started = Instant::now();
        let round = run_round(
            (job, index),
            (supervisor, recorder),
            &options.kind,
            shutdown,
            pacing.shutdown_grace,
        );
        let outcome = match round.await {
            Ok(outcome) => outcome,
            Err(e) => {
                report.rounds_failed += 1;
                report.count_round_error(&format!("round {index}: {e:#}"));
                tracing::error!(error = %e, "the job's round failed; stopping");
                break;
            }
        };
        if let Some(metrics) = &options.metrics {
            record_round_metrics(metrics, supervisor, fleets, &outcome).await;
        }
        rounds_bar.inc(1);
        let mut pause = pacing.interval.saturating_sub(round_started.elapsed());
        match outcome {
            Ok(done) => {
                backoff.reset();
                report.rounds_run += 1;
                report.request_failures += done.request_failures() as u64;
                rounds_bar.set_message(done.log(round_started.elapsed()));
            }
            Err(RoundError::Abandoned) => {
                report.rounds_failed += 1;
                report.count_round_error(&RoundError::Abandoned);
                tracing::warn!("round abandoned at shutdown; its unfinished operations are not recorded");
                break;
            }
            Err(e) => {
                report.rounds_failed += 1;
                report.count_round_error(&e);
                if pacing.backoff_after_failure {
                    pause = pause.max(backoff.step());
                }
                tracing::warn!(error = %e, retry_in = ?pause, "round failed");
            }
        }
        // No pause after the last round: a run of `--rounds N` ends when its rounds are done.
        let last = pacing.rounds.is_some_and(|limit| index + 1 >= limit);
        if !pause.is_zero() && !last {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.reached(Stage::Finish) => break,
            }
        }
    }
    rounds_bar.finish();
}

/// Retrievals of a round that found the record.
/// Counts a round's outcome, and the servers its readiness check found, in `metrics`.
async fn record_round_metrics(
    metrics: &SchedulerMetrics,
    supervisor: &Addr<FleetSupervisor>,
    fleets: &[String],
    outcome: &Result<RoundOutcome, RoundError>,
) {
    match outcome {
        Ok(RoundOutcome::Dht(summary)) => metrics.record_round(&Ok(summary.clone())),
        Ok(RoundOutcome::Pubsub(summary)) => metrics.record_pubsub_round(summary),
        Ok(RoundOutcome::Reprovide(summary)) => metrics.record_reprovide_round(summary.ready_nodes),
        Err(e) => metrics.record_round(&Err(e.clone())),
        // A job's own rounds are counted by the job.
        Ok(RoundOutcome::Own(_)) => return,
    }
    let census = supervisor.send(TakeCensus).await.ok().flatten();
    metrics
        .health
        .round_ended(fleets, outcome.is_ok(), census.as_ref());
}

fn found(summary: &RoundSummary) -> usize {
    summary
        .retrievals
        .iter()
        .filter(|(_, r)| r.measurements.iter().all(|m| m.error.is_none()))
        .count()
}

/// How long a round's provide took, as its server measured it.
fn provide_duration(summary: &RoundSummary) -> Duration {
    summary
        .provide
        .measurements
        .first()
        .map(|m| m.duration)
        .unwrap_or_default()
}

/// The progress bar's line about the last round.
fn describe(summary: &RoundSummary) -> String {
    format!(
        "last: provide {:.3}s, found {}/{}",
        provide_duration(summary).as_secs_f64(),
        found(summary),
        summary.retrievals.len()
    )
}

/// Round `index` of `kind`: the supervisor's, or the job's own. After the first shutdown signal
/// a supervisor's round may finish within `grace` (or until the second signal); then it is
/// abandoned. A job's own round is abandoned at the second signal (its rows so far are kept);
/// its error (`Err`) ends the run.
async fn run_round(
    (job, index): (&mut impl Job, u64),
    (supervisor, recorder): (&Addr<FleetSupervisor>, &Addr<MeasurementRecorder>),
    kind: &RoundKind,
    shutdown: &mut Shutdown,
    grace: Option<Duration>,
) -> anyhow::Result<Result<RoundOutcome, RoundError>> {
    let stopped = |e: MailboxError| RoundError::SupervisorStopped(e.to_string());
    Ok(match kind {
        RoundKind::Own => tokio::select! {
            line = job.run_own_round(index, recorder) => Ok(RoundOutcome::Own(line?)),
            () = shutdown.reached(Stage::Abandon) => Err(RoundError::Abandoned),
        },
        RoundKind::Dht => {
            let (message, abort) = RunRound::abortable();
            let round = async { supervisor.send(message).await.map_err(stopped)? };
            abortable(round, abort, shutdown, grace)
                .await
                .map(RoundOutcome::Dht)
        }
        RoundKind::Pubsub(config) => {
            let (message, abort) = RunPubsubRound::abortable(config.clone());
            let round = async { supervisor.send(message).await.map_err(stopped)? };
            abortable(round, abort, shutdown, grace)
                .await
                .map(RoundOutcome::Pubsub)
        }
        RoundKind::Reprovide(config) => {
            let (message, abort) = RunReprovideRound::abortable(config.clone());
            let round = async { supervisor.send(message).await.map_err(stopped)? };
            abortable(round, abort, shutdown, grace)
                .await
                .map(RoundOutcome::Reprovide)
        }
    })
}

/// Runs `round` to its end, unless shutdown comes and `grace` passes (or the second signal):
/// then it is aborted through `abort` and answers as abandoned.
async fn abortable<T>(
    round: impl Future<Output = Result<T, RoundError>>,
    abort: futures::future::AbortHandle,
    shutdown: &mut Shutdown,
    grace: Option<Duration>,
) -> Result<T, RoundError> {
    tokio::pin!(round);
    tokio::select! {
        result = &mut round => return result,
        () = shutdown.reached(Stage::Finish) => {}
    }
    tracing::info!(?grace, "shutting down: letting the round in flight finish");
    let give_up = async {
        match grace {
            Some(grace) => tokio::select! {
                () = tokio::time::sleep(grace) => {}
                () = shutdown.reached(Stage::Abandon) => {}
            },
            None => shutdown.reached(Stage::Abandon).await,
        }
    };
    tokio::select! {
        result = &mut round => return result,
        () = give_up => {}
    }
    abort.abort();
    round.await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job whose fleet has no member: every round fails with "no ready node".
    #[derive(Debug, Default)]
    struct EmptyJob {
        hang_in_set_up: bool,
        fail_before_round: Option<u64>,
        rounds_prepared: u64,
        torn_down: u32,
    }

    impl Job for EmptyJob {
        async fn set_up(&mut self, _: &SetUp) -> anyhow::Result<Fleet> {
            if self.hang_in_set_up {
                std::future::pending::<()>().await;
            }
            Ok(Fleet {
                membership: Membership::Fixed(Vec::new()),
                round: RoundConfig::default(),
                fleets: vec!["test".to_owned()],
            })
        }

        async fn before_round(&mut self, index: u64) -> anyhow::Result<()> {
            if self.fail_before_round == Some(index) {
                anyhow::bail!("the network is gone");
            }
            self.rounds_prepared += 1;
            Ok(())
        }

        async fn tear_down(&mut self) {
            self.torn_down += 1;
        }
    }

    fn options(rounds: u64) -> RunOptions {
        RunOptions::offline(None, rounds, false)
    }

    #[actix::test]
    async fn every_round_runs_and_failures_are_counted_once_per_message() {
        let mut job = EmptyJob::default();
        let (_trigger, shutdown) = Shutdown::manual();
        let report = run(&mut job, options(3), shutdown).await.unwrap();
        assert_eq!((report.rounds_run, report.rounds_failed), (0, 3));
        assert_eq!(report.round_errors.len(), 1, "{:?}", report.round_errors);
        assert_eq!(report.round_errors.values().sum::<u64>(), 3);
        assert_eq!((job.rounds_prepared, job.torn_down), (3, 1));
        assert!(report.scheduler.is_some(), "registered in the memory registry");
        let reason = report
            .nothing_measured()
            .expect("a run of failed rounds measured nothing");
        assert!(
            reason.starts_with("no round ran to its end (3 failed (most often: "),
            "{reason}"
        );
    }

    #[actix::test]
    async fn a_shutdown_during_set_up_tears_down_what_started() {
        let mut job = EmptyJob {
            hang_in_set_up: true,
            ..EmptyJob::default()
        };
        let (trigger, shutdown) = Shutdown::manual();
        trigger.request(Stage::Finish);
        let error = run(&mut job, options(3), shutdown).await.unwrap_err();
        assert!(
            error.to_string().contains("interrupted while setting up"),
            "{error}"
        );
        assert_eq!(job.torn_down, 1);
    }

    #[actix::test]
    async fn a_failing_between_rounds_hook_ends_the_run_with_what_was_measured() {
        let mut job = EmptyJob {
            fail_before_round: Some(2),
            ..EmptyJob::default()
        };
        let (_trigger, shutdown) = Shutdown::manual();
        let report = run(&mut job, options(5), shutdown).await.unwrap();
        assert_eq!(report.rounds_failed, 3, "two empty rounds and the hook");
        assert!(report
            .round_errors
            .keys()
            .any(|e| e.contains("before round 2: the network is gone")));
        assert_eq!(job.torn_down, 1);
    }

    #[actix::test]
    async fn a_service_backs_off_after_failed_rounds() {
        tokio::time::pause();
        let mut job = EmptyJob::default();
        let (_trigger, shutdown) = Shutdown::manual();
        let mut options = options(4);
        options.pacing.backoff_after_failure = true;
        let started = tokio::time::Instant::now();
        run(&mut job, options, shutdown).await.unwrap();
        // Pauses of 0.5, 1 and 2 s between the four failed rounds (none after the last), in
        // virtual time.
        assert_eq!(started.elapsed().as_secs_f64().floor(), 3.0);
    }
}
