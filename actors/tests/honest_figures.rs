//! The figures against independent observations, on delayed links (100 ms round trips), for
//! every client:
//!
//! - a provide counts a store only once the peer has the record: when the provide returns, the
//!   storing peers themselves have counted at least `record_peers` inbound ADD_PROVIDERs, and the
//!   provide took its lookup and the stores' round trip;
//! - a retrieval by a node that holds the record itself (server mode, among the closest peers)
//!   still looks it up in the network: at least one request and one round trip.

use std::time::Duration;

use parsec_actors::{
    local_network::{self, dht_runtime, TransportKind},
    testing::add_providers_read,
    Connections, ContentId, DhtClient, DhtConfig, DhtHandle, DhtMode,
};
use tokio::runtime::Handle;

/// With the four nodes, 18 server peers: every one is among the `K` closest of any key.
const BACKGROUND_PEERS: usize = 14;
const RTT: Duration = Duration::from_millis(100);

fn config(client: DhtClient) -> DhtConfig {
    let mut config = DhtConfig::default();
    config
        .set_mode(DhtMode::Server)
        .set_client(client)
        .set_latency(Some(RTT))
        .set_periodic_bootstrap(None)
        .set_provide_timeout(Duration::from_secs(30))
        .set_retrieve_timeout(Duration::from_secs(30));
    local_network::local_peer_config(&config, TransportKind::Memory)
}

/// The background network with `nodes` wired in and joined (fullrt's join waits for its crawl).
async fn network(nodes: &[DhtConfig], runtime: &Handle) -> (Vec<DhtHandle>, Vec<DhtHandle>) {
    let background = config(DhtClient::Libp2p);
    local_network::spawn_with_nodes(
        BACKGROUND_PEERS,
        &background,
        nodes,
        runtime,
        Duration::from_secs(60),
    )
    .await
    .unwrap()
}

#[test]
fn stores_count_when_the_peers_have_the_record_and_lookups_cross_the_network() {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let (background, handles) = network(&DhtClient::ALL.map(config), &handle).await;
        let nodes: Vec<(DhtClient, DhtHandle)> = DhtClient::ALL.into_iter().zip(handles.clone()).collect();
        let all: Vec<&DhtHandle> = background.iter().chain(&handles).collect();

        for (client, provider) in &nodes {
            let cid = ContentId::for_content(format!("honest {client}").as_bytes());
            let before = add_providers_read(&all);
            let provided = provider.provide(cid.clone()).await.unwrap();
            // Read at once: what the peers had received when the provide returned.
            let received = add_providers_read(&all) - before;
            assert_eq!(provided.error, None, "{client}: {provided:?}");
            let stored = u64::from(provided.record_peers.unwrap());
            assert!(stored >= 1, "{client}: {provided:?}");
            assert!(
                received >= stored,
                "{client}: counted {stored} stores, but the peers had read {received} ADD_PROVIDERs \
                 when the provide returned"
            );
            // The stores' round trip, after a lookup's at least (fullrt has no lookup).
            let round_trips = if *client == DhtClient::ALL[3] { 1 } else { 2 };
            assert!(
                provided.duration >= RTT * round_trips,
                "{client}: a provide of {:?} on {RTT:?} links",
                provided.duration
            );

            // Server-mode nodes of a network this small are among the closest peers of any key:
            // every other node holds the record now. Each still asks the network.
            for (retriever_client, retriever) in nodes.iter().filter(|(c, _)| c != client) {
                let found = retriever.retrieve(cid.clone()).await.unwrap();
                assert_eq!(found.error, None, "{retriever_client} finding {client}'s record");
                assert_eq!(found.provider, Some(provider.peer_id()));
                assert!(
                    found.counts.requests >= 1 && found.duration >= RTT,
                    "{retriever_client} finding {client}'s record: {found:?}"
                );
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Warm and cold connections, told apart by the peers themselves: a second lookup of the same
/// key from a cold node dials again (the peers count new connections), from a warm one it reuses
/// what the first lookup opened.
#[test]
fn a_cold_node_dials_afresh_for_every_lookup_and_a_warm_one_reuses_its_connections() {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let configs = Connections::ALL.map(|connections| {
            let mut node = config(DhtClient::Libp2p);
            // Client mode: the background never dials the measured nodes by itself.
            node.set_mode(DhtMode::Client).set_connections(connections);
            node
        });
        let (background, nodes) = network(&configs, &handle).await;
        let connections_at_background = || background.iter().map(|p| p.load().connections).sum::<u64>();

        let cid = ContentId::for_content(b"warm or cold");
        let provided = background[0].provide(cid.clone()).await.unwrap();
        assert_eq!(provided.error, None, "{provided:?}");
        let mut second_lookup_dials = Vec::new();
        for (node, connections) in nodes.iter().zip(Connections::ALL) {
            assert_eq!(node.connections(), connections);
            let first = node.retrieve(cid.clone()).await.unwrap();
            assert_eq!(first.error, None, "{connections}: {first:?}");
            let before = connections_at_background();
            let second = node.retrieve(cid.clone()).await.unwrap();
            assert_eq!(second.error, None, "{connections}: {second:?}");
            second_lookup_dials.push(connections_at_background() - before);
        }
        let (warm, cold) = (second_lookup_dials[0], second_lookup_dials[1]);
        assert!(
            cold >= 1 && warm < cold,
            "connections the second lookup opened: warm {warm}, cold {cold}"
        );
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}
