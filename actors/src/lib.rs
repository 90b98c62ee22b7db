//! The parsec actor hierarchy: real libp2p DHT peers wrapped in actix actors, the fleet that
//! runs measurement rounds over them, and the recorder that stores what they measured.
//!
//! This crate has no HTTP server and no database in it, so any Rust test harness can embed a
//! fleet in-process (see `examples/embed_fleet.rs`).
//!
//! # Layout
//!
//! ```text
//! FleetSupervisor ──RunRound──▶ (one round at a time, fleet/round.rs)
//!   │  CheckReadiness / ProvideContent / RetrieveContent   (as Recipients: local or remote)
//!   ▼
//! NodeActor ──DhtHandle (bounded channel)──▶ swarm task   (multi-thread tokio runtime)
//! FleetSupervisor ──RecordMeasurement──▶ MeasurementRecorder ──batches──▶ MeasurementSink
//! HeartbeatActor ──CheckReadiness──▶ NodeActor;  HeartbeatActor ──heartbeat──▶ Registry
//! ```
//!
//! - [`backoff`] — the doubling retry pauses every retry loop shares.
//! - [`model`] — content ids, node ids, reports and measurement rows.
//! - [`config`] — [`DhtConfig`], one DHT peer's settings (parsec defaults).
//! - [`dht`] — [`DhtHandle`], one DHT peer: the swarm task, its transports, WAN-delay emulation,
//!   the pending-query table, the network presets and the converged routing-table builder.
//! - [`node`] — [`NodeActor`], one parsec server.
//! - [`pubsub`] — gossipsub's settings, message ids and deliveries (the peer speaks it beside kad).
//! - [`fleet`] — [`FleetSupervisor`], its sans-IO [`RoundPlanner`] and the round itself.
//! - [`recorder`] / [`sink`] — [`MeasurementRecorder`] and the [`MeasurementSink`] trait.
//! - [`registry`] / [`heartbeat`] — the [`Registry`] trait (servers and schedulers) and the
//!   [`HeartbeatActor`] that keeps a server's row alive.
//! - [`local_network`] — spawning and wiring an in-process network of peers.
//! - `testing` (feature `test-utils`): helpers for harnesses.

pub mod backoff;
pub mod config;
pub mod dht;
mod error;
pub mod fleet;
pub mod heartbeat;
pub mod local_network;
pub mod model;
pub mod node;
pub mod pubsub;
pub mod recorder;
pub mod registry;
pub mod sink;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use config::{DhtClient, DhtConfig, DhtMode, Libp2pMetrics, IPFS_KAD_PROTOCOL};
pub use dht::{DhtHandle, DhtOutcome, LinkConditions, QueryCounts};
pub use error::{DhtError, NodeError, RoundError, SinkError};
pub use fleet::{
    Discovery, FleetCensus, FleetMember, FleetSupervisor, MemberEndpoints, Membership, NodeConnector,
    PubsubRoundConfig, PubsubRoundSummary, ReprovideRoundConfig, ReprovideRoundSummary, RoundConfig,
    RoundPlanner, RoundSummary, RunConfigured, RunPubsubRound, RunReprovideRound, RunRound, ServerCounts,
    TakeCensus,
};
pub use heartbeat::{GoOffline, HeartbeatActor};
/// Multiaddresses, as peers and operators write them.
pub use libp2p::{identity, multiaddr, Multiaddr, PeerId};
pub use model::{
    random_content, Connections, ContentId, InvalidCid, Measurement, NodeId, Operation, OperationReport,
    PubsubDetails, Readiness, ReprovideDetails, RoundId, StepMeasurement, CONTENT_SIZE, DEADLINE_EXCEEDED,
    NOT_DELIVERED, NOT_FOUND, NO_PEER_REACHED, RUST_LIBP2P, STORED_AT_NO_PEER,
};
pub use node::{CheckReadiness, NodeActor, NodeRecipients, ProvideContent, RetrieveContent};
pub use parsec_kad::{
    reprovide::{ReprovideRound, ReprovideStrategy, WalkReport},
    Strategy,
};
pub use recorder::{drain, Flush, GetStats, MeasurementRecorder, RecordMeasurement, RecorderStats};
pub use registry::{
    DiscoveredNode, MemoryRegistry, NodeQuery, NodeRegistration, ReadOnlyRegistry, Registry, RegistryError,
    SchedulerId, SchedulerRegistration,
};
pub use sink::{CopyingSink, DiscardingSink, MeasurementSink, MemorySink};
