//! Where a fleet's members come from: a fixed list (in-process fleets, the testnet), or the
//! registry's live nodes of the measured fleets, found again before every round.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::future::BoxFuture;

use actix::Recipient;

use super::FleetMember;
use crate::{
    node::{pubsub::PubsubRecipients, reprovide::ReprovideContent},
    registry::{DiscoveredNode, NodeQuery, Registry, RegistryError},
    NodeId, NodeRecipients, RoundError,
};

/// Makes the recipients of a discovered node (for remote servers: an HTTP client actor).
pub type NodeConnector = Arc<dyn Fn(&DiscoveredNode) -> MemberEndpoints + Send + Sync>;

/// Where a member's requests go: its node messages, and its pubsub messages when it can take
/// them.
#[derive(Clone, Debug)]
pub struct MemberEndpoints {
    pub node: NodeRecipients,
    pub pubsub: Option<PubsubRecipients>,
    /// Where its reprovide rounds go (`None`: it does not take them).
    pub reprovide: Option<Recipient<ReprovideContent>>,
}

impl From<NodeRecipients> for MemberEndpoints {
    fn from(node: NodeRecipients) -> Self {
        Self {
            node,
            pubsub: None,
            reprovide: None,
        }
    }
}

/// How members are discovered.
#[derive(Clone)]
pub struct Discovery {
    /// Where nodes register.
    pub registry: Arc<dyn Registry>,
    /// The fleets measured.
    pub fleets: Vec<String>,
    /// Nodes whose last heartbeat is older are left out (parsec: any heartbeat at all).
    pub max_heartbeat_age: Duration,
    /// Makes a discovered node reachable.
    pub connect: NodeConnector,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("fleets", &self.fleets)
            .field("max_heartbeat_age", &self.max_heartbeat_age)
            .finish_non_exhaustive()
    }
}

/// What a discovery query returned (`None`: membership is fixed).
pub(super) type Refresh = Option<Result<Vec<DiscoveredNode>, RegistryError>>;

/// A fleet's members.
#[derive(Debug)]
pub enum Membership {
    /// These members, always.
    Fixed(Vec<FleetMember>),
    /// The registry's nodes, found before every round.
    Discovered(DiscoveredMembers),
}

/// The state of discovery: the members found last, each with the row it was made from.
#[derive(Debug)]
pub struct DiscoveredMembers {
    discovery: Discovery,
    known: Vec<(DiscoveredNode, FleetMember)>,
    last_success: Option<Instant>,
}

impl Membership {
    /// Members found in the registry before every round.
    pub fn discovered(discovery: Discovery) -> Self {
        Membership::Discovered(DiscoveredMembers {
            discovery,
            known: Vec::new(),
            last_success: None,
        })
    }

    /// The members as of the last round.
    pub(super) fn current(&self) -> Vec<FleetMember> {
        match self {
            Membership::Fixed(members) => members.clone(),
            Membership::Discovered(found) => found.known.iter().map(|(_, m)| m.clone()).collect(),
        }
    }

    /// Queries the registry (nothing for a fixed list).
    pub(super) fn refresh(&self) -> BoxFuture<'static, Refresh> {
        match self {
            Membership::Fixed(_) => Box::pin(futures::future::ready(None)),
            Membership::Discovered(found) => {
                let discovery = &found.discovery;
                let since = Utc::now()
                    - chrono::Duration::from_std(discovery.max_heartbeat_age)
                        .unwrap_or(chrono::Duration::MAX);
                let query = discovery.registry.discover_nodes(NodeQuery {
                    fleets: discovery.fleets.clone(),
                    heartbeat_since: since,
                });
                Box::pin(async move { Some(query.await) })
            }
        }
    }

    /// Takes in what [`refresh`](Self::refresh) found and returns the round's members. When the
    /// registry fails, the members found last are used while their heartbeats could still be
    /// fresh, so a database outage does not stop measurements.
    pub(super) fn apply(&mut self, refresh: Refresh) -> Result<Vec<FleetMember>, RoundError> {
        let Membership::Discovered(found) = self else {
            return Ok(self.current());
        };
        match refresh {
            Some(Ok(nodes)) => {
                found.update(nodes);
                Ok(self.current())
            }
            Some(Err(e)) => match found.last_success {
                Some(at) if at.elapsed() < found.discovery.max_heartbeat_age => {
                    tracing::warn!(error = %e, members = found.known.len(), age = ?at.elapsed(), "discovery failed; using the members found last");
                    Ok(self.current())
                }
                _ => Err(RoundError::Discovery(e.to_string())),
            },
            None => Ok(self.current()),
        }
    }

    /// Whether the members come from the registry (and failing ones are marked offline there).
    pub(super) fn is_discovered(&self) -> bool {
        matches!(self, Membership::Discovered(_))
    }

    /// Members that failed their readiness check: when discovered, they are marked offline in
    /// the registry (an UPDATE of `offline_since` alone) and leave the membership.
    pub(super) fn set_unreachable(&mut self, not_ready: &[(NodeId, String)]) {
        match self {
            Membership::Fixed(_) => {
                for (node, reason) in not_ready {
                    tracing::debug!(%node, %reason, "skipping a member that is not ready");
                }
            }
            Membership::Discovered(found) => {
                for (node, reason) in not_ready {
                    tracing::warn!(%node, %reason, "marking the node offline");
                    let marking = found.discovery.registry.mark_offline(*node, Utc::now());
                    let node = *node;
                    actix::spawn(async move {
                        if let Err(e) = marking.await {
                            tracing::warn!(%node, error = %e, "could not mark the node offline; it is checked again next round");
                        }
                    });
                }
                found
                    .known
                    .retain(|(row, _)| !not_ready.iter().any(|(id, _)| *id == row.id));
            }
        }
    }
}

impl DiscoveredMembers {
    /// Replaces the members by `nodes`, keeping the clients of nodes that did not change.
    fn update(&mut self, nodes: Vec<DiscoveredNode>) {
        let mut previous = std::mem::take(&mut self.known);
        for node in nodes {
            let member = match previous.iter().position(|(row, _)| *row == node) {
                Some(i) => previous.swap_remove(i).1,
                None => {
                    tracing::info!(node = %node.id, fleet = %node.fleet, address = %format!("{}:{}", node.ip_address, node.server_port), peer_id = %node.peer_id, "node joined");
                    let endpoints = (self.discovery.connect)(&node);
                    let member = FleetMember::new(
                        node.id,
                        format!("{}:{}", node.ip_address, node.server_port),
                        endpoints.node,
                    )
                    .in_fleet(node.fleet.clone())
                    .with_peer_id(node.peer_id.clone());
                    FleetMember {
                        pubsub: endpoints.pubsub,
                        reprovide: endpoints.reprovide,
                        ..member
                    }
                }
            };
            self.known.push((node, member));
        }
        for (row, _) in previous {
            tracing::info!(node = %row.id, "node left (offline or no recent heartbeat)");
        }
        self.last_success = Some(Instant::now());
    }
}
