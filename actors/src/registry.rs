//! Who takes part in measurements: the [`Registry`] trait through which servers register,
//! heartbeat and go offline, and schedulers register, plus [`MemoryRegistry`] for embedding and
//! tests. The `parsec` crate implements it for its databases (`nodes_ecs`, `schedulers_ecs`).

use std::{
    collections::BTreeMap,
    fmt,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::NodeId;

/// Identifies a scheduler (the `schedulers_ecs.id` once stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchedulerId(pub i64);

impl fmt::Display for SchedulerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a server stores about itself at start (a `nodes_ecs` row).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRegistration {
    /// Available CPUs (ECS: the task's CPU limit).
    pub cpu: i32,
    /// Available memory in MB.
    pub memory_mb: i32,
    /// The libp2p peer id.
    pub peer_id: String,
    /// Where the server runs (`AWS_REGION`).
    pub region: String,
    /// The command line the server was started with.
    pub cmd: String,
    /// The fleet the server belongs to.
    pub fleet: String,
    /// Versions of what the server is built from (a JSON object: crate → version).
    pub dependencies: BTreeMap<String, String>,
    /// The address schedulers use to reach the HTTP API.
    pub ip_address: IpAddr,
    /// Port of the HTTP API.
    pub server_port: u16,
    /// Port of the libp2p peer.
    pub peer_port: u16,
}

/// What a scheduler stores about itself at start (a `schedulers_ecs` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerRegistration {
    /// The fleets it measures.
    pub fleets: Vec<String>,
    /// Versions of what the scheduler is built from.
    pub dependencies: BTreeMap<String, String>,
}

/// Which nodes a scheduler measures: registered in one of `fleets`, not marked offline, and
/// heartbeating more recently than `heartbeat_since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeQuery {
    /// Fleets to include.
    pub fleets: Vec<String>,
    /// Nodes whose last heartbeat is older than this (or missing) are left out.
    pub heartbeat_since: DateTime<Utc>,
}

/// A node as discovery finds it: enough to reach it and to check it is still the same node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredNode {
    /// Its id.
    pub id: NodeId,
    /// Its fleet.
    pub fleet: String,
    /// The libp2p peer id it registered (a process that answers with another is not this node).
    pub peer_id: String,
    /// Address of its HTTP API.
    pub ip_address: IpAddr,
    /// Port of its HTTP API.
    pub server_port: u16,
}

/// Why the registry could not store or read something.
#[derive(Debug, Clone, thiserror::Error)]
#[error("registry failed: {0}")]
pub struct RegistryError(pub String);

/// Stores servers and schedulers. Every call is one statement; callers decide how to retry.
pub trait Registry: std::fmt::Debug + Send + Sync + 'static {
    /// Inserts a node and returns its id.
    fn register_node(&self, node: NodeRegistration) -> BoxFuture<'static, Result<NodeId, RegistryError>>;

    /// Sets the node's `last_heartbeat` to `at`, and clears an `offline_since` older than `at`: a
    /// node that a scheduler marked offline after a failed check comes back once its own
    /// heartbeat (sent only while it is ready) proves it alive. A node's own shutdown marks it
    /// offline after its last heartbeat started, so that mark stays.
    fn heartbeat(&self, node: NodeId, at: DateTime<Utc>) -> BoxFuture<'static, Result<(), RegistryError>>;

    /// Sets the node's `offline_since` to `since` (graceful shutdown).
    fn mark_offline(
        &self,
        node: NodeId,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<(), RegistryError>>;

    /// Inserts a scheduler and returns its id.
    fn register_scheduler(
        &self,
        scheduler: SchedulerRegistration,
    ) -> BoxFuture<'static, Result<SchedulerId, RegistryError>>;

    /// The nodes `query` selects, in id order (so a scheduler's rotation is stable; parsec's
    /// query has no ORDER BY).
    fn discover_nodes(
        &self,
        query: NodeQuery,
    ) -> BoxFuture<'static, Result<Vec<DiscoveredNode>, RegistryError>>;
}

/// A registry that reads through to another and writes nothing: a dry run discovers the real
/// fleet but registers no scheduler and marks no node offline.
#[derive(Clone, Debug)]
pub struct ReadOnlyRegistry(pub Arc<dyn Registry>);

impl Registry for ReadOnlyRegistry {
    fn register_node(&self, _: NodeRegistration) -> BoxFuture<'static, Result<NodeId, RegistryError>> {
        Box::pin(futures::future::ready(Ok(NodeId(0))))
    }

    fn heartbeat(&self, _: NodeId, _: DateTime<Utc>) -> BoxFuture<'static, Result<(), RegistryError>> {
        Box::pin(futures::future::ready(Ok(())))
    }

    fn mark_offline(&self, node: NodeId, _: DateTime<Utc>) -> BoxFuture<'static, Result<(), RegistryError>> {
        tracing::info!(%node, "dry run: not marking the node offline");
        Box::pin(futures::future::ready(Ok(())))
    }

    fn register_scheduler(
        &self,
        _: SchedulerRegistration,
    ) -> BoxFuture<'static, Result<SchedulerId, RegistryError>> {
        Box::pin(futures::future::ready(Ok(SchedulerId(0))))
    }

    fn discover_nodes(
        &self,
        query: NodeQuery,
    ) -> BoxFuture<'static, Result<Vec<DiscoveredNode>, RegistryError>> {
        self.0.discover_nodes(query)
    }
}

/// A node as [`MemoryRegistry`] holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredNode {
    /// Its id.
    pub id: NodeId,
    /// What it registered.
    pub registration: NodeRegistration,
    /// Its last heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Since when it is offline.
    pub offline_since: Option<DateTime<Utc>>,
    /// When it registered.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct MemoryRegistryState {
    nodes: Vec<RegisteredNode>,
    schedulers: Vec<SchedulerRegistration>,
}

/// Keeps the registry in memory; clones share it. Ids count from 1, as the databases' do.
#[derive(Clone, Debug, Default)]
pub struct MemoryRegistry {
    state: Arc<Mutex<MemoryRegistryState>>,
}

impl MemoryRegistry {
    /// A copy of every registered node.
    pub fn nodes(&self) -> Vec<RegisteredNode> {
        self.lock().nodes.clone()
    }

    /// A copy of every registered scheduler, in id order.
    pub fn schedulers(&self) -> Vec<SchedulerRegistration> {
        self.lock().schedulers.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryRegistryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_node(
        &self,
        node: NodeId,
        update: impl FnOnce(&mut RegisteredNode),
    ) -> BoxFuture<'static, Result<(), RegistryError>> {
        let mut state = self.lock();
        let result = match state.nodes.iter_mut().find(|n| n.id == node) {
            Some(found) => {
                update(found);
                Ok(())
            }
            None => Err(RegistryError(format!("no node with id {node}"))),
        };
        Box::pin(futures::future::ready(result))
    }
}

impl Registry for MemoryRegistry {
    fn register_node(&self, node: NodeRegistration) -> BoxFuture<'static, Result<NodeId, RegistryError>> {
        let mut state = self.lock();
        let id = NodeId(state.nodes.len() as i64 + 1);
        state.nodes.push(RegisteredNode {
            id,
            registration: node,
            last_heartbeat: None,
            offline_since: None,
            created_at: Utc::now(),
        });
        Box::pin(futures::future::ready(Ok(id)))
    }

    fn heartbeat(&self, node: NodeId, at: DateTime<Utc>) -> BoxFuture<'static, Result<(), RegistryError>> {
        self.update_node(node, |n| {
            n.last_heartbeat = Some(at);
            if n.offline_since.is_some_and(|since| since < at) {
                n.offline_since = None;
            }
        })
    }

    fn mark_offline(
        &self,
        node: NodeId,
        since: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<(), RegistryError>> {
        self.update_node(node, |n| n.offline_since = Some(since))
    }

    fn register_scheduler(
        &self,
        scheduler: SchedulerRegistration,
    ) -> BoxFuture<'static, Result<SchedulerId, RegistryError>> {
        let mut state = self.lock();
        state.schedulers.push(scheduler);
        let id = SchedulerId(state.schedulers.len() as i64);
        Box::pin(futures::future::ready(Ok(id)))
    }

    fn discover_nodes(
        &self,
        query: NodeQuery,
    ) -> BoxFuture<'static, Result<Vec<DiscoveredNode>, RegistryError>> {
        let found = self
            .lock()
            .nodes
            .iter()
            .filter(|n| query.fleets.contains(&n.registration.fleet))
            .filter(|n| n.offline_since.is_none())
            .filter(|n| n.last_heartbeat.is_some_and(|at| at > query.heartbeat_since))
            .map(|n| DiscoveredNode {
                id: n.id,
                fleet: n.registration.fleet.clone(),
                peer_id: n.registration.peer_id.clone(),
                ip_address: n.registration.ip_address,
                server_port: n.registration.server_port,
            })
            .collect();
        // Ids are assigned in insertion order, so the list is already in id order.
        Box::pin(futures::future::ready(Ok(found)))
    }
}
