//! `parsec simulate`'s job: build a simulated network and register its simulated servers; the
//! [round runner](crate::job) then runs parsec rounds over them and stores the rows exactly as
//! for the testnet and the scheduler. Between rounds, virtual time passes (churn).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use actix::prelude::*;
use anyhow::{bail, Context as _};
use parsec_actors::{FleetMember, Membership, NodeId, NodeRecipients, Registry, RoundConfig};

use super::{
    churn::{Churn, ChurnConfig},
    network::NodeIndex,
    servers::{Advance, Churned, SimServer, SimulatorActor, TakeOutcomes},
    simulation::Outcome,
    SimConfig, Simulation, Strategy,
};
use crate::{
    db::DatabaseTarget,
    host,
    job::{self, Fleet, Job, RunOptions, RunReport, SetUp, Shutdown},
    progress::bar,
};

/// What a simulation run does.
#[derive(Clone, Debug)]
pub struct SimRunConfig {
    /// The simulated network.
    pub sim: SimConfig,
    /// Simulated parsec servers per fleet (one provides per round, the others retrieve).
    pub servers: usize,
    /// The fleets: a name and the strategy its servers provide and retrieve with. Rounds span
    /// all of them: one server provides, the servers of every fleet retrieve.
    pub fleets: Vec<SimFleet>,
    /// Rounds to run.
    pub rounds: usize,
    /// Virtual time between rounds (churn happens in it).
    pub round_interval: Duration,
    /// Leave and join rates.
    pub churn: ChurnConfig,
    /// Fleet, probes, content seed.
    pub round: RoundConfig,
    /// Where servers register and rows go (`None`: memory only).
    pub database: Option<DatabaseTarget>,
    /// Draw progress bars.
    pub progress: bool,
}

/// A fleet of simulated servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFleet {
    /// The fleet's name in the database.
    pub name: String,
    /// How its servers provide and retrieve.
    pub strategy: Strategy,
}

impl SimFleet {
    /// A fleet named after its strategy.
    pub fn of(strategy: Strategy) -> Self {
        Self {
            name: strategy.name().to_owned(),
            strategy,
        }
    }
}

/// What a simulation run measured: the run's report (durations are virtual) and what only a
/// simulation can tell.
#[derive(Debug)]
pub struct SimRunReport {
    /// Rounds, rows, storage, wall time.
    pub run: RunReport,
    /// Hops, messages and failures of every operation, in the order they ran.
    pub outcomes: Vec<(NodeIndex, Outcome)>,
    /// The simulated servers: node index, region name, registered id.
    pub servers: Vec<(NodeIndex, String, NodeId)>,
    /// Each server's fleet.
    pub fleet_of: HashMap<NodeId, String>,
    /// Nodes that left and joined through churn.
    pub churned: (usize, usize),
    /// Wall time to build the network.
    pub build: Duration,
}

/// Picks `per_fleet` servers for each of `fleets` fleets, each fleet's spread over the regions in
/// turn from the first region (the first nodes of each region not yet taken), so fleets compared
/// side by side sit in the same regions; and makes them reachable: parsec's servers are public.
fn pick_servers(simulation: &mut Simulation, fleets: usize, per_fleet: usize) -> Vec<NodeIndex> {
    let count = fleets * per_fleet;
    let network = simulation.network();
    let regions = network.region_model().len();
    let mut servers = Vec::with_capacity(count);
    let mut next_of_region = vec![0 as NodeIndex; regions];
    for i in 0..count {
        let wanted = network.region_model().of_server(i, per_fleet);
        let start = next_of_region[usize::from(wanted)];
        let found = (start..network.len() as NodeIndex)
            .find(|&n| network.region(n) == wanted && !servers.contains(&n))
            .or_else(|| (0..network.len() as NodeIndex).find(|n| !servers.contains(n)));
        let Some(node) = found else { break };
        next_of_region[usize::from(wanted)] = node + 1;
        servers.push(node);
    }
    for &node in &servers {
        simulation.network_mut().set_reachable(node, true);
    }
    servers
}

/// The simulation as a job.
#[derive(Debug)]
struct SimJob<'a> {
    config: &'a SimRunConfig,
    simulator: Option<Addr<SimulatorActor>>,
    registry: Option<std::sync::Arc<dyn Registry>>,
    /// The simulated servers: node index, region name, registered id.
    registered: Vec<(NodeIndex, String, NodeId)>,
    fleet_of: HashMap<NodeId, String>,
    build: Duration,
}

impl SimRunConfig {
    /// Rejects a run that cannot measure anything, before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.servers < 2 {
            bail!("--servers must be at least 2: one provides, the others retrieve");
        }
        if self.fleets.is_empty() {
            bail!("at least one fleet must be simulated");
        }
        let total = self.servers * self.fleets.len();
        if total > self.sim.nodes {
            bail!(
                "{} servers ({} per fleet × {} fleets) cannot exceed --nodes ({})",
                total,
                self.servers,
                self.fleets.len(),
                self.sim.nodes
            );
        }
        let mut names: Vec<&str> = self.fleets.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            bail!("each fleet must have its own name");
        }
        if self.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        Churn::new(self.churn).map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

/// Runs a simulation on an actix `System` of its own; SIGINT/SIGTERM stop it early (`hint`, printed
/// at the first signal, says how to stop at once).
pub fn run_until_signalled(config: SimRunConfig, hint: &'static str) -> anyhow::Result<SimRunReport> {
    // The signal handler is spawned on the System, so it is made inside it.
    System::new().block_on(async move { run(config, Shutdown::on_signals(hint)).await })
}

/// Runs a simulation inside the current actix `System`.
pub async fn run(config: SimRunConfig, shutdown: Shutdown) -> anyhow::Result<SimRunReport> {
    config.check()?;
    let options = RunOptions::offline(config.database.clone(), config.rounds as u64, config.progress);
    let mut simulation = SimJob {
        config: &config,
        simulator: None,
        registry: None,
        registered: Vec::new(),
        fleet_of: HashMap::new(),
        build: Duration::ZERO,
    };
    let run = job::run(&mut simulation, options, shutdown).await?;
    let (outcomes, churned) = match &simulation.simulator {
        Some(simulator) => (
            simulator.send(TakeOutcomes).await?,
            simulator.send(Churned).await?,
        ),
        None => (Vec::new(), (0, 0)),
    };
    Ok(SimRunReport {
        run,
        outcomes,
        servers: simulation.registered,
        fleet_of: simulation.fleet_of,
        churned,
        build: simulation.build,
    })
}

impl Job for SimJob<'_> {
    async fn set_up(&mut self, setup: &SetUp) -> anyhow::Result<Fleet> {
        let config = self.config;
        let churn = Churn::new(config.churn).map_err(anyhow::Error::msg)?;
        let started = Instant::now();
        let building = bar(setup.progress, config.sim.nodes as u64, "building network");
        let sim_config = config.sim.clone();
        let building_bar = building.clone();
        let mut simulation = tokio::task::spawn_blocking(move || {
            Simulation::build(&sim_config, |done| building_bar.set_position(done as u64))
        })
        .await
        .context("building the network")?
        .map_err(anyhow::Error::msg)?;
        building.finish();
        self.build = started.elapsed();

        let servers = pick_servers(&mut simulation, config.fleets.len(), config.servers);
        // Blocks of `servers` in a row belong to one fleet: each block spans the same regions.
        let fleet_of_server: Vec<&SimFleet> = (0..servers.len())
            .map(|i| &config.fleets[(i / config.servers.max(1)).min(config.fleets.len() - 1)])
            .collect();
        let strategies: Vec<(NodeIndex, Strategy)> = servers
            .iter()
            .zip(&fleet_of_server)
            .map(|(&node, fleet)| (node, fleet.strategy))
            .collect();
        let simulation = set_strategies(simulation, strategies, setup.progress).await?;
        let region_names = simulation.network().region_model().names.clone();
        let server_regions: Vec<String> = servers
            .iter()
            .map(|&n| region_names[usize::from(simulation.network().region(n))].clone())
            .collect();
        let simulator = SimulatorActor::new(simulation, churn, servers.clone()).start_on_thread();
        self.simulator = Some(simulator.clone());

        let resources = host::detect_resources(std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .map_err(anyhow::Error::msg)?;
        self.registry = Some(setup.registry.clone());
        let mut members = Vec::new();
        for ((&node, region), fleet) in servers.iter().zip(&server_regions).zip(&fleet_of_server) {
            let mut registration = host::registration(
                resources.clone(),
                SimServer::peer_id(node),
                fleet.name.clone(),
                0,
                0,
            );
            registration.region = region.clone();
            let id = setup
                .registry
                .register_node(registration)
                .await
                .context("registering a simulated server")?;
            self.registered.push((node, region.clone(), id));
            self.fleet_of.insert(id, fleet.name.clone());
            let server = SimServer::new(node, simulator.clone(), config.sim.latency.connections()).start();
            members.push(
                FleetMember::new(
                    id,
                    format!("sim-{node}-{region}-{}", fleet.name),
                    NodeRecipients::of(&server),
                )
                .in_fleet(fleet.name.clone()),
            );
        }
        Ok(Fleet {
            membership: Membership::Fixed(members),
            round: config.round.clone(),
            fleets: config.fleets.iter().map(|f| f.name.clone()).collect(),
        })
    }

    async fn before_round(&mut self, index: u64) -> anyhow::Result<()> {
        if let (Some(simulator), true) = (&self.simulator, index > 0) {
            simulator.send(Advance(self.config.round_interval)).await?;
        }
        Ok(())
    }

    async fn tear_down(&mut self) {
        let Some(registry) = &self.registry else { return };
        for (_, _, id) in &self.registered {
            if let Err(e) = registry.mark_offline(*id, chrono::Utc::now()).await {
                tracing::warn!(node = %id, error = %e, "could not mark a simulated server offline");
            }
        }
    }
}

/// Gives each server its strategy (an optimistic one warms its estimate up with lookups), off the
/// async threads.
async fn set_strategies(
    mut simulation: Simulation,
    strategies: Vec<(NodeIndex, Strategy)>,
    progress: bool,
) -> anyhow::Result<Simulation> {
    let preparing = bar(progress, strategies.len() as u64, "preparing strategies");
    tokio::task::spawn_blocking(move || {
        for (node, strategy) in strategies {
            simulation.set_strategy(node, strategy);
            preparing.inc(1);
        }
        preparing.finish();
        simulation
    })
    .await
    .context("preparing the strategies")
}
