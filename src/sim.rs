//! A large-scale Kademlia network simulator: up to millions of nodes in virtual time, measured by
//! the same parsec rounds and written to the same tables as real peers.
//!
//! - keys, the lookup state machine and converged tables come from the Kademlia engine,
//!   [`parsec_kad`], which the libp2p peers drive as well.
//! - [`network`] — ids, regions, routing tables (built converged, in parallel) and records.
//! - [`latency`] — message delays: a range or a region RTT matrix; error rate and timeouts.
//! - [`churn`] — nodes leaving and joining as virtual time passes.
//! - [`simulation`] — lookup, provide and retrieve as discrete-event loops in virtual time, and
//!   reprovide rounds (one provide per key, or the provide sweep).
//! - [`reprovide`] — reprovide rounds measured at a key count, with their checks (`simulate
//!   --reprovide`, `benches/reprovide.rs`).
//! - [`servers`] — simulated parsec servers behind actor mailboxes, so a `FleetSupervisor`
//!   measures them like real ones.
//!
//! # Example
//! ```
//! use parsec::sim::{Key, SimConfig, Simulation};
//!
//! let mut sim = Simulation::build(&SimConfig { nodes: 2_000, ..SimConfig::default() }, |_| {}).unwrap();
//! let content = Key::hash_of(b"some content");
//! let provided = sim.provide(0, content);
//! assert!(provided.error.is_none());
//! let found = sim.retrieve(1, content);
//! assert_eq!(found.error, None);
//! println!("found in {:?} after {} hops, {} messages", found.duration, found.hops, found.messages);
//! ```

pub mod churn;
pub mod latency;
pub mod network;
pub mod reprovide;
pub mod run;
pub mod servers;
pub mod simulation;

pub use churn::{Churn, ChurnConfig, ChurnStep};
pub use latency::{DelayModel, LatencyModel, Profile, Regions};
pub use network::{Network, NetworkConfig, NodeIndex};
pub use parsec_kad::{Distance, Key, Lookup, LookupConfig, Next, Strategy, Termination};
pub use simulation::{KademliaConfig, OperationKind, Outcome, ReprovideRound, ReprovideStrategy, Simulation};

/// Everything a simulation is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Nodes at the start.
    pub nodes: usize,
    /// k, alpha, beta, steps to stop.
    pub kademlia: KademliaConfig,
    /// Delays, errors and timeouts.
    pub latency: LatencyModel,
    /// Share of nodes that never answer.
    pub unreachable: f64,
    /// Seed of everything random.
    pub seed: u64,
}

impl Default for SimConfig {
    /// The calibrated IPFS-like network of 25,000 nodes (see `docs/simulator.md`).
    fn default() -> Self {
        Self {
            nodes: 25_000,
            kademlia: KademliaConfig::default(),
            latency: LatencyModel::ipfs(),
            unreachable: DEFAULT_UNREACHABLE,
            seed: 1,
        }
    }
}

/// Share of unreachable DHT servers in the calibrated default.
pub const DEFAULT_UNREACHABLE: f64 = 0.2;

impl Simulation {
    /// Builds the network of `config` and a simulation over it; `progress` gets the number of
    /// routing tables built so far.
    pub fn build(config: &SimConfig, progress: impl Fn(usize) + Sync) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&config.latency.error_rate) {
            return Err("the error rate must be within 0..=1".to_owned());
        }
        if config.kademlia.lookup.alpha == 0 || config.kademlia.beta == 0 {
            return Err("alpha and beta must be at least 1".to_owned());
        }
        let network = Network::build(
            &NetworkConfig {
                nodes: config.nodes,
                k: config.kademlia.lookup.k,
                seed: config.seed,
                regions: config.latency.regions(),
                unreachable: config.unreachable,
            },
            progress,
        )?;
        Ok(Self::new(
            network,
            config.latency.clone(),
            config.kademlia,
            config.seed,
        ))
    }
}
