//! Embeds a parsec fleet in-process: 30 real libp2p DHT peers on the in-memory transport, three
//! nodes, one measurement round, the measurements printed. Exits non-zero if the round failed.
//!
//! ```text
//! cargo run -p parsec-actors --example embed_fleet --features test-utils
//! ```
//!
//! Expected output (durations vary):
//!
//! ```text
//! round 6b0c…: node-1 provided QmY… in 21ms
//!   node-2 retrieval in 9ms (found)
//!   node-3 retrieval in 11ms (found)
//! 3 rows recorded
//! ```

use std::{process::ExitCode, time::Duration};

use actix::prelude::*;
use parsec_actors::{
    local_network::{dht_runtime, TransportKind},
    testing::spawn_fleet,
    FleetSupervisor, Flush, MeasurementRecorder, MemorySink, RoundConfig, RunRound,
};

fn main() -> ExitCode {
    // Swarms run on their own multi-thread runtime; actors on the actix System's thread.
    let runtime = dht_runtime(2).expect("a tokio runtime");
    let handle = runtime.handle().clone();
    let outcome = System::new().block_on(async move {
        let fleet = spawn_fleet(30, 3, TransportKind::Memory, &handle)
            .await
            .map_err(|e| e.to_string())?;
        let sink = MemorySink::default();
        let recorder = MeasurementRecorder::new(sink.clone()).start();
        let supervisor = FleetSupervisor::new(
            fleet.members.clone(),
            recorder.clone().recipient(),
            RoundConfig::default(),
        )
        .start();

        let summary = supervisor
            .send(RunRound::new())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        println!(
            "round {}: {} provided {} in {:?}",
            summary.round, summary.provider, summary.cid, summary.provide.measurements[0].duration
        );
        let mut all_found = true;
        for (node, report) in &summary.retrievals {
            let step = &report.measurements[0];
            all_found &= step.error.is_none();
            println!(
                "  {node} retrieval in {:?} ({})",
                step.duration,
                step.error.as_deref().unwrap_or("found")
            );
        }
        recorder
            .send(Flush)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        println!("{} rows recorded", sink.rows().len());
        if all_found {
            Ok(())
        } else {
            Err("a retrieval did not find the provider record".to_owned())
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
