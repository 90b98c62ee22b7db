//! The bounded table of DHT operations in flight: which reply waits for which query, since
//! when, and until when.

use std::{
    collections::HashMap,
    task::{Context, Poll},
    time::Duration,
};

use libp2p::kad::QueryId;

use super::engine::OperationId;
use tokio::{sync::oneshot, time::Instant};
use tokio_util::time::{delay_queue, DelayQueue};

use super::DhtOutcome;
use crate::{ContentId, DhtError};

/// Operations in flight per peer. A server gets one request per round per probe; this leaves
/// room for many concurrent schedulers while bounding memory.
pub(crate) const MAX_PENDING_QUERIES: usize = 1024;

/// An operation in flight: a kad query (rust-libp2p's client) or one of our engine's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OperationKey {
    Kad(QueryId),
    Engine(OperationId),
}

/// Where a finished query's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<DhtOutcome, DhtError>>;

/// One operation in flight.
#[derive(Debug)]
pub(crate) struct PendingQuery {
    reply: Reply,
    pub(crate) cid: Option<ContentId>,
    /// Monotonic start, the reference of the measured duration.
    pub(crate) started: Instant,
    /// The operation's span: what the query does step by step is recorded on it as events.
    pub(crate) span: tracing::Span,
    deadline_key: delay_queue::Key,
}

impl PendingQuery {
    /// Answers the operation's caller.
    pub(crate) fn answer(self, result: Result<DhtOutcome, DhtError>) {
        // The caller may have gone (HTTP client hung up); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// Operations in flight, keyed by operation, with their deadlines.
#[derive(Debug, Default)]
pub(crate) struct PendingQueries {
    queries: HashMap<OperationKey, PendingQuery>,
    deadlines: DelayQueue<OperationKey>,
}

impl PendingQueries {
    /// Whether another operation may start.
    pub(crate) fn has_room(&self) -> bool {
        self.queries.len() < MAX_PENDING_QUERIES
    }

    /// Whether a measured operation (a provide or a retrieval, not a bootstrap) is in flight.
    pub(crate) fn measuring(&self) -> bool {
        self.queries.values().any(|q| q.cid.is_some())
    }

    /// Tracks `id` until it finishes or `timeout` passes.
    pub(crate) fn insert(
        &mut self,
        id: OperationKey,
        reply: Reply,
        cid: Option<ContentId>,
        started: Instant,
        timeout: Duration,
        span: tracing::Span,
    ) {
        let deadline_key = self.deadlines.insert_at(id, started + timeout);
        self.queries.insert(
            id,
            PendingQuery {
                reply,
                cid,
                started,
                span,
                deadline_key,
            },
        );
    }

    /// The span of query `id`, if it is tracked.
    pub(crate) fn span(&self, id: &OperationKey) -> Option<&tracing::Span> {
        self.queries.get(id).map(|query| &query.span)
    }

    /// Stops tracking `id` and returns it, if it was tracked.
    pub(crate) fn remove(&mut self, id: &OperationKey) -> Option<PendingQuery> {
        let query = self.queries.remove(id)?;
        self.deadlines.remove(&query.deadline_key);
        Some(query)
    }

    /// Stops tracking every query and returns them (shutdown).
    pub(crate) fn drain(&mut self) -> Vec<PendingQuery> {
        self.deadlines.clear();
        self.queries.drain().map(|(_, query)| query).collect()
    }

    /// The next query whose deadline passed. `Ready(None)` when nothing is pending.
    pub(crate) fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(OperationKey, PendingQuery)>> {
        match self.deadlines.poll_expired(cx) {
            Poll::Ready(Some(expired)) => {
                let id = expired.into_inner();
                Poll::Ready(self.queries.remove(&id).map(|query| (id, query)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
