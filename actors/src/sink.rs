//! Where measurements go: the [`MeasurementSink`] trait, and [`MemorySink`] for embedding and
//! tests. The `parsec` crate implements it for its databases; this crate stays free of them.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::{Measurement, SinkError};

/// Stores batches of measurements.
pub trait MeasurementSink: Send + Sync + 'static {
    /// Stores `batch` entirely or not at all; on error the recorder keeps the rows and retries.
    fn write(&self, batch: Vec<Measurement>) -> BoxFuture<'static, Result<(), SinkError>>;
}

/// Keeps measurements in memory; clones share the same rows.
/// Counts what it is given and keeps nothing: a dry run's sink, whatever its length.
#[derive(Clone, Debug, Default)]
pub struct DiscardingSink {
    discarded: Arc<std::sync::atomic::AtomicU64>,
}

impl DiscardingSink {
    /// Rows written (and dropped) so far.
    pub fn discarded(&self) -> u64 {
        self.discarded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl MeasurementSink for DiscardingSink {
    fn write(&self, batch: Vec<Measurement>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.discarded
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Box::pin(futures::future::ready(Ok(())))
    }
}

#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    rows: Arc<Mutex<Vec<Measurement>>>,
}

impl MemorySink {
    /// A copy of every row written so far.
    pub fn rows(&self) -> Vec<Measurement> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl MeasurementSink for MemorySink {
    fn write(&self, batch: Vec<Measurement>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner()).extend(batch);
        Box::pin(futures::future::ready(Ok(())))
    }
}

/// Writes to `primary` and, once a batch is stored there, keeps a copy in memory (for a run's
/// closing report). A failed batch is retried by the recorder, so the copy has no duplicates.
#[derive(Clone, Debug)]
pub struct CopyingSink<S> {
    primary: S,
    copy: MemorySink,
}

impl<S: MeasurementSink> CopyingSink<S> {
    /// Copies what `primary` stores into `copy`.
    pub fn new(primary: S, copy: MemorySink) -> Self {
        Self { primary, copy }
    }
}

impl<S: MeasurementSink> MeasurementSink for CopyingSink<S> {
    fn write(&self, batch: Vec<Measurement>) -> BoxFuture<'static, Result<(), SinkError>> {
        let stored = self.primary.write(batch.clone());
        let copy = self.copy.clone();
        Box::pin(async move {
            stored.await?;
            copy.write(batch).await
        })
    }
}
