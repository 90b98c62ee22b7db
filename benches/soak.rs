//! Weeks of uptime, compressed: one `parsec server dht` process inside a local network of
//! in-process libp2p peers (QUIC, converged) with churn, for a fixed number of rounds. Each round
//! the server provides (a peer looks the record up), a peer provides (the server looks it up),
//! and peers leave and join. The server's resident memory, open file descriptors and open
//! libp2p connections are printed at the start, every tenth of the run and at the end: memory
//! must level off, not grow with the rounds.
//!
//! Run: `cargo bench --bench soak` (options: `-- --peers 500 --rounds 400 --churn 5`).

#[path = "common/args.rs"]
mod args;
#[path = "common/soak.rs"]
mod soak;

use args::option;
use std::time::{Duration, Instant};

use base64::Engine;
use parsec::testing::process::{wait_until, ServerProcess};
use parsec_actors::{
    local_network::{self, dht_runtime, TransportKind},
    random_content, ContentId, DhtConfig, DhtHandle, DhtMode,
};
use rand::{seq::SliceRandom, Rng};
use serde_json::{json, Value};

/// What the server process holds at one moment.
#[derive(Clone, Copy, Debug)]
struct ServerSample {
    rss_mib: f64,
    fds: usize,
    connections: f64,
}

fn server_sample(pid: u32, metrics: &str) -> ServerSample {
    let process = soak::sample(pid);
    ServerSample {
        rss_mib: process.rss_mib,
        fds: process.fds,
        connections: soak::open_connections(&soak::scrape(metrics)),
    }
}

/// Tallies of one kind of operation.
#[derive(Default)]
struct Tally {
    ok: usize,
    total: usize,
    seconds: Vec<f64>,
}

impl Tally {
    fn add(&mut self, ok: bool, seconds: f64) {
        self.total += 1;
        if ok {
            self.ok += 1;
            self.seconds.push(seconds);
        }
    }

    fn summary(&mut self) -> String {
        self.seconds.sort_by(f64::total_cmp);
        let p50 = self
            .seconds
            .get(self.seconds.len() / 2)
            .copied()
            .unwrap_or(f64::NAN);
        format!("{}/{} ok, p50 {:.3}s", self.ok, self.total, p50)
    }
}

/// One request to the server's API: whether its measurement succeeded, and how long it took (s).
async fn server_operation(client: &awc::Client, url: String, body: &Value) -> (bool, f64) {
    let answer: Option<Value> = match client.post(url).send_json(body).await {
        Ok(mut response) => response.json().await.ok(),
        Err(_) => None,
    };
    let measurement = answer.as_ref().map(|v| &v["Measurements"][0]);
    (
        measurement.is_some_and(|m| m["Error"] == ""),
        measurement.and_then(|m| m["Duration"].as_f64()).unwrap_or(0.0) / 1e9,
    )
}

/// The server's memory, descriptors and connections at the start, the middle and the end.
fn print_trend(samples: &[(usize, ServerSample)]) {
    let first = samples[0].1;
    let middle = samples[samples.len() / 2].1;
    let end = samples[samples.len() - 1].1;
    let peak = samples.iter().map(|(_, s)| s.rss_mib).fold(0.0, f64::max);
    println!(
        "server RSS: start {:.1} MiB, middle {:.1} MiB, end {:.1} MiB, peak {:.1} MiB; \
         second half {:+.1}% (end/middle {:.3})",
        first.rss_mib,
        middle.rss_mib,
        end.rss_mib,
        peak,
        (end.rss_mib / middle.rss_mib - 1.0) * 100.0,
        end.rss_mib / middle.rss_mib
    );
    println!(
        "server fds: start {}, middle {}, end {}; open connections: start {:.0}, middle {:.0}, end {:.0}",
        first.fds, middle.fds, end.fds, first.connections, middle.connections, end.connections
    );
}

/// The server process under test, joining through three of `peers`, registering in `database`.
fn start_server(peers: &[DhtHandle], database: &std::path::Path) -> ServerProcess {
    let database = format!("sqlite://{}", database.display());
    let seeds: Vec<String> = peers
        .iter()
        .take(3)
        .map(|p| p.dialable_addrs()[0].to_string())
        .collect();
    let server = ServerProcess::start(&[
        "--database-url",
        &database,
        "--bootstrap",
        &seeds.join(","),
        "--heartbeat-interval",
        "5s",
    ]);
    assert!(
        wait_until(Duration::from_secs(60), || server.health()),
        "the server never became ready"
    );
    server
}

/// One round: the server provides and a peer looks the record up; a peer provides and the server
/// looks it up. Returns (succeeded, seconds) of the server's provide, the peer's lookup and the
/// server's lookup.
async fn measure_both_ways(
    client: &awc::Client,
    server: &str,
    peers: &[DhtHandle],
    rng: &mut impl Rng,
) -> [(bool, f64); 3] {
    let content = random_content(rng);
    let cid = ContentId::for_content(&content);
    let body = json!({"Content": base64::engine::general_purpose::STANDARD.encode(&content)});
    let server_provide = server_operation(client, format!("{server}/provide"), &body).await;
    let looker = peers.choose(rng).unwrap().clone();
    let found = looker.retrieve(cid).await;
    let peer_lookup = (
        found.as_ref().is_ok_and(|o| o.error.is_none()),
        found.as_ref().map_or(0.0, |o| o.duration.as_secs_f64()),
    );

    let cid = ContentId::for_content(&random_content(rng));
    let provider = peers.choose(rng).unwrap().clone();
    let _ = provider.provide(cid.clone()).await;
    let server_lookup = server_operation(client, format!("{server}/retrieve/{cid}"), &json!({})).await;
    [server_provide, peer_lookup, server_lookup]
}

fn main() {
    let peer_count = option("--peers", 500);
    let rounds = option("--rounds", 400);
    let churn = option("--churn", 5);
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    actix::System::new().block_on(async move {
        let mut template = DhtConfig::default();
        template.set_mode(DhtMode::Server).set_periodic_bootstrap(None);
        let config = local_network::local_peer_config(&template, TransportKind::Quic);
        let started = Instant::now();
        let mut peers = local_network::spawn_converged(peer_count, &config, &handle)
            .await
            .unwrap();
        println!("{peer_count} peers up in {:.1}s", started.elapsed().as_secs_f64());

        let dir = tempfile::tempdir().unwrap();
        let server = start_server(&peers, &dir.path().join("soak.sqlite"));
        let pid = server.child.id();
        let client = awc::Client::builder().timeout(Duration::from_secs(120)).finish();
        let mut rng = rand::thread_rng();

        println!(
            "\n{:>6} {:>9} {:>5} {:>6}  operations so far",
            "round", "RSS MiB", "fds", "conns"
        );
        let mut samples = vec![(0, server_sample(pid, &server.metrics))];
        let first = samples[0].1;
        println!(
            "{:>6} {:>9.1} {:>5} {:>6.0}",
            0, first.rss_mib, first.fds, first.connections
        );
        let (mut server_provides, mut peer_lookups, mut server_lookups) =
            (Tally::default(), Tally::default(), Tally::default());
        let (mut left, mut joined) = (0usize, 0usize);
        for round in 1..=rounds {
            let measured = measure_both_ways(&client, &server.http, &peers, &mut rng).await;
            server_provides.add(measured[0].0, measured[0].1);
            peer_lookups.add(measured[1].0, measured[1].1);
            server_lookups.add(measured[2].0, measured[2].1);

            let (gone, new) = soak::churn_peers(&mut peers, churn, &config, &handle, &mut rng).await;
            left += gone;
            joined += new;

            if round % (rounds / 10).max(1) == 0 || round == rounds {
                let now = server_sample(pid, &server.metrics);
                samples.push((round, now));
                println!(
                    "{round:>6} {:>9.1} {:>5} {:>6.0}  provide {}; peer lookup {}; server lookup {}",
                    now.rss_mib,
                    now.fds,
                    now.connections,
                    server_provides.summary(),
                    peer_lookups.summary(),
                    server_lookups.summary()
                );
            }
        }

        println!(
            "\n{rounds} rounds, {left} peers left and {joined} joined, {:.0}s",
            started.elapsed().as_secs_f64()
        );
        print_trend(&samples);
        drop(server);
        drop(peers);
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
}
