//! The scheduler's round over remote servers (HTTP only), with a node that is not ready.

mod common;

use std::time::Duration;

use actix::prelude::*;
use parsec::api::client::{ClientTimeouts, RemoteNode};
use parsec_actors::{
    local_network::dht_runtime, FleetMember, FleetSupervisor, Flush, MeasurementRecorder, MemorySink, NodeId,
    NodeRecipients, Operation, RoundConfig, RunRound,
};

use common::{http_fleet, lone_server};

#[test]
fn rounds_skip_a_node_that_is_not_ready() {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    System::new().block_on(async move {
        let (_fleet, mut urls, _servers) = http_fleet(20, 3, &handle).await;
        let (_peer, lone) = lone_server(&handle, None).await;
        let lone_url = lone.base_url();
        // The unready node sits in the middle of the list, where parsec's indexing breaks.
        urls.insert(1, lone_url);
        let members: Vec<FleetMember> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let remote = RemoteNode::new(url.clone(), ClientTimeouts::default()).start();
                FleetMember::new(NodeId(i as i64 + 1), url.clone(), NodeRecipients::of(&remote))
            })
            .collect();
        let unready = NodeId(2);
        let sink = MemorySink::default();
        let recorder = MeasurementRecorder::new(sink.clone()).start();
        let supervisor =
            FleetSupervisor::new(members, recorder.clone().recipient(), RoundConfig::default()).start();

        let mut providers = Vec::new();
        for _ in 0..6 {
            let summary = supervisor.send(RunRound::new()).await.unwrap().unwrap();
            let not_ready: Vec<NodeId> = summary.not_ready.iter().map(|(id, _)| *id).collect();
            assert_eq!(not_ready, vec![unready]);
            assert!(
                summary.not_ready[0].1.contains("not ready"),
                "{:?}",
                summary.not_ready
            );
            assert_ne!(summary.provider, unready);
            assert_eq!(summary.retrievals.len(), 2);
            assert!(summary.failures.is_empty(), "{:?}", summary.failures);
            for (node, report) in &summary.retrievals {
                assert_ne!(*node, unready);
                assert_eq!(report.measurements[0].error, None, "{node}");
            }
            providers.push(summary.provider);
        }
        assert_eq!(
            providers,
            [NodeId(1), NodeId(3), NodeId(4), NodeId(1), NodeId(3), NodeId(4)]
        );

        recorder.send(Flush).await.unwrap().unwrap();
        let rows = sink.rows();
        assert_eq!(rows.len(), 6 * 3);
        assert!(rows.iter().all(|r| r.node != unready));
        // Each round's rows share its id and its CID, and the provider row names the provider.
        for round in rows.iter().filter(|r| r.operation == Operation::Provide) {
            let same: Vec<_> = rows.iter().filter(|r| r.round == round.round).collect();
            assert_eq!(same.len(), 3);
            assert!(same.iter().all(|r| r.cid == round.cid));
            assert_eq!(same.iter().filter(|r| r.node == round.node).count(), 1);
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn a_fleet_with_no_ready_node_reports_it() {
    let runtime = dht_runtime(1).unwrap();
    let handle = runtime.handle().clone();
    System::new().block_on(async move {
        let (_peer, lone) = lone_server(&handle, None).await;
        let url = lone.base_url();
        let remote = RemoteNode::new(url.clone(), ClientTimeouts::default()).start();
        let members = vec![FleetMember::new(NodeId(1), url, NodeRecipients::of(&remote))];
        let recorder = MeasurementRecorder::new(MemorySink::default()).start();
        let supervisor = FleetSupervisor::new(members, recorder.recipient(), RoundConfig::default()).start();
        let error = supervisor.send(RunRound::new()).await.unwrap().unwrap_err();
        assert!(error.to_string().contains("no ready node among 1"), "{error}");
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// A reprovide round over the HTTP API: the rotating provider reprovides with each strategy, the
/// other server looks the sample up, and one row per strategy carries the round, its walks and
/// what was found; a `default` server refuses with 409 and is not a provider.
#[test]
fn reprovide_rounds_over_http_record_a_row_per_strategy() {
    use parsec_actors::{
        testing::spawn_fleet_with, DhtClient, DhtMode, ReprovideRoundConfig, ReprovideStrategy,
        RunReprovideRound, Strategy,
    };
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    System::new().block_on(async move {
        let fleet = spawn_fleet_with(
            40,
            2,
            parsec_actors::local_network::TransportKind::Tcp,
            &handle,
            |config| {
                config
                    .set_mode(DhtMode::Server)
                    .set_client(DhtClient::Engine(Strategy::Classic));
            },
        )
        .await
        .unwrap();
        let mut servers = Vec::new();
        for peer in &fleet.node_peers {
            servers.push(common::start_server(peer.clone(), None).await);
        }
        let members: Vec<FleetMember> = servers
            .iter()
            .enumerate()
            .map(|(i, server)| {
                let remote = RemoteNode::new(server.base_url(), ClientTimeouts::default()).start();
                FleetMember {
                    reprovide: Some(remote.clone().recipient()),
                    ..FleetMember::new(
                        NodeId(i as i64 + 1),
                        server.base_url(),
                        NodeRecipients::of(&remote),
                    )
                }
            })
            .collect();
        let sink = MemorySink::default();
        let recorder = MeasurementRecorder::new(sink.clone()).start();
        let supervisor =
            FleetSupervisor::new(members, recorder.clone().recipient(), RoundConfig::default()).start();
        let config = ReprovideRoundConfig {
            keys: 300,
            strategies: vec![ReprovideStrategy::Classic, ReprovideStrategy::Sweep],
            workers: 4,
            sample: 20,
        };
        let mut providers = Vec::new();
        for _ in 0..2 {
            let summary = supervisor
                .send(RunReprovideRound::new(config.clone()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(summary.recorded(), 2, "{summary:?}");
            providers.push(summary.provider.unwrap());
        }
        // The provider rotates.
        assert_eq!(providers, [NodeId(1), NodeId(2)]);
        recorder.send(Flush).await.unwrap().unwrap();
        let rows = sink.rows();
        assert_eq!(rows.len(), 4);
        for row in &rows {
            assert_eq!(row.operation, Operation::Reprovide);
            assert_eq!(row.error, None, "{row:?}");
            let details = row.reprovide.as_deref().unwrap();
            assert_eq!(details.round.keys, 300);
            assert_eq!((details.sampled, details.found), (20, 20), "{details:?}");
            assert!(details.round.copies_per_key() >= 19.0, "{details:?}");
            assert!(details.bytes_out.unwrap() > 0 && details.connections.is_some());
            match details.strategy {
                ReprovideStrategy::Classic => assert_eq!(details.round.lookups, 300),
                ReprovideStrategy::Sweep => {
                    assert!(details.round.lookups * 10 <= 300, "{details:?}");
                    // The walks travelled with their prefixes and account for every CID.
                    let walked: u64 = details.round.walks.iter().map(|w| w.keys).sum();
                    assert!(details.round.walks.iter().all(|w| w.prefix.is_some()));
                    assert_eq!(walked, 300);
                }
            }
        }

        // Bad input is a 400 with the reason; a `default` server refuses with 409.
        let client = common::client();
        let url = format!("{}/reprovide", servers[0].base_url());
        let mut bad = client
            .post(&url)
            .send_json(
                &serde_json::json!({"cids": 0, "strategy": "sweep", "workers": 4, "sample": 0, "seed": 1}),
            )
            .await
            .unwrap();
        assert_eq!(bad.status().as_u16(), 400);
        let body = String::from_utf8(bad.body().await.unwrap().to_vec()).unwrap();
        assert!(body.contains("cids must be between 1 and"), "{body}");
        let mut bad = client
            .post(&url)
            .send_json(
                &serde_json::json!({"cids": 10, "strategy": "fast", "workers": 4, "sample": 0, "seed": 1}),
            )
            .await
            .unwrap();
        assert_eq!(bad.status().as_u16(), 400);
        let body = String::from_utf8(bad.body().await.unwrap().to_vec()).unwrap();
        assert!(body.contains("classic or sweep"), "{body}");
        let default_server = common::start_server(fleet.peers[0].clone(), None).await;
        let mut refused = client
            .post(format!("{}/reprovide", default_server.base_url()))
            .send_json(
                &serde_json::json!({"cids": 10, "strategy": "sweep", "workers": 4, "sample": 0, "seed": 1}),
            )
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 409);
        let body = String::from_utf8(refused.body().await.unwrap().to_vec()).unwrap();
        assert!(body.contains("reprovide"), "{body}");
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}
