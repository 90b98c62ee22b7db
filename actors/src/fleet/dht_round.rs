//! One round, detached from the supervisor so it runs as a plain future: ask every member for
//! readiness, have the planned provider publish the content, then every planned retriever look
//! it up `probes` times; every valid report becomes rows for the recorder.

use std::time::Duration;

use futures::future::join_all;
use tracing::Instrument;

use super::{FleetMember, RoundConfig, RoundPlan};
use crate::{
    CheckReadiness, ContentId, Measurement, NodeError, NodeId, Operation, OperationReport, ProvideContent,
    RecordMeasurement, RetrieveContent, RoundError, RoundId,
};

/// What happened in one round.
#[derive(Clone, Debug)]
pub struct RoundSummary {
    /// The round's id (on every row).
    pub round: RoundId,
    /// The published content.
    pub cid: ContentId,
    /// The provider.
    pub provider: NodeId,
    /// The provider's report.
    pub provide: OperationReport,
    /// Retrieval reports, per node and probe.
    pub retrievals: Vec<(NodeId, OperationReport)>,
    /// Requests that produced no valid report (errors of those nodes; not measurements).
    pub failures: Vec<(NodeId, NodeError)>,
    /// Members skipped because they were not ready, with the reason.
    pub not_ready: Vec<(NodeId, String)>,
    /// Members that were ready.
    pub ready_nodes: usize,
}

/// Asks every member for readiness at once. A member is ready when it answers "ready" in
/// time as the peer it registered as; otherwise the reason it is not.
pub(super) async fn check_readiness(members: &[FleetMember], timeout: Duration) -> Vec<Result<(), String>> {
    join_all(members.iter().map(|member| async move {
        let answer = member.node.readiness.send(CheckReadiness).timeout(timeout).await;
        let readiness = match answer {
            Ok(Ok(readiness)) => readiness,
            Ok(Err(e)) => return Err(format!("readiness check failed: {e}")),
            Err(e) => return Err(format!("readiness check got no answer within {timeout:?}: {e}")),
        };
        if let (Some(registered), Some(answered)) = (&member.peer_id, &readiness.peer_id) {
            if registered != answered {
                return Err(format!(
                    "answers as peer {answered}, registered as {registered}: another process holds its address"
                ));
            }
        }
        if readiness.ready {
            Ok(())
        } else {
            Err(format!(
                "not ready (routing table size {})",
                readiness.routing_table_size
            ))
        }
    }))
    .await
}

/// Everything one round needs, detached from the actor so the round runs as a plain future.
pub(super) struct Round {
    pub(super) recorder: actix::Recipient<RecordMeasurement>,
    pub(super) config: RoundConfig,
}

impl Round {
    pub(super) async fn run(
        self,
        members: Vec<FleetMember>,
        plan: RoundPlan,
        content: bytes::Bytes,
        not_ready: Vec<(NodeId, String)>,
    ) -> Result<RoundSummary, RoundError> {
        let round = RoundId::new();
        let cid = ContentId::for_content(&content);
        let provider = &members[plan.provider];
        let span =
            tracing::info_span!("round", %round, %cid, provider = %provider.id, fleet = %self.config.fleet);
        self.run_planned(&members, plan, content, round, cid, not_ready)
            .instrument(span)
            .await
    }

    async fn run_planned(
        self,
        members: &[FleetMember],
        plan: RoundPlan,
        content: bytes::Bytes,
        round: RoundId,
        cid: ContentId,
        not_ready: Vec<(NodeId, String)>,
    ) -> Result<RoundSummary, RoundError> {
        let provider = &members[plan.provider];
        let started_at = chrono::Utc::now();
        // A child of the round's span; the HTTP client carries it to the server (traceparent).
        let span = tracing::info_span!("provide", node = %provider.id, server = %provider.name);
        let request = ProvideContent {
            content,
            scheduler: Some(self.config.fleet.clone()),
            span: span.clone(),
        };
        let provide = ask(&provider.node.provide, request, span, &cid)
            .await
            .map_err(|source| RoundError::ProvideFailed {
                node: provider.id,
                source,
                ready_nodes: members.len() - not_ready.len(),
            })?;
        self.record(round, provider, Operation::Provide, 0, started_at, &provide)
            .await;

        if !self.config.settle.is_zero() {
            tokio::time::sleep(self.config.settle).await;
        }

        let lookups = plan
            .retrievers
            .iter()
            .map(|&i| self.retrieve_probes(round, &members[i], &cid));
        let mut retrievals = Vec::new();
        let mut failures = Vec::new();
        for results in join_all(lookups).await {
            for (node, result) in results {
                match result {
                    Ok(report) => retrievals.push((node, report)),
                    Err(e) => failures.push((node, e)),
                }
            }
        }
        for (node, error) in &failures {
            tracing::warn!(%node, %error, "retrieval request failed; recorded as an error of the node, not as a measurement");
        }
        Ok(RoundSummary {
            round,
            cid,
            provider: provider.id,
            provide,
            retrievals,
            failures,
            ready_nodes: members.len() - not_ready.len(),
            not_ready,
        })
    }

    /// One node's probes, one after another (each is a fresh lookup). A node that cannot be
    /// reached or does not answer in time gets no further probes this round: one timeout per
    /// hung node, not one per probe.
    async fn retrieve_probes(
        &self,
        round: RoundId,
        member: &FleetMember,
        cid: &ContentId,
    ) -> Vec<(NodeId, Result<OperationReport, NodeError>)> {
        let mut results = Vec::new();
        for probe in 0..self.config.probes {
            let started_at = chrono::Utc::now();
            let span = tracing::info_span!("retrieval", node = %member.id, server = %member.name, probe);
            let request = RetrieveContent {
                cid: cid.clone(),
                scheduler: Some(self.config.fleet.clone()),
                span: span.clone(),
            };
            let result = ask(&member.node.retrieve, request, span, cid).await;
            let give_up = matches!(result, Err(NodeError::Unavailable(_) | NodeError::Timeout(_)));
            if let Ok(report) = &result {
                self.record(round, member, Operation::Retrieval, probe, started_at, report)
                    .await;
            }
            results.push((member.id, result));
            if give_up {
                break;
            }
        }
        results
    }

    /// Sends the report's rows to the recorder.
    async fn record(
        &self,
        round: RoundId,
        member: &FleetMember,
        operation: Operation,
        probe: u32,
        started_at: chrono::DateTime<chrono::Utc>,
        report: &OperationReport,
    ) {
        for step in &report.measurements {
            let row = Measurement {
                id: uuid::Uuid::new_v4(),
                round,
                fleet: member.fleet_or(&self.config.fleet).to_owned(),
                node: member.id,
                operation,
                cid: report.cid.clone(),
                step: step.step.clone(),
                probe,
                started_at,
                duration: step.duration,
                error: step.error.clone(),
                routing_table_size: report.routing_table_size,
                trace_id: report.trace_id.clone(),
                record_peers: report.record_peers,
                connections: report.connections,
                pubsub: None,
                reprovide: None,
            };
            if let Err(e) = self.recorder.send(RecordMeasurement(row)).await {
                tracing::error!(node = %member.id, error = %e, "measurement recorder is gone; row lost");
            }
        }
    }
}

/// Sends a node request on `span`; the answer counts only as a valid report about `cid`.
async fn ask<M>(
    node: &actix::Recipient<M>,
    request: M,
    span: tracing::Span,
    cid: &ContentId,
) -> Result<OperationReport, NodeError>
where
    M: actix::Message<Result = Result<OperationReport, NodeError>> + Send + 'static,
{
    node.send(request)
        .instrument(span)
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))
        .and_then(|answer| answer)
        .and_then(|report| validated(report, cid))
}

/// A report is a measurement only if it is about the content asked for and measured something.
fn validated(report: OperationReport, cid: &ContentId) -> Result<OperationReport, NodeError> {
    let reported: Result<ContentId, _> = report.cid.parse();
    match reported {
        Ok(reported) if reported.record_key() == cid.record_key() => {}
        _ => {
            return Err(NodeError::InvalidResponse(format!(
                "answered for CID {:?}, asked for {cid}",
                report.cid
            )))
        }
    }
    if report.measurements.is_empty() {
        return Err(NodeError::InvalidResponse("no measurements".to_owned()));
    }
    Ok(report)
}
