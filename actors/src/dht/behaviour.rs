//! The composed network behaviour of a DHT peer.

use std::time::Duration;

use libp2p::{
    autonat, connection_limits, gossipsub, identify,
    identity::Keypair,
    kad, memory_connection_limits, ping,
    swarm::{behaviour::toggle::Toggle, NetworkBehaviour},
    StreamProtocol,
};

use super::{
    engine::{self, Wire},
    gossip::{self, CopyCounter},
    store::{Kad, PeerStore},
};
use crate::{DhtClient, DhtConfig, DhtError, DhtMode};

/// The identify protocol every libp2p implementation speaks.
const IDENTIFY_PROTOCOL: &str = "/ipfs/id/1.0.0";

/// Provider records this peer keeps (its own and others'). Long-running servers publish one
/// record every few rounds and keep each for the 48 h TTL; kad's default of 1024 would start
/// refusing provides after a day.
const MAX_STORED_RECORDS: usize = 100_000;

/// Connections to one peer; more than one only happens when both sides dial at once.
const MAX_CONNECTIONS_PER_PEER: u32 = 2;

/// Connections at once, in all. A lookup touches a few dozen peers and idle connections close
/// after 10 s; a server on the public network that accepts everyone would otherwise grow with
/// every peer that dials it.
const MAX_ESTABLISHED: u32 = 2048;

/// Handshakes in flight, each way.
const MAX_PENDING: u32 = 256;

/// Kademlia plus what peers expect beside it: identify (addresses, protocols) and ping (js-libp2p
/// kad-dht pings a peer before admitting it to its routing table), and gossipsub when asked.
#[derive(NetworkBehaviour)]
pub(crate) struct DhtBehaviour {
    // The behaviours that deny connections come first: the derive offers a new connection to the
    // fields in order, and request-response records it before a later field's denial, leaving a
    // phantom connection that later trips its bookkeeping (rust-libp2p PR #6601).
    limits: connection_limits::Behaviour,
    /// Refuses new connections while the process uses more memory than configured.
    memory: Toggle<memory_connection_limits::Behaviour>,
    pub(crate) kad: Kad,
    /// Our engine's outbound kad requests (only when the client is ours).
    pub(crate) wire: Toggle<Wire>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    /// Asks peers to dial our candidate addresses back (AutoNAT v2); a success confirms the
    /// address as external, which is what provider records carry.
    pub(crate) autonat_client: Toggle<autonat::v2::client::Behaviour>,
    /// Dials back the candidates of peers that ask (DHT servers help the network this way).
    autonat_server: Toggle<autonat::v2::server::Behaviour>,
    /// Publish/subscribe, when the peer is configured for it.
    pub(crate) gossipsub: Toggle<gossipsub::Behaviour>,
}

impl DhtBehaviour {
    /// The behaviour of a peer of `config`; `copies` counts the gossipsub messages it receives.
    pub(crate) fn new(keypair: &Keypair, config: &DhtConfig, copies: CopyCounter) -> Result<Self, DhtError> {
        let peer_id = keypair.public().to_peer_id();
        let protocol = StreamProtocol::try_from_owned(config.protocol.clone())
            .map_err(|e| DhtError::Setup(format!("protocol {:?}: {e}", config.protocol)))?;

        let mut kad_config = kad::Config::new(protocol.clone());
        kad_config
            .set_parallelism(config.alpha)
            .set_replication_factor(config.k)
            .set_kbucket_size(config.k)
            // Our own deadlines (in the pending table) end queries earlier; this is a backstop.
            .set_query_timeout(config.provide_timeout.max(config.retrieve_timeout) + Duration::from_secs(5))
            .set_periodic_bootstrap_interval(config.periodic_bootstrap);
        let store = PeerStore::new(peer_id, MAX_STORED_RECORDS, config.k.get());
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        kad.set_mode(Some(match config.mode {
            DhtMode::Client => kad::Mode::Client,
            DhtMode::Server => kad::Mode::Server,
        }));

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), keypair.public())
                .with_agent_version(format!("parsec-rs/{}", env!("CARGO_PKG_VERSION"))),
        );
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                .with_max_established(Some(MAX_ESTABLISHED))
                .with_max_pending_incoming(Some(MAX_PENDING))
                .with_max_pending_outgoing(Some(MAX_PENDING)),
        );
        let memory = config
            .max_memory_bytes
            .map(|bytes| memory_connection_limits::Behaviour::with_max_bytes(bytes as usize));
        let serves = config.mode == DhtMode::Server;
        let engine_driven = config.client != DhtClient::Libp2p;
        let gossipsub = match &config.pubsub {
            Some(pubsub) => Some(gossip::behaviour(keypair, pubsub, copies)?),
            None => None,
        };
        Ok(Self {
            gossipsub: gossipsub.into(),
            kad,
            wire: engine_driven.then(|| engine::wire_behaviour(protocol)).into(),
            identify,
            ping: ping::Behaviour::default(),
            limits,
            memory: memory.into(),
            autonat_client: config
                .confirm_external_addrs
                .then(autonat::v2::client::Behaviour::default)
                .into(),
            autonat_server: serves.then(autonat::v2::server::Behaviour::default).into(),
        })
    }
}
