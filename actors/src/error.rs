//! One error type per failure layer; each keeps what a reader needs to find the cause.

use std::time::Duration;

/// Why a DHT peer could not run an operation at all (as opposed to an operation that ran and
/// failed, which is a measurement with an error text).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DhtError {
    /// The swarm task has ended (shutdown or crash).
    #[error("the DHT peer has stopped")]
    Stopped,
    /// The peer shut down while the operation was in flight: there is no measurement.
    #[error("the operation was cancelled: the server is shutting down")]
    Cancelled,
    /// Too many operations in flight; the caller should retry later.
    #[error("too many DHT operations in flight (limit {limit})")]
    Busy {
        /// The configured limit.
        limit: usize,
    },
    /// The local record store refused the provider record.
    #[error("the local record store refused the provider record for {cid}: {reason}")]
    Store {
        /// The content that was to be provided.
        cid: String,
        /// The store's reason.
        reason: String,
    },
    /// Bootstrap needs at least one known peer.
    #[error("no known peers to bootstrap from")]
    NoKnownPeers,
    /// The peer does not speak pubsub, or gossipsub refused to publish.
    #[error("pubsub: {0}")]
    Pubsub(String),
    /// A message with this id was published already: publishing it again can never succeed.
    #[error("pubsub: a message with this id was already published; publish under a new id")]
    DuplicateMessage,
    /// The message's gossipsub frame would exceed what receivers accept: nobody would get it.
    #[error(
        "pubsub: a {payload}-byte message makes a {frame}-byte gossipsub frame on this topic, over the \
         {limit} bytes a frame may have (receivers refuse 65,536 bytes of buffered frames); the largest \
         message that fits is {largest} bytes"
    )]
    MessageTooLarge {
        payload: usize,
        frame: usize,
        limit: usize,
        largest: usize,
    },
    /// The swarm could not be built or could not listen.
    #[error("failed to start the DHT peer: {0}")]
    Setup(String),
    /// A reprovide round could not start (a `default` peer, or a round already running).
    #[error("reprovide: {0}")]
    Reprovide(String),
}

/// Why a node (in-process or remote) gave no report for a request.
///
/// A report whose measurement carries an error text is *not* a `NodeError`: that is a valid
/// data point. A `NodeError` means there is nothing to record as a measurement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The node could not be reached (connection refused, actor stopped).
    #[error("node unavailable: {0}")]
    Unavailable(String),
    /// The node did not answer in time.
    #[error("node did not answer within {0:?}")]
    Timeout(Duration),
    /// The node answered with a non-success status.
    #[error("node answered HTTP {status}: {body}")]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// Response body, truncated.
        body: String,
    },
    /// The node answered something that is not a valid parsec response.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// The request could not be encoded, so it was never sent.
    #[error("the request could not be encoded: {0}")]
    InvalidRequest(String),
    /// The node's DHT peer could not run the operation.
    #[error(transparent)]
    Dht(#[from] DhtError),
}

/// Why the measurement sink could not store a batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("measurement sink failed: {0}")]
pub struct SinkError(pub String);

/// Why a round could not run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoundError {
    /// No node of the fleet is ready.
    #[error("no ready node among {registered} registered")]
    NoReadyNode {
        /// How many nodes the fleet holds.
        registered: usize,
    },
    /// The members could not be discovered (and none were found recently enough to reuse).
    #[error("discovering the fleet's nodes failed: {0}")]
    Discovery(String),
    /// The fleet supervisor's mailbox is closed: the actor that runs rounds has stopped.
    #[error("the fleet supervisor has stopped: {0}")]
    SupervisorStopped(String),
    /// The round was abandoned (shutdown); what it had not recorded yet is not recorded.
    #[error("the round was abandoned")]
    Abandoned,
    /// The provide request itself failed, so there is nothing to look up.
    #[error("provider {node} failed: {source}")]
    ProvideFailed {
        /// The node chosen to provide.
        node: crate::NodeId,
        /// What went wrong.
        source: NodeError,
        /// Members that were ready in this round.
        ready_nodes: usize,
    },
}
