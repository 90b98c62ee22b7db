//! parsec's Kademlia engine: no I/O, no async, no clock of its own.
//!
//! - [`key`]: 256-bit keys and the XOR metric.
//! - [`lookup`]: the iterative lookup as a state machine driven with `poll(now)`, with a per-peer
//!   timeout and a termination hook.
//! - [`provide`], [`retrieve`]: a provide and a retrieval as state machines over a lookup (or
//!   the accelerated client's direct requests), with each strategy's rules.
//! - [`explore`]: the lookups that find every peer under a prefix (a sweep's walk).
//! - [`region`]: keyspace regions, and the keys each peer of a region stores (a provide sweep).
//! - [`reprovide`]: a reprovide round's strategies and report.
//! - [`sweep`]: the provide sweep's schedule: which region to walk when, within worker limits.
//! - [`walk`]: one walk of a sweep: explore a prefix, then send each peer its keys.
//! - [`table`]: converged routing tables, and the closest peers of any key from sorted ids.
//! - [`estimator`]: the network size estimate of optimistic provide.
//! - [`strategy`]: classic, optimistic and full-routing-table provides.
//! - [`upkeep`]: when the estimate's lookups and the accelerated client's crawls are due.
//! - [`named`]: `Display`/`FromStr` for enums named by short words (strategies, clients, …).
//!
//! Two drivers share it: the simulator (`parsec::sim`, virtual time, up to millions of nodes) and
//! the libp2p peers of `parsec-actors` (real time, over `/ipfs/kad/1.0.0`).

pub mod estimator;
pub mod explore;
pub mod key;
pub mod lookup;
pub mod named;
pub mod provide;
pub mod region;
pub mod reprovide;
pub mod retrieve;
pub mod strategy;
pub mod sweep;
pub mod table;
pub mod upkeep;
pub mod walk;

pub use estimator::{normed_distance, EstimateError, NetworkSizeEstimator};
pub use key::{Distance, Key};
pub use lookup::{Lookup, LookupConfig, Next, PeerState, Termination};
pub use provide::{Provide, ProvideStep, StoresStart};
pub use retrieve::{Retrieve, RetrieveStep};
pub use strategy::{OptimisticProvide, OptimisticThresholds, StoreProgress, StoreRule, Strategy};
pub use table::SortedPeers;
pub use upkeep::EstimateUpkeep;
