//! What a wide-area network does to each of a peer's connections, decided per remote peer: how
//! far away it is, and whether it answers at all. A testnet applies a model of the public network
//! (the simulator's, `parsec testnet --profile`) to real connections through this trait.

use std::{fmt::Debug, time::Duration};

use libp2p::PeerId;

/// Per-pair link conditions. Both ends of a connection ask with their own id as `local`, so an
/// implementation must answer the same for `(a, b)` and `(b, a)`.
pub trait LinkConditions: Debug + Send + Sync {
    /// The round-trip time between the two peers (constant for the pair).
    fn round_trip(&self, local: &PeerId, remote: &PeerId) -> Duration;

    /// `Some(after)` when a connection between the two never works: a dial to a peer that sits in
    /// routing tables but is gone or unreachable. The connection fails after `after`: quickly for
    /// a refused dial, after a timeout for a silent one.
    fn failure(&self, local: &PeerId, remote: &PeerId) -> Option<Duration>;
}
