//! An in-process network of real libp2p DHT peers on loopback (or in-memory transport), the
//! ground a testnet or an embedding test harness stands on.
//!
//! Peers are spawned on a multi-thread tokio runtime ([`dht_runtime`]) and then wired in one of
//! three ways ([`StartMode`]): routing tables filled as a converged network would hold them (fast,
//! few connections), every peer joining through a few bootstrap peers with real lookups
//! (realistic, but each peer ends up connected to most others), or a star around one hub.
//! Gossipsub among them: [`subscribe_and_form_mesh`], then [`publish_and_collect`] ([`publish`]).

pub mod publish;

use std::time::Duration;

use futures::{stream, StreamExt, TryStreamExt};
use libp2p::Multiaddr;
use tokio::runtime::{Handle, Runtime};

use crate::{
    dht::topology::{converged_routing_table, converged_routing_tables, Contact},
    pubsub::{
        mesh::{MeshState, MeshWatch, MESH_POLL},
        PubsubConfig,
    },
    DhtConfig, DhtError, DhtHandle, DhtMode,
};

pub use self::publish::{publish_and_collect, MessageReport, PublishPlan, PublishReport, Receipt};

/// Peers started or wired at once; bounds the burst of sockets and handshakes.
const SPAWN_CONCURRENCY: usize = 32;

/// The transport peers of a local network use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// TCP on loopback: two file descriptors per connection, all in one process, so the hard
    /// limit of open files caps it at about 150–200 peers that bootstrap by lookups.
    Tcp,
    /// QUIC-v1 on loopback: one UDP socket per peer, however many connections.
    #[default]
    Quic,
    /// libp2p's in-process memory transport: no sockets at all.
    Memory,
}

impl TransportKind {
    /// A listen address of this transport on an OS-chosen port.
    pub fn listen_addr(self) -> Multiaddr {
        match self {
            TransportKind::Tcp => "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"),
            TransportKind::Quic => "/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("valid multiaddr"),
            // Port 0 lets the memory transport pick a free port as well.
            TransportKind::Memory => "/memory/0".parse().expect("valid multiaddr"),
        }
    }
}

/// How peers find each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// Routing tables filled directly with each peer's true closest peers per bucket.
    Converged,
    /// The first `bootstrappers` peers know each other; everyone else joins through them with
    /// a bootstrap lookup.
    Bootstrap {
        /// How many peers act as bootstrap peers.
        bootstrappers: usize,
    },
    /// Every peer knows and dials only the first peer, the hub, and looks nobody up: the mesh
    /// experiment's bootstrap node connected to all others. Lookups later find the rest through
    /// the hub, which learnt every DHT server that dialled it.
    Star,
}

/// A multi-thread runtime for DHT swarms, separate from any actix `System` (which runs on a
/// single thread). Drop it outside async code, or call `shutdown_background`.
pub fn dht_runtime(threads: usize) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("dht")
        .enable_all()
        .build()
}

/// The configuration of a local peer: `template` listening on `transport`, announcing its
/// loopback address (provider records carry only external addresses).
pub fn local_peer_config(template: &DhtConfig, transport: TransportKind) -> DhtConfig {
    let mut config = template.clone();
    config
        .set_listen(vec![transport.listen_addr()])
        .set_announce_listen_addrs(true)
        .set_resolve_dns(false);
    config
}

/// A local peer's configuration for a pubsub test: `pubsub`'s gossipsub with a fast heartbeat (a
/// mesh forms in a fraction of a test), no periodic bootstrap, connections kept for ten minutes.
pub fn pubsub_test_config(mut pubsub: PubsubConfig, transport: TransportKind) -> DhtConfig {
    pubsub.set_heartbeat(Duration::from_millis(200));
    let mut template = DhtConfig::default();
    template
        .set_periodic_bootstrap(None)
        .set_idle_connection_timeout(Duration::from_secs(600))
        .set_pubsub(Some(pubsub));
    local_peer_config(&template, transport)
}

/// Spawns `count` DHT server peers of `config` and wires them as a converged network: the
/// ground of a test or benchmark that needs a network and nothing more.
pub async fn spawn_converged(
    count: usize,
    config: &DhtConfig,
    runtime: &Handle,
) -> Result<Vec<DhtHandle>, DhtError> {
    let peers = spawn_peers(count, config, runtime, |_| {}).await?;
    let local: Vec<LocalPeer> = LocalPeer::all_in(DhtMode::Server, &peers).collect();
    wire(&local, StartMode::Converged, config.k.get()).await?;
    Ok(peers)
}

/// A converged network of `background` server peers of `config`, with a measuring node per entry
/// of `nodes` (each its own configuration, in its own DHT mode) wired in and joined, as a
/// testnet's servers are: the ground of a test that measures nodes against a network. Returns the
/// background peers and the nodes, in order.
pub async fn spawn_with_nodes(
    background: usize,
    config: &DhtConfig,
    nodes: &[DhtConfig],
    runtime: &Handle,
    join_timeout: Duration,
) -> Result<(Vec<DhtHandle>, Vec<DhtHandle>), DhtError> {
    let peers = spawn_peers(background, config, runtime, |_| {}).await?;
    let mut measuring = Vec::with_capacity(nodes.len());
    for node in nodes {
        measuring.push(DhtHandle::spawn(node.clone(), runtime).await?);
    }
    let everyone: Vec<LocalPeer> = LocalPeer::all_in(DhtMode::Server, &peers)
        .chain(measuring.iter().zip(nodes).map(|(handle, node)| LocalPeer {
            handle: handle.clone(),
            mode: node.mode,
        }))
        .collect();
    wire(&everyone, StartMode::Converged, config.k.get()).await?;
    join(&measuring, join_timeout).await?;
    Ok((peers, measuring))
}

/// Starts `count` peers from `config`; `progress` is called with the number started so far.
pub async fn spawn_peers(
    count: usize,
    config: &DhtConfig,
    runtime: &Handle,
    progress: impl Fn(usize),
) -> Result<Vec<DhtHandle>, DhtError> {
    let mut started = 0;
    stream::iter(0..count)
        .map(|_| DhtHandle::spawn(config.clone(), runtime))
        .buffered(SPAWN_CONCURRENCY)
        .inspect_ok(|_| {
            started += 1;
            progress(started);
        })
        .try_collect()
        .await
}

/// A peer to wire into a local network, with the mode it runs in: DHT clients get routing
/// tables but are not put into anyone's.
#[derive(Clone, Debug)]
pub struct LocalPeer {
    /// The running peer.
    pub handle: DhtHandle,
    /// Its DHT mode.
    pub mode: DhtMode,
}

impl LocalPeer {
    /// `handles` as local peers, all running in `mode`.
    pub fn all_in(mode: DhtMode, handles: &[DhtHandle]) -> impl Iterator<Item = LocalPeer> + '_ {
        handles.iter().map(move |handle| LocalPeer {
            handle: handle.clone(),
            mode,
        })
    }
}

/// Connects `peers` into one network, as `mode` says; `k` is the bucket size.
pub async fn wire(peers: &[LocalPeer], mode: StartMode, k: usize) -> Result<(), DhtError> {
    let contact = |p: &LocalPeer| contact_of(&p.handle);
    let servers: Vec<&LocalPeer> = peers.iter().filter(|p| p.mode == DhtMode::Server).collect();
    let clients: Vec<&LocalPeer> = peers.iter().filter(|p| p.mode == DhtMode::Client).collect();
    let server_contacts: Vec<Contact> = servers.iter().map(|p| contact(p)).collect::<Result<_, _>>()?;
    match mode {
        StartMode::Converged => {
            let mut assignments: Vec<(&DhtHandle, Vec<Contact>)> = servers
                .iter()
                .map(|p| &p.handle)
                .zip(converged_routing_tables(&server_contacts, k))
                .collect();
            for client in &clients {
                let table = converged_routing_table(client.handle.peer_id(), &server_contacts, k);
                assignments.push((&client.handle, table));
            }
            stream::iter(assignments)
                .map(|(handle, table)| handle.add_peers(table))
                .buffer_unordered(SPAWN_CONCURRENCY)
                .try_collect::<()>()
                .await
        }
        StartMode::Bootstrap { bootstrappers } => {
            let bootstrappers = bootstrappers.clamp(1, server_contacts.len().max(1));
            let seeds: Vec<Contact> = server_contacts.iter().take(bootstrappers).cloned().collect();
            for (i, seed) in servers.iter().take(bootstrappers).enumerate() {
                let others = seeds
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, c)| c.clone());
                seed.handle.add_peers(others.collect()).await?;
            }
            let joiners = servers.iter().skip(bootstrappers).chain(clients.iter());
            stream::iter(joiners)
                .map(|p| {
                    let seeds = seeds.clone();
                    async move {
                        p.handle.add_peers(seeds).await?;
                        // A failed bootstrap lookup still leaves the seeds in the table.
                        if let Err(e) = p.handle.bootstrap().await {
                            tracing::warn!(peer = %p.handle.peer_id(), error = %e, "bootstrap failed");
                        }
                        Ok::<_, DhtError>(())
                    }
                })
                .buffer_unordered(SPAWN_CONCURRENCY)
                .try_collect::<()>()
                .await
        }
        StartMode::Star => {
            let Some(hub) = server_contacts.first().cloned() else {
                return Ok(());
            };
            let spokes = servers.iter().skip(1).chain(clients.iter());
            stream::iter(spokes)
                .map(|p| {
                    let hub = hub.clone();
                    async move {
                        p.handle.add_peers(vec![hub.clone()]).await?;
                        p.handle.connect(hub).await
                    }
                })
                .buffer_unordered(SPAWN_CONCURRENCY)
                .try_collect::<()>()
                .await
        }
    }
}

/// Has `joiners` (new peers of a running network) join it as a peer of the public network does:
/// each is told of `seeds` (peers already in it) and runs a bootstrap lookup, through which the
/// peers it asks learn of it in turn.
pub async fn join_through(joiners: &[DhtHandle], seeds: &[&DhtHandle]) -> Result<(), DhtError> {
    let seeds: Vec<Contact> = seeds.iter().map(|h| contact_of(h)).collect::<Result<_, _>>()?;
    stream::iter(joiners)
        .map(|joiner| {
            let seeds = seeds.clone();
            async move {
                joiner.add_peers(seeds).await?;
                if let Err(e) = joiner.bootstrap().await {
                    tracing::warn!(peer = %joiner.peer_id(), error = %e, "bootstrap failed");
                }
                Ok::<_, DhtError>(())
            }
        })
        .buffer_unordered(SPAWN_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// How long a measuring node of a local network waits between attempts to join it.
const LOCAL_JOIN_BACKOFF: Duration = Duration::from_millis(500);

/// Has each of `nodes` (the measuring ones) join the wired network with a real bootstrap lookup,
/// so that its routing table holds peers it reached itself, which is what readiness counts, then
/// closes the join's connections: rounds start cold, as they did before nodes had to join.
/// Background peers of a converged network are never asked for readiness and stay quiet.
pub async fn join(nodes: &[DhtHandle], timeout: Duration) -> Result<(), DhtError> {
    stream::iter(nodes)
        .map(|node| async move {
            // A whole bootstrap first (quick here: a local network has no dead peers), so no
            // lookup of the set-up runs on into the measured rounds; then make sure it reached
            // someone, retrying as servers do.
            let _ = tokio::time::timeout(timeout, node.bootstrap()).await;
            tokio::time::timeout(timeout, node.join(LOCAL_JOIN_BACKOFF))
                .await
                .map_err(|_| {
                    DhtError::Setup(format!(
                        "peer {} reached no other peer within {timeout:?}",
                        node.peer_id()
                    ))
                })??;
            node.disconnect_all().await
        })
        .buffer_unordered(SPAWN_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Connects `peers` into a random graph for pubsub, as peers that met through discovery would
/// be: each dials the next (a ring, so the graph is connected) and `degree - 1` others at random.
pub async fn connect_randomly(
    peers: &[DhtHandle],
    degree: usize,
    rng: &mut impl rand::Rng,
) -> Result<(), DhtError> {
    let count = peers.len();
    if count < 2 {
        return Ok(());
    }
    // One dial per pair: two peers dialling each other at once from their listening ports (TCP
    // port reuse) make one simultaneous-open connection on which both act as the dialer, and the
    // handshake fails.
    let mut pairs = std::collections::BTreeSet::new();
    for i in 0..count {
        pairs.insert((i.min((i + 1) % count), i.max((i + 1) % count)));
        for _ in 1..degree.min(count - 1) {
            let other = rng.gen_range(0..count);
            if other != i {
                pairs.insert((i.min(other), i.max(other)));
            }
        }
    }
    let mut dials = Vec::with_capacity(pairs.len());
    for (dialer, target) in pairs {
        dials.push((&peers[dialer], contact_of(&peers[target])?));
    }
    stream::iter(dials)
        .map(|(peer, contact)| peer.connect(contact))
        .buffer_unordered(SPAWN_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Subscribes every one of `peers` to `topic` and waits until each has at least `mesh_peers`
/// mesh peers there (or all its subscribed neighbours, if it has fewer), as [`MeshWatch`] judges:
/// a message published before would reach only the peers flooding happens to cover. Gossipsub
/// may leave a few peers short for a while (a peer pruned by full meshes waits out the prune
/// backoff), so after `timeout` it goes on if every peer has at least one mesh peer, saying how
/// many are short; a peer with none is an error.
pub async fn subscribe_and_form_mesh(
    peers: &[DhtHandle],
    topic: &str,
    mesh_peers: usize,
    timeout: Duration,
) -> Result<(), DhtError> {
    stream::iter(peers)
        .map(|peer| peer.subscribe(topic))
        .buffer_unordered(SPAWN_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let give_up = tokio::time::Instant::now() + timeout;
    let mut watch = MeshWatch::new(mesh_peers);
    loop {
        let views: Vec<crate::pubsub::TopicPeers> = stream::iter(peers)
            .map(|peer| peer.topic_peers(topic))
            .buffered(SPAWN_CONCURRENCY)
            .try_collect()
            .await?;
        let now = tokio::time::Instant::now();
        match watch.observe(&views, now) {
            MeshState::Formed => return Ok(()),
            MeshState::Forming { isolated, .. } if isolated > 0 && now >= give_up => {
                return Err(DhtError::Pubsub(format!(
                    "the mesh of {topic:?} did not form within {timeout:?}: {isolated} of {} peers have \
                     no mesh peer",
                    peers.len()
                )));
            }
            MeshState::Forming { short, .. } if now >= give_up => {
                tracing::warn!(
                    topic,
                    short,
                    peers = peers.len(),
                    mesh_peers,
                    "the mesh formed with some peers short of the wanted degree"
                );
                return Ok(());
            }
            MeshState::Forming { .. } | MeshState::Holding => {}
        }
        tokio::time::sleep(MESH_POLL).await;
    }
}

fn contact_of(handle: &DhtHandle) -> Result<Contact, DhtError> {
    let address = handle
        .listen_addrs()
        .first()
        .cloned()
        .ok_or_else(|| DhtError::Setup(format!("peer {} listens nowhere", handle.peer_id())))?;
    Ok((handle.peer_id(), address))
}
