//! `NodeActor`: one parsec server. It answers readiness and turns provide/retrieve requests into
//! operations of its DHT peer ([`DhtHandle`]) and parsec reports.
//!
//! The same three messages are handled by remote nodes (the HTTP client in the `parsec`
//! crate), so a [`FleetSupervisor`](crate::FleetSupervisor) drives either without knowing which.

pub mod pubsub;
pub mod reprovide;

use actix::prelude::*;
use bytes::Bytes;
use tracing::Instrument;

use crate::{
    dht::{DhtHandle, DhtOutcome},
    ContentId, NodeError, Operation, OperationReport, Readiness, StepMeasurement,
};

/// Publish a provider record for `content` (its CIDv0 is computed by the node).
#[derive(Debug, Message)]
#[rtype(result = "Result<OperationReport, NodeError>")]
pub struct ProvideContent {
    /// The blob to provide.
    pub content: Bytes,
    /// The scheduler asking (`x-scheduler-id`), for labelling.
    pub scheduler: Option<String>,
    /// The request's span (its trace continues the scheduler's); disabled: the node makes one.
    pub span: tracing::Span,
}

/// Look up the first provider record of `cid`.
#[derive(Debug, Message)]
#[rtype(result = "Result<OperationReport, NodeError>")]
pub struct RetrieveContent {
    /// The content to look up.
    pub cid: ContentId,
    /// The scheduler asking (`x-scheduler-id`), for labelling.
    pub scheduler: Option<String>,
    /// The request's span (its trace continues the scheduler's); disabled: the node makes one.
    pub span: tracing::Span,
}

/// Whether the node can serve requests (its routing table holds a peer it reached).
#[derive(Debug, Message)]
#[rtype(result = "Result<Readiness, NodeError>")]
pub struct CheckReadiness;

/// Where a node's three requests go: an in-process [`NodeActor`], a remote server behind the
/// HTTP client, or anything else that handles the node messages.
#[derive(Clone, Debug)]
pub struct NodeRecipients {
    /// Where provide requests go.
    pub provide: Recipient<ProvideContent>,
    /// Where retrieval requests go.
    pub retrieve: Recipient<RetrieveContent>,
    /// Where readiness checks go.
    pub readiness: Recipient<CheckReadiness>,
}

impl NodeRecipients {
    /// The recipients of any actor that handles the three node messages.
    pub fn of<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<ProvideContent>
            + Handler<RetrieveContent>
            + Handler<CheckReadiness>,
    {
        Self {
            provide: addr.clone().recipient(),
            retrieve: addr.clone().recipient(),
            readiness: addr.clone().recipient(),
        }
    }
}

/// One parsec server; see the module docs.
#[derive(Debug)]
pub struct NodeActor {
    dht: DhtHandle,
}

impl NodeActor {
    /// A node around a running DHT peer.
    pub fn new(dht: DhtHandle) -> Self {
        Self { dht }
    }

    /// Its peer (the pubsub handlers live beside their messages, in [`pubsub`]).
    pub(crate) fn dht(&self) -> &DhtHandle {
        &self.dht
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        tracing::debug!(peer = %self.dht.peer_id(), "node started");
    }
}

/// The parsec report of one DHT outcome of a peer that keeps its connections `connections`.
fn report(
    cid: &ContentId,
    operation: Operation,
    outcome: DhtOutcome,
    connections: crate::Connections,
) -> OperationReport {
    OperationReport {
        cid: cid.to_string(),
        measurements: vec![StepMeasurement {
            step: operation.step().to_owned(),
            duration: outcome.duration,
            error: outcome.error,
        }],
        routing_table_size: outcome.routing_table_size as u64,
        trace_id: None,
        record_peers: outcome.record_peers,
        connections: Some(connections),
    }
}

/// The caller's span, or one made here when the caller gave none.
fn given_or(span: tracing::Span, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if span.is_none() {
        make()
    } else {
        span
    }
}

// Interleaved handlers: a node serves many lookups at once.

impl Handler<ProvideContent> for NodeActor {
    type Result = ResponseFuture<Result<OperationReport, NodeError>>;

    fn handle(&mut self, msg: ProvideContent, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht.clone();
        let cid = ContentId::for_content(&msg.content);
        Box::pin(async move {
            let span = given_or(
                msg.span,
                || tracing::info_span!("provide", %cid, scheduler = msg.scheduler.as_deref(), record_peers = tracing::field::Empty),
            );
            let outcome = dht.provide(cid.clone()).instrument(span.clone()).await?;
            span.record("record_peers", outcome.record_peers);
            let _entered = span.enter();
            tracing::info!(duration = ?outcome.duration, error = outcome.error.as_deref(), requests = outcome.counts.requests, record_peers = outcome.record_peers, "provided");
            Ok(report(&cid, Operation::Provide, outcome, dht.connections()))
        })
    }
}

impl Handler<RetrieveContent> for NodeActor {
    type Result = ResponseFuture<Result<OperationReport, NodeError>>;

    fn handle(&mut self, msg: RetrieveContent, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht.clone();
        Box::pin(async move {
            let cid = msg.cid;
            let span = given_or(
                msg.span,
                || tracing::info_span!("retrieve", %cid, scheduler = msg.scheduler.as_deref()),
            );
            let outcome = dht.retrieve(cid.clone()).instrument(span.clone()).await?;
            let _entered = span.enter();
            tracing::info!(duration = ?outcome.duration, error = outcome.error.as_deref(), provider = ?outcome.provider, requests = outcome.counts.requests, "retrieved");
            Ok(report(&cid, Operation::Retrieval, outcome, dht.connections()))
        })
    }
}

impl Handler<CheckReadiness> for NodeActor {
    type Result = ResponseFuture<Result<Readiness, NodeError>>;

    fn handle(&mut self, _: CheckReadiness, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht.clone();
        Box::pin(async move {
            let size = dht.routing_table_size().await?;
            let peer_id = dht.peer_id().to_string();
            Ok(Readiness {
                ready: size > 0,
                routing_table_size: size as u64,
                peer_id: Some(peer_id),
            })
        })
    }
}
