//! An in-process fleet on a real libp2p network runs parsec rounds: the provide reaches the
//! DHT and every other node finds the provider record, over each transport.

use std::time::Duration;

use actix::prelude::*;
use parsec_actors::{
    local_network::{dht_runtime, TransportKind},
    testing::spawn_fleet,
    FleetSupervisor, Flush, MeasurementRecorder, MemorySink, Operation, RoundConfig, RunRound,
};

fn rounds_succeed_over(transport: TransportKind) {
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    System::new().block_on(async move {
        let fleet = spawn_fleet(25, 3, transport, &handle).await.unwrap();
        let sink = MemorySink::default();
        let recorder = MeasurementRecorder::new(sink.clone()).start();
        let supervisor = FleetSupervisor::new(
            fleet.members.clone(),
            recorder.clone().recipient(),
            RoundConfig::default(),
        )
        .start();

        let mut providers = Vec::new();
        for _ in 0..3 {
            let summary = supervisor.send(RunRound::new()).await.unwrap().unwrap();
            assert!(summary.failures.is_empty(), "{:?}", summary.failures);
            assert_eq!(summary.provide.measurements[0].error, None, "provide failed");
            assert_eq!(summary.retrievals.len(), 2);
            for (node, report) in &summary.retrievals {
                assert_ne!(*node, summary.provider);
                assert_eq!(
                    report.measurements[0].error, None,
                    "{node} did not find the provider"
                );
                assert_eq!(report.cid, summary.cid.to_string());
            }
            providers.push(summary.provider);
        }
        // The provider role rotates over the three nodes.
        providers.sort();
        providers.dedup();
        assert_eq!(providers.len(), 3);

        recorder.send(Flush).await.unwrap().unwrap();
        let rows = sink.rows();
        assert_eq!(
            rows.iter().filter(|r| r.operation == Operation::Provide).count(),
            3
        );
        assert_eq!(
            rows.iter()
                .filter(|r| r.operation == Operation::Retrieval)
                .count(),
            6
        );
        assert!(rows
            .iter()
            .all(|r| r.duration > Duration::ZERO && r.routing_table_size > 0));
        drop(fleet);
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn rounds_succeed_over_memory() {
    rounds_succeed_over(TransportKind::Memory);
}

#[test]
fn rounds_succeed_over_tcp() {
    rounds_succeed_over(TransportKind::Tcp);
}

#[test]
fn rounds_succeed_over_quic() {
    rounds_succeed_over(TransportKind::Quic);
}
