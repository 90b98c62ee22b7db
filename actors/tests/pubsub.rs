//! Gossipsub beside the DHT: in a stable network every subscribed peer receives every message,
//! once at least, and a peer that is not subscribed receives none.

use std::time::Duration;

use parsec_actors::{
    local_network::{
        connect_randomly, dht_runtime, local_peer_config, publish_and_collect, pubsub_test_config,
        spawn_peers, subscribe_and_form_mesh, PublishPlan, TransportKind,
    },
    pubsub::{MessageId, PubsubConfig},
    DhtConfig, DhtError,
};
use rand::{rngs::StdRng, SeedableRng};

const TOPIC: &str = "parsec-test";

#[test]
fn every_subscribed_peer_receives_every_message_in_a_stable_network() {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let config = pubsub_test_config(PubsubConfig::default(), TransportKind::Memory);
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

        // Asked after the deadline (as a receiver queued behind a slow one is), a receiver still
        // reports the copy it got in time, and nothing for a message it never got.
        // (The receipts are a linger old; 50 ms ago is past at the timer's millisecond grain.)
        let past = tokio::time::Instant::now() - Duration::from_millis(50);
        let first = report.messages[0].id;
        let late = subscribed[1].delivery_by(first, past).await.unwrap();
        assert!(late.is_some_and(|d| d.received_at <= past), "{late:?}");
        assert_eq!(outsider[0].delivery_by(first, past).await.unwrap(), None);
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

/// The supervisor's pubsub rounds over in-process nodes: the members that speak pubsub subscribe,
/// the publisher rotates, every other member's first copy of every message becomes a row, and a
/// member without pubsub is left out with the reason.
#[test]
fn pubsub_rounds_run_through_the_fleet_supervisor() {
    use actix::prelude::*;
    use parsec_actors::{
        local_network::connect_randomly, node::pubsub::PubsubRecipients, FleetMember, FleetSupervisor, Flush,
        MeasurementRecorder, MemorySink, NodeActor, NodeId, NodeRecipients, Operation, PubsubRoundConfig,
        RoundConfig, RunPubsubRound,
    };
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    System::new().block_on(async move {
        let mut pubsub = PubsubConfig::default();
        pubsub.set_heartbeat(Duration::from_millis(200));
        let mut template = DhtConfig::default();
        template
            .set_mode(parsec_actors::DhtMode::Server)
            .set_periodic_bootstrap(None)
            .set_idle_connection_timeout(Duration::from_secs(600));
        let plain = local_peer_config(&template, TransportKind::Memory);
        template.set_pubsub(Some(pubsub));
        let speaking = local_peer_config(&template, TransportKind::Memory);
        let mut peers = spawn_peers(4, &speaking, &handle, |_| {}).await.unwrap();
        peers.extend(spawn_peers(1, &plain, &handle, |_| {}).await.unwrap());
        connect_randomly(&peers, 3, &mut StdRng::seed_from_u64(1))
            .await
            .unwrap();

        let members: Vec<FleetMember> = peers
            .iter()
            .enumerate()
            .map(|(i, peer)| {
                let node = NodeActor::new(peer.clone()).start();
                let member = FleetMember::new(
                    NodeId(i as i64 + 1),
                    format!("peer {i}"),
                    NodeRecipients::of(&node),
                );
                if peer.speaks_pubsub() {
                    member.with_pubsub(PubsubRecipients::of(&node))
                } else {
                    member
                }
            })
            .collect();
        let sink = MemorySink::default();
        let recorder = MeasurementRecorder::new(sink.clone()).start();
        let supervisor =
            FleetSupervisor::new(members, recorder.clone().recipient(), RoundConfig::default()).start();
        let config = PubsubRoundConfig {
            topic: "fleet".to_owned(),
            messages: 5,
            message_bytes: 200,
            deadline: Duration::from_secs(10),
            clock_samples: 1,
            mesh_wait: Duration::from_secs(10),
        };
        // Readiness counts peers reached through identify, which follows the connections.
        for peer in &peers {
            while peer.routing_table_size().await.unwrap() == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut publishers = Vec::new();
        for _ in 0..2 {
            let summary = supervisor
                .send(RunPubsubRound::new(config.clone()))
                .await
                .unwrap()
                .unwrap();
            assert!(summary.failures.is_empty(), "{:?}", summary.failures);
            assert_eq!(summary.ready_nodes, 4, "{summary:?}");
            assert_eq!(
                summary.not_ready,
                vec![(NodeId(5), "does not speak pubsub".to_owned())]
            );
            assert_eq!((summary.published, summary.refused), (5, 0), "{summary:?}");
            let deliveries = &summary.deliveries;
            assert_eq!(
                (deliveries.expected, deliveries.delivered),
                (15, 15),
                "{summary:?}"
            );
            publishers.push(summary.publisher.unwrap());
        }
        assert_ne!(publishers[0], publishers[1], "the publisher rotates");

        recorder.send(Flush).await.unwrap().unwrap();
        let rows = sink.rows();
        let deliveries: Vec<_> = rows
            .iter()
            .filter(|r| r.operation == Operation::Delivery)
            .collect();
        assert_eq!(
            rows.iter().filter(|r| r.operation == Operation::Publish).count(),
            10
        );
        assert_eq!(deliveries.len(), 30);
        for row in deliveries {
            let details = row.pubsub.as_ref().unwrap();
            assert_eq!(row.error, None, "{row:?}");
            assert!(details.copies >= 1 && details.first_from.is_some(), "{row:?}");
            // One process, one clock.
            assert_eq!(
                (details.clock_offset, details.clock_uncertainty),
                (Some(0.0), Some(0.0))
            );
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// The redial that keeps a pubsub server's meshes: when a topic peer closes our only connection,
/// we dial it again within seconds and messages flow again; with redial off (a testnet's churn)
/// the connection stays closed.
#[test]
fn a_topic_peer_whose_connection_closed_is_dialled_again_unless_redial_is_off() {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        let mut rng = StdRng::seed_from_u64(11);
        for redial in [true, false] {
            let mut pubsub = PubsubConfig::default();
            pubsub.keep_topic_peers_connected = redial;
            let config = pubsub_test_config(pubsub, TransportKind::Memory);
            let peers = spawn_peers(2, &config, &handle, |_| {}).await.unwrap();
            connect_randomly(&peers, 1, &mut rng).await.unwrap();
            subscribe_and_form_mesh(&peers, TOPIC, 1, Duration::from_secs(20))
                .await
                .unwrap();

            // The second peer closes the only connection: to the first, a close it did not ask for.
            peers[1].disconnect_all().await.unwrap();
            assert_eq!(peers[1].topic_peers(TOPIC).await.unwrap().subscribed, 0);
            let started = tokio::time::Instant::now();
            let mut back = false;
            while !back && started.elapsed() < Duration::from_secs(4) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                back = peers[1].topic_peers(TOPIC).await.unwrap().subscribed == 1;
            }
            assert_eq!(
                back,
                redial,
                "redial {redial}: topic peer back after {:?}",
                started.elapsed()
            );
            if !redial {
                continue;
            }
            // Dialled back in ~1 s (the first pause), and the mesh carries messages again.
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
            let plan = PublishPlan {
                topics: vec![TOPIC.to_owned()],
                messages: 3,
                message_bytes: 64,
                deadline: Duration::from_secs(5),
                linger: Duration::from_millis(200),
            };
            let report = publish_and_collect(&peers[1], &peers[..1], &plan, &mut rng)
                .await
                .unwrap();
            assert_eq!(report.delivered(), (3, 3), "{report:#?}");
        }
    });
}
