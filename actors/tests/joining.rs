//! Joining a network honestly: bootstrap peers of every key type found on public networks, and
//! what a node reports when its only bootstrap peer cannot be reached.

use std::{process::Command, time::Duration};

use parsec_actors::{
    identity::Keypair,
    local_network::{dht_runtime, TransportKind},
    multiaddr::Protocol,
    testing::retrieve_until_found,
    ContentId, DhtConfig, DhtHandle, DhtMode, Multiaddr, PeerId, NO_PEER_REACHED,
};
use tokio::runtime::Handle;

/// A peer on loopback TCP in `mode`, with `keypair` (a fresh Ed25519 one when `None`), joining
/// through `bootstrap`.
async fn spawn(
    mode: DhtMode,
    keypair: Option<Keypair>,
    bootstrap: Vec<Multiaddr>,
    runtime: &Handle,
) -> DhtHandle {
    let mut config = DhtConfig::default();
    config
        .set_mode(mode)
        .set_listen(vec![TransportKind::Tcp.listen_addr()])
        .set_announce_listen_addrs(true)
        .set_periodic_bootstrap(None)
        .set_bootstrap(bootstrap)
        .set_retrieve_timeout(Duration::from_secs(10))
        .set_provide_timeout(Duration::from_secs(10));
    if let Some(keypair) = keypair {
        config.set_keypair(keypair);
    }
    DhtHandle::spawn(config, runtime).await.unwrap()
}

/// An RSA key made here, as PKCS#8 DER (libp2p can use RSA keys but not generate them).
fn rsa_keypair() -> Keypair {
    // genpkey writes PKCS#8 only as PEM (its DER is PKCS#1); pkcs8 -topk8 gives PKCS#8 DER.
    let output = Command::new("sh")
        .args([
            "-c",
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null \
             | openssl pkcs8 -topk8 -nocrypt -outform DER",
        ])
        .output()
        .expect("openssl is installed");
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut der = output.stdout;
    Keypair::rsa_from_pkcs8(&mut der).unwrap()
}

/// A provider and a retriever (Ed25519 DHT clients, as parsec servers run by default) join
/// through one bootstrap peer with `keypair`; the record goes through it both ways.
fn nodes_join_through_a_bootstrap_peer_with(keypair: Keypair) {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        let handle = runtime.handle();
        let bootstrap = spawn(DhtMode::Server, Some(keypair.clone()), vec![], handle).await;
        assert_eq!(bootstrap.peer_id(), keypair.public().to_peer_id());
        let address = bootstrap.dialable_addrs()[0].clone();
        let provider = spawn(DhtMode::Client, None, vec![address.clone()], handle).await;
        let retriever = spawn(DhtMode::Client, None, vec![address], handle).await;
        // Before joining, the bootstrap entry is known but not reached: not ready.
        assert_eq!(provider.routing_table_size().await.unwrap(), 0);

        for node in [&provider, &retriever] {
            let reached = tokio::time::timeout(Duration::from_secs(20), node.join(Duration::from_secs(1)))
                .await
                .expect("joined in time")
                .unwrap();
            assert_eq!(reached, 1, "the routing table holds the bootstrap peer");
        }

        let cid = ContentId::for_content(b"joined through one bootstrap peer");
        let provided = provider.provide(cid.clone()).await.unwrap();
        assert_eq!(provided.error, None);
        assert_eq!(
            provided.record_peers,
            Some(1),
            "the record went to the one DHT server"
        );
        let found = retrieve_until_found(&retriever, &cid, 6, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(found.error, None);
        assert_eq!(found.provider, Some(provider.peer_id()));
        assert!(found.counts.successes >= 1);
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn a_bootstrap_peer_with_an_rsa_identity() {
    nodes_join_through_a_bootstrap_peer_with(rsa_keypair());
}

#[test]
fn a_bootstrap_peer_with_an_ecdsa_identity() {
    nodes_join_through_a_bootstrap_peer_with(Keypair::generate_ecdsa());
}

#[test]
fn a_bootstrap_peer_with_a_secp256k1_identity() {
    nodes_join_through_a_bootstrap_peer_with(Keypair::generate_secp256k1());
}

/// The isolated node: its only bootstrap peer refuses connections. It must not call itself
/// joined, and what it measures must say that nothing was reached.
#[test]
fn an_unreachable_bootstrap_peer_is_not_a_peer() {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let nobody: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let nobody = nobody.with(Protocol::P2p(PeerId::random()));
        let node = spawn(DhtMode::Client, None, vec![nobody], runtime.handle()).await;

        let joined =
            tokio::time::timeout(Duration::from_secs(3), node.join(Duration::from_millis(500))).await;
        assert!(joined.is_err(), "joined a network of nobody: {joined:?}");
        assert_eq!(node.routing_table_size().await.unwrap(), 0);

        let cid = ContentId::for_content(b"nobody will store this");
        let provided = node.provide(cid.clone()).await.unwrap();
        assert_eq!(provided.error.as_deref(), Some(NO_PEER_REACHED));
        assert_eq!(provided.record_peers, Some(0));
        let found = node.retrieve(cid).await.unwrap();
        assert_eq!(found.error.as_deref(), Some(NO_PEER_REACHED));
        assert_eq!(found.provider, None);
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// A server that does not announce where it listens finds its public address: peers observe it
/// (identify), and once one of them dials it back (AutoNAT v2) it becomes the address provider
/// records carry.
#[test]
fn observed_addresses_become_external_once_a_peer_dials_them_back() {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        let handle = runtime.handle();
        let quic = |mode: DhtMode, bootstrap: Vec<Multiaddr>| {
            let mut config = DhtConfig::default();
            config
                .set_mode(mode)
                .set_listen(vec![TransportKind::Quic.listen_addr()])
                .set_periodic_bootstrap(None)
                .set_bootstrap(bootstrap);
            config
        };
        let mut helpers = Vec::new();
        for _ in 0..3 {
            let mut config = quic(
                DhtMode::Server,
                helpers
                    .iter()
                    .map(|h: &DhtHandle| h.dialable_addrs()[0].clone())
                    .collect(),
            );
            config.set_announce_listen_addrs(true);
            let helper = DhtHandle::spawn(config, handle).await.unwrap();
            if !helpers.is_empty() {
                helper.join(Duration::from_millis(200)).await.unwrap();
            }
            helpers.push(helper);
        }
        let mut config = quic(DhtMode::Server, vec![helpers[0].dialable_addrs()[0].clone()]);
        config.set_confirm_external_addrs(true);
        let node = DhtHandle::spawn(config, handle).await.unwrap();
        assert!(
            node.external_addresses().await.unwrap().is_empty(),
            "announced before anyone confirmed"
        );
        node.join(Duration::from_millis(200)).await.unwrap();

        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        let confirmed = loop {
            let addresses = node.external_addresses().await.unwrap();
            if !addresses.is_empty() || tokio::time::Instant::now() > deadline {
                break addresses;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let listening = node.listen_addrs()[0].clone();
        assert_eq!(confirmed, vec![listening], "no address was dialled back");
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}
