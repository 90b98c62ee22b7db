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
