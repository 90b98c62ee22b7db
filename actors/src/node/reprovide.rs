//! A node's reprovide round on request: it makes `cids` CIDs of its own (from a seed), sends all
//! their provider records again with a strategy, and answers with the round and a sample of the
//! CIDs, which other servers then look up (`parsec scheduler --protocol reprovide`).

use actix::prelude::*;
use tracing::Instrument;

use super::{given_or, NodeActor};
use crate::{ContentId, NodeError, ReprovideRound, ReprovideStrategy};

/// CIDs one round may hold: 10⁷ record keys are about 400 MB of the node's memory.
pub const MAX_REPROVIDE_CIDS: usize = 10_000_000;

/// Walks or provides at once: Kubo runs 16 workers.
pub const MAX_REPROVIDE_WORKERS: usize = 64;

/// Sampled CIDs an answer lists.
pub const MAX_REPROVIDE_SAMPLE: usize = 10_000;

/// Reprovide `cids` CIDs of the node's own with `strategy`, `workers` provides or walks at once;
/// answer with the round and `sample` of the CIDs (every `cids / sample`-th).
#[derive(Debug, Message)]
#[rtype(result = "Result<ReprovideReport, NodeError>")]
pub struct ReprovideContent {
    pub cids: usize,
    pub strategy: ReprovideStrategy,
    pub workers: usize,
    pub sample: usize,
    /// The CIDs are `ContentId::for_content("reprovide {seed} {strategy} {i}")`.
    pub seed: u64,
    /// The scheduler asking (`x-scheduler-id`), for labelling.
    pub scheduler: Option<String>,
    /// The request's span; disabled: the node makes one.
    pub span: tracing::Span,
}

impl ReprovideContent {
    /// Why the request cannot be served, in the words of its fields.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_REPROVIDE_CIDS).contains(&self.cids) {
            return Err(format!("cids must be between 1 and {MAX_REPROVIDE_CIDS}"));
        }
        if !(1..=MAX_REPROVIDE_WORKERS).contains(&self.workers) {
            return Err(format!("workers must be between 1 and {MAX_REPROVIDE_WORKERS}"));
        }
        if self.sample > self.cids.min(MAX_REPROVIDE_SAMPLE) {
            return Err(format!(
                "sample must be at most the CIDs and at most {MAX_REPROVIDE_SAMPLE}"
            ));
        }
        Ok(())
    }

    /// The round's CIDs.
    pub fn content_ids(&self) -> Vec<ContentId> {
        reprovide_cids(self.seed, self.strategy, self.cids)
    }
}

/// `count` CIDs of a reprovide round with `strategy`, derived from `seed` (the same seed gives
/// the same CIDs; each strategy its own).
pub fn reprovide_cids(seed: u64, strategy: ReprovideStrategy, count: usize) -> Vec<ContentId> {
    (0..count)
        .map(|i| ContentId::for_content(format!("reprovide {seed} {strategy} {i}").as_bytes()))
        .collect()
}

/// What a node's reprovide round did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReprovideReport {
    pub strategy: ReprovideStrategy,
    pub workers: usize,
    /// When the round started (wall clock), and the round (durations monotonic).
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub round: ReprovideRound,
    /// Connections the node opened or accepted, bytes it wrote to its protocol streams, CPU its
    /// swarm spent, during the round.
    pub connections: u64,
    pub bytes_out: u64,
    pub cpu: std::time::Duration,
    /// Sampled CIDs, for other servers to look up.
    pub sample: Vec<ContentId>,
    /// The node's routing-table size afterwards.
    pub routing_table_size: u64,
}

impl Handler<ReprovideContent> for NodeActor {
    type Result = ResponseFuture<Result<ReprovideReport, NodeError>>;

    fn handle(&mut self, msg: ReprovideContent, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht().clone();
        Box::pin(async move {
            msg.check().map_err(NodeError::InvalidRequest)?;
            let span = given_or(
                msg.span.clone(),
                || tracing::info_span!("reprovide", cids = msg.cids, strategy = %msg.strategy, scheduler = msg.scheduler.as_deref()),
            );
            let cids = msg.content_ids();
            let before = dht.load();
            let started_at = chrono::Utc::now();
            let round = dht
                .reprovide(&cids, msg.strategy, msg.workers)
                .instrument(span.clone())
                .await?;
            let after = dht.load();
            let routing_table_size = dht.routing_table_size().await? as u64;
            let step = (msg.cids / msg.sample.max(1)).max(1);
            let sample = cids.iter().step_by(step).take(msg.sample).cloned().collect();
            let _entered = span.enter();
            tracing::info!(duration = ?round.duration, lookups = round.lookups, copies = round.copies_stored, "reprovided");
            Ok(ReprovideReport {
                strategy: msg.strategy,
                workers: msg.workers,
                started_at,
                round,
                connections: after.connections - before.connections,
                bytes_out: after.bytes_out - before.bytes_out,
                cpu: after.cpu.saturating_sub(before.cpu),
                sample,
                routing_table_size,
            })
        })
    }
}
