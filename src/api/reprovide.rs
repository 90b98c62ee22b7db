//! The reprovide extension of the API: `POST /reprovide` has the server reprovide CIDs of its own
//! with a strategy and answers with the round, its walks and a sample of the CIDs (for other
//! servers to look up). The request lasts the round: minutes for millions of CIDs.

use actix::Recipient;
use actix_web::{web, HttpRequest, HttpResponse};
use parsec_actors::{
    node::reprovide::{ReprovideContent, ReprovideReport},
    ContentId, NodeError, ReprovideRound, ReprovideStrategy, WalkReport,
};
use serde::{Deserialize, Serialize};

use super::{
    auth::Authorized,
    error::ApiError,
    handlers::scheduler_id,
    pubsub::{nanos, read_json, stopped},
};
use crate::telemetry::traces::continue_trace;

/// What to reprovide.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReprovideRequest {
    pub cids: usize,
    /// `classic` or `sweep`.
    pub strategy: String,
    pub workers: usize,
    pub sample: usize,
    /// The server's CIDs are derived from it (a new seed: new CIDs).
    pub seed: u64,
}

/// A sweep's walk (durations in nanoseconds, as the API's).
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct WalkDto {
    /// The prefix's bits (`ε`: the whole key space).
    pub prefix: String,
    pub regions: u32,
    pub peers: u32,
    pub cids: u64,
    pub lookups: u64,
    pub messages: u64,
    pub failures: u64,
    pub copies_stored: u64,
    pub duration_ns: u64,
}

/// What the round did.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ReprovideResponse {
    pub strategy: String,
    pub workers: usize,
    pub cids: usize,
    /// Wall clock at the start (Unix nanoseconds); the duration is monotonic.
    pub started_at_ns: i64,
    pub duration_ns: u64,
    pub lookups: u64,
    pub messages: u64,
    pub failures: u64,
    pub copies_stored: u64,
    /// A sweep's walks (a classic round's walks are its provides, one per CID: not listed).
    pub walks: Vec<WalkDto>,
    pub connections: u64,
    pub bytes_out: u64,
    pub cpu_ns: u64,
    /// Sampled CIDs.
    pub sample: Vec<String>,
    pub routing_table_size: u64,
}

fn nanos_of(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl From<ReprovideReport> for ReprovideResponse {
    fn from(report: ReprovideReport) -> Self {
        let round = report.round;
        Self {
            strategy: report.strategy.name().to_owned(),
            workers: report.workers,
            cids: round.keys,
            started_at_ns: nanos(report.started_at),
            duration_ns: nanos_of(round.duration),
            lookups: round.lookups,
            messages: round.messages,
            failures: round.failures,
            copies_stored: round.copies_stored,
            walks: round
                .walks
                .into_iter()
                .filter_map(|walk| {
                    Some(WalkDto {
                        prefix: walk.prefix?.to_string(),
                        regions: walk.regions,
                        peers: walk.peers,
                        cids: walk.keys,
                        lookups: walk.lookups,
                        messages: walk.messages,
                        failures: walk.failures,
                        copies_stored: walk.copies_stored,
                        duration_ns: nanos_of(walk.duration),
                    })
                })
                .collect(),
            connections: report.connections,
            bytes_out: report.bytes_out,
            cpu_ns: nanos_of(report.cpu),
            sample: report.sample.iter().map(ToString::to_string).collect(),
            routing_table_size: report.routing_table_size,
        }
    }
}

impl TryFrom<ReprovideResponse> for ReprovideReport {
    type Error = NodeError;

    fn try_from(answer: ReprovideResponse) -> Result<Self, NodeError> {
        let invalid = NodeError::InvalidResponse;
        let walks = answer
            .walks
            .into_iter()
            .map(|walk| {
                Ok(WalkReport {
                    prefix: Some(walk.prefix.parse().map_err(invalid)?),
                    regions: walk.regions,
                    peers: walk.peers,
                    keys: walk.cids,
                    lookups: walk.lookups,
                    messages: walk.messages,
                    failures: walk.failures,
                    copies_stored: walk.copies_stored,
                    duration: std::time::Duration::from_nanos(walk.duration_ns),
                })
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        let sample = answer
            .sample
            .iter()
            .map(|cid| cid.parse::<ContentId>().map_err(|e| invalid(e.to_string())))
            .collect::<Result<Vec<_>, NodeError>>()?;
        Ok(ReprovideReport {
            strategy: answer.strategy.parse().map_err(invalid)?,
            workers: answer.workers,
            started_at: chrono::DateTime::from_timestamp_nanos(answer.started_at_ns),
            round: ReprovideRound {
                keys: answer.cids,
                lookups: answer.lookups,
                messages: answer.messages,
                failures: answer.failures,
                copies_stored: answer.copies_stored,
                walks,
                duration: std::time::Duration::from_nanos(answer.duration_ns),
            },
            connections: answer.connections,
            bytes_out: answer.bytes_out,
            cpu: std::time::Duration::from_nanos(answer.cpu_ns),
            sample,
            routing_table_size: answer.routing_table_size,
        })
    }
}

/// `POST /reprovide`.
pub(crate) async fn reprovide(
    _: Authorized,
    node: web::Data<Option<Recipient<ReprovideContent>>>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let expected = r#"{"cids": <count>, "strategy": "classic"|"sweep", "workers": <count>, "sample": <count>, "seed": <number>}"#;
    let body: ReprovideRequest = read_json(&request, body, expected).await?;
    let strategy: ReprovideStrategy = body.strategy.parse().map_err(ApiError::BadRequest)?;
    let scheduler = scheduler_id(&request)?;
    let message = ReprovideContent {
        cids: body.cids,
        strategy,
        workers: body.workers,
        sample: body.sample,
        seed: body.seed,
        scheduler,
        span: tracing::info_span!("reprovide", cids = body.cids, %strategy),
    };
    message.check().map_err(ApiError::BadRequest)?;
    continue_trace(&message.span, request.headers());
    let node = node
        .as_ref()
        .as_ref()
        .ok_or_else(|| ApiError::NotImplemented("this server does not reprovide".to_owned()))?;
    let report = node.send(message).await.map_err(stopped)??;
    Ok(HttpResponse::Ok().json(ReprovideResponse::from(report)))
}
