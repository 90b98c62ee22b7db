//! `MeasurementRecorder`: collects measurements from rounds and writes them to a
//! [`MeasurementSink`] in batches, on size, on a timer, and on [`Flush`].
//!
//! Flushes are atomic (no record is taken while a batch is written), so when `Flush` answers
//! every record sent before it has reached the sink or is still held for retry.

use std::time::Duration;

use actix::prelude::*;

use crate::{Measurement, MeasurementSink, SinkError};

/// Rows per write.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// Longest a row waits before it is written.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Rows held while the sink fails; beyond this the oldest are dropped, and counted in the log.
pub const MAX_HELD_ROWS: usize = 100_000;

/// Store one measurement.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecordMeasurement(pub Measurement);

/// Write everything held now; answers with the number of rows written.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, SinkError>")]
pub struct Flush;

/// See the module docs.
pub struct MeasurementRecorder {
    sink: std::sync::Arc<dyn MeasurementSink>,
    held: Vec<Measurement>,
    batch_size: usize,
    flush_interval: Duration,
    dropped: u64,
}

impl std::fmt::Debug for MeasurementRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeasurementRecorder")
            .field("held", &self.held.len())
            .field("batch_size", &self.batch_size)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl MeasurementRecorder {
    /// A recorder writing to `sink` with the default batch size and interval.
    pub fn new(sink: impl MeasurementSink) -> Self {
        Self {
            sink: std::sync::Arc::new(sink),
            held: Vec::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            dropped: 0,
        }
    }

    /// Sets the rows per write.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the longest a row waits.
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }
}

impl Actor for MeasurementRecorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.flush_interval, |act, ctx| {
            if !act.held.is_empty() {
                ctx.notify(Flush);
            }
        });
    }
}

impl Handler<RecordMeasurement> for MeasurementRecorder {
    type Result = ();

    fn handle(&mut self, msg: RecordMeasurement, ctx: &mut Context<Self>) {
        if self.held.len() >= MAX_HELD_ROWS {
            self.held.remove(0);
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::error!(
                    dropped = self.dropped,
                    "measurement buffer full: dropping the oldest rows"
                );
            }
        }
        self.held.push(msg.0);
        if self.held.len() == self.batch_size {
            ctx.notify(Flush);
        }
    }
}

impl Handler<Flush> for MeasurementRecorder {
    type Result = AtomicResponse<Self, Result<usize, SinkError>>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        let batch = std::mem::take(&mut self.held);
        let count = batch.len();
        let write = if count == 0 {
            None
        } else {
            Some(self.sink.write(batch.clone()))
        };
        AtomicResponse::new(Box::pin(
            async move {
                match write {
                    Some(write) => write.await,
                    None => Ok(()),
                }
            }
            .into_actor(self)
            .map(move |result, act, _| match result {
                Ok(()) => Ok(count),
                Err(e) => {
                    tracing::warn!(rows = count, error = %e, "measurement sink failed; keeping the rows for the next flush");
                    // Put the batch back ahead of what arrived since, oldest first.
                    let newer = std::mem::replace(&mut act.held, batch);
                    act.held.extend(newer);
                    Err(e)
                }
            }),
        ))
    }
}
