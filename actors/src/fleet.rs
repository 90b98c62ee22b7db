//! `FleetSupervisor`: holds a fleet's nodes and runs the parsec round over them.
//!
//! A round: ask every node for readiness (concurrently, with a timeout); let the
//! [`RoundPlanner`] choose the provider among the ready ones; send it a fresh random blob
//! ([`ProvideContent`]); then every other ready node looks the CID up ([`RetrieveContent`]),
//! in parallel, `probes` times each. Every report becomes [`Measurement`] rows sent to the
//! recorder. Nodes are held as `Recipient`s, so in-process and remote (HTTP) nodes mix freely.

mod plan;

use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;
use rand::{rngs::StdRng, SeedableRng};
use tracing::Instrument;

pub use self::plan::{RoundPlan, RoundPlanner};
use crate::{
    random_content, CheckReadiness, ContentId, Measurement, NodeError, NodeId, NodeRecipients, Operation,
    OperationReport, ProvideContent, RecordMeasurement, RetrieveContent, RoundError, RoundId,
};

/// Readiness answers slower than this count as not ready.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// One node of a fleet, as the supervisor sees it.
#[derive(Clone, Debug)]
pub struct FleetMember {
    /// The node's id (its `nodes_ecs` row once stored).
    pub id: NodeId,
    /// Human-readable name (address or peer id).
    pub name: String,
    /// Where its requests go.
    pub node: NodeRecipients,
}

impl FleetMember {
    /// A member whose requests go to `node`.
    pub fn new(id: NodeId, name: impl Into<String>, node: NodeRecipients) -> Self {
        Self {
            id,
            name: name.into(),
            node,
        }
    }
}

/// How rounds are run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RoundConfig {
    /// The fleet name written with every row.
    pub fleet: String,
    /// Lookups per retrieving node per round.
    pub probes: u32,
    /// Readiness answers slower than this count as not ready.
    pub readiness_timeout: Duration,
    /// Pause between the provide's answer and the retrievals.
    pub settle: Duration,
    /// Seed of the content generator (`None`: from the OS).
    pub seed: Option<u64>,
}

impl Default for RoundConfig {
    fn default() -> Self {
        Self {
            fleet: "default".to_owned(),
            probes: 1,
            readiness_timeout: DEFAULT_READINESS_TIMEOUT,
            settle: Duration::ZERO,
            seed: None,
        }
    }
}

impl RoundConfig {
    /// Sets the fleet name.
    pub fn set_fleet(&mut self, fleet: impl Into<String>) -> &mut Self {
        self.fleet = fleet.into();
        self
    }

    /// Sets the lookups per retrieving node.
    pub fn set_probes(&mut self, probes: u32) -> &mut Self {
        self.probes = probes.max(1);
        self
    }

    /// Sets the readiness timeout.
    pub fn set_readiness_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.readiness_timeout = timeout;
        self
    }

    /// Sets the pause between provide and retrievals.
    pub fn set_settle(&mut self, settle: Duration) -> &mut Self {
        self.settle = settle;
        self
    }

    /// Seeds the content generator.
    pub fn set_seed(&mut self, seed: Option<u64>) -> &mut Self {
        self.seed = seed;
        self
    }
}

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
    /// Requests that produced no report (not recorded as measurements).
    pub failures: Vec<(NodeId, NodeError)>,
    /// Members skipped because they were not ready.
    pub not_ready: Vec<NodeId>,
}

/// Run one round; answers when every request of it has finished.
#[derive(Debug, Message)]
#[rtype(result = "Result<RoundSummary, RoundError>")]
pub struct RunRound;

/// The fleet's members.
#[derive(Debug, Message)]
#[rtype(result = "Vec<FleetMember>")]
pub struct ListNodes;

/// See the module docs.
#[derive(Debug)]
pub struct FleetSupervisor {
    members: Vec<FleetMember>,
    recorder: Recipient<RecordMeasurement>,
    planner: RoundPlanner,
    config: RoundConfig,
    rng: StdRng,
}

impl FleetSupervisor {
    /// A supervisor over `members`, recording to `recorder`.
    pub fn new(
        members: Vec<FleetMember>,
        recorder: Recipient<RecordMeasurement>,
        config: RoundConfig,
    ) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        Self {
            members,
            recorder,
            planner: RoundPlanner::default(),
            config,
            rng,
        }
    }
}

impl Actor for FleetSupervisor {
    type Context = Context<Self>;
}

impl Handler<ListNodes> for FleetSupervisor {
    type Result = Vec<FleetMember>;

    fn handle(&mut self, _: ListNodes, _: &mut Context<Self>) -> Self::Result {
        self.members.clone()
    }
}

/// Rounds are atomic: the next starts only when the previous one is fully recorded.
impl Handler<RunRound> for FleetSupervisor {
    type Result = AtomicResponse<Self, Result<RoundSummary, RoundError>>;

    fn handle(&mut self, _: RunRound, _: &mut Context<Self>) -> Self::Result {
        let members = self.members.clone();
        let timeout = self.config.readiness_timeout;
        AtomicResponse::new(Box::pin(
            async move { check_readiness(&members, timeout).await }
                .into_actor(self)
                .map(|ready, act, _| {
                    let plan = act.planner.plan(&ready);
                    let content = random_content(&mut act.rng);
                    (plan, content)
                })
                .then(|(plan, content), act, _| {
                    let round = Round {
                        members: act.members.clone(),
                        recorder: act.recorder.clone(),
                        config: act.config.clone(),
                    };
                    async move {
                        let plan = plan.ok_or(RoundError::NoReadyNode {
                            registered: round.members.len(),
                        })?;
                        round.run(plan, content).await
                    }
                    .into_actor(act)
                }),
        ))
    }
}

/// Asks every member for readiness at once; a failure or timeout counts as not ready.
async fn check_readiness(members: &[FleetMember], timeout: Duration) -> Vec<bool> {
    join_all(members.iter().map(|member| async move {
        match member.node.readiness.send(CheckReadiness).timeout(timeout).await {
            Ok(Ok(readiness)) => readiness.ready,
            Ok(Err(e)) => {
                tracing::debug!(node = %member.id, error = %e, "readiness check failed");
                false
            }
            Err(e) => {
                tracing::debug!(node = %member.id, error = %e, "readiness check got no answer");
                false
            }
        }
    }))
    .await
}

/// Everything one round needs, detached from the actor so the round runs as a plain future.
struct Round {
    members: Vec<FleetMember>,
    recorder: Recipient<RecordMeasurement>,
    config: RoundConfig,
}

impl Round {
    async fn run(self, plan: RoundPlan, content: bytes::Bytes) -> Result<RoundSummary, RoundError> {
        let round = RoundId::new();
        let cid = ContentId::for_content(&content);
        let provider = &self.members[plan.provider];
        let span =
            tracing::info_span!("round", %round, %cid, provider = %provider.id, fleet = %self.config.fleet);
        self.run_planned(plan, content, round, cid).instrument(span).await
    }

    async fn run_planned(
        self,
        plan: RoundPlan,
        content: bytes::Bytes,
        round: RoundId,
        cid: ContentId,
    ) -> Result<RoundSummary, RoundError> {
        let provider = &self.members[plan.provider];
        let started_at = chrono::Utc::now();
        let provide = provider
            .node
            .provide
            .send(ProvideContent {
                content,
                scheduler: Some(self.config.fleet.clone()),
            })
            .await
            .map_err(|e| NodeError::Unavailable(e.to_string()))
            .and_then(|answer| answer)
            .and_then(|report| validated(report, &cid))
            .map_err(|source| RoundError::ProvideFailed {
                node: provider.id,
                source,
            })?;
        self.record(round, provider.id, Operation::Provide, 0, started_at, &provide)
            .await;

        if !self.config.settle.is_zero() {
            tokio::time::sleep(self.config.settle).await;
        }

        let lookups = plan
            .retrievers
            .iter()
            .map(|&i| self.retrieve_probes(round, &self.members[i], &cid));
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
            tracing::warn!(%node, %error, "retrieval request failed; nothing recorded");
        }
        Ok(RoundSummary {
            round,
            cid,
            provider: provider.id,
            provide,
            retrievals,
            failures,
            not_ready: plan.not_ready.iter().map(|&i| self.members[i].id).collect(),
        })
    }

    /// One node's probes, one after another (each is a fresh lookup).
    async fn retrieve_probes(
        &self,
        round: RoundId,
        member: &FleetMember,
        cid: &ContentId,
    ) -> Vec<(NodeId, Result<OperationReport, NodeError>)> {
        let mut results = Vec::new();
        for probe in 0..self.config.probes {
            let started_at = chrono::Utc::now();
            let result = member
                .node
                .retrieve
                .send(RetrieveContent {
                    cid: cid.clone(),
                    scheduler: Some(self.config.fleet.clone()),
                })
                .await
                .map_err(|e| NodeError::Unavailable(e.to_string()))
                .and_then(|answer| answer)
                .and_then(|report| validated(report, cid));
            if let Ok(report) = &result {
                self.record(round, member.id, Operation::Retrieval, probe, started_at, report)
                    .await;
            }
            results.push((member.id, result));
        }
        results
    }

    async fn record(
        &self,
        round: RoundId,
        node: NodeId,
        operation: Operation,
        probe: u32,
        started_at: chrono::DateTime<chrono::Utc>,
        report: &OperationReport,
    ) {
        for step in &report.measurements {
            let row = Measurement {
                id: uuid::Uuid::new_v4(),
                round,
                fleet: self.config.fleet.clone(),
                node,
                operation,
                cid: report.cid.clone(),
                step: step.step.clone(),
                probe,
                started_at,
                duration: step.duration,
                error: step.error.clone(),
                routing_table_size: report.routing_table_size,
                trace_id: None,
            };
            if let Err(e) = self.recorder.send(RecordMeasurement(row)).await {
                tracing::error!(%node, error = %e, "measurement recorder is gone; row lost");
            }
        }
    }
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
