//! The simulator behind actor mailboxes: a [`SimulatorActor`] owns the [`Simulation`], and each
//! simulated parsec server is a [`SimServer`] that handles the node messages (provide, retrieve,
//! readiness), so a [`FleetSupervisor`](parsec_actors::FleetSupervisor) runs rounds over
//! simulated servers exactly as over real ones. Durations in the reports are virtual.

use std::time::Duration;

use actix::prelude::*;
use parsec_actors::{
    CheckReadiness, ContentId, NodeError, Operation, OperationReport, ProvideContent, Readiness,
    RetrieveContent, StepMeasurement,
};
use parsec_kad::Key;

use super::{
    churn::{Churn, ChurnStep},
    network::NodeIndex,
    simulation::{OperationKind, Outcome, Simulation},
};

/// Owns the simulation; operations run one at a time, in mailbox order, on a thread of their
/// own: churn over a million routing tables must not stall the actix thread that runs the
/// rounds and the recorder.
#[derive(Debug)]
pub struct SimulatorActor {
    simulation: Simulation,
    churn: Churn,
    /// Nodes that never churn (the simulated servers).
    servers: Vec<NodeIndex>,
    /// Every operation's outcome, in order, until taken.
    outcomes: Vec<(NodeIndex, Outcome)>,
    /// Nodes that left and joined through churn so far.
    churned: (usize, usize),
}

impl SimulatorActor {
    /// An actor around `simulation`; `servers` never leave through churn.
    pub fn new(simulation: Simulation, churn: Churn, servers: Vec<NodeIndex>) -> Self {
        Self {
            simulation,
            churn,
            servers,
            outcomes: Vec::new(),
            churned: (0, 0),
        }
    }

    /// Starts the actor on its own thread.
    pub fn start_on_thread(self) -> Addr<Self> {
        // The arbiter's factory may be called again after a panic; the simulation cannot be
        // rebuilt, so a second call finds nothing and stops that thread.
        let once = std::sync::Mutex::new(Some(self));
        SyncArbiter::start(1, move || {
            once.lock()
                .ok()
                .and_then(|mut actor| actor.take())
                .expect("the simulator thread is started once")
        })
    }
}

impl Actor for SimulatorActor {
    type Context = SyncContext<Self>;
}

/// Runs one operation from `node`.
#[derive(Debug, Message)]
#[rtype(result = "Outcome")]
pub struct Operate {
    /// The node that provides or retrieves.
    pub node: NodeIndex,
    /// Provide or retrieve.
    pub kind: OperationKind,
    /// The content's key.
    pub content: Key,
}

/// Lets virtual time pass (churn).
#[derive(Debug, Message)]
#[rtype(result = "ChurnStep")]
pub struct Advance(pub Duration);

/// Nodes that left and joined through churn so far.
#[derive(Debug, Message)]
#[rtype(result = "(usize, usize)")]
pub struct Churned;

/// A node's routing table size.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct TableSize(pub NodeIndex);

/// Takes the outcomes recorded so far (node, outcome), in the order the operations ran.
#[derive(Debug, Message)]
#[rtype(result = "Vec<(NodeIndex, Outcome)>")]
pub struct TakeOutcomes;

impl Handler<Operate> for SimulatorActor {
    type Result = MessageResult<Operate>;

    fn handle(&mut self, msg: Operate, _: &mut SyncContext<Self>) -> Self::Result {
        let outcome = match msg.kind {
            OperationKind::Provide => self.simulation.provide(msg.node, msg.content),
            OperationKind::Retrieve => self.simulation.retrieve(msg.node, msg.content),
            OperationKind::Lookup => {
                let outcome = self.simulation.lookup(msg.node, msg.content);
                self.simulation.forget_dead(msg.node, &outcome.dead);
                outcome
            }
        };
        self.outcomes.push((msg.node, outcome.clone()));
        MessageResult(outcome)
    }
}

impl Handler<Advance> for SimulatorActor {
    type Result = MessageResult<Advance>;

    fn handle(&mut self, msg: Advance, _: &mut SyncContext<Self>) -> Self::Result {
        let step = self
            .churn
            .advance(self.simulation.network_mut(), msg.0, &self.servers);
        self.churned.0 += step.left.len();
        self.churned.1 += step.joined.len();
        self.simulation.advance_clock(msg.0);
        MessageResult(step)
    }
}

impl Handler<Churned> for SimulatorActor {
    type Result = MessageResult<Churned>;

    fn handle(&mut self, _: Churned, _: &mut SyncContext<Self>) -> Self::Result {
        MessageResult(self.churned)
    }
}

impl Handler<TableSize> for SimulatorActor {
    type Result = usize;

    fn handle(&mut self, msg: TableSize, _: &mut SyncContext<Self>) -> usize {
        self.simulation.routing_table_size(msg.0)
    }
}

impl Handler<TakeOutcomes> for SimulatorActor {
    type Result = MessageResult<TakeOutcomes>;

    fn handle(&mut self, _: TakeOutcomes, _: &mut SyncContext<Self>) -> Self::Result {
        MessageResult(std::mem::take(&mut self.outcomes))
    }
}

/// One simulated parsec server: a node of the simulated network behind the node messages.
#[derive(Debug)]
pub struct SimServer {
    node: NodeIndex,
    simulator: Addr<SimulatorActor>,
    /// What the latency model assumes of connections, reported with every operation.
    connections: parsec_actors::Connections,
}

impl SimServer {
    /// The server of simulated node `node`, in a model whose connections are `connections`.
    pub fn new(
        node: NodeIndex,
        simulator: Addr<SimulatorActor>,
        connections: parsec_actors::Connections,
    ) -> Self {
        Self {
            node,
            simulator,
            connections,
        }
    }

    /// The peer id a simulated server reports (no libp2p key behind it).
    pub fn peer_id(node: NodeIndex) -> String {
        format!("sim-{node}")
    }
}

impl Actor for SimServer {
    type Context = Context<Self>;
}

/// The key of a CID in the simulated key space: SHA-256 of the record key, as libp2p's DHT.
pub fn content_key(cid: &ContentId) -> Key {
    Key::hash_of(&cid.record_key().to_vec())
}

fn unavailable(e: MailboxError) -> NodeError {
    NodeError::Unavailable(format!("simulator stopped: {e}"))
}

impl SimServer {
    fn operate(
        &self,
        cid: ContentId,
        operation: Operation,
    ) -> ResponseFuture<Result<OperationReport, NodeError>> {
        let simulator = self.simulator.clone();
        let connections = self.connections;
        let node = self.node;
        let kind = match operation {
            Operation::Provide => OperationKind::Provide,
            Operation::Retrieval => OperationKind::Retrieve,
            Operation::Publish | Operation::Delivery | Operation::Reprovide => {
                let refused = NodeError::InvalidRequest(format!(
                    "a simulated server takes provides and retrievals, not a {operation}"
                ));
                return Box::pin(futures::future::ready(Err(refused)));
            }
        };
        Box::pin(async move {
            let outcome = simulator
                .send(Operate {
                    node,
                    kind,
                    content: content_key(&cid),
                })
                .await
                .map_err(unavailable)?;
            let routing_table_size = simulator.send(TableSize(node)).await.map_err(unavailable)?;
            Ok(OperationReport {
                cid: cid.to_string(),
                measurements: vec![StepMeasurement {
                    step: operation.step().to_owned(),
                    duration: outcome.duration,
                    error: outcome.error,
                }],
                routing_table_size: routing_table_size as u64,
                trace_id: None,
                record_peers: (kind == OperationKind::Provide)
                    .then(|| u32::try_from(outcome.peers.len()).unwrap_or(u32::MAX)),
                connections: Some(connections),
            })
        })
    }
}

impl Handler<ProvideContent> for SimServer {
    type Result = ResponseFuture<Result<OperationReport, NodeError>>;

    fn handle(&mut self, msg: ProvideContent, _: &mut Context<Self>) -> Self::Result {
        self.operate(ContentId::for_content(&msg.content), Operation::Provide)
    }
}

impl Handler<RetrieveContent> for SimServer {
    type Result = ResponseFuture<Result<OperationReport, NodeError>>;

    fn handle(&mut self, msg: RetrieveContent, _: &mut Context<Self>) -> Self::Result {
        self.operate(msg.cid, Operation::Retrieval)
    }
}

impl Handler<CheckReadiness> for SimServer {
    type Result = ResponseFuture<Result<Readiness, NodeError>>;

    fn handle(&mut self, _: CheckReadiness, _: &mut Context<Self>) -> Self::Result {
        let simulator = self.simulator.clone();
        let node = self.node;
        Box::pin(async move {
            let size = simulator.send(TableSize(node)).await.map_err(unavailable)?;
            Ok(Readiness {
                ready: size > 0,
                routing_table_size: size as u64,
                peer_id: Some(SimServer::peer_id(node)),
            })
        })
    }
}
