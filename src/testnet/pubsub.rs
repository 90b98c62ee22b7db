//! `parsec testnet --protocol gossipsub`: the pubsub benchmark of the seed on real peers in one
//! process. For every number of hosts, the peers connect at random, subscribe to the topics and
//! form their meshes; then, for every number of messages, each iteration has one peer publish
//! that many messages and every other peer report when each arrived and how many copies it got.
//! Per point: the median iteration's duration, delivery latency, duplicates and peak memory.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Context as _;
use parsec_actors::{
    local_network::{self, TransportKind},
    pubsub::{publish_and_collect, PublishPlan, PublishReport, PubsubConfig},
    DhtConfig, DhtHandle,
};
use rand::{rngs::StdRng, SeedableRng};
use tokio::runtime::Handle;

use crate::{
    progress::bar,
    report::{
        charts::{Chart, ComparisonPanel},
        peak_rss_bytes, percentile,
    },
};

/// How long peers may take to form their meshes before the run is abandoned.
const MESH_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections stay for the whole run, as between peers that keep talking: an idle connection
/// outside the mesh closing mid-run would change the topology being measured.
const PUBSUB_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

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
    /// Transport between peers.
    pub transport: TransportKind,
    /// Seed of the topology and the payloads.
    pub seed: Option<u64>,
    /// Draw progress bars.
    pub progress: bool,
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
        if self.message_bytes > parsec_actors::pubsub::MAX_MESSAGE_BYTES {
            anyhow::bail!(
                "--message-bytes must be at most {} (gossipsub's transmit limit)",
                parsec_actors::pubsub::MAX_MESSAGE_BYTES
            );
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
    /// Each iteration's duration: first send to last first delivery.
    pub durations: Vec<Duration>,
    /// Deliveries that arrived by the deadline, and those expected.
    pub delivered: usize,
    pub expected: usize,
    /// Latencies of every delivery, sorted.
    pub latencies: Vec<Duration>,
    /// Copies beyond the first, over all deliveries.
    pub duplicates: u64,
    /// Deliveries whose first copy came straight from the publisher.
    pub direct: usize,
    /// Messages gossipsub refused to publish, with the first reason.
    pub refused: usize,
    pub refusal: Option<String>,
    /// Peak resident memory of the process while the point ran.
    pub peak_rss: Option<u64>,
}

impl SweepPoint {
    fn new(hosts: usize, messages: usize) -> Self {
        Self {
            hosts,
            messages,
            durations: Vec::new(),
            delivered: 0,
            expected: 0,
            latencies: Vec::new(),
            duplicates: 0,
            direct: 0,
            refused: 0,
            refusal: None,
            peak_rss: None,
        }
    }

    fn add(&mut self, report: &PublishReport, publisher: &DhtHandle) {
        self.durations.push(report.duration);
        let (delivered, expected) = report.delivered();
        self.delivered += delivered;
        self.expected += expected;
        for message in &report.messages {
            if let Err(reason) = &message.published {
                self.refused += 1;
                self.refusal.get_or_insert_with(|| reason.clone());
            }
            for receipt in message.receipts.iter().filter(|r| r.latency.is_some()) {
                self.latencies.extend(receipt.latency);
                self.duplicates += u64::from(receipt.copies.saturating_sub(1));
                self.direct += usize::from(receipt.from == Some(publisher.peer_id()));
            }
        }
    }

    /// The median iteration's duration.
    pub fn median_duration(&self) -> Duration {
        let mut sorted = self.durations.clone();
        sorted.sort_unstable();
        percentile(&sorted, 50.0).unwrap_or_default()
    }

    pub fn latency(&self, p: f64) -> Option<Duration> {
        percentile(&self.latencies, p)
    }

    /// Duplicate copies per delivered message.
    pub fn duplicates_per_delivery(&self) -> f64 {
        if self.latencies.is_empty() {
            0.0
        } else {
            self.duplicates as f64 / self.latencies.len() as f64
        }
    }

    pub fn delivery_ratio(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.delivered as f64 / self.expected as f64
        }
    }
}

/// Runs the sweep on `runtime`; every point, in order.
pub async fn run(config: &PubsubTestnetConfig, runtime: &Handle) -> anyhow::Result<Vec<SweepPoint>> {
    config.check()?;
    let mut rng = match config.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let mut template = DhtConfig::default();
    template
        .set_periodic_bootstrap(None)
        .set_idle_connection_timeout(PUBSUB_IDLE_TIMEOUT)
        .set_pubsub(Some(config.pubsub.clone()));
    let peer_config = local_network::local_peer_config(&template, config.transport);
    let topics = config.topic_names();
    let mut points = Vec::new();
    for &hosts in &config.hosts {
        let setup = bar(config.progress, hosts as u64, "starting hosts");
        let peers =
            local_network::spawn_peers(hosts, &peer_config, runtime, |n| setup.set_position(n as u64))
                .await
                .with_context(|| format!("starting {hosts} hosts"))?;
        setup.finish_and_clear();
        local_network::connect_randomly(&peers, config.degree, &mut rng)
            .await
            .context("connecting the hosts")?;
        for topic in &topics {
            let mesh = config.pubsub.mesh_n_low.min(hosts - 1);
            local_network::subscribe_and_form_mesh(&peers, topic, mesh, MESH_TIMEOUT)
                .await
                .context("forming the meshes")?;
        }
        for &messages in &config.messages {
            let plan = PublishPlan {
                topics: topics.clone(),
                messages,
                message_bytes: config.message_bytes,
                deadline: config.deadline,
                linger: config.pubsub.heartbeat,
            };
            // The point's peak: the hosts, and what publishing this many messages adds to them.
            crate::report::reset_peak_rss();
            let iterations = bar(config.progress, config.iterations as u64, "iterations");
            let mut point = SweepPoint::new(hosts, messages);
            for iteration in 0..config.iterations {
                let publisher = &peers[iteration % hosts];
                let receivers: Vec<DhtHandle> = peers
                    .iter()
                    .filter(|p| p.peer_id() != publisher.peer_id())
                    .cloned()
                    .collect();
                let report = publish_and_collect(publisher, &receivers, &plan, &mut rng).await?;
                point.add(&report, publisher);
                iterations.inc(1);
            }
            iterations.finish_and_clear();
            point.latencies.sort_unstable();
            point.peak_rss = peak_rss_bytes();
            println!("{}", row(&point));
            points.push(point);
        }
        for peer in &peers {
            let _ = peer.shutdown().await;
        }
    }
    Ok(points)
}

/// The header of the table [`row`] fills.
pub fn header() -> String {
    format!(
        "{:>6} {:>8} {:>5} {:>13} {:>11} {:>11} {:>11} {:>8} {:>7} {:>9}",
        "hosts",
        "messages",
        "iter",
        "duration p50",
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
    let direct = if point.latencies.is_empty() {
        0.0
    } else {
        point.direct as f64 / point.latencies.len() as f64
    };
    let mut line = format!(
        "{:>6} {:>8} {:>5} {:>13} {:>10.2}% {:>11} {:>11} {:>8.2} {:>6.0}% {:>9}",
        point.hosts,
        point.messages,
        point.durations.len(),
        seconds(Some(point.median_duration())),
        point.delivery_ratio() * 100.0,
        seconds(point.latency(50.0)),
        seconds(point.latency(99.0)),
        point.duplicates_per_delivery(),
        direct * 100.0,
        crate::report::mebibytes(point.peak_rss),
    );
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
        "delivered",
        "expected",
        "latency_p50_s",
        "latency_p99_s",
        "duplicates_per_delivery",
        "direct",
        "peak_rss_bytes",
    ])?;
    for p in points {
        let seconds = |d: Option<Duration>| d.map_or_else(String::new, |d| d.as_secs_f64().to_string());
        csv.write_record([
            p.hosts.to_string(),
            p.messages.to_string(),
            p.durations.len().to_string(),
            p.median_duration().as_secs_f64().to_string(),
            p.delivered.to_string(),
            p.expected.to_string(),
            seconds(p.latency(50.0)),
            seconds(p.latency(99.0)),
            p.duplicates_per_delivery().to_string(),
            p.direct.to_string(),
            p.peak_rss.map_or_else(String::new, |b| b.to_string()),
        ])?;
    }
    csv.flush()?;
    Ok(())
}
