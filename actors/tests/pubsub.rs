//! Gossipsub beside the DHT: in a stable network every subscribed peer receives every message,
//! once at least, and a peer that is not subscribed receives none.

use std::time::Duration;

use parsec_actors::{
    local_network::{
        connect_randomly, dht_runtime, local_peer_config, spawn_peers, subscribe_and_form_mesh, TransportKind,
    },
    pubsub::{publish_and_collect, MessageId, PublishPlan, PubsubConfig},
    DhtConfig, DhtError,
};
use rand::{rngs::StdRng, SeedableRng};

const TOPIC: &str = "parsec-test";

#[test]
fn every_subscribed_peer_receives_every_message_in_a_stable_network() {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let mut pubsub = PubsubConfig::default();
        // A fast heartbeat forms the mesh in a fraction of the test.
        pubsub.set_heartbeat(Duration::from_millis(200));
        let mut template = DhtConfig::default();
        template
            .set_periodic_bootstrap(None)
            .set_idle_connection_timeout(Duration::from_secs(600))
            .set_pubsub(Some(pubsub));
        let config = local_peer_config(&template, TransportKind::Memory);
        let peers = spawn_peers(31, &config, &handle, |_| {}).await.unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        connect_randomly(&peers, 6, &mut rng).await.unwrap();
        // The last peer is connected but never subscribes.
        let (subscribed, outsider) = peers.split_at(30);
        subscribe_and_form_mesh(subscribed, TOPIC, 4, Duration::from_secs(20))
            .await
            .unwrap();

        let plan = PublishPlan {
            topics: vec![TOPIC.to_owned()],
            messages: 20,
            message_bytes: 256,
            deadline: Duration::from_secs(10),
            linger: Duration::from_millis(400),
        };
        let report = publish_and_collect(&subscribed[0], &subscribed[1..], &plan, &mut rng)
            .await
            .unwrap();
        assert_eq!(report.delivered(), (20 * 29, 20 * 29), "{report:#?}");
        for message in &report.messages {
            let published = message.published.as_ref().unwrap();
            assert!(
                published.topic_peers >= 1 && published.mesh_peers >= 1,
                "{published:?}"
            );
            for receipt in &message.receipts {
                assert!(receipt.copies >= 1, "{receipt:?}");
                assert!(receipt.latency.unwrap() < plan.deadline, "{receipt:?}");
                assert!(receipt.from.is_some(), "{receipt:?}");
            }
        }
        // Flood publish reaches the publisher's neighbours in one hop.
        let direct = report.messages[0]
            .receipts
            .iter()
            .filter(|r| r.from == Some(subscribed[0].peer_id()))
            .count();
        assert!(direct >= 1, "{:#?}", report.messages[0]);
        assert!(report.duration < plan.deadline, "{:?}", report.duration);

        // The peer that never subscribed got none of them.
        for message in &report.messages {
            assert_eq!(outsider[0].delivery(message.id).await.unwrap(), None);
        }
    });
}

#[test]
fn a_peer_without_pubsub_says_so_and_a_lonely_publish_reached_nobody() {
    let runtime = dht_runtime(1).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let plain = local_peer_config(&DhtConfig::default(), TransportKind::Memory);
        let peer = spawn_peers(1, &plain, &handle, |_| {}).await.unwrap().remove(0);
        let payload = MessageId::new().payload(32, &mut rand::thread_rng());
        match peer.publish(TOPIC, payload).await {
            Err(DhtError::Pubsub(reason)) => assert!(reason.contains("does not speak gossipsub"), "{reason}"),
            other => panic!("{other:?}"),
        }

        let mut with_pubsub = DhtConfig::default();
        with_pubsub.set_pubsub(Some(PubsubConfig::default()));
        let lonely = spawn_peers(
            1,
            &local_peer_config(&with_pubsub, TransportKind::Memory),
            &handle,
            |_| {},
        )
        .await
        .unwrap()
        .remove(0);
        lonely.subscribe(TOPIC).await.unwrap();
        let payload = MessageId::new().payload(32, &mut rand::thread_rng());
        match lonely.publish(TOPIC, payload).await {
            Err(DhtError::Pubsub(reason)) => assert!(reason.contains("reached no peer"), "{reason}"),
            other => panic!("an isolated publisher must not report a publish: {other:?}"),
        }
    });
}
