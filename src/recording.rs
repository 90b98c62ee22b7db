//! Where the offline jobs (`testnet`, `simulate`) put what they measure: servers register in the
//! database (or in memory), and a [`MeasurementRecorder`] stores every row while keeping a copy
//! for the job's report.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use anyhow::Context as _;
use parsec_actors::{
    recorder, CopyingSink, Measurement, MeasurementRecorder, MemoryRegistry, MemorySink, Registry,
    SchedulerId, SchedulerRegistration,
};

use crate::{
    db::{self, DatabaseTarget, Store},
    host,
};

/// How long the closing flush may retry a failing database before giving up on the rows.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The database of a job, opened before anything else: a run whose results cannot be stored
/// should fail before it starts.
pub(crate) struct JobStorage {
    target: Option<DatabaseTarget>,
    store: Option<Store>,
    registry: Arc<dyn Registry>,
}

/// A started recorder and the copy of its rows.
#[derive(Debug)]
pub(crate) struct Recording {
    /// The job's `schedulers_ecs` id.
    pub(crate) scheduler: SchedulerId,
    /// Where rounds send their rows.
    pub(crate) recorder: Addr<MeasurementRecorder>,
    copy: MemorySink,
    target: Option<DatabaseTarget>,
}

/// What a recording kept once drained.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// Every row recorded.
    pub(crate) rows: Vec<Measurement>,
    /// Where the rows are stored and under which scheduler id.
    pub(crate) stored: Option<(DatabaseTarget, SchedulerId)>,
    /// Why some rows could not be stored (the database stayed unreachable at the end).
    pub(crate) storage_error: Option<String>,
}

impl std::fmt::Debug for JobStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStorage")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl JobStorage {
    /// Opens (and migrates) `target`, or keeps everything in memory without one.
    pub(crate) async fn open(target: Option<&DatabaseTarget>) -> anyhow::Result<Self> {
        let store = match target {
            Some(target) => Some(
                Store::open(target)
                    .await
                    .with_context(|| format!("opening the database {target}"))?,
            ),
            None => None,
        };
        let registry: Arc<dyn Registry> = match &store {
            Some(store) => db::registry(store),
            None => Arc::new(MemoryRegistry::default()),
        };
        Ok(Self {
            target: target.cloned(),
            store,
            registry,
        })
    }

    /// Where servers register.
    pub(crate) fn registry(&self) -> Arc<dyn Registry> {
        self.registry.clone()
    }

    /// Registers the job as the scheduler of `fleet` and starts its recorder.
    pub(crate) async fn start_recording(&self, fleet: &str) -> anyhow::Result<Recording> {
        let scheduler = self
            .registry
            .register_scheduler(SchedulerRegistration {
                fleets: vec![fleet.to_owned()],
                dependencies: host::dependencies(),
            })
            .await
            .context("registering the scheduler")?;
        let copy = MemorySink::default();
        let recorder = match &self.store {
            Some(store) => {
                MeasurementRecorder::new(CopyingSink::new(store.measurement_sink(scheduler), copy.clone()))
            }
            None => MeasurementRecorder::new(copy.clone()),
        }
        .start();
        Ok(Recording {
            scheduler,
            recorder,
            copy,
            target: self.target.clone(),
        })
    }
}

impl Recording {
    /// Stores what is still buffered and returns every row recorded.
    pub(crate) async fn finish(self) -> Recorded {
        let storage_error = recorder::drain(&self.recorder, DRAIN_TIMEOUT)
            .await
            .err()
            .map(|e| e.to_string());
        Recorded {
            rows: self.copy.rows(),
            stored: self.target.map(|target| (target, self.scheduler)),
            storage_error,
        }
    }
}
