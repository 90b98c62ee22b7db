//! Where a job puts what it measures: servers register in the database (or in memory), the job
//! registers as a scheduler, and a [`MeasurementRecorder`] stores every row, keeping a copy for
//! the job's report where asked. A dry run registers nowhere and discards the rows.

use std::{future::Future, sync::Arc, time::Duration};

use actix::prelude::*;
use anyhow::{bail, Context as _};
use parsec_actors::{
    backoff::Backoff, recorder, CopyingSink, DiscardingSink, GetStats, Measurement, MeasurementRecorder,
    MeasurementSink, MemoryRegistry, MemorySink, ReadOnlyRegistry, RecorderStats, Registry, SchedulerId,
    SchedulerRegistration,
};

use super::shutdown::{Shutdown, Stage};
use crate::{
    db::{self, DatabaseTarget, DbError, SchemaPolicy, Store},
    host,
};

/// How long the closing flush may retry a failing database before giving up on the rows.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How a job's storage is opened.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// The database (`None`: memory only, for embedding).
    pub target: Option<DatabaseTarget>,
    /// Register nowhere and discard the measurements.
    pub dry_run: bool,
    /// Keep a copy of every row for the report (offline jobs; a scheduler runs for weeks).
    pub keep_rows: bool,
    /// Retry an unreachable database until shutdown (a service), instead of failing at once (a
    /// run that cannot store its results should fail before it starts).
    pub wait_for_database: bool,
    /// Whether opening the database applies its pending migrations (`--no-migrate`: no).
    pub schema: SchemaPolicy,
}

/// The opened storage of a job.
pub(crate) struct JobStorage {
    options: StorageOptions,
    store: Option<Store>,
    registry: Arc<dyn Registry>,
}

/// A started recorder and the copy of its rows.
#[derive(Debug)]
pub(crate) struct Recording {
    /// The job's `schedulers_ecs` id (`None`: a dry run).
    scheduler: Option<SchedulerId>,
    /// Where rounds send their rows.
    pub(crate) recorder: Addr<MeasurementRecorder>,
    copy: Option<MemorySink>,
    target: Option<DatabaseTarget>,
}

/// What a recording kept once drained.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// Every row recorded (when the job keeps them).
    pub(crate) rows: Vec<Measurement>,
    /// The recorder's counters at the end.
    pub(crate) stats: RecorderStats,
    /// The job's scheduler id.
    pub(crate) scheduler: Option<SchedulerId>,
    /// Where the rows are stored and under which scheduler id.
    pub(crate) stored: Option<(DatabaseTarget, SchedulerId)>,
    /// Why some rows could not be stored (the database stayed unreachable at the end).
    pub(crate) storage_error: Option<String>,
}

impl std::fmt::Debug for JobStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStorage")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl JobStorage {
    /// Opens (and migrates) the database, or keeps everything in memory without one; `None` when
    /// shutdown came first.
    pub(crate) async fn open(
        options: StorageOptions,
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<Option<Self>> {
        let store = match &options.target {
            Some(target) => {
                let what = format!("opening the database {target}");
                match retry(&what, options.wait_for_database, shutdown, || {
                    Store::open_with(target, options.schema)
                })
                .await?
                {
                    Some(store) => Some(store),
                    None => return Ok(None),
                }
            }
            None => None,
        };
        let registry: Arc<dyn Registry> = match &store {
            Some(store) if options.dry_run => Arc::new(ReadOnlyRegistry(db::registry(store))),
            Some(store) => db::registry(store),
            None => Arc::new(MemoryRegistry::default()),
        };
        Ok(Some(Self {
            options,
            store,
            registry,
        }))
    }

    /// The database (`None`: memory only).
    pub(crate) fn store(&self) -> Option<Store> {
        self.store.clone()
    }

    /// Where servers register and are discovered.
    pub(crate) fn registry(&self) -> Arc<dyn Registry> {
        self.registry.clone()
    }

    /// Registers the job as the scheduler of `fleets` and starts its recorder; `None` when
    /// shutdown came first.
    pub(crate) async fn start_recording(
        &self,
        fleets: Vec<String>,
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<Option<Recording>> {
        let scheduler = if self.options.dry_run {
            tracing::info!(?fleets, "dry run: measuring, storing nothing");
            None
        } else {
            let Some(scheduler) = self.register(fleets, shutdown).await? else {
                return Ok(None);
            };
            Some(scheduler)
        };
        let copy = self.options.keep_rows.then(MemorySink::default);
        let stored = self
            .store
            .as_ref()
            .zip(scheduler)
            .map(|(store, id)| store.measurement_sink(id));
        let sink: Arc<dyn MeasurementSink> = match (stored, copy.clone()) {
            (Some(stored), Some(copy)) => Arc::new(CopyingSink::new(stored, copy)),
            (Some(stored), None) => Arc::new(stored),
            (None, Some(copy)) => Arc::new(copy),
            (None, None) => Arc::new(DiscardingSink::default()),
        };
        Ok(Some(Recording {
            scheduler,
            recorder: MeasurementRecorder::with_shared_sink(sink).start(),
            copy,
            target: self.options.target.clone(),
        }))
    }

    /// Registers the run in `schedulers_ecs`; `None` when shutdown came first.
    async fn register(
        &self,
        fleets: Vec<String>,
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<Option<SchedulerId>> {
        let registration = SchedulerRegistration {
            fleets,
            dependencies: host::dependencies(),
        };
        let registering = retry(
            "registering the scheduler",
            self.options.wait_for_database,
            shutdown,
            || {
                let registry = self.registry.clone();
                let registration = registration.clone();
                async move {
                    registry
                        .register_scheduler(registration)
                        .await
                        .map_err(|e| DbError::Query(e.to_string()))
                }
            },
        );
        let scheduler = registering.await?;
        if let Some(scheduler) = scheduler {
            tracing::info!(%scheduler, fleets = ?registration.fleets, "scheduler registered");
        }
        Ok(scheduler)
    }
}

impl Recording {
    /// Stores what is still buffered and returns what was recorded.
    pub(crate) async fn finish(self) -> Recorded {
        let storage_error = recorder::drain(&self.recorder, DRAIN_TIMEOUT)
            .await
            .err()
            .map(|e| e.to_string());
        if let Some(error) = &storage_error {
            tracing::error!(%error, "measurements could not all be stored");
        }
        Recorded {
            rows: self.copy.map(|copy| copy.rows()).unwrap_or_default(),
            stats: self.recorder.send(GetStats).await.unwrap_or_default(),
            scheduler: self.scheduler,
            stored: self.target.zip(self.scheduler),
            storage_error,
        }
    }
}

/// Runs `call` once, or (`patient`) retries it with backoff until it succeeds, fails for good
/// (a configuration error), or shutdown is requested (then `None`).
async fn retry<T, F, Fut>(
    what: &str,
    patient: bool,
    shutdown: &mut Shutdown,
    mut call: F,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let mut backoff = Backoff::default();
    loop {
        match call().await {
            Ok(value) => return Ok(Some(value)),
            Err(DbError::Config(e)) => bail!("{what}: {e}"),
            Err(e) if !patient => return Err(e).context(what.to_owned()),
            Err(e) => {
                let pause = backoff.step();
                tracing::warn!(error = %e, retry_in = ?pause, "{what} failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.reached(Stage::Finish) => return Ok(None),
                }
            }
        }
    }
}

/// A reprovide round measured outside a fleet (the testnet's, the simulator's), to store with the
/// node that provided.
#[derive(Clone, Debug)]
pub struct MeasuredRound {
    /// The providing node's fleet (its strategy's name) and peer id.
    pub fleet: String,
    pub peer_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Why the round does not count (it stored no record, or no sampled CID was found).
    pub error: Option<String>,
    pub details: parsec_actors::ReprovideDetails,
}

/// Stores `rounds` in `target` as any measurement is stored: the run registers as the scheduler
/// of their fleets, each providing node as a node of its fleet (marked offline at once: it is
/// gone when the run ends), and the rounds go through the store's sink. Returns the scheduler id.
pub(crate) async fn store_reprovide_rounds(
    target: &DatabaseTarget,
    rounds: Vec<MeasuredRound>,
) -> anyhow::Result<SchedulerId> {
    let store = Store::open(target)
        .await
        .with_context(|| format!("opening the database {target}"))?;
    let mut fleets: Vec<String> = Vec::new();
    for round in &rounds {
        if !fleets.contains(&round.fleet) {
            fleets.push(round.fleet.clone());
        }
    }
    let scheduler = store
        .insert_scheduler(SchedulerRegistration {
            fleets,
            dependencies: host::dependencies(),
        })
        .await
        .context("registering the run as a scheduler")?;
    let resources = host::detect_resources(std::net::Ipv4Addr::LOCALHOST.into())
        .await
        .map_err(anyhow::Error::msg)?;
    // One node row per providing node, however many rounds it ran.
    let mut nodes: std::collections::HashMap<(String, String), parsec_actors::NodeId> = Default::default();
    // Rounds that ran side by side (one per fleet) share a round id; a fleet seen again starts
    // the next round.
    let mut round = parsec_actors::RoundId::new();
    let mut in_round: Vec<String> = Vec::new();
    let mut batch = Vec::with_capacity(rounds.len());
    for measured in rounds {
        if in_round.contains(&measured.fleet) {
            round = parsec_actors::RoundId::new();
            in_round.clear();
        }
        in_round.push(measured.fleet.clone());
        let key = (measured.fleet.clone(), measured.peer_id.clone());
        let node = match nodes.get(&key) {
            Some(&node) => node,
            None => {
                let registration =
                    host::registration(resources.clone(), measured.peer_id, measured.fleet.clone(), 0, 0);
                let node = store
                    .register_node(registration)
                    .await
                    .context("registering the providing node")?;
                store
                    .mark_offline(node, chrono::Utc::now())
                    .await
                    .context("marking the providing node offline")?;
                nodes.insert(key, node);
                node
            }
        };
        batch.push(Measurement::reprovide(
            round,
            &measured.fleet,
            node,
            measured.started_at,
            measured.error,
            measured.details,
        ));
    }
    store
        .measurement_sink(scheduler)
        .write(batch)
        .await
        .context("storing the reprovide rounds")?;
    Ok(scheduler)
}
