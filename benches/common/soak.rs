//! What the soak benchmarks share: samples of a process's memory and descriptors, its metrics,
//! and churn of a local network of in-process peers.

use std::time::Duration;

use parsec_actors::{DhtConfig, DhtHandle};
use rand::{seq::SliceRandom, Rng};

/// What one process holds at one moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) rss_mib: f64,
    pub(crate) fds: usize,
}

/// Resident memory (`/proc/<pid>/status`) and open descriptors (`/proc/<pid>/fd`) of `pid`.
pub(crate) fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    Sample {
        rss_mib: rss_kib / 1024.0,
        fds,
    }
}

/// The Prometheus text a process serves at `http://{metrics}/metrics` (empty when unreachable).
pub(crate) fn scrape(metrics: &str) -> String {
    std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://{metrics}/metrics")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The sum of every series whose line starts with `prefix` (0 without one).
pub(crate) fn metric_sum(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Open libp2p connections: established minus closed, from libp2p's counters.
pub(crate) fn open_connections(body: &str) -> f64 {
    metric_sum(body, "libp2p_swarm_connections_established_total")
        - metric_sum(body, "libp2p_swarm_connections_duration_seconds_count")
}

async fn spawn_joining(
    config: &DhtConfig,
    seeds: Vec<parsec_actors::Multiaddr>,
    runtime: &tokio::runtime::Handle,
) -> Option<DhtHandle> {
    let mut config = config.clone();
    config.set_bootstrap(seeds);
    let peer = DhtHandle::spawn(config, runtime).await.ok()?;
    tokio::time::timeout(Duration::from_secs(10), peer.join(Duration::from_millis(500)))
        .await
        .ok()?
        .ok()?;
    Some(peer)
}

/// Churn: `count` peers leave for good and as many new ones join through live peers; returns
/// how many left and joined.
pub(crate) async fn churn_peers(
    peers: &mut Vec<DhtHandle>,
    count: usize,
    config: &DhtConfig,
    runtime: &tokio::runtime::Handle,
    rng: &mut impl Rng,
) -> (usize, usize) {
    let mut left = 0;
    for _ in 0..count.min(peers.len().saturating_sub(10)) {
        let leaving = peers.swap_remove(rng.gen_range(0..peers.len()));
        let _ = leaving.shutdown().await;
        left += 1;
    }
    let joining: Vec<_> = (0..count)
        .map(|_| {
            let seeds: Vec<_> = peers
                .choose_multiple(rng, 3)
                .map(|p| p.dialable_addrs()[0].clone())
                .collect();
            spawn_joining(config, seeds, runtime)
        })
        .collect();
    let mut joined = 0;
    for peer in futures::future::join_all(joining).await.into_iter().flatten() {
        peers.push(peer);
        joined += 1;
    }
    (left, joined)
}
