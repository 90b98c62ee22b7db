//! A peer that shuts down answers the operations in flight as cancelled (no measurement), and
//! refuses later ones.

use std::time::Duration;

use parsec_actors::{
    local_network::{self, dht_runtime, TransportKind},
    ContentId, DhtConfig, DhtError, DhtMode,
};

#[test]
fn shutdown_cancels_operations_in_flight() {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        // A 2 s RTT keeps the lookup in flight while the peer shuts down.
        let mut template = DhtConfig::default();
        template
            .set_mode(DhtMode::Server)
            .set_periodic_bootstrap(None)
            .set_latency(Some(Duration::from_secs(2)));
        let config = local_network::local_peer_config(&template, TransportKind::Memory);
        let peers = local_network::spawn_converged(4, &config, runtime.handle())
            .await
            .unwrap();

        let peer = peers[0].clone();
        let lookup = tokio::spawn(async move {
            peer.retrieve(ContentId::for_content(b"nobody provides this"))
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        peers[0].shutdown().await.unwrap();

        let answer = tokio::time::timeout(Duration::from_secs(1), lookup)
            .await
            .expect("the cancelled lookup answered at once")
            .unwrap();
        assert!(matches!(answer, Err(DhtError::Cancelled)), "{answer:?}");
        let later = peers[0].retrieve(ContentId::for_content(b"later")).await;
        assert!(matches!(later, Err(DhtError::Stopped)), "{later:?}");
    });
}
