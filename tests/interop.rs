//! Other implementations as the bootstrap peer. A js-libp2p kad-dht node (npm, `tests/js`) with
//! an RSA identity, as the IPFS Amino bootstrappers have: our nodes join through it, count it in
//! their routing tables, and provide and find a record through it.
//!
//! Our engine (classic, optprov, fullrt) and the js-libp2p and py-libp2p (PyPI, `tests/py`)
//! clients find each other's records, and the records a sweep sends in batches.
//!
//! Gossipsub: our peers and a js-libp2p gossipsub peer (`@libp2p/gossipsub`, the successor of
//! `@chainsafe/libp2p-gossipsub` for libp2p 3) share a mesh, and messages cross both ways.
//!
//! `.ci/run` installs the npm packages (`npm ci --prefix tests/js`) and py-libp2p in a virtualenv
//! (`tests/py/.venv`).

use std::{process::Command, time::Duration};

use parsec::testing::peer_scripts::{js_gossip_peer, js_kad_peer, py_kad_peer, ListeningPeer, JS_DIR};
use parsec_actors::{
    local_network::{dht_runtime, TransportKind},
    testing::retrieve_until_found,
    ContentId, DhtClient, DhtConfig, DhtHandle, DhtMode, Multiaddr, ReprovideStrategy, Strategy,
};

/// A peer on loopback TCP in `mode` with `client`, joining through `bootstrap`.
fn joining(bootstrap: Multiaddr, mode: DhtMode, client: DhtClient) -> DhtConfig {
    let mut config = DhtConfig::default();
    config
        .set_mode(mode)
        .set_client(client)
        .set_listen(vec![TransportKind::Tcp.listen_addr()])
        .set_announce_listen_addrs(true)
        .set_periodic_bootstrap(None)
        .set_bootstrap(vec![bootstrap])
        .set_provide_timeout(Duration::from_secs(20))
        .set_retrieve_timeout(Duration::from_secs(20));
    config
}

#[test]
fn our_nodes_join_and_measure_through_a_js_libp2p_peer_with_an_rsa_identity() {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        let (js, key) = js_kad_peer().await.unwrap();
        assert_eq!(key, "RSA");
        let spawn = |bootstrap: Multiaddr| {
            DhtHandle::spawn(
                joining(bootstrap, DhtMode::Client, DhtClient::Libp2p),
                runtime.handle(),
            )
        };
        let provider = spawn(js.address.clone()).await.unwrap();
        let retriever = spawn(js.address.clone()).await.unwrap();
        for node in [&provider, &retriever] {
            let reached =
                tokio::time::timeout(Duration::from_secs(30), node.join(Duration::from_millis(500)))
                    .await
                    .expect("joined through the js peer in time")
                    .unwrap();
            assert_eq!(reached, 1, "the js peer is in the routing table");
        }

        let cid = ContentId::for_content(b"provided through js-libp2p");
        let provided = provider.provide(cid.clone()).await.unwrap();
        assert_eq!(provided.error, None);
        assert_eq!(provided.record_peers, Some(1), "the js peer took the record");
        let found = retrieve_until_found(&retriever, &cid, 11, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(found.error, None, "the js peer did not hand out the record");
        assert_eq!(found.provider, Some(provider.peer_id()));
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn our_engine_and_js_libp2p_find_each_others_records() {
    let runtime = dht_runtime(2).unwrap();
    let (js, _) = runtime.block_on(js_kad_peer()).unwrap();
    engine_and_other_find_each_others_records(js, runtime, BatchedStores::AllRead);
}

#[test]
fn our_engine_and_py_libp2p_find_each_others_records() {
    let runtime = dht_runtime(2).unwrap();
    let py = runtime.block_on(py_kad_peer()).unwrap();
    engine_and_other_find_each_others_records(py, runtime, BatchedStores::RateLimited);
}

/// Our engine against another implementation's kad-dht, both ways: nodes running `classic`,
/// `optprov` and `fullrt` join through its peer; each finds what the others stored, and so does the
/// other peer's own client; then the other peer publishes and every one of them finds its record;
/// then one of ours sweeps 50 records and the other peer finds them.
fn engine_and_other_find_each_others_records(
    mut other: ListeningPeer,
    runtime: tokio::runtime::Runtime,
    batches: BatchedStores,
) {
    let strategies = [
        Strategy::Classic,
        Strategy::Optimistic,
        Strategy::FullRoutingTable,
    ];
    let nodes: Vec<DhtHandle> = runtime.block_on(async {
        let mut nodes = Vec::new();
        for strategy in strategies {
            let config = joining(
                other.address.clone(),
                DhtMode::Server,
                DhtClient::Engine(strategy),
            );
            let node = DhtHandle::spawn(config, runtime.handle()).await.unwrap();
            // fullrt joins once its crawl of the other peer's table finished.
            tokio::time::timeout(Duration::from_secs(30), node.join(Duration::from_millis(500)))
                .await
                .expect("joined through the other peer in time")
                .unwrap();
            nodes.push(node);
        }
        for (index, provider) in nodes.iter().enumerate() {
            let cid = ContentId::for_content(format!("engine record {index}").as_bytes());
            let provided = provider.provide(cid.clone()).await.unwrap();
            assert_eq!(provided.error, None, "{:?} provide", strategies[index]);
            assert!(provided.record_peers.unwrap_or(0) >= 1);
            for (other, retriever) in nodes.iter().enumerate().filter(|(i, _)| *i != index) {
                let found = retrieve_until_found(retriever, &cid, 5, Duration::from_millis(200))
                    .await
                    .unwrap();
                assert_eq!(
                    found.error, None,
                    "{:?} finds {:?}'s record",
                    strategies[other], strategies[index]
                );
                assert_eq!(found.provider, Some(provider.peer_id()));
            }
        }
        nodes
    });

    for (index, provider) in nodes.iter().enumerate() {
        let cid = ContentId::for_content(format!("engine record {index}").as_bytes());
        let found = runtime
            .block_on(other.find(&cid))
            .expect("the other peer finds our record");
        assert_eq!(found, provider.peer_id(), "{:?}", strategies[index]);
    }
    let cid = ContentId::for_content(b"published by the other implementation");
    runtime
        .block_on(other.provide(&cid))
        .expect("the other peer published its record");
    runtime.block_on(async {
        for (node, strategy) in nodes.iter().zip(strategies) {
            let found = retrieve_until_found(node, &cid, 5, Duration::from_millis(200))
                .await
                .unwrap();
            assert_eq!(found.error, None, "{strategy:?} finds the other peer's record");
            assert_eq!(found.provider, Some(other.peer_id), "{strategy:?}");
        }
    });
    // A sweep sends each peer its records as a batch of ADD_PROVIDERs on one stream: the other
    // implementation reads them all (in a network this small every peer stores every record).
    let swept: Vec<ContentId> = (0..50)
        .map(|i| ContentId::for_content(format!("swept record {i}").as_bytes()))
        .collect();
    let sweeper = &nodes[0];
    let round = runtime
        .block_on(sweeper.reprovide(&swept, ReprovideStrategy::Sweep, 1))
        .unwrap();
    assert_eq!(round.keys, swept.len());
    eprintln!("{batches:?}: {round:?}");
    let our_copies = 2 * swept.len() as u64;
    match batches {
        BatchedStores::AllRead => {
            assert_eq!(round.failures, 0, "{round:?}");
            assert_eq!(round.copies_stored, our_copies + swept.len() as u64, "{round:?}");
        }
        // py-libp2p echoes each ADD_PROVIDER it takes, 10 per peer in 10 s, then resets the
        // stream: only the echoed count as stored (our two other nodes stored every record).
        BatchedStores::RateLimited => {
            let taken = round.copies_stored - our_copies;
            assert!((1..swept.len() as u64).contains(&taken), "{round:?}");
            assert_eq!(round.failures, swept.len() as u64 - taken, "{round:?}");
        }
    }
    for cid in swept.iter().step_by(10) {
        // py-libp2p's own lookups fail once it has reset the sweeper's stream ("No valid
        // connections available for peer"): there only our other node looks them up.
        if let BatchedStores::AllRead = batches {
            let found = runtime
                .block_on(other.find(cid))
                .expect("the other peer finds a swept record");
            assert_eq!(found, sweeper.peer_id());
        }
        let found = runtime
            .block_on(retrieve_until_found(
                &nodes[1],
                cid,
                5,
                Duration::from_millis(200),
            ))
            .unwrap();
        assert_eq!(
            found.provider,
            Some(sweeper.peer_id()),
            "our other node finds it too"
        );
    }
    drop(nodes);
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// What another implementation does with a batch of ADD_PROVIDERs on one stream.
#[derive(Clone, Copy, Debug)]
enum BatchedStores {
    /// Reads and stores every one (go-libp2p-kad-dht, js-libp2p, rust-libp2p).
    AllRead,
    /// Resets the stream past its rate limit (py-libp2p: 10 per peer in 10 s).
    RateLimited,
}

/// rust-libp2p and js-libp2p gossipsub peers in one mesh: a message published by ours reaches
/// the js peer, and one published by the js peer reaches all of ours, both named by the same id.
#[test]
fn gossipsub_messages_cross_between_rust_and_js_libp2p_both_ways() {
    use parsec_actors::{
        local_network::{connect_randomly, pubsub_test_config, spawn_peers, subscribe_and_form_mesh},
        pubsub::{MessageId, PubsubConfig},
    };
    const TOPIC: &str = "parsec-interop";
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let mut js = js_gossip_peer().await.unwrap().script;
        let ours = spawn_peers(
            3,
            &pubsub_test_config(PubsubConfig::default(), TransportKind::Tcp),
            &handle,
            |_| {},
        )
        .await
        .unwrap();
        connect_randomly(&ours, 2, &mut rand::thread_rng()).await.unwrap();
        // The js peer dials ours: js-libp2p limits how fast one host may dial it.
        for peer in &ours {
            let address = peer.dialable_addrs().remove(0);
            js.ask(&format!("dial {address}"), &format!("dialed {address}"))
                .await
                .unwrap();
        }
        js.ask(&format!("subscribe {TOPIC}"), &format!("subscribed {TOPIC}"))
            .await
            .unwrap();
        subscribe_and_form_mesh(&ours, TOPIC, 1, Duration::from_secs(20))
            .await
            .unwrap();
        // Each of ours knows the two others and the js peer as subscribers.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for peer in &ours {
            while peer.topic_peers(TOPIC).await.unwrap().subscribed < 3 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the js peer's subscription never came"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        // Ours to js.
        let id = MessageId::new();
        let published = ours[0]
            .publish(TOPIC, id.payload(256, &mut rand::thread_rng()))
            .await
            .unwrap();
        assert!(published.topic_peers >= 3, "{published:?}");
        let received = js.await_first_copy(id, Duration::from_secs(20)).await.unwrap();
        assert_eq!(
            received.from,
            ours[0].peer_id().to_string(),
            "signed by its author"
        );
        let copies = js
            .ask(&format!("copies {id}"), &format!("copies {id} "))
            .await
            .unwrap();
        let copies: u32 = copies.trim().parse().unwrap();
        assert!(copies >= 1);

        // js to ours.
        let id = MessageId::new();
        let recipients = js
            .ask(&format!("publish {TOPIC} {id} 256"), &format!("published {id} "))
            .await
            .unwrap();
        let recipients: usize = recipients.trim().parse().unwrap();
        assert!(recipients >= 1);
        for peer in &ours {
            let delivery = tokio::time::timeout(Duration::from_secs(10), peer.await_delivery(id))
                .await
                .expect("the js peer's message reached every one of ours")
                .unwrap();
            assert!(delivery.copies >= 1);
        }
    });
}

/// `parsec testnet --protocol gossipsub --js-peers`: js-libp2p peers in the mesh receive every
/// message, reported apart and stored under their implementation, over TCP and beside hosts that
/// reach each other in memory; the run's report splits deliveries by implementation.
#[test]
fn js_libp2p_peers_in_a_pubsub_testnet_are_reported_apart() {
    for transport in ["tcp", "memory"] {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("mix.sqlite");
        let report = dir.path().join("report");
        let output = Command::new(env!("CARGO_BIN_EXE_parsec"))
            .args([
                "testnet",
                "--protocol",
                "gossipsub",
                "--sweep-hosts",
                "8",
                "--messages",
                "4",
            ])
            .args([
                "--iterations",
                "2",
                "--transport",
                transport,
                "--heartbeat",
                "200ms",
                "--js-peers",
                "2",
            ])
            .arg("--js-peer-script")
            .arg(std::path::Path::new(JS_DIR).join("gossip-peer.mjs"))
            .args(["--no-progress", "--database-url"])
            .arg(format!("sqlite://{}", database.display()))
            .arg("--report")
            .arg(&report)
            .output()
            .unwrap();
        let stdout = parsec::testing::process::expect_success(&output);
        assert!(
            stdout.contains("js-libp2p: delivered 100.00%"),
            "{transport}: {stdout}"
        );
        let by_implementation = deliveries_by_implementation(&database);
        // 4 messages × 2 iterations: 7 rust receivers and 2 js ones, every copy delivered.
        assert_eq!(
            by_implementation,
            vec![
                ("js-libp2p".to_owned(), 16, 16),
                ("rust-libp2p".to_owned(), 56, 56)
            ],
            "{transport}: {stdout}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
        let delivery = json["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == "delivery")
            .unwrap();
        let reported: Vec<(String, u64, u64)> = delivery["by_implementation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["key"].as_str().unwrap().to_owned(),
                    g["attempts"].as_u64().unwrap(),
                    g["successes"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            reported,
            [
                ("js-libp2p".to_owned(), 16, 16),
                ("rust-libp2p".to_owned(), 56, 56)
            ],
            "{transport}"
        );
        assert!(
            report.join("charts/cdf-delivery-implementation.svg").exists(),
            "{transport}: the report draws the implementations' CDFs"
        );
    }
}

#[derive(diesel::QueryableByName)]
struct ImplementationCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    implementation: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    delivered: i64,
}

fn deliveries_by_implementation(database: &std::path::Path) -> Vec<(String, i64, i64)> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    let counts: Vec<ImplementationCount> = diesel::sql_query(
        "SELECT implementation, count(*) AS rows, sum(error IS NULL AND copies >= 1) AS delivered \
         FROM pubsub_deliveries_ecs GROUP BY implementation ORDER BY implementation",
    )
    .load(&mut conn)
    .unwrap();
    counts
        .into_iter()
        .map(|c| (c.implementation, c.rows, c.delivered))
        .collect()
}
