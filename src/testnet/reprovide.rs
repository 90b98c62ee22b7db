//! `parsec testnet --protocol reprovide`: reprovide rounds on real peers. A network of stock
//! rust-libp2p kad peers, and per strategy one node of ours that holds N CIDs and sends all their
//! records again: `classic` one provide per CID (rust-libp2p's republish, Kubo's reprovider
//! before 0.39), `sweep` region by region (Kubo's default since 0.39). The rounds run one after
//! the other, each with its own CIDs, so neither shares the CPU or answers for the other.
//!
//! Per round: CIDs per hour, lookups, requests and new connections per CID, bytes written, the
//! provider's CPU, and afterwards, for a sample of the CIDs (every N/S-th in key order of their
//! index), the share another peer finds and the share of their true `k` closest peers (from every
//! peer id) that hold the record in their own store.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::{stream, StreamExt as _};
use parsec_actors::{
    local_network::{self, LocalPeer, StartMode, TransportKind},
    ContentId, DhtClient, DhtConfig, DhtHandle, DhtMode, ReprovideDetails, ReprovideStrategy, Strategy,
};
use parsec_kad::Key;
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{job::MeasuredRound, progress::bar};

/// How long the nodes may take to join before the run is abandoned.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Sampled CIDs checked at once (each check is `k` store reads and one lookup).
const CHECK_CONCURRENCY: usize = 16;

/// What a reprovide testnet does.
#[derive(Clone, Debug)]
pub struct ReprovideTestnetConfig {
    /// Background DHT server peers (rust-libp2p's kad).
    pub peers: usize,
    /// CIDs each providing node holds and reprovides.
    pub keys: usize,
    /// The strategies, one round each, in this order.
    pub strategies: Vec<ReprovideStrategy>,
    /// Provides (classic) or walks (sweep) at once.
    pub workers: usize,
    /// CIDs of a round checked afterwards.
    pub sample: usize,
    /// Rounds per strategy, each on the same CIDs; between two, `churn` of the background peers
    /// leave and as many new ones join.
    pub rounds: usize,
    pub churn: f64,
    pub transport: TransportKind,
    /// Settings every peer starts from (alpha, k, protocol, latency, …).
    pub dht: DhtConfig,
    /// Seed of the CIDs and of the peers the checks ask.
    pub seed: u64,
    pub progress: bool,
}

impl ReprovideTestnetConfig {
    /// Rejects a run that cannot measure anything.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.strategies.is_empty() {
            bail!("--reprovide-strategies needs at least one of classic, sweep");
        }
        if self.keys == 0 {
            bail!("--reprovide-keys must be at least 1");
        }
        if self.peers < self.dht.k.get() {
            bail!(
                "--peers {} is fewer than k = {}: every record would go to every peer, which measures \
                 no strategy; give at least {} peers",
                self.peers,
                self.dht.k,
                self.dht.k
            );
        }
        if self.workers == 0 {
            bail!("--reprovide-workers must be at least 1");
        }
        if self.rounds == 0 {
            bail!("--reprovide-rounds must be at least 1");
        }
        if !(0.0..=0.5).contains(&self.churn) {
            bail!("--reprovide-churn is the share of the peers replaced between rounds, from 0 to 0.5");
        }
        Ok(())
    }

    /// The CIDs of `strategy`'s round: derived from the seed, the strategy and an index.
    /// Every N/S-th CID of a round, S of them.
    fn sample_of<'a>(&self, cids: &'a [ContentId]) -> Vec<&'a ContentId> {
        let step = (self.keys / self.sample.max(1)).max(1);
        cids.iter().step_by(step).take(self.sample).collect()
    }

    fn cids(&self, strategy: ReprovideStrategy) -> Vec<ContentId> {
        parsec_actors::node::reprovide::reprovide_cids(self.seed, strategy, self.keys)
    }
}

/// The table's header line.
pub fn header() -> String {
    format!(
        "{:>9} {:>8} {:>8} {:>10} {:>8} {:>11} {:>9} {:>10} {:>9} {:>8} {:>7} {:>7} {:>7}",
        "keys",
        "strategy",
        "seconds",
        "keys/h",
        "lookups",
        "lookups/key",
        "reqs/key",
        "copies/key",
        "conns/key",
        "MiB out",
        "CPU s",
        "found",
        "placed"
    )
}

/// A row of the table.
pub fn line(measured: &MeasuredRound) -> String {
    let row = &measured.details;
    let round = &row.round;
    format!(
        "{:>9} {:>8} {:>8.2} {:>10.0} {:>8} {:>11.4} {:>9.1} {:>10.1} {:>9.3} {:>8.1} {:>7.2} {:>6.1}% {:>6.1}%",
        round.keys,
        row.strategy.name(),
        round.duration.as_secs_f64(),
        round.keys_per_hour(),
        round.lookups,
        round.lookups_per_key(),
        round.messages_per_key(),
        round.copies_per_key(),
        row.connections_per_key().unwrap_or(0.0),
        row.bytes_out.unwrap_or(0) as f64 / (1024.0 * 1024.0),
        row.cpu.unwrap_or_default().as_secs_f64(),
        100.0 * row.found_share(),
        100.0 * row.placed_share()
    )
}

/// Runs the rounds on `runtime`'s swarms and prints a line per round.
pub async fn run(
    config: &ReprovideTestnetConfig,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<Vec<MeasuredRound>> {
    config.check()?;
    let mut template = config.dht.clone();
    template.set_mode(DhtMode::Server);
    let background = local_network::local_peer_config(&template, config.transport);
    let mut provider_config = background.clone();
    // Our engine runs the rounds; the strategy of its single provides does not enter them.
    provider_config.set_client(DhtClient::Engine(Strategy::Classic));

    let starting = bar(
        config.progress,
        (config.peers + config.strategies.len()) as u64,
        "starting peers",
    );
    let peers = local_network::spawn_peers(config.peers, &background, runtime, |n| {
        starting.set_position(n as u64)
    })
    .await
    .context("starting DHT peers")?;
    let providers = local_network::spawn_peers(config.strategies.len(), &provider_config, runtime, |_| {})
        .await
        .context("starting the providing nodes")?;
    starting.finish();
    let everyone: Vec<LocalPeer> = LocalPeer::all_in(DhtMode::Server, &peers)
        .chain(LocalPeer::all_in(DhtMode::Server, &providers))
        .collect();
    local_network::wire(&everyone, StartMode::Converged, config.dht.k.get())
        .await
        .context("wiring the network")?;
    local_network::join(&providers, JOIN_TIMEOUT)
        .await
        .context("the providing nodes joining the network")?;

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut peers = peers;
    let mut rows = Vec::with_capacity(config.strategies.len() * config.rounds);
    for index in 0..config.rounds {
        if index > 0 {
            churn(&mut peers, config, &background, runtime, &mut rng).await?;
            // What churn left of the last round's records, before they are sent again.
            for (strategy, provider) in config.strategies.iter().copied().zip(&providers) {
                let cids = config.cids(strategy);
                let sample = config.sample_of(&cids);
                let others = others_than(provider, &peers, &providers);
                let checks = check_sample(&sample, provider, &others, config.dht.k.get(), &mut rng).await?;
                println!(
                    "{:>9} {:>8} after churn, before round {}: found {:.1}%, placed {:.1}%",
                    config.keys,
                    strategy.name(),
                    index + 1,
                    100.0 * f64::from(checks.found) / sample.len().max(1) as f64,
                    100.0 * f64::from(checks.placed) / f64::from(checks.placements.max(1)),
                );
            }
        }
        for (strategy, provider) in config.strategies.iter().copied().zip(&providers) {
            let row = reprovide_round(config, strategy, provider, &peers, &providers, &mut rng).await?;
            println!("{}", line(&row));
            rows.push(row);
        }
    }
    for peer in peers.iter().chain(&providers) {
        let _ = peer.shutdown().await;
    }
    Ok(rows)
}

/// Every peer but `provider`: the background peers and the other rounds' nodes (servers too, so
/// any may be among a CID's closest).
fn others_than<'a>(
    provider: &DhtHandle,
    peers: &'a [DhtHandle],
    providers: &'a [DhtHandle],
) -> Vec<&'a DhtHandle> {
    peers
        .iter()
        .chain(providers.iter().filter(|p| p.peer_id() != provider.peer_id()))
        .collect()
}

/// One round of `strategy` by `provider`, and the checks of its sample.
async fn reprovide_round(
    config: &ReprovideTestnetConfig,
    strategy: ReprovideStrategy,
    provider: &DhtHandle,
    peers: &[DhtHandle],
    providers: &[DhtHandle],
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<MeasuredRound> {
    let cids = config.cids(strategy);
    let before = provider.load();
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let round = provider
        .reprovide(&cids, strategy, config.workers)
        .await
        .with_context(|| format!("the {strategy} round"))?;
    let after = provider.load();
    tracing::debug!(took = ?started.elapsed(), %strategy, "reprovide round done");
    let sample = config.sample_of(&cids);
    let others = others_than(provider, peers, providers);
    let checks = check_sample(&sample, provider, &others, config.dht.k.get(), rng).await?;
    let details = ReprovideDetails {
        strategy,
        workers: u32::try_from(config.workers).unwrap_or(u32::MAX),
        round,
        connections: Some(after.connections - before.connections),
        bytes_out: Some(after.bytes_out - before.bytes_out),
        cpu: Some(after.cpu.saturating_sub(before.cpu)),
        // The provider shares its process with every other peer of the testnet.
        peak_memory: None,
        sampled: sample.len() as u32,
        found: checks.found,
        placements: checks.placements,
        placed: checks.placed,
    };
    Ok(MeasuredRound {
        fleet: strategy.name().to_owned(),
        peer_id: provider.peer_id().to_string(),
        started_at,
        error: details.failure(),
        details,
    })
}

/// Replaces `config.churn` of the background `peers`, drawn at random: they stop (their
/// connections close; other peers' tables still list them until a request to them fails), and
/// as many new peers join through peers that stayed.
async fn churn(
    peers: &mut Vec<DhtHandle>,
    config: &ReprovideTestnetConfig,
    background: &DhtConfig,
    runtime: &tokio::runtime::Handle,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<()> {
    let leaving = ((peers.len() as f64) * config.churn).round() as usize;
    if leaving == 0 {
        return Ok(());
    }
    peers.shuffle(rng);
    let gone: Vec<DhtHandle> = peers.drain(..leaving).collect();
    for peer in &gone {
        let _ = peer.shutdown().await;
    }
    let joining = local_network::spawn_peers(leaving, background, runtime, |_| {})
        .await
        .context("starting the peers that join")?;
    let seeds: Vec<&DhtHandle> = peers.iter().take(config.dht.k.get()).collect();
    local_network::join_through(&joining, &seeds)
        .await
        .context("the new peers joining")?;
    println!(
        "churn: {leaving} of {} peers left, {} joined",
        peers.len() + leaving,
        joining.len()
    );
    peers.extend(joining);
    Ok(())
}

#[derive(Default)]
struct SampleChecks {
    found: u32,
    placements: u32,
    placed: u32,
}

/// For each sampled CID: whether a random other peer finds it, and which of its true `k` closest
/// among `peers` (every peer but the provider) hold `provider`'s record in their own store.
async fn check_sample(
    sample: &[&ContentId],
    provider: &DhtHandle,
    peers: &[&DhtHandle],
    k: usize,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<SampleChecks> {
    let provider_id = provider.peer_id();
    let peer_keys: Vec<Key> = peers
        .iter()
        .map(|p| Key::hash_of(&p.peer_id().to_bytes()))
        .collect();
    let retrievers: Vec<&DhtHandle> = sample
        .iter()
        .map(|_| *peers.choose(rng).expect("peers"))
        .collect();
    let checks = stream::iter(sample.iter().zip(retrievers))
        .map(|(cid, retriever)| {
            let target = Key::hash_of(&cid.record_key().to_vec());
            let mut closest: Vec<usize> = (0..peers.len()).collect();
            closest.sort_by_key(|&i| peer_keys[i].distance(&target));
            closest.truncate(k);
            async move {
                let found = retriever.retrieve((*cid).clone()).await?.error.is_none();
                let mut placed = 0;
                for &i in &closest {
                    if peers[i]
                        .stored_providers((*cid).clone())
                        .await?
                        .contains(&provider_id)
                    {
                        placed += 1;
                    }
                }
                anyhow::Ok((found, closest.len(), placed))
            }
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut total = SampleChecks::default();
    for check in checks {
        let (found, placements, placed) = check?;
        total.found += u32::from(found);
        total.placements += placements as u32;
        total.placed += placed;
    }
    Ok(total)
}
