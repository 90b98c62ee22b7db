//! `parsec simulate`'s job: build a simulated network, register its simulated servers, and let a
//! [`FleetSupervisor`] run parsec rounds over them, storing rows through the
//! [`MeasurementRecorder`] exactly as the testnet and the scheduler do.

use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::{bail, Context as _};
use parsec_actors::{
    FleetMember, FleetSupervisor, Measurement, NodeId, NodeRecipients, RoundConfig, RunRound, SchedulerId,
};

use super::{
    actors::{Advance, SimServer, SimulatorActor, TakeOutcomes},
    churn::{Churn, ChurnConfig},
    network::NodeIndex,
    simulation::Outcome,
    SimConfig, Simulation,
};
use crate::{db::DatabaseTarget, host, progress::bar, recording::JobStorage, report};

/// What a simulation run does.
#[derive(Clone, Debug)]
pub struct SimRunConfig {
    /// The simulated network.
    pub sim: SimConfig,
    /// Simulated parsec servers (one provides per round, the others retrieve).
    pub servers: usize,
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

/// What a simulation run measured.
#[derive(Debug)]
pub struct SimRunReport {
    /// Every row recorded (durations are virtual).
    pub rows: Vec<Measurement>,
    /// Hops, messages and failures of every operation, in the order they ran.
    pub outcomes: Vec<(NodeIndex, Outcome)>,
    /// The simulated servers: node index, region name, registered id.
    pub servers: Vec<(NodeIndex, String, NodeId)>,
    /// Rounds that ran.
    pub rounds_run: usize,
    /// Rounds that could not run, with the reason.
    pub round_errors: Vec<String>,
    /// Nodes that left and joined through churn.
    pub churned: (usize, usize),
    /// Wall time to build the network.
    pub build: Duration,
    /// The whole run, wall time.
    pub wall: Duration,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
    /// Where the rows are stored and under which scheduler id.
    pub stored: Option<(DatabaseTarget, SchedulerId)>,
    /// Why some rows could not be stored.
    pub storage_error: Option<String>,
}

/// Picks `count` servers spread over the regions in turn (the first nodes of each region), and
/// makes them reachable: parsec's servers are public.
fn pick_servers(simulation: &mut Simulation, count: usize) -> Vec<NodeIndex> {
    let network = simulation.network();
    let regions = network.region_model().len();
    let mut servers = Vec::with_capacity(count);
    let mut next_of_region = vec![0 as NodeIndex; regions];
    for i in 0..count {
        let wanted = (i % regions) as u8;
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

/// Runs a simulation inside the current actix `System`.
pub async fn run(config: SimRunConfig) -> anyhow::Result<SimRunReport> {
    let started = Instant::now();
    if config.servers < 2 {
        bail!("--servers must be at least 2: one provides, the others retrieve");
    }
    if config.servers > config.sim.nodes {
        bail!(
            "--servers ({}) cannot exceed --nodes ({})",
            config.servers,
            config.sim.nodes
        );
    }
    let churn = Churn::new(config.churn).map_err(anyhow::Error::msg)?;
    let storage = JobStorage::open(config.database.as_ref()).await?;
    let registry = storage.registry();

    let building = bar(config.progress, config.sim.nodes as u64, "building network");
    let sim_config = config.sim.clone();
    let building_bar = building.clone();
    let mut simulation = tokio::task::spawn_blocking(move || {
        Simulation::build(&sim_config, |done| building_bar.set_position(done as u64))
    })
    .await
    .context("building the network")?
    .map_err(anyhow::Error::msg)?;
    building.finish();
    let build = started.elapsed();

    let servers = pick_servers(&mut simulation, config.servers);
    let region_names = simulation.network().region_model().names.clone();
    let server_regions: Vec<String> = servers
        .iter()
        .map(|&n| region_names[usize::from(simulation.network().region(n))].clone())
        .collect();
    let simulator = SimulatorActor::new(simulation, churn, servers.clone()).start();

    let resources = host::detect_resources(std::net::Ipv4Addr::LOCALHOST.into())
        .await
        .map_err(anyhow::Error::msg)?;
    let mut members = Vec::new();
    let mut registered = Vec::new();
    for (&node, region) in servers.iter().zip(&server_regions) {
        let mut registration = host::registration(
            resources.clone(),
            SimServer::peer_id(node),
            config.round.fleet.clone(),
            0,
            0,
        );
        registration.region = region.clone();
        let id = registry
            .register_node(registration)
            .await
            .context("registering a simulated server")?;
        let server = SimServer::new(node, simulator.clone()).start();
        members.push(FleetMember::new(
            id,
            format!("sim-{node}-{region}"),
            NodeRecipients::of(&server),
        ));
        registered.push((node, region.clone(), id));
    }

    let recording = storage.start_recording(&config.round.fleet).await?;
    let recorder = recording.recorder.clone();
    let supervisor =
        FleetSupervisor::new(members, recorder.clone().recipient(), config.round.clone()).start();

    let rounds_bar = bar(config.progress, config.rounds as u64, "rounds");
    let mut round_errors = Vec::new();
    let mut rounds_run = 0;
    let mut churned = (0, 0);
    for round in 0..config.rounds {
        if round > 0 {
            let step = simulator.send(Advance(config.round_interval)).await?;
            churned.0 += step.left.len();
            churned.1 += step.joined.len();
        }
        match supervisor.send(RunRound::new()).await? {
            Ok(_) => rounds_run += 1,
            Err(e) => {
                tracing::warn!(error = %e, "round failed");
                round_errors.push(e.to_string());
            }
        }
        rounds_bar.inc(1);
    }
    rounds_bar.finish();
    let recorded = recording.finish().await;
    for (_, _, id) in &registered {
        if let Err(e) = registry.mark_offline(*id, chrono::Utc::now()).await {
            tracing::warn!(node = %id, error = %e, "could not mark a simulated server offline");
        }
    }
    let outcomes = simulator.send(TakeOutcomes).await?;
    Ok(SimRunReport {
        rows: recorded.rows,
        outcomes,
        servers: registered,
        rounds_run,
        round_errors,
        churned,
        build,
        wall: started.elapsed(),
        peak_rss_bytes: report::peak_rss_bytes(),
        stored: recorded.stored,
        storage_error: recorded.storage_error,
    })
}
