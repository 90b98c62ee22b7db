//! The star topology of the bootstrap-load experiment, and the per-peer load it is measured by:
//! every peer's first connection is to the hub, and the hub carries the others' requests.

use std::time::Duration;

use parsec_actors::{
    dht::load::RequestKind,
    local_network::{dht_runtime, local_peer_config, spawn_peers, wire, LocalPeer, StartMode, TransportKind},
    ContentId, DhtConfig, DhtMode,
};

#[test]
fn in_a_star_every_peer_first_connects_to_the_hub_which_carries_the_load() {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let mut template = DhtConfig::default();
        template
            .set_mode(DhtMode::Server)
            .set_periodic_bootstrap(None)
            .set_retrieve_timeout(Duration::from_secs(20));
        // QUIC: real sockets, one per peer.
        let config = local_peer_config(&template, TransportKind::Quic);
        let peers = spawn_peers(30, &config, &handle, |_| {}).await.unwrap();
        let local: Vec<LocalPeer> = LocalPeer::all_in(DhtMode::Server, &peers).collect();
        wire(&local, StartMode::Star, 20).await.unwrap();

        let hub = peers[0].peer_id();
        for peer in &peers[1..] {
            let load = peer.load();
            assert_eq!(load.first_connection, Some(hub), "{}: {load:?}", peer.peer_id());
            assert_eq!(
                load.connections,
                1,
                "{}: only the hub, nothing else yet",
                peer.peer_id()
            );
        }
        // The hub counts each connection when its own swarm sees it, which may come a moment
        // after the spoke's.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while peers[0].load().connections < 29 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(peers[0].load().connections, 29);

        // A provide and a lookup from two spokes find each other; the provider's first request
        // goes to the hub, its only contact. (The retriever may already know other spokes: the
        // provider's lookup dialled them, so its requests need not reach the hub.)
        let hub_before = peers[0].load();
        let cid = ContentId::for_content(b"star");
        let provided = peers[5].provide(cid.clone()).await.unwrap();
        assert_eq!(provided.error, None, "{provided:?}");
        let found = peers[17].retrieve(cid).await.unwrap();
        assert_eq!(found.provider, Some(peers[5].peer_id()), "{found:?}");
        let lookups_at_hub = |load: &parsec_actors::dht::load::LoadSnapshot| {
            let count = |kind: RequestKind| {
                let index = RequestKind::ALL.iter().position(|k| *k == kind).unwrap();
                load.requests[index] - hub_before.requests[index]
            };
            count(RequestKind::FindNode) + count(RequestKind::GetProviders)
        };
        // The hub counts a request when its own swarm reads it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while lookups_at_hub(&peers[0].load()) < 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let hub_after = peers[0].load();
        assert!(lookups_at_hub(&hub_after) >= 1, "{hub_after:?}");
        assert!(hub_after.bytes_in > hub_before.bytes_in && hub_after.bytes_out > hub_before.bytes_out);
        assert!(hub_after.cpu > Duration::ZERO);
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}
