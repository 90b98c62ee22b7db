//! `parsec testnet --protocol gossipsub`: the pubsub benchmark of the seed on real peers in one
//! process. For every number of hosts, the peers connect at random, subscribe to the topics and
//! form their meshes; then, for every number of messages, each iteration has one peer publish
//! that many messages and every other peer report when each arrived and how many copies it got.
//! Per point: the median iteration's duration, delivery latency, duplicates and peak memory.

mod churn;
mod js;

use std::{fmt::Write as _, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use futures::{stream, StreamExt, TryStreamExt};
use parsec_actors::{
    local_network::{self, publish_and_collect, PublishPlan, PublishReport, TransportKind},
    pubsub::{clock::WallClock, DeliveryTally, PubsubConfig},
    recorder::Flush,
    DhtConfig, DhtHandle, Measurement, MeasurementRecorder, Membership, NodeId, Operation, PubsubDetails,
    RecordMeasurement, Registry, RoundConfig, RoundId, SchedulerId, NOT_DELIVERED, RUST_LIBP2P,
};
use rand::{rngs::StdRng, Rng as _, SeedableRng};
use tokio::runtime::Handle;

use crate::{
    db::DatabaseTarget,
    host::{self, Resources},
    job::{self, Fleet, Job, RoundKind, RunOptions, SetUp, Shutdown, StorageOptions},
    progress::bar,
    report::{
        charts::{Chart, ComparisonPanel},
        percentile,
    },
    telemetry::peak_rss_bytes,
};

/// How long peers may take to form their meshes before the run is abandoned.
const MESH_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections stay for the whole run, as between peers that keep talking: an idle connection
/// outside the mesh closing mid-run would change the topology being measured.
const PUBSUB_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

use churn::Churn;
pub use churn::ChurnRates;
use js::JsPeers;

/// The fleet pubsub testnet hosts register under.
pub const PUBSUB_FLEET: &str = "gossipsub";

/// Nodes registered at once.
const REGISTER_CONCURRENCY: usize = 32;

/// What a gossipsub testnet run does.
#[derive(Clone, Debug)]
pub struct PubsubTestnetConfig {
    /// Network sizes, one after the other.
    pub hosts: Vec<usize>,
    /// Messages per iteration, one after the other at every size.
    pub messages: Vec<usize>,
    /// Iterations per (hosts, messages) point; the median is reported.
    pub iterations: usize,
    /// Topics every peer subscribes to; messages go to them in turn.
    pub topics: usize,
    /// Size of each message.
    pub message_bytes: usize,
    /// Peers each one dials (besides the next one in a ring, which keeps the graph connected).
    pub degree: usize,
    /// How long after an iteration's first publish a message may still arrive.
    pub deadline: Duration,
    /// Gossipsub's parameters.
    pub pubsub: PubsubConfig,
    /// Hosts leaving and coming back between iterations.
    pub churn: ChurnRates,
    /// Transport between peers.
    pub transport: TransportKind,
    /// Seed of the topology and the payloads.
    pub seed: Option<u64>,
    /// Draw progress bars.
    pub progress: bool,
    /// Where hosts register and rows go (`None`: nowhere).
    pub database: Option<DatabaseTarget>,
    /// js-libp2p gossipsub peers beside the hosts at every size (receivers only).
    pub js_peers: usize,
    /// The js peer's script (`tests/js/gossip-peer.mjs`).
    pub js_script: std::path::PathBuf,
}

impl PubsubTestnetConfig {
    /// Rejects a run that cannot measure anything, before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(hosts) = self.hosts.iter().find(|&&h| h < 2) {
            anyhow::bail!("--sweep-hosts: every size must be at least 2 hosts (got {hosts}): one publishes, the others receive");
        }
        if self.messages.contains(&0) {
            anyhow::bail!("--messages: every count must be at least 1");
        }
        if self.iterations == 0 {
            anyhow::bail!("--iterations must be at least 1");
        }
        if self.topics == 0 {
            anyhow::bail!("--topics must be at least 1");
        }
        if self.degree == 0 {
            anyhow::bail!("--degree must be at least 1");
        }
        // The longest topic name leaves the least room.
        let longest_topic = self
            .topic_names()
            .into_iter()
            .max_by_key(String::len)
            .unwrap_or_default();
        parsec_actors::pubsub::check_message_bytes(
            self.message_bytes,
            &longest_topic,
            self.pubsub.validation,
        )
        .map_err(|e| anyhow::anyhow!("--message-bytes must be {e}"))?;
        self.churn.check().map_err(anyhow::Error::msg)?;
        if self.js_peers > 0 {
            if self.transport == TransportKind::Quic {
                anyhow::bail!(
                    "--js-peers needs --transport tcp or memory: the js-libp2p peers dial over TCP (with memory, \
                     the hosts also listen on TCP for them)"
                );
            }
            if !self.js_script.is_file() {
                anyhow::bail!(
                    "--js-peers needs {} (run from the repository, after `npm ci --prefix tests/js`)",
                    self.js_script.display()
                );
            }
        }
        self.pubsub
            .check()
            .map_err(|e| anyhow::anyhow!("gossipsub parameters: {e}"))
    }

    fn topic_names(&self) -> Vec<String> {
        (0..self.topics).map(|t| format!("parsec-pubsub-{t}")).collect()
    }
}

/// What one (hosts, messages) point measured over its iterations.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    pub hosts: usize,
    pub messages: usize,
    /// Each iteration's duration: first send to last first delivery (the deadline when lost).
    pub durations: Vec<Duration>,
    /// The deadline an iteration's messages had.
    pub deadline: Duration,
    /// What the rust hosts received.
    pub rust: DeliveryTally,
    /// Deliveries whose first copy came straight from the publisher.
    pub direct: usize,
    /// Churn: hosts that left their topics and the network, over the iterations.
    pub left_topics: usize,
    pub left_network: usize,
    /// Messages that reached a host while it was away (must stay 0).
    pub received_while_away: usize,
    /// What the js-libp2p peers received.
    pub js: DeliveryTally,
    /// Messages gossipsub refused to publish, with the first reason.
    pub refused: usize,
    pub refusal: Option<String>,
    /// Peak resident memory of the process while the point ran.
    pub peak_rss: Option<u64>,
}

impl SweepPoint {
    fn new(hosts: usize, messages: usize, deadline: Duration) -> Self {
        Self {
            hosts,
            messages,
            durations: Vec::new(),
            deadline,
            rust: DeliveryTally::default(),
            direct: 0,
            left_topics: 0,
            left_network: 0,
            received_while_away: 0,
            js: DeliveryTally::default(),
            refused: 0,
            refusal: None,
            peak_rss: None,
        }
    }

    fn add(&mut self, report: &PublishReport, publisher: &DhtHandle) {
        self.durations.push(report.duration);
        for message in &report.messages {
            if let Err(reason) = &message.published {
                self.refused += 1;
                self.refusal.get_or_insert_with(|| reason.clone());
            }
            for receipt in &message.receipts {
                self.rust
                    .count(receipt.latency.map(|latency| (latency, receipt.copies)));
                if receipt.latency.is_some() {
                    self.direct += usize::from(receipt.from == Some(publisher.peer_id()));
                }
            }
        }
    }

    /// The median iteration's duration.
    pub fn median_duration(&self) -> Duration {
        let mut sorted = self.durations.clone();
        sorted.sort_unstable();
        percentile(&sorted, 50.0).unwrap_or_default()
    }

    /// Messages fully disseminated per second: an iteration's messages over its median duration.
    /// 0 when the median iteration lost a message: then nothing was fully disseminated.
    pub fn messages_per_second(&self) -> f64 {
        let seconds = self.median_duration().as_secs_f64();
        let complete = self.durations.iter().filter(|d| **d < self.deadline).count();
        if seconds > 0.0 && complete * 2 > self.durations.len() {
            self.messages as f64 / seconds
        } else {
            0.0
        }
    }
}

/// What a run measured and where its rows went.
#[derive(Debug)]
pub struct PubsubRun {
    pub points: Vec<SweepPoint>,
    /// Where each network size's rows went.
    pub sizes: Vec<SizeStored>,
}

/// Where one network size's rows went: each size is a run of its own.
#[derive(Debug)]
pub struct SizeStored {
    pub hosts: usize,
    /// The database and the size's scheduler id, when the rows were stored.
    pub stored: Option<(DatabaseTarget, SchedulerId)>,
    /// Why some rows could not be stored.
    pub storage_error: Option<String>,
}

impl PubsubRun {
    /// Says where the rows went and what could not be stored, writes the charts and the CSV into
    /// `report_dir` if given, and beside them each size's stored rows' report (in `hosts-N/`
    /// when the sweep has several sizes); true if every message reached every subscribed peer,
    /// every row was stored and every report written.
    pub fn conclude(&self, report_dir: Option<&Path>) -> anyhow::Result<bool> {
        let mut complete = true;
        for size in &self.sizes {
            if let Some((target, scheduler)) = &size.stored {
                println!(
                    "stored in {target} as scheduler {scheduler} ({} hosts): tables pubsub_publishes_ecs and \
                     pubsub_deliveries_ecs (hosts in nodes_ecs, fleet {PUBSUB_FLEET})",
                    size.hosts
                );
            }
            if let Some(error) = &size.storage_error {
                eprintln!(
                    "error: {} hosts: some rows could not be stored: {error}",
                    size.hosts
                );
                complete = false;
            }
        }
        if let Some(dir) = report_dir {
            write(&self.points, dir)?;
            println!(
                "charts: {}, {}; table: {}",
                dir.join("pubsub-duration.svg").display(),
                dir.join("pubsub-memory.svg").display(),
                dir.join("pubsub.csv").display()
            );
            // Each size's stored rows' report: latency per implementation, CDFs, errors.
            for size in &self.sizes {
                let size_dir = match self.sizes.len() {
                    1 => dir.to_owned(),
                    _ => dir.join(format!("hosts-{}", size.hosts)),
                };
                let title = format!("parsec testnet: gossipsub, {} hosts", size.hosts);
                complete &=
                    crate::report::write_run_report(size.stored.as_ref(), title, Vec::new(), &size_dir);
            }
        }
        let undelivered = self
            .points
            .iter()
            .any(|p| p.rust.delivered < p.rust.expected || p.refused > 0);
        if undelivered {
            eprintln!(
                "error: some messages were not delivered to every subscribed peer (see the delivered column)"
            );
        }
        Ok(!undelivered && complete)
    }
}

/// The sweep as `parsec testnet --protocol gossipsub` runs it: its heading, a line per point, on
/// a DHT runtime of `threads` threads, then [`PubsubRun::conclude`]; true if every message
/// reached every subscribed peer and everything was stored and written.
pub fn run_sweep(
    config: &PubsubTestnetConfig,
    threads: usize,
    report_dir: Option<&Path>,
    interrupt_hint: &'static str,
) -> anyhow::Result<bool> {
    config.check()?;
    let runtime = local_network::dht_runtime(threads).context("starting the DHT runtime")?;
    println!(
        "parsec testnet --protocol gossipsub: hosts {:?} × messages {:?}, {} iterations each, {} topic(s), \
         {} B messages over {:?}; D {} (lo {}, hi {}), heartbeat {:?}, flood publish {}, validation {}\n",
        config.hosts,
        config.messages,
        config.iterations,
        config.topics,
        config.message_bytes,
        config.transport,
        config.pubsub.mesh_n,
        config.pubsub.mesh_n_low,
        config.pubsub.mesh_n_high,
        config.pubsub.heartbeat,
        config.pubsub.flood_publish,
        config.pubsub.validation,
    );
    println!("{}", header());
    let started = std::time::Instant::now();
    let handle = runtime.handle().clone();
    let run = actix::System::new().block_on(async {
        let shutdown = Shutdown::on_signals(interrupt_hint);
        run(config, &handle, shutdown).await
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let run = run?;
    println!("\nwall time {:.1}s", started.elapsed().as_secs_f64());
    run.conclude(report_dir)
}

/// Runs the sweep, its peers on `runtime`, one [`job::run`] per network size: every size is set
/// up, measured (a round per iteration of every point) and torn down before the next; each is
/// registered as a scheduler of its own. Must run inside an actix `System` (the recorder).
pub async fn run(
    config: &PubsubTestnetConfig,
    runtime: &Handle,
    shutdown: Shutdown,
) -> anyhow::Result<PubsubRun> {
    config.check()?;
    let resources = host::detect_resources(std::net::Ipv4Addr::LOCALHOST.into())
        .await
        .map_err(anyhow::Error::msg)?;
    let mut rng = match config.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let peer_config = host_config(config);
    let rounds = (config.messages.len() * config.iterations) as u64;
    let options = RunOptions {
        kind: RoundKind::Own,
        storage: StorageOptions {
            dry_run: config.database.is_none(),
            keep_rows: false,
            ..RunOptions::offline(config.database.clone(), rounds, config.progress).storage
        },
        ..RunOptions::offline(config.database.clone(), rounds, config.progress)
    };
    let mut run = PubsubRun {
        points: Vec::new(),
        sizes: Vec::new(),
    };
    for &hosts in &config.hosts {
        if shutdown.requested() {
            break;
        }
        let mut size = SizeJob {
            config,
            hosts,
            peer_config: &peer_config,
            runtime,
            resources: &resources,
            rng: &mut rng,
            registry: None,
            network: None,
            js: None,
            point: None,
            points: Vec::new(),
        };
        let report = job::run(&mut size, options.clone(), shutdown.clone()).await?;
        for point in &size.points {
            println!("{}", row(point));
        }
        run.points.append(&mut size.points);
        let failed = report.round_errors.keys().next().cloned();
        run.sizes.push(SizeStored {
            hosts,
            stored: report.stored,
            storage_error: report.storage_error,
        });
        if let Some(error) = failed {
            anyhow::bail!("{hosts} hosts: {error}");
        }
    }
    Ok(run)
}

/// Every host's configuration: gossipsub as configured, no periodic bootstrap, connections kept
/// while the sweep runs.
fn host_config(config: &PubsubTestnetConfig) -> DhtConfig {
    let mut pubsub = config.pubsub.clone();
    // A host that leaves the network closes its connections on purpose; the others must not
    // dial it back in (its return is the churn's to decide).
    pubsub.keep_topic_peers_connected = !config.churn.is_on();
    let mut template = DhtConfig::default();
    template
        .set_periodic_bootstrap(None)
        .set_idle_connection_timeout(PUBSUB_IDLE_TIMEOUT)
        .set_pubsub(Some(pubsub));
    let mut peer_config = local_network::local_peer_config(&template, config.transport);
    if config.js_peers > 0 && config.transport == TransportKind::Memory {
        // The hosts reach each other in memory (no file descriptor per connection, so a thousand
        // fit) and the js peers over TCP; a host's first address stays its memory one.
        peer_config.set_listen(vec![
            TransportKind::Memory.listen_addr(),
            TransportKind::Tcp.listen_addr(),
        ]);
    }
    peer_config
}

/// Starts `hosts` hosts and the js peers, registered in `nodes_ecs`.
async fn start_size(
    config: &PubsubTestnetConfig,
    hosts: usize,
    peer_config: &DhtConfig,
    runtime: &Handle,
    registry: &Arc<dyn Registry>,
    resources: &Resources,
) -> anyhow::Result<(Network, JsPeers)> {
    let setup = bar(config.progress, hosts as u64, "starting hosts");
    let peers = local_network::spawn_peers(hosts, peer_config, runtime, |n| setup.set_position(n as u64))
        .await
        .with_context(|| format!("starting {hosts} hosts"))?;
    setup.finish_and_clear();
    let js = JsPeers::start(config.js_peers, &config.js_script).await?;
    let js_ids: Vec<String> = (0..js.len()).map(|i| js.peer_id(i).to_string()).collect();
    let network = Network {
        nodes: register(registry, resources, &peers).await?,
        js_nodes: register_ids(registry, resources, js_ids).await?,
        peers,
    };
    Ok((network, js))
}

/// The hosts of one size and their rows in `nodes_ecs`.
struct Network {
    peers: Vec<DhtHandle>,
    nodes: Vec<NodeId>,
    /// The js-libp2p peers' rows.
    js_nodes: Vec<NodeId>,
}

impl Network {
    /// Closes the peers and marks their nodes offline.
    async fn stop(&self, registry: &Arc<dyn Registry>) {
        for peer in &self.peers {
            let _ = peer.shutdown().await;
        }
        let now = Utc::now();
        for node in self.nodes.iter().chain(&self.js_nodes) {
            if let Err(e) = registry.mark_offline(*node, now).await {
                tracing::warn!(%node, error = %e, "could not mark a pubsub host offline");
            }
        }
    }
}

/// Registers every peer as a node of the pubsub fleet.
async fn register(
    registry: &Arc<dyn Registry>,
    resources: &Resources,
    peers: &[DhtHandle],
) -> anyhow::Result<Vec<NodeId>> {
    let ids = peers.iter().map(|p| p.peer_id().to_string()).collect();
    register_ids(registry, resources, ids).await
}

/// Registers a node of the pubsub fleet per peer id.
async fn register_ids(
    registry: &Arc<dyn Registry>,
    resources: &Resources,
    peer_ids: Vec<String>,
) -> anyhow::Result<Vec<NodeId>> {
    stream::iter(peer_ids)
        .map(|peer_id| {
            let registration = host::registration(resources.clone(), peer_id, PUBSUB_FLEET.to_owned(), 0, 0);
            let registry = registry.clone();
            async move { registry.register_node(registration).await }
        })
        .buffered(REGISTER_CONCURRENCY)
        .try_collect()
        .await
        .context("registering the pubsub hosts in nodes_ecs")
}

/// Connects the hosts at random, has each js peer dial `degree` of them, and subscribes everyone
/// to every topic until the meshes formed.
async fn wire(
    config: &PubsubTestnetConfig,
    network: &Network,
    js: &mut JsPeers,
    topics: &[String],
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    let (peers, hosts) = (&network.peers, network.peers.len());
    local_network::connect_randomly(peers, config.degree, rng)
        .await
        .context("connecting the hosts")?;
    // Each js peer dials `degree` hosts at random, and subscribes before the meshes form.
    for index in 0..js.len() {
        for _ in 0..config.degree.min(hosts) {
            let host = &peers[rng.gen_range(0..hosts)];
            let tcp = host
                .dialable_addrs()
                .into_iter()
                .find(|a| {
                    a.iter()
                        .any(|p| matches!(p, parsec_actors::multiaddr::Protocol::Tcp(_)))
                })
                .context("a host listens on no TCP address for the js peers")?;
            js.dial(index, &tcp).await?;
        }
    }
    for topic in topics {
        js.subscribe(topic).await?;
    }
    for topic in topics {
        let mesh = config.pubsub.mesh_n_low.min(hosts - 1);
        local_network::subscribe_and_form_mesh(peers, topic, mesh, MESH_TIMEOUT)
            .await
            .context("forming the meshes")?;
    }
    Ok(())
}

/// One network size of the sweep as a [`Job`]: its set-up starts the hosts and the js peers and
/// forms the meshes; each of its rounds is one iteration of one point (the points in the order
/// of `--messages`, `--iterations` rounds each, churn before every iteration but a point's
/// first); its tear-down closes the peers and marks them offline.
struct SizeJob<'a> {
    config: &'a PubsubTestnetConfig,
    hosts: usize,
    peer_config: &'a DhtConfig,
    runtime: &'a Handle,
    resources: &'a Resources,
    rng: &'a mut StdRng,
    registry: Option<Arc<dyn Registry>>,
    network: Option<Network>,
    js: Option<JsPeers>,
    /// The point being measured.
    point: Option<PointRun>,
    /// The points measured.
    points: Vec<SweepPoint>,
}

/// A point while its iterations run: what it counted so far, its churn and what each
/// iteration publishes.
struct PointRun {
    point: SweepPoint,
    churn: Churn,
    plan: PublishPlan,
}

impl SizeJob<'_> {
    /// Ends the point being measured, if any iteration of it ran: its percentiles sorted, its
    /// peak memory read.
    fn conclude_point(&mut self) {
        let Some(PointRun { mut point, .. }) = self.point.take() else {
            return;
        };
        if point.durations.is_empty() {
            return;
        }
        point.rust.sort();
        point.js.sort();
        point.peak_rss = peak_rss_bytes();
        self.points.push(point);
    }

    /// The point and iteration of round `index`.
    fn position(&self, index: u64) -> (usize, usize) {
        let iterations = self.config.iterations;
        (index as usize / iterations, index as usize % iterations)
    }
}

impl Job for SizeJob<'_> {
    async fn set_up(&mut self, setup: &SetUp) -> anyhow::Result<Fleet> {
        let (config, hosts) = (self.config, self.hosts);
        self.registry = Some(setup.registry.clone());
        let (network, js) = start_size(
            config,
            hosts,
            self.peer_config,
            self.runtime,
            &setup.registry,
            self.resources,
        )
        .await?;
        let (network, js) = (self.network.insert(network), self.js.insert(js));
        wire(config, network, js, &config.topic_names(), self.rng).await?;
        // The rounds are the job's own: the supervisor has no member to drive.
        Ok(Fleet {
            membership: Membership::Fixed(Vec::new()),
            round: RoundConfig::default(),
            fleets: vec![PUBSUB_FLEET.to_owned()],
        })
    }

    /// A point's first iteration starts it (its peak memory counts from here); the others
    /// follow churn.
    async fn before_round(&mut self, index: u64) -> anyhow::Result<()> {
        let (point_index, iteration) = self.position(index);
        let (config, hosts) = (self.config, self.hosts);
        let network = self.network.as_ref().context("no hosts")?;
        if iteration == 0 {
            let topics = config.topic_names();
            let messages = config.messages[point_index];
            crate::telemetry::reset_peak_rss();
            self.point = Some(PointRun {
                point: SweepPoint::new(hosts, messages, config.deadline),
                churn: Churn::new(hosts, config.churn, &topics, config.degree),
                plan: PublishPlan {
                    topics,
                    messages,
                    message_bytes: config.message_bytes,
                    deadline: config.deadline,
                    linger: config.pubsub.heartbeat,
                },
            });
        } else if config.churn.is_on() {
            let run = self.point.as_mut().context("no point")?;
            let publisher = iteration % hosts;
            let step = run
                .churn
                .step(&network.peers, publisher, self.rng)
                .await
                .context("churn")?;
            run.point.left_topics += step.left_topics;
            run.point.left_network += step.left_network;
        }
        Ok(())
    }

    /// One iteration: its publisher publishes the plan to the hosts present, the js peers
    /// report, and the rows are recorded and flushed (bounded: an iteration's rows are written
    /// before the next one's are made). The point's last iteration concludes it.
    async fn run_own_round(
        &mut self,
        index: u64,
        recorder: &actix::Addr<MeasurementRecorder>,
    ) -> anyhow::Result<String> {
        let (_, iteration) = self.position(index);
        let publisher = iteration % self.hosts;
        let network = self.network.as_ref().context("no hosts")?;
        let js = self.js.as_mut().context("no js peers")?;
        let run = self.point.as_mut().context("no point")?;
        let rows = iterate(network, publisher, run, js, self.rng).await?;
        for row in rows {
            recorder
                .send(RecordMeasurement(row))
                .await
                .context("the measurement recorder stopped")?;
        }
        recorder
            .send(Flush)
            .await
            .context("the measurement recorder stopped")?
            .context("storing the iteration's rows")?;
        let line = format!(
            "{} hosts, {} messages: iteration {}/{}",
            self.hosts,
            run.plan.messages,
            iteration + 1,
            self.config.iterations
        );
        if iteration + 1 == self.config.iterations {
            self.conclude_point();
        }
        Ok(line)
    }

    async fn tear_down(&mut self) {
        // A point cut short by a shutdown keeps the iterations it ran (its `iter` column says how
        // many).
        self.conclude_point();
        if let Some(js) = self.js.take() {
            js.stop().await;
        }
        if let (Some(network), Some(registry)) = (self.network.take(), &self.registry) {
            network.stop(registry).await;
        }
    }
}

/// One iteration of `run`'s point: `publisher` publishes the plan to the hosts present, the js
/// peers report; its rows, counted into the point.
async fn iterate(
    network: &Network,
    publisher: usize,
    run: &mut PointRun,
    js: &mut JsPeers,
    rng: &mut StdRng,
) -> anyhow::Result<Vec<Measurement>> {
    let (peers, hosts) = (&network.peers, network.peers.len());
    let PointRun { point, churn, plan } = run;
    let present = |i: &usize| *i != publisher && churn.is_present(*i);
    let receiving: Vec<usize> = (0..hosts).filter(present).collect();
    let away: Vec<&DhtHandle> = (0..hosts)
        .filter(|i| *i != publisher && !churn.is_present(*i))
        .map(|i| &peers[i])
        .collect();
    let receivers: Vec<DhtHandle> = receiving.iter().map(|&i| peers[i].clone()).collect();
    let clock = WallClock::now();
    let report = publish_and_collect(&peers[publisher], &receivers, plan, rng).await?;
    point.add(&report, &peers[publisher]);
    point.received_while_away += received_while_away(&report, &away).await?;
    let receiver_nodes: Vec<NodeId> = receiving.iter().map(|&i| network.nodes[i]).collect();
    let mut iteration_rows = rows(&report, network.nodes[publisher], &receiver_nodes, plan, &clock);
    // The js peers' rows belong to the same round.
    let round = iteration_rows.first().map_or_else(RoundId::new, |r| r.round);
    iteration_rows.extend(js_rows(&report, js, &network.js_nodes, plan, &clock, round, &mut point.js).await?);
    js.forget();
    Ok(iteration_rows)
}

/// Messages of `report` that reached one of `away` (hosts that had left their topics or the
/// network); the linger after the last delivery has passed, so late copies are counted too.
async fn received_while_away(report: &PublishReport, away: &[&DhtHandle]) -> anyhow::Result<usize> {
    let mut received = 0;
    for peer in away {
        for message in report.messages.iter().filter(|m| m.published.is_ok()) {
            received += usize::from(peer.delivery(message.id).await?.is_some());
        }
    }
    Ok(received)
}

/// The rows of one iteration: a publish per message, a delivery per receiver of it. One round id
/// per iteration.
fn rows(
    report: &PublishReport,
    publisher: NodeId,
    receivers: &[NodeId],
    plan: &PublishPlan,
    clock: &WallClock,
) -> Vec<Measurement> {
    let round = RoundId::new();
    let details = |topic: &str| PubsubDetails::new(topic, plan.message_bytes, RUST_LIBP2P);
    let mut rows: Vec<Measurement> = Vec::new();
    for message in &report.messages {
        let id = message.id.to_string();
        // Every row of a message leads to its trace.
        let trace_id = crate::telemetry::traces::outgoing_headers(&message.span).1;
        let row = |operation, node, started_at, pubsub| Measurement {
            started_at,
            trace_id: trace_id.clone(),
            ..Measurement::pubsub(operation, round, PUBSUB_FLEET, node, &id, pubsub)
        };
        let published = match &message.published {
            Ok(published) => published,
            Err(reason) => {
                let at = clock.at(tokio::time::Instant::now());
                rows.push(Measurement {
                    error: Some(reason.clone()),
                    ..row(Operation::Publish, publisher, at, details(&message.topic))
                });
                continue;
            }
        };
        let sent_at = clock.at(published.sent_at);
        let missing = message.receipts.iter().filter(|r| r.latency.is_none()).count();
        let spread = message
            .receipts
            .iter()
            .filter_map(|r| r.latency)
            .max()
            .unwrap_or_default();
        let publish = PubsubDetails {
            topic_peers: Some(u32::try_from(published.topic_peers).unwrap_or(u32::MAX)),
            mesh_peers: Some(u32::try_from(published.mesh_peers).unwrap_or(u32::MAX)),
            ..details(&message.topic)
        };
        let receivers_count = message.receipts.len();
        rows.push(
            row(Operation::Publish, publisher, sent_at, publish).publish_reached(
                spread,
                missing,
                receivers_count,
                plan.deadline,
            ),
        );
        for (receipt, node) in message.receipts.iter().zip(receivers) {
            let delivery = PubsubDetails {
                copies: receipt.copies,
                first_from: receipt.from.map(|p| p.to_string()),
                ..details(&message.topic)
            };
            let row = row(Operation::Delivery, *node, sent_at, delivery);
            rows.push(match receipt.latency {
                Some(latency) => Measurement {
                    duration: latency,
                    ..row
                },
                None => row.not_delivered(plan.deadline),
            });
        }
    }
    rows
}

/// The delivery rows of the js peers for one iteration, counted into `stats`: a first copy
/// counts when it came by the deadline.
async fn js_rows(
    report: &PublishReport,
    js: &mut JsPeers,
    nodes: &[NodeId],
    plan: &PublishPlan,
    clock: &WallClock,
    round: RoundId,
    stats: &mut DeliveryTally,
) -> anyhow::Result<Vec<Measurement>> {
    let mut rows = Vec::new();
    let first_sent = report
        .messages
        .iter()
        .find_map(|m| m.published.as_ref().ok().map(|p| p.sent_at));
    for message in &report.messages {
        let (Ok(published), Some(first_sent)) = (&message.published, first_sent) else {
            continue;
        };
        let trace_id = crate::telemetry::traces::outgoing_headers(&message.span).1;
        for (index, node) in nodes.iter().enumerate() {
            let arrived = js
                .first_copy(index, message.id)
                .filter(|at| at.saturating_duration_since(first_sent) <= plan.deadline);
            let (duration, error, copies) = match arrived {
                Some(at) => {
                    let latency = at.saturating_duration_since(published.sent_at);
                    let copies = js.copies(index, message.id).await?;
                    (latency, None, copies)
                }
                None => (plan.deadline, Some(NOT_DELIVERED.to_owned()), 0),
            };
            stats.count(error.is_none().then_some((duration, copies)));
            let details = PubsubDetails {
                copies,
                ..PubsubDetails::new(&message.topic, plan.message_bytes, JS_IMPLEMENTATION)
            };
            let id = message.id.to_string();
            rows.push(Measurement {
                started_at: clock.at(published.sent_at),
                duration,
                error,
                trace_id: trace_id.clone(),
                ..Measurement::pubsub(Operation::Delivery, round, PUBSUB_FLEET, *node, &id, details)
            });
        }
    }
    Ok(rows)
}

/// The implementation the js peers run, as delivery rows name it.
const JS_IMPLEMENTATION: &str = "js-libp2p";

/// The header of the table [`row`] fills.
pub fn header() -> String {
    format!(
        "{:>6} {:>8} {:>5} {:>13} {:>8} {:>11} {:>11} {:>11} {:>8} {:>7} {:>9}",
        "hosts",
        "messages",
        "iter",
        "duration p50",
        "msg/s",
        "delivered",
        "latency p50",
        "latency p99",
        "dup/msg",
        "direct",
        "peak RSS"
    )
}

/// One point as a line of the table.
pub fn row(point: &SweepPoint) -> String {
    let seconds =
        |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| format!("{:.4}s", d.as_secs_f64()));
    let direct = if point.rust.latencies.is_empty() {
        0.0
    } else {
        point.direct as f64 / point.rust.latencies.len() as f64
    };
    let mut line = format!(
        "{:>6} {:>8} {:>5} {:>13} {:>8.0} {:>10.2}% {:>11} {:>11} {:>8.2} {:>6.0}% {:>9}",
        point.hosts,
        point.messages,
        point.durations.len(),
        seconds(Some(point.median_duration())),
        point.messages_per_second(),
        point.rust.delivery_ratio() * 100.0,
        seconds(point.rust.latency(50.0)),
        seconds(point.rust.latency(99.0)),
        point.rust.duplicates_per_delivery(),
        direct * 100.0,
        crate::report::mebibytes(point.peak_rss),
    );
    if point.js.expected > 0 {
        let _ = write!(
            line,
            "  js-libp2p: delivered {:.2}%, latency p50 {}, p99 {}, dup/msg {:.2}",
            point.js.delivery_ratio() * 100.0,
            seconds(point.js.latency(50.0)),
            seconds(point.js.latency(99.0)),
            point.js.duplicates_per_delivery()
        );
    }
    if point.left_topics + point.left_network > 0 {
        let _ = write!(
            line,
            "  churn: {} left topics, {} left the network, {} received while away",
            point.left_topics, point.left_network, point.received_while_away
        );
    }
    if let Some(reason) = &point.refusal {
        let _ = write!(line, "  ({} refused: {reason})", point.refused);
    }
    line
}

/// The seed's two charts: the median iteration's duration, and peak memory, against hosts, a line
/// per number of messages.
pub fn charts(points: &[SweepPoint]) -> Vec<Chart> {
    let mut hosts: Vec<usize> = points.iter().map(|p| p.hosts).collect();
    hosts.dedup();
    let mut messages: Vec<usize> = points.iter().map(|p| p.messages).collect();
    messages.sort_unstable();
    messages.dedup();
    let lines = |value: fn(&SweepPoint) -> f64| -> Vec<(String, Vec<f64>)> {
        messages
            .iter()
            .map(|&m| {
                let values = hosts
                    .iter()
                    .map(|&h| {
                        points
                            .iter()
                            .find(|p| p.hosts == h && p.messages == m)
                            .map_or(0.0, value)
                    })
                    .collect();
                (format!("{m} messages"), values)
            })
            .collect()
    };
    let categories: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    let chart = |name: &str, title: &str, panel: &str, y_desc: &str, value: fn(&SweepPoint) -> f64| {
        Chart::comparison(
            name,
            title,
            "hosts",
            categories.clone(),
            vec![ComparisonPanel {
                title: panel.to_owned(),
                y_desc: y_desc.to_owned(),
                lines: lines(value),
            }],
        )
    };
    vec![
        chart(
            "pubsub-duration",
            "Gossipsub: test duration against hosts",
            "Median iteration: first publish to last delivery",
            "milliseconds",
            |p| p.median_duration().as_secs_f64() * 1000.0,
        ),
        chart(
            "pubsub-memory",
            "Gossipsub: peak memory against hosts",
            "Peak resident memory of the process",
            "MiB",
            |p| p.peak_rss.unwrap_or(0) as f64 / (1024.0 * 1024.0),
        ),
    ]
}

/// Writes the two charts (SVG) and `pubsub.csv` into `dir`.
pub fn write(points: &[SweepPoint], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for chart in charts(points) {
        let path = dir.join(format!("{}.svg", chart.name));
        std::fs::write(&path, chart.svg()?).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut csv = ::csv::Writer::from_path(dir.join("pubsub.csv"))?;
    csv.write_record([
        "hosts",
        "messages",
        "iterations",
        "duration_p50_s",
        "messages_per_s",
        "delivered",
        "expected",
        "latency_p50_s",
        "latency_p99_s",
        "duplicates_per_delivery",
        "direct",
        "peak_rss_bytes",
        "left_topics",
        "left_network",
        "received_while_away",
        "js_delivered",
        "js_expected",
        "js_latency_p50_s",
        "js_latency_p99_s",
        "js_duplicates_per_delivery",
    ])?;
    for p in points {
        let seconds = |d: Option<Duration>| d.map_or_else(String::new, |d| d.as_secs_f64().to_string());
        csv.write_record([
            p.hosts.to_string(),
            p.messages.to_string(),
            p.durations.len().to_string(),
            p.median_duration().as_secs_f64().to_string(),
            p.messages_per_second().to_string(),
            p.rust.delivered.to_string(),
            p.rust.expected.to_string(),
            seconds(p.rust.latency(50.0)),
            seconds(p.rust.latency(99.0)),
            p.rust.duplicates_per_delivery().to_string(),
            p.direct.to_string(),
            p.peak_rss.map_or_else(String::new, |b| b.to_string()),
            p.left_topics.to_string(),
            p.left_network.to_string(),
            p.received_while_away.to_string(),
            p.js.delivered.to_string(),
            p.js.expected.to_string(),
            seconds(p.js.latency(50.0)),
            seconds(p.js.latency(99.0)),
            p.js.duplicates_per_delivery().to_string(),
        ])?;
    }
    csv.flush()?;
    Ok(())
}
