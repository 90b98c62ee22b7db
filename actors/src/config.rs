//! Configuration of one DHT peer. Defaults follow parsec and go-libp2p-kad-dht.

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use libp2p::{identity::Keypair, Multiaddr};

use crate::LinkConditions;

/// The Kademlia protocol of the IPFS Amino DHT.
pub const IPFS_KAD_PROTOCOL: &str = "/ipfs/kad/1.0.0";

/// parsec's default lookup concurrency (go-libp2p-kad-dht uses 10 as well).
pub const DEFAULT_ALPHA: usize = 10;

/// Bucket size and replication factor of the IPFS DHT.
pub const DEFAULT_K: usize = 20;

/// How long a provide may take before it is reported as failed (parsec's scheduler timeout).
pub const DEFAULT_PROVIDE_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a retrieval may take. parsec has no limit, so one stuck lookup hangs its round.
pub const DEFAULT_RETRIEVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections unused this long are closed; keeps in-process testnets within the fd limit
/// while still letting one round reuse the connections of its own lookups.
pub const DEFAULT_IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the accelerated client crawls the whole network, unless told otherwise: the
/// simulator's interval too.
pub const DEFAULT_CRAWL_INTERVAL: Duration = parsec_kad::upkeep::CRAWL_INTERVAL;

/// Whether the peer answers DHT requests from others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DhtMode {
    /// Only issues requests; not added to other peers' routing tables.
    #[default]
    Client,
    /// Serves requests and stores records for others.
    Server,
}

/// Which client publishes and looks up records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DhtClient {
    /// rust-libp2p's kad (`default`): the stock implementation, our baseline.
    #[default]
    Libp2p,
    /// parsec-kad's engine over our `/ipfs/kad/1.0.0` requests, with this strategy (`classic`,
    /// `optprov`, `fullrt`).
    Engine(parsec_kad::Strategy),
}

impl DhtClient {
    /// Every client, in the order reports list them.
    pub const ALL: [DhtClient; 4] = [
        Self::Libp2p,
        Self::Engine(parsec_kad::Strategy::Classic),
        Self::Engine(parsec_kad::Strategy::Optimistic),
        Self::Engine(parsec_kad::Strategy::FullRoutingTable),
    ];

    /// The name fleets and flags use: `default`, `classic`, `optprov`, `fullrt`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Libp2p => "default",
            Self::Engine(strategy) => strategy.name(),
        }
    }
}

parsec_kad::impl_named!(DhtClient, "DHT strategy");

/// Configuration of one DHT peer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DhtConfig {
    /// Identity; a fresh Ed25519 key when `None`.
    pub keypair: Option<Keypair>,
    /// Kademlia protocol name.
    pub protocol: String,
    /// Client or server mode.
    pub mode: DhtMode,
    /// Lookup concurrency (alpha).
    pub alpha: NonZeroUsize,
    /// Bucket size and replication factor (k).
    pub k: NonZeroUsize,
    /// Deadline of a provide.
    pub provide_timeout: Duration,
    /// Deadline of a retrieval.
    pub retrieve_timeout: Duration,
    /// Addresses to listen on (`/ip4/…/tcp/…`, `/ip4/…/udp/…/quic-v1`, `/memory/…`).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through (`…/p2p/<peer id>`); `bootstrap` dials them.
    pub bootstrap: Vec<Multiaddr>,
    /// Announce listen addresses as external ones. Provider records only carry the provider's
    /// addresses when it has external addresses, so local networks need this.
    pub announce_listen_addrs: bool,
    /// Addresses announced as external, in addition to (or instead of) the listen addresses.
    pub external_addrs: Vec<Multiaddr>,
    /// Find our public addresses: the addresses peers observe (identify) become external once a
    /// peer dialled them back (AutoNAT v2). For servers on the open network, where listen
    /// addresses are often private.
    pub confirm_external_addrs: bool,
    /// Emulated round-trip time added to every connection (`None`: none).
    pub latency: Option<Duration>,
    /// Per-peer link conditions (region delays, peers that never answer), applied to every
    /// connection once the remote's identity is known (`None`: none). Testnets only.
    pub link_conditions: Option<Arc<dyn LinkConditions>>,
    /// Close connections idle for this long.
    pub idle_connection_timeout: Duration,
    /// Run a bootstrap lookup this often (`None`: only on request). Testnets that fill routing
    /// tables directly turn it off so a thousand idle peers stay idle.
    pub periodic_bootstrap: Option<Duration>,
    /// Resolve `/dns*` addresses (needs a resolver configuration on the host).
    pub resolve_dns: bool,
    /// The DNS server that resolves `/dns*` and `/dnsaddr` addresses (`None`: the host's, from
    /// /etc/resolv.conf).
    pub dns_server: Option<std::net::SocketAddr>,
    /// Where the swarm's events are counted (libp2p's own metrics); `None`: not counted.
    pub metrics: Option<Libp2pMetrics>,
    /// Refuse new connections while the process's resident memory is above this (`None`: no
    /// limit). A server sets it below its container's memory limit.
    pub max_memory_bytes: Option<u64>,
    /// Who publishes and looks up: rust-libp2p's kad or our engine (inbound requests and the
    /// routing table are kad's either way).
    pub client: DhtClient,
    /// How often the accelerated client (`fullrt`) crawls the network again.
    pub crawl_interval: Duration,
    /// Gossipsub's parameters (`None`: the peer does not speak pubsub).
    pub pubsub: Option<crate::pubsub::PubsubConfig>,
    /// What happens to connections when a measured operation ends.
    pub connections: crate::Connections,
}

/// libp2p's metrics (connections, kad queries and inbound requests, identify, ping), registered
/// in a Prometheus registry and shared by the swarms that record into it.
#[derive(Clone)]
pub struct Libp2pMetrics {
    pub(crate) libp2p: std::sync::Arc<libp2p::metrics::Metrics>,
    /// Confirmed external addresses (AutoNAT v2): 0 means nobody could dial us back.
    pub(crate) external_addresses: prometheus_client::metrics::gauge::Gauge,
    /// fullrt: peers of the last complete crawl, and how long it took.
    pub(crate) crawl_peers: prometheus_client::metrics::gauge::Gauge,
    pub(crate) crawl_seconds: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    /// optprov: the network size estimate (0 while there is none).
    pub(crate) network_size_estimate:
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Libp2pMetrics {
    /// Registers libp2p's metrics (prefix `libp2p_`) and our reachability gauge in `registry`.
    pub fn register(registry: &mut libp2p::metrics::Registry) -> Self {
        let external_addresses = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "parsec_external_addresses",
            "Addresses of this peer that another peer dialled back (AutoNAT v2); 0: not reachable",
            external_addresses.clone(),
        );
        let crawl_peers = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "parsec_fullrt_crawl_peers",
            "Peers that answered the last complete crawl of the accelerated client (fullrt)",
            crawl_peers.clone(),
        );
        let crawl_seconds = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "parsec_fullrt_crawl_seconds",
            "How long the last complete crawl of the accelerated client (fullrt) took",
            crawl_seconds.clone(),
        );
        let network_size_estimate = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "parsec_network_size_estimate",
            "Optimistic provide's estimate of the network's size (0: none yet)",
            network_size_estimate.clone(),
        );
        Self {
            libp2p: std::sync::Arc::new(libp2p::metrics::Metrics::new(registry)),
            external_addresses,
            crawl_peers,
            crawl_seconds,
            network_size_estimate,
        }
    }
}

impl std::fmt::Debug for Libp2pMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Libp2pMetrics")
    }
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            keypair: None,
            protocol: IPFS_KAD_PROTOCOL.to_owned(),
            mode: DhtMode::Client,
            alpha: NonZeroUsize::new(DEFAULT_ALPHA).expect("non-zero"),
            k: NonZeroUsize::new(DEFAULT_K).expect("non-zero"),
            provide_timeout: DEFAULT_PROVIDE_TIMEOUT,
            retrieve_timeout: DEFAULT_RETRIEVE_TIMEOUT,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            announce_listen_addrs: false,
            external_addrs: Vec::new(),
            confirm_external_addrs: false,
            latency: None,
            link_conditions: None,
            idle_connection_timeout: DEFAULT_IDLE_CONNECTION_TIMEOUT,
            periodic_bootstrap: Some(Duration::from_secs(5 * 60)),
            resolve_dns: false,
            dns_server: None,
            metrics: None,
            max_memory_bytes: None,
            client: DhtClient::Libp2p,
            crawl_interval: DEFAULT_CRAWL_INTERVAL,
            pubsub: None,
            connections: crate::Connections::Warm,
        }
    }
}

impl DhtConfig {
    /// Speaks gossipsub with these parameters (`None`: not at all).
    pub fn set_pubsub(&mut self, pubsub: Option<crate::pubsub::PubsubConfig>) -> &mut Self {
        self.pubsub = pubsub;
        self
    }

    /// Counts the swarm's events in `metrics`.
    pub fn set_metrics(&mut self, metrics: Option<Libp2pMetrics>) -> &mut Self {
        self.metrics = metrics;
        self
    }

    /// Sets the identity.
    pub fn set_keypair(&mut self, keypair: Keypair) -> &mut Self {
        self.keypair = Some(keypair);
        self
    }

    /// Sets the Kademlia protocol name.
    pub fn set_protocol(&mut self, protocol: impl Into<String>) -> &mut Self {
        self.protocol = protocol.into();
        self
    }

    /// Sets client or server mode.
    pub fn set_mode(&mut self, mode: DhtMode) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Sets the lookup concurrency.
    pub fn set_alpha(&mut self, alpha: NonZeroUsize) -> &mut Self {
        self.alpha = alpha;
        self
    }

    /// Sets the retrieval deadline.
    pub fn set_retrieve_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.retrieve_timeout = timeout;
        self
    }

    /// Sets the provide deadline.
    pub fn set_provide_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.provide_timeout = timeout;
        self
    }

    /// Sets the listen addresses.
    pub fn set_listen(&mut self, listen: Vec<Multiaddr>) -> &mut Self {
        self.listen = listen;
        self
    }

    /// Sets the bootstrap peers.
    pub fn set_bootstrap(&mut self, bootstrap: Vec<Multiaddr>) -> &mut Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Announces listen addresses as external addresses (local networks).
    pub fn set_announce_listen_addrs(&mut self, announce: bool) -> &mut Self {
        self.announce_listen_addrs = announce;
        self
    }

    /// Sets the addresses announced as external.
    pub fn set_external_addrs(&mut self, addrs: Vec<Multiaddr>) -> &mut Self {
        self.external_addrs = addrs;
        self
    }

    /// Confirms observed addresses with AutoNAT v2 and announces them.
    pub fn set_confirm_external_addrs(&mut self, confirm: bool) -> &mut Self {
        self.confirm_external_addrs = confirm;
        self
    }

    /// Sets [`link_conditions`](Self::link_conditions).
    pub fn set_link_conditions(&mut self, conditions: Option<Arc<dyn LinkConditions>>) -> &mut Self {
        self.link_conditions = conditions;
        self
    }

    /// Sets [`latency`](Self::latency).
    pub fn set_latency(&mut self, latency: Option<Duration>) -> &mut Self {
        self.latency = latency;
        self
    }

    /// Sets the idle connection timeout.
    pub fn set_idle_connection_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_connection_timeout = timeout;
        self
    }

    /// Sets the periodic bootstrap interval.
    pub fn set_periodic_bootstrap(&mut self, interval: Option<Duration>) -> &mut Self {
        self.periodic_bootstrap = interval;
        self
    }

    /// Sets who publishes and looks up: rust-libp2p's kad or our engine with a strategy.
    pub fn set_client(&mut self, client: DhtClient) -> &mut Self {
        self.client = client;
        self
    }

    /// Sets what happens to connections when a measured operation ends (warm: as parsec).
    pub fn set_connections(&mut self, connections: crate::Connections) -> &mut Self {
        self.connections = connections;
        self
    }

    /// Sets how often the accelerated client crawls the network again.
    pub fn set_crawl_interval(&mut self, interval: Duration) -> &mut Self {
        self.crawl_interval = interval;
        self
    }

    /// Refuses new connections above `bytes` of resident memory.
    pub fn set_max_memory_bytes(&mut self, bytes: Option<u64>) -> &mut Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// Resolves `/dns*` and `/dnsaddr` with the DNS server at `server` instead of the host's.
    pub fn set_dns_server(&mut self, server: Option<std::net::SocketAddr>) -> &mut Self {
        self.dns_server = server;
        self
    }

    /// Enables `/dns*` resolution.
    pub fn set_resolve_dns(&mut self, resolve: bool) -> &mut Self {
        self.resolve_dns = resolve;
        self
    }
}
