//! `MeasurementRecorder`: collects measurements from rounds and writes them to a
//! [`MeasurementSink`] in batches, on size, on a timer, and on [`Flush`].
//!
//! Nothing measured is lost while the sink is down, within bounds: rows stay in a buffer of
//! [`DEFAULT_CAPACITY`] rows and the recorder retries with exponential backoff (up to
//! [`MAX_BACKOFF`]). Only when the buffer is full does it drop the oldest rows, and it logs how
//! many. Flushes are atomic (no record is taken while a batch is written), so when `Flush`
//! answers, every record sent before it has reached the sink or is still held for retry.
//! At shutdown, [`drain`] retries until everything is written or a deadline passes.

use std::{collections::VecDeque, time::Duration};

use actix::prelude::*;
// The runtime's clock, so paused-time tests step through backoffs exactly.
use tokio::time::Instant;

use crate::{backoff::Backoff, Measurement, MeasurementSink, SinkError};

/// Rows that trigger a write.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// Longest a row waits before it is written.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Rows held while the sink fails (about 300 bytes each); beyond this the oldest are dropped.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// Most rows handed to the sink in one write (after an outage the buffer drains in chunks).
pub const MAX_WRITE_ROWS: usize = 4096;

/// First retry delay after a failed write; it doubles per failure up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = crate::backoff::DEFAULT_FIRST;

/// Longest delay between retries.
pub const MAX_BACKOFF: Duration = crate::backoff::DEFAULT_MAX;

/// Store one measurement.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecordMeasurement(pub Measurement);

/// Write everything held now; answers with the number of rows written.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, SinkError>")]
pub struct Flush;

/// How many rows the recorder holds and has dropped.
#[derive(Debug, Message)]
#[rtype(result = "RecorderStats")]
pub struct GetStats;

/// The recorder's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, MessageResponse)]
pub struct RecorderStats {
    /// Rows taken in since start.
    pub received: u64,
    /// Of those, rows without an error: operations that succeeded.
    pub succeeded: u64,
    /// Rows waiting to be written.
    pub held: usize,
    /// Rows written since start.
    pub written: u64,
    /// Rows dropped because the buffer was full.
    pub dropped: u64,
    /// Failed writes since start.
    pub failed_writes: u64,
    /// Rows handed back by failed writes, to be written again (a row counts once per failure).
    pub retried: u64,
    /// Rows the buffer holds before it drops the oldest.
    pub capacity: usize,
}

/// See the module docs.
pub struct MeasurementRecorder {
    sink: std::sync::Arc<dyn MeasurementSink>,
    held: VecDeque<Measurement>,
    batch_size: usize,
    flush_interval: Duration,
    capacity: usize,
    /// A `Flush` is in the mailbox: do not queue another.
    flush_queued: bool,
    /// Pauses between failed writes.
    backoff: Backoff,
    /// After a failure: when the next automatic attempt may start.
    retry_at: Option<Instant>,
    stats: RecorderStats,
}

impl std::fmt::Debug for MeasurementRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeasurementRecorder")
            .field("held", &self.held.len())
            .field("batch_size", &self.batch_size)
            .field("capacity", &self.capacity)
            .field("stats", &self.stats)
            .finish()
    }
}

impl MeasurementRecorder {
    /// A recorder writing to `sink` with the default batch size, interval and capacity.
    pub fn new(sink: impl MeasurementSink) -> Self {
        Self::with_shared_sink(std::sync::Arc::new(sink))
    }

    /// A recorder writing to a sink shared with others.
    pub fn with_shared_sink(sink: std::sync::Arc<dyn MeasurementSink>) -> Self {
        Self {
            sink,
            held: VecDeque::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            capacity: DEFAULT_CAPACITY,
            flush_queued: false,
            backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF),
            retry_at: None,
            stats: RecorderStats::default(),
        }
    }

    /// Sets the rows that trigger a write.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.clamp(1, MAX_WRITE_ROWS);
        self
    }

    /// Sets the longest a row waits.
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Sets how many rows are held while the sink fails.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    fn queue_flush(&mut self, ctx: &mut Context<Self>) {
        let backing_off = self.retry_at.is_some_and(|retry_at| Instant::now() < retry_at);
        if !self.flush_queued && !backing_off && !self.held.is_empty() {
            self.flush_queued = true;
            ctx.notify(Flush);
        }
    }

    fn written(&mut self, count: usize) {
        self.stats.written += count as u64;
        if self.retry_at.take().is_some() {
            self.backoff.reset();
            tracing::info!(
                written = count,
                held = self.held.len(),
                dropped = self.stats.dropped,
                "measurement sink recovered"
            );
        }
    }

    fn failed(&mut self, error: &SinkError, unwritten: Vec<Measurement>) {
        self.stats.failed_writes += 1;
        self.stats.retried += unwritten.len() as u64;
        // Put the unwritten rows back ahead of what arrived since, oldest first.
        for row in unwritten.into_iter().rev() {
            self.held.push_front(row);
        }
        self.enforce_capacity();
        let delay = self.backoff.step();
        self.retry_at = Some(Instant::now() + delay);
        tracing::warn!(
            held = self.held.len(),
            retry_in = ?delay,
            error = %error,
            "measurement sink failed; keeping the rows"
        );
    }

    fn enforce_capacity(&mut self) {
        let excess = self.held.len().saturating_sub(self.capacity);
        if excess == 0 {
            return;
        }
        self.held.drain(..excess);
        let before = self.stats.dropped;
        self.stats.dropped += excess as u64;
        // Log at every power of two crossed, so a long outage does not flood the log.
        if before == 0 || before.ilog2() != self.stats.dropped.ilog2() {
            tracing::error!(
                dropped_total = self.stats.dropped,
                capacity = self.capacity,
                "measurement buffer full while the sink is down: dropping the oldest rows"
            );
        }
    }
}

impl Actor for MeasurementRecorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.flush_interval, |act, ctx| act.queue_flush(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if !self.held.is_empty() {
            tracing::error!(
                unwritten = self.held.len(),
                "measurement recorder stopped with unwritten rows (drain it before shutdown)"
            );
        }
    }
}

impl Handler<RecordMeasurement> for MeasurementRecorder {
    type Result = ();

    fn handle(&mut self, msg: RecordMeasurement, ctx: &mut Context<Self>) {
        self.stats.received += 1;
        self.stats.succeeded += u64::from(msg.0.error.is_none());
        self.held.push_back(msg.0);
        self.enforce_capacity();
        if self.held.len() >= self.batch_size {
            self.queue_flush(ctx);
        }
    }
}

impl Handler<GetStats> for MeasurementRecorder {
    type Result = RecorderStats;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> RecorderStats {
        RecorderStats {
            held: self.held.len(),
            capacity: self.capacity,
            ..self.stats
        }
    }
}

impl Handler<Flush> for MeasurementRecorder {
    type Result = AtomicResponse<Self, Result<usize, SinkError>>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        self.flush_queued = false;
        let mut pending: VecDeque<Measurement> = std::mem::take(&mut self.held);
        let sink = self.sink.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let mut written = 0;
                while !pending.is_empty() {
                    let chunk: Vec<Measurement> =
                        pending.drain(..pending.len().min(MAX_WRITE_ROWS)).collect();
                    let count = chunk.len();
                    // The sink consumes the chunk; keep a copy to hand back if it fails.
                    if let Err(e) = sink.write(chunk.clone()).await {
                        let mut unwritten = chunk;
                        unwritten.extend(pending);
                        return (written, Err((e, unwritten)));
                    }
                    written += count;
                }
                (written, Ok(()))
            }
            .into_actor(self)
            .map(|(written, result), act, _| match result {
                Ok(()) => {
                    act.written(written);
                    Ok(written)
                }
                Err((e, unwritten)) => {
                    // Chunks before the failing one were stored; the backoff still grows.
                    act.stats.written += written as u64;
                    act.failed(&e, unwritten);
                    Err(e)
                }
            }),
        ))
    }
}

/// Writes everything `recorder` holds, retrying with the recorder's backoff until `timeout`
/// passes. On timeout the error says how many rows are still unwritten.
pub async fn drain(recorder: &Addr<MeasurementRecorder>, timeout: Duration) -> Result<u64, SinkError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = INITIAL_BACKOFF;
    let mut written = 0;
    loop {
        let mailbox = |e: MailboxError| SinkError(format!("recorder unavailable: {e}"));
        match recorder.send(Flush).await.map_err(mailbox)? {
            Ok(count) => {
                written += count as u64;
                let held = recorder.send(GetStats).await.map_err(mailbox)?.held;
                if held == 0 {
                    return Ok(written);
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(SinkError(format!("{held} rows still arriving after {timeout:?}")));
                }
            }
            Err(e) => {
                let held = recorder.send(GetStats).await.map_err(mailbox)?.held;
                if tokio::time::Instant::now() + delay > deadline {
                    return Err(SinkError(format!(
                        "{held} rows unwritten after {timeout:?} of retries: {e}"
                    )));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    use futures::future::BoxFuture;

    use super::*;
    use crate::{MemorySink, Operation};

    /// A sink that fails while `down` is set, and otherwise stores rows in memory.
    #[derive(Clone, Default)]
    struct FlakySink {
        down: Arc<AtomicBool>,
        rows: MemorySink,
    }

    impl MeasurementSink for FlakySink {
        fn write(&self, batch: Vec<Measurement>) -> BoxFuture<'static, Result<(), SinkError>> {
            if self.down.load(Ordering::SeqCst) {
                return Box::pin(futures::future::ready(Err(SinkError("database down".into()))));
            }
            self.rows.write(batch)
        }
    }

    fn row(probe: u32) -> Measurement {
        Measurement {
            probe,
            ..crate::testing::sample_measurement(Operation::Retrieval, Duration::from_millis(1))
        }
    }

    #[actix::test]
    async fn an_outage_loses_nothing_and_duplicates_nothing() {
        tokio::time::pause();
        let sink = FlakySink::default();
        sink.down.store(true, Ordering::SeqCst);
        let recorder = MeasurementRecorder::new(sink.clone())
            .with_batch_size(16)
            .with_flush_interval(Duration::from_millis(20))
            .start();
        for probe in 0..10_000 {
            recorder.do_send(RecordMeasurement(row(probe)));
        }
        assert!(recorder.send(Flush).await.unwrap().is_err());
        // Let the flushes the batches queued fail too (virtual time stands still meanwhile).
        tokio::time::sleep(Duration::from_millis(1)).await;
        let stats = recorder.send(GetStats).await.unwrap();
        assert_eq!((stats.held, stats.written, stats.dropped), (10_000, 0, 0));
        // The explicit flush alone handed back every row.
        assert!(stats.retried >= 10_000, "{stats:?}");

        sink.down.store(false, Ordering::SeqCst);
        // The recorder retries by itself once its backoff (doubled per failure so far) has
        // passed, and not before.
        let failures = stats.failed_writes;
        let backoff = INITIAL_BACKOFF * 2u32.pow(u32::try_from(failures).unwrap() - 1);
        tokio::time::sleep(backoff - Duration::from_millis(30)).await;
        let stats = recorder.send(GetStats).await.unwrap();
        assert_eq!(
            (stats.written, stats.failed_writes),
            (0, failures),
            "retried within the backoff"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            recorder.send(GetStats).await.unwrap().written > 0,
            "no retry after the backoff"
        );
        let recovered = crate::testing::wait_for(Duration::from_secs(10), || async {
            recorder.send(GetStats).await.unwrap().held == 0
        })
        .await;
        assert!(recovered, "rows not written after the sink recovered");
        let probes: Vec<u32> = sink.rows.rows().iter().map(|r| r.probe).collect();
        assert_eq!(
            probes,
            (0..10_000).collect::<Vec<_>>(),
            "lost, duplicated or reordered rows"
        );
    }

    #[actix::test]
    async fn a_full_buffer_drops_the_oldest_and_counts_them() {
        tokio::time::pause();
        let sink = FlakySink::default();
        sink.down.store(true, Ordering::SeqCst);
        let recorder = MeasurementRecorder::new(sink.clone()).with_capacity(10).start();
        for probe in 0..15 {
            recorder.do_send(RecordMeasurement(row(probe)));
        }
        let stats = recorder.send(GetStats).await.unwrap();
        assert_eq!((stats.held, stats.dropped, stats.capacity), (10, 5, 10));

        sink.down.store(false, Ordering::SeqCst);
        assert_eq!(drain(&recorder, Duration::from_secs(5)).await.unwrap(), 10);
        let probes: Vec<u32> = sink.rows.rows().iter().map(|r| r.probe).collect();
        assert_eq!(probes, (5..15).collect::<Vec<_>>());
    }

    #[actix::test]
    async fn drain_gives_up_at_its_deadline_and_says_what_is_left() {
        tokio::time::pause();
        let sink = FlakySink::default();
        sink.down.store(true, Ordering::SeqCst);
        let recorder = MeasurementRecorder::new(sink).start();
        recorder.do_send(RecordMeasurement(row(0)));
        let error = drain(&recorder, Duration::from_millis(200)).await.unwrap_err();
        assert!(error.to_string().contains("1 rows unwritten"), "{error}");
    }
}
