//! One reprovide round of a fleet: a member reprovides CIDs of its own with each strategy (one
//! request per strategy, lasting its round), then the other members look up a sample of them.
//! Each strategy's round becomes one row: the round and its walks as the provider reported them,
//! the provider's connections, bytes and CPU, and the share of the sample another member found.

use futures::{stream, StreamExt as _};

use super::FleetMember;
use crate::{
    node::reprovide::ReprovideContent, Measurement, NodeError, NodeId, RecordMeasurement, ReprovideDetails,
    ReprovideStrategy, RetrieveContent, RoundId,
};

/// Sampled CIDs looked up at once.
const LOOKUPS_AT_ONCE: usize = 16;

/// What a reprovide round does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReprovideRoundConfig {
    /// CIDs the provider reprovides per strategy.
    pub keys: usize,
    /// The strategies, one request each, in this order.
    pub strategies: Vec<ReprovideStrategy>,
    /// Provides or walks at once.
    pub workers: usize,
    /// CIDs the other members look up afterwards.
    pub sample: usize,
}

impl Default for ReprovideRoundConfig {
    fn default() -> Self {
        Self {
            keys: 10_000,
            strategies: ReprovideStrategy::ALL.to_vec(),
            workers: 4,
            sample: 100,
        }
    }
}

/// What a reprovide round did.
#[derive(Debug, Default)]
pub struct ReprovideRoundSummary {
    pub round: Option<RoundId>,
    pub provider: Option<NodeId>,
    /// Per strategy: the row's figures, or why the provider gave none.
    pub strategies: Vec<(ReprovideStrategy, Result<ReprovideDetails, NodeError>)>,
    pub not_ready: Vec<(NodeId, String)>,
    pub ready_nodes: usize,
}

impl ReprovideRoundSummary {
    /// Strategies whose round was recorded.
    pub fn recorded(&self) -> usize {
        self.strategies.iter().filter(|(_, done)| done.is_ok()).count()
    }
}

/// Runs the round on `members` (ready, at least two) with `members[provider]` reproviding; rows go
/// to `recorder` under `fleet` unless the member has its own; the CIDs come from `seed`.
pub(super) async fn run(
    members: &[FleetMember],
    provider: usize,
    config: &ReprovideRoundConfig,
    fleet: &str,
    seed: u64,
    recorder: &actix::Recipient<RecordMeasurement>,
    summary: &mut ReprovideRoundSummary,
) {
    let round = RoundId::new();
    let providing = &members[provider];
    summary.round = Some(round);
    summary.provider = Some(providing.id);
    let Some(reprovide) = &providing.reprovide else {
        return;
    };
    let lookers: Vec<&FleetMember> = members.iter().filter(|m| m.id != providing.id).collect();
    for &strategy in &config.strategies {
        let request = ReprovideContent {
            cids: config.keys,
            strategy,
            workers: config.workers,
            sample: config.sample,
            seed,
            scheduler: Some(fleet.to_owned()),
            span: tracing::info_span!("reprovide round", %round, %strategy, cids = config.keys),
        };
        let report = match reprovide.send(request).await {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, node = %providing.id, %strategy, "the reprovide round failed");
                summary.strategies.push((strategy, Err(e)));
                continue;
            }
            Err(e) => {
                summary
                    .strategies
                    .push((strategy, Err(NodeError::Unavailable(e.to_string()))));
                continue;
            }
        };
        // Each sampled CID is looked up by the next member in turn.
        let found: u32 = stream::iter(report.sample.iter().enumerate())
            .map(|(i, cid)| {
                let looker = lookers[i % lookers.len()];
                let retrieve = RetrieveContent {
                    cid: cid.clone(),
                    scheduler: Some(fleet.to_owned()),
                    span: tracing::Span::none(),
                };
                async move {
                    match looker.node.retrieve.send(retrieve).await {
                        Ok(Ok(found)) => u32::from(found.measurements.iter().all(|m| m.error.is_none())),
                        _ => 0,
                    }
                }
            })
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .fold(0, |total, found| async move { total + found })
            .await;
        let details = ReprovideDetails {
            strategy,
            workers: u32::try_from(report.workers).unwrap_or(u32::MAX),
            connections: Some(report.connections),
            bytes_out: Some(report.bytes_out),
            cpu: Some(report.cpu),
            peak_memory: None,
            sampled: report.sample.len() as u32,
            found,
            // Only the peers know what they store: the API does not tell where records landed.
            placements: 0,
            placed: 0,
            round: report.round,
        };
        let row = Measurement {
            routing_table_size: report.routing_table_size,
            ..Measurement::reprovide(
                round,
                providing.fleet_or(fleet),
                providing.id,
                report.started_at,
                details.failure(),
                details.clone(),
            )
        };
        recorder.do_send(RecordMeasurement(row));
        summary.strategies.push((strategy, Ok(details)));
    }
}
