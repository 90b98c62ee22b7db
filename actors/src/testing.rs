//! Helpers for harnesses that embed a fleet: spawn a small local network with nodes, wait on a
//! predicate. Compiled for this crate's tests and with the `test-utils` feature.

use std::{future::Future, time::Duration};

use actix::prelude::*;
use tokio::runtime::Handle;

use crate::{
    dht::load::RequestKind,
    local_network::{self, LocalPeer, StartMode, TransportKind},
    ContentId, DhtClient, DhtConfig, DhtError, DhtHandle, DhtMode, DhtOutcome, FleetMember, NodeActor,
    NodeId, NodeRecipients,
};

/// A DHT server peer of `client` for an in-process network over the memory transport, with the
/// periodic bootstrap off (routing tables are wired) and 30 s deadlines.
pub fn memory_server_config(client: DhtClient) -> DhtConfig {
    let mut config = DhtConfig::default();
    config
        .set_mode(DhtMode::Server)
        .set_client(client)
        .set_periodic_bootstrap(None)
        .set_provide_timeout(Duration::from_secs(30))
        .set_retrieve_timeout(Duration::from_secs(30));
    local_network::local_peer_config(&config, TransportKind::Memory)
}

/// ADD_PROVIDER requests `peers` have read so far, as they count them.
pub fn add_providers_read(peers: &[&DhtHandle]) -> u64 {
    let index = RequestKind::ALL
        .iter()
        .position(|k| *k == RequestKind::AddProvider)
        .expect("ADD_PROVIDER is a request kind");
    peers.iter().map(|p| p.load().requests[index]).sum()
}

/// Polls `predicate` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_for<F, Fut>(timeout: Duration, mut predicate: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if predicate().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Looks `cid` up from `retriever` until a provider record is found, at most `attempts` times,
/// `pause` apart: a store counts once the peer read the record and closed the stream, but the
/// peer's swarm files the record a moment later, so a lookup right after may miss it.
pub async fn retrieve_until_found(
    retriever: &DhtHandle,
    cid: &ContentId,
    attempts: u32,
    pause: Duration,
) -> Result<DhtOutcome, DhtError> {
    let mut found = retriever.retrieve(cid.clone()).await?;
    for _ in 1..attempts.max(1) {
        if found.error.is_none() {
            break;
        }
        tokio::time::sleep(pause).await;
        found = retriever.retrieve(cid.clone()).await?;
    }
    Ok(found)
}

/// A local network with nodes on it, ready for rounds.
#[derive(Debug)]
pub struct LocalFleet {
    /// The background DHT peers (keep them alive as long as the fleet is used).
    pub peers: Vec<DhtHandle>,
    /// The node actors, in member order.
    pub nodes: Vec<Addr<NodeActor>>,
    /// The nodes as fleet members (ids 1..).
    pub members: Vec<FleetMember>,
    /// The nodes' DHT peers.
    pub node_peers: Vec<DhtHandle>,
}

/// Starts `peers` DHT server peers and `nodes` nodes (DHT clients) on `transport`, wired as a
/// converged network. Must run inside an actix `System`; swarms run on `runtime`.
pub async fn spawn_fleet(
    peers: usize,
    nodes: usize,
    transport: TransportKind,
    runtime: &Handle,
) -> Result<LocalFleet, DhtError> {
    spawn_fleet_with(peers, nodes, transport, runtime, |config| {
        config.set_mode(DhtMode::Client);
    })
    .await
}

/// [`spawn_fleet`] with the nodes' configuration (a copy of the background peers') changed by
/// `configure`: another client, server mode.
pub async fn spawn_fleet_with(
    peers: usize,
    nodes: usize,
    transport: TransportKind,
    runtime: &Handle,
    configure: impl FnOnce(&mut DhtConfig),
) -> Result<LocalFleet, DhtError> {
    let mut template = DhtConfig::default();
    template.set_periodic_bootstrap(None).set_mode(DhtMode::Server);
    let peer_config = local_network::local_peer_config(&template, transport);
    let background = local_network::spawn_peers(peers, &peer_config, runtime, |_| {}).await?;
    let mut node_config = peer_config.clone();
    configure(&mut node_config);
    let node_peers = local_network::spawn_peers(nodes, &node_config, runtime, |_| {}).await?;

    let local: Vec<LocalPeer> = LocalPeer::all_in(DhtMode::Server, &background)
        .chain(LocalPeer::all_in(node_config.mode, &node_peers))
        .collect();
    local_network::wire(&local, StartMode::Converged, template.k.get()).await?;
    local_network::join(&node_peers, Duration::from_secs(30)).await?;

    let nodes: Vec<Addr<NodeActor>> = node_peers
        .iter()
        .map(|h| NodeActor::new(h.clone()).start())
        .collect();
    let members = nodes
        .iter()
        .zip(&node_peers)
        .enumerate()
        .map(|(i, (addr, peer))| {
            FleetMember::new(
                NodeId(i as i64 + 1),
                peer.peer_id().to_string(),
                NodeRecipients::of(addr),
            )
        })
        .collect();
    Ok(LocalFleet {
        peers: background,
        nodes,
        members,
        node_peers,
    })
}

/// A measurement row with placeholder identity fields, for tests of what consumes rows.
pub fn sample_measurement(operation: crate::Operation, duration: Duration) -> crate::Measurement {
    crate::Measurement {
        id: uuid::Uuid::new_v4(),
        round: crate::RoundId::new(),
        fleet: "default".into(),
        node: NodeId(1),
        operation,
        cid: crate::ContentId::for_content(b"sample").to_string(),
        step: operation.step().into(),
        probe: 0,
        started_at: chrono::Utc::now(),
        duration,
        error: None,
        routing_table_size: 20,
        trace_id: None,
        record_peers: None,
        connections: None,
        pubsub: None,
        reprovide: None,
    }
}

/// A stand-in node that answers "not ready" to its first `unready_checks` readiness checks and
/// "ready" afterwards (for tests of what waits on readiness).
#[derive(Debug, Default)]
pub struct ReadinessStub {
    /// Checks answered so far.
    pub checks: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// How many checks answer "not ready".
    pub unready_checks: u32,
}

impl Actor for ReadinessStub {
    type Context = Context<Self>;
}

impl Handler<crate::CheckReadiness> for ReadinessStub {
    type Result = Result<crate::Readiness, crate::NodeError>;

    fn handle(&mut self, _: crate::CheckReadiness, _: &mut Context<Self>) -> Self::Result {
        let seen = self.checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(crate::Readiness {
            ready: seen >= self.unready_checks,
            routing_table_size: u64::from(seen),
            peer_id: None,
        })
    }
}

/// A node registration with placeholder values (ports above 32767, as parsec's SMALLINT lacks).
pub fn sample_registration() -> crate::NodeRegistration {
    crate::NodeRegistration {
        cpu: 2,
        memory_mb: 1024,
        peer_id: "12D3KooWsample".into(),
        region: "local".into(),
        cmd: "parsec server dht".into(),
        fleet: "default".into(),
        dependencies: [("libp2p".to_string(), "0.57".to_string())].into(),
        ip_address: [127, 0, 0, 1].into(),
        server_port: 40_000,
        peer_port: 50_000,
    }
}

/// Registers [`sample_registration`] and a scheduler of fleet `default` in `registry`: the rows
/// a measurement needs before it can be stored.
pub async fn register_sample(
    registry: &impl crate::Registry,
) -> Result<(NodeId, crate::SchedulerId), crate::RegistryError> {
    let node = registry.register_node(sample_registration()).await?;
    let scheduler = registry
        .register_scheduler(crate::SchedulerRegistration {
            fleets: vec!["default".into()],
            dependencies: Default::default(),
        })
        .await?;
    Ok((node, scheduler))
}
