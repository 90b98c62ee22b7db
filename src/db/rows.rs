//! Row types shared by both backends: what a measurement, a node and a scheduler become in the
//! parsec tables, before each backend maps them to its column types.

use std::{collections::BTreeMap, net::IpAddr};

use chrono::{DateTime, Utc};
use parsec_actors::{
    DiscoveredNode, Measurement, NodeId, NodeRegistration, Operation, RegistryError, SchedulerId,
    SchedulerRegistration, SinkError,
};
use uuid::Uuid;

/// Which table a measurement row goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MeasurementTable {
    /// `provides_ecs`.
    Provides,
    /// `retrievals_ecs`.
    Retrievals,
}

/// One row of `pubsub_publishes_ecs` or `pubsub_deliveries_ecs` (publishes leave the delivery
/// columns empty and the other way round).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PubsubRow {
    pub(crate) measurement_id: Uuid,
    pub(crate) scheduler_id: i32,
    pub(crate) node_id: i32,
    pub(crate) round_id: Uuid,
    pub(crate) trace_id: Option<String>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) topic: String,
    pub(crate) message_id: String,
    /// Seconds.
    pub(crate) duration: f64,
    pub(crate) error: Option<String>,
    pub(crate) message_bytes: i32,
    pub(crate) topic_peers: Option<i32>,
    pub(crate) mesh_peers: Option<i32>,
    pub(crate) copies: i32,
    pub(crate) first_from: Option<String>,
    pub(crate) clock_offset: Option<f64>,
    pub(crate) clock_uncertainty: Option<f64>,
    pub(crate) implementation: String,
}

/// A batch's rows, per table.
#[derive(Debug, Default)]
pub(crate) struct TableRows {
    pub(crate) provides: Vec<MeasurementRow>,
    pub(crate) retrievals: Vec<MeasurementRow>,
    pub(crate) publishes: Vec<PubsubRow>,
    pub(crate) deliveries: Vec<PubsubRow>,
    pub(crate) reprovides: Vec<ReprovideRow>,
    /// The walks of the rounds in `reprovides`.
    pub(crate) regions: Vec<RegionRow>,
}

impl TableRows {
    /// Rows for a batch taken by `scheduler`, split by table.
    pub(crate) fn of(scheduler: SchedulerId, batch: &[Measurement]) -> Result<Self, SinkError> {
        let mut rows = Self::default();
        for measurement in batch {
            match measurement.operation {
                Operation::Provide => rows.provides.push(MeasurementRow::new(scheduler, measurement)?),
                Operation::Retrieval => rows.retrievals.push(MeasurementRow::new(scheduler, measurement)?),
                Operation::Publish => rows.publishes.push(PubsubRow::new(scheduler, measurement)?),
                Operation::Delivery => rows.deliveries.push(PubsubRow::new(scheduler, measurement)?),
                Operation::Reprovide => {
                    let (round, regions) = ReprovideRow::new(scheduler, measurement)?;
                    rows.reprovides.push(round);
                    rows.regions.extend(regions);
                }
            }
        }
        Ok(rows)
    }
}

impl PubsubRow {
    fn new(scheduler: SchedulerId, measurement: &Measurement) -> Result<Self, SinkError> {
        let details = measurement.pubsub.as_ref().ok_or_else(|| {
            SinkError(format!(
                "a {} measurement without its pubsub details cannot be stored",
                measurement.operation
            ))
        })?;
        let saturate = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Self {
            measurement_id: measurement.id,
            scheduler_id: int4(scheduler.0, "scheduler id").map_err(SinkError)?,
            node_id: int4(measurement.node.0, "node id").map_err(SinkError)?,
            round_id: measurement.round.0,
            trace_id: measurement.trace_id.clone(),
            started_at: measurement.started_at,
            topic: details.topic.clone(),
            message_id: measurement.cid.clone(),
            duration: measurement.duration.as_secs_f64(),
            error: measurement.error.clone(),
            message_bytes: saturate(details.message_bytes),
            topic_peers: details.topic_peers.map(saturate),
            mesh_peers: details.mesh_peers.map(saturate),
            copies: saturate(details.copies),
            first_from: details.first_from.clone(),
            clock_offset: details.clock_offset,
            clock_uncertainty: details.clock_uncertainty,
            implementation: details.implementation.clone(),
        })
    }
}

/// One row of `reprovide_rounds_ecs`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReprovideRow {
    pub(crate) measurement_id: Uuid,
    pub(crate) scheduler_id: i32,
    pub(crate) node_id: i32,
    pub(crate) round_id: Uuid,
    pub(crate) trace_id: Option<String>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) strategy: String,
    pub(crate) workers: i32,
    pub(crate) cids: i64,
    /// Seconds.
    pub(crate) duration: f64,
    pub(crate) error: Option<String>,
    pub(crate) lookups: i64,
    pub(crate) messages: i64,
    pub(crate) failures: i64,
    pub(crate) copies_stored: i64,
    pub(crate) walks: i32,
    pub(crate) connections: Option<i64>,
    pub(crate) bytes_out: Option<i64>,
    /// Seconds.
    pub(crate) cpu: Option<f64>,
    pub(crate) peak_memory: Option<i64>,
    pub(crate) sampled: i32,
    pub(crate) found: i32,
    pub(crate) placements: i32,
    pub(crate) placed: i32,
}

/// One row of `reprovide_regions_ecs`: a prefix a sweep walked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RegionRow {
    pub(crate) round_measurement_id: Uuid,
    pub(crate) walk: i32,
    pub(crate) prefix: String,
    pub(crate) regions: i32,
    pub(crate) peers: i32,
    pub(crate) cids: i64,
    pub(crate) lookups: i64,
    pub(crate) messages: i64,
    pub(crate) failures: i64,
    pub(crate) copies_stored: i64,
    /// Seconds.
    pub(crate) duration: f64,
}

/// Counts saturate rather than fail: a figure beyond the column is still a figure.
fn int8(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn saturate4(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

impl ReprovideRow {
    /// The round's row and one row per prefix its sweep walked (a classic round's walks are its
    /// provides, one per CID: the round row holds them).
    fn new(scheduler: SchedulerId, measurement: &Measurement) -> Result<(Self, Vec<RegionRow>), SinkError> {
        let details = measurement.reprovide.as_deref().ok_or_else(|| {
            SinkError("a reprovide measurement without its round cannot be stored".to_owned())
        })?;
        let round = &details.round;
        let row = Self {
            measurement_id: measurement.id,
            scheduler_id: int4(scheduler.0, "scheduler id").map_err(SinkError)?,
            node_id: int4(measurement.node.0, "node id").map_err(SinkError)?,
            round_id: measurement.round.0,
            trace_id: measurement.trace_id.clone(),
            started_at: measurement.started_at,
            strategy: details.strategy.name().to_owned(),
            workers: saturate4(details.workers),
            cids: int8(round.keys as u64),
            duration: measurement.duration.as_secs_f64(),
            error: measurement.error.clone(),
            lookups: int8(round.lookups),
            messages: int8(round.messages),
            failures: int8(round.failures),
            copies_stored: int8(round.copies_stored),
            // A classic round provides each CID once; its walks need not travel to be counted.
            walks: saturate4(match details.strategy {
                parsec_actors::ReprovideStrategy::Classic => round.keys,
                parsec_actors::ReprovideStrategy::Sweep => round.walks(),
            }),
            connections: details.connections.map(int8),
            bytes_out: details.bytes_out.map(int8),
            cpu: details.cpu.map(|cpu| cpu.as_secs_f64()),
            peak_memory: details.peak_memory.map(int8),
            sampled: saturate4(details.sampled),
            found: saturate4(details.found),
            placements: saturate4(details.placements),
            placed: saturate4(details.placed),
        };
        let regions = round
            .walks
            .iter()
            .enumerate()
            .filter_map(|(index, walk)| {
                Some(RegionRow {
                    round_measurement_id: measurement.id,
                    walk: saturate4(index),
                    prefix: walk.prefix?.to_string(),
                    regions: saturate4(walk.regions),
                    peers: saturate4(walk.peers),
                    cids: int8(walk.keys),
                    lookups: int8(walk.lookups),
                    messages: int8(walk.messages),
                    failures: int8(walk.failures),
                    copies_stored: int8(walk.copies_stored),
                    duration: walk.duration.as_secs_f64(),
                })
            })
            .collect();
        Ok((row, regions))
    }
}

/// One row of `provides_ecs` or `retrievals_ecs`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MeasurementRow {
    pub(crate) table: MeasurementTable,
    pub(crate) measurement_id: Uuid,
    pub(crate) scheduler_id: i32,
    pub(crate) node_id: i32,
    pub(crate) rt_size: i32,
    /// Seconds, as parsec stores durations.
    pub(crate) duration: f64,
    pub(crate) cid: String,
    pub(crate) error: Option<String>,
    /// When the operation finished (parsec inserts right after it, so its rows mean that).
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) step: String,
    pub(crate) round_id: Uuid,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) probe: i32,
    pub(crate) trace_id: Option<String>,
    /// Provides only: peers that acknowledged the record, when the server said.
    pub(crate) record_peers: Option<i32>,
    /// `warm` or `cold`, when the server said.
    pub(crate) connections: Option<String>,
}

impl MeasurementRow {
    /// The row for `measurement`, taken by `scheduler`.
    pub(crate) fn new(scheduler: SchedulerId, measurement: &Measurement) -> Result<Self, SinkError> {
        let duration = chrono::Duration::from_std(measurement.duration)
            .map_err(|e| SinkError(format!("duration {:?} out of range: {e}", measurement.duration)))?;
        Ok(Self {
            table: match measurement.operation {
                Operation::Provide => MeasurementTable::Provides,
                Operation::Retrieval => MeasurementTable::Retrievals,
                Operation::Publish | Operation::Delivery | Operation::Reprovide => {
                    return Err(SinkError(format!(
                        "a {} row is not a DHT row",
                        measurement.operation
                    )));
                }
            },
            measurement_id: measurement.id,
            scheduler_id: int4(scheduler.0, "scheduler id").map_err(SinkError)?,
            node_id: int4(measurement.node.0, "node id").map_err(SinkError)?,
            // Routing tables hold at most a few thousand peers; saturate rather than fail.
            rt_size: i32::try_from(measurement.routing_table_size).unwrap_or(i32::MAX),
            duration: measurement.duration.as_secs_f64(),
            cid: measurement.cid.clone(),
            error: measurement.error.clone(),
            created_at: measurement.started_at + duration,
            step: measurement.step.clone(),
            round_id: measurement.round.0,
            started_at: measurement.started_at,
            probe: i32::try_from(measurement.probe).unwrap_or(i32::MAX),
            trace_id: measurement.trace_id.clone(),
            record_peers: measurement
                .record_peers
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            connections: measurement.connections.map(|c| c.name().to_owned()),
        })
    }
}

/// One row of `nodes_ecs`, without the columns the database fills.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeRow {
    pub(crate) cpu: i32,
    pub(crate) memory: i32,
    pub(crate) peer_id: String,
    pub(crate) region: String,
    pub(crate) cmd: String,
    pub(crate) fleet: String,
    pub(crate) dependencies: serde_json::Value,
    pub(crate) ip_address: IpAddr,
    pub(crate) server_port: i32,
    pub(crate) peer_port: i32,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<NodeRegistration> for NodeRow {
    fn from(node: NodeRegistration) -> Self {
        Self {
            cpu: node.cpu,
            memory: node.memory_mb,
            peer_id: node.peer_id,
            region: node.region,
            cmd: node.cmd,
            fleet: node.fleet,
            dependencies: dependencies_json(&node.dependencies),
            ip_address: node.ip_address,
            server_port: i32::from(node.server_port),
            peer_port: i32::from(node.peer_port),
            created_at: Utc::now(),
        }
    }
}

/// One row of `schedulers_ecs`, without its id.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SchedulerRow {
    pub(crate) fleets: Vec<String>,
    pub(crate) dependencies: serde_json::Value,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<SchedulerRegistration> for SchedulerRow {
    fn from(scheduler: SchedulerRegistration) -> Self {
        Self {
            fleets: scheduler.fleets,
            dependencies: dependencies_json(&scheduler.dependencies),
            created_at: Utc::now(),
        }
    }
}

fn dependencies_json(dependencies: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        dependencies
            .iter()
            .map(|(name, version)| (name.clone(), serde_json::Value::String(version.clone())))
            .collect(),
    )
}

/// A node row as discovery reads it: id, fleet, peer id, API address and port.
pub(crate) type DiscoveredRow = (i32, String, String, IpAddr, i32);

/// The registry's view of a discovered row; a port outside 1..=65535 is a corrupt row.
pub(crate) fn discovered(row: DiscoveredRow) -> Result<DiscoveredNode, String> {
    let (id, fleet, peer_id, ip_address, port) = row;
    let server_port = u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("node {id} has server port {port}, which no server listens on"))?;
    Ok(DiscoveredNode {
        id: NodeId(i64::from(id)),
        fleet,
        peer_id,
        ip_address,
        server_port,
    })
}

/// Discovered rows in order, skipping (and logging) rows that cannot be reached.
pub(crate) fn discovered_nodes(rows: Vec<DiscoveredRow>) -> Vec<DiscoveredNode> {
    rows.into_iter()
        .filter_map(|row| {
            discovered(row)
                .map_err(|e| tracing::warn!(error = %e, "skipping a node row"))
                .ok()
        })
        .collect()
}

/// The database's INT id of a node (parsec's ids are INT4).
pub(crate) fn node_id(node: NodeId) -> Result<i32, RegistryError> {
    int4(node.0, "node id").map_err(RegistryError)
}

fn int4(id: i64, what: &str) -> Result<i32, String> {
    i32::try_from(id).map_err(|_| format!("{what} {id} does not fit the INT column"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parsec_actors::testing::sample_measurement;

    use super::*;

    #[test]
    fn a_measurement_becomes_a_row_in_seconds_that_ends_at_created_at() {
        let measurement = sample_measurement(Operation::Retrieval, Duration::from_millis(1500));
        let row = MeasurementRow::new(SchedulerId(7), &measurement).unwrap();
        assert_eq!(row.table, MeasurementTable::Retrievals);
        assert_eq!(row.duration, 1.5);
        assert_eq!(row.scheduler_id, 7);
        assert_eq!(row.round_id, measurement.round.0);
        assert_eq!(row.measurement_id, measurement.id);
        assert_eq!(
            row.created_at - row.started_at,
            chrono::Duration::milliseconds(1500)
        );
    }

    #[test]
    fn ids_beyond_int4_are_an_error_not_a_wrap() {
        let mut measurement = sample_measurement(Operation::Provide, Duration::ZERO);
        measurement.node = NodeId(i64::from(i32::MAX) + 1);
        let error = MeasurementRow::new(SchedulerId(1), &measurement).unwrap_err();
        assert!(error.to_string().contains("does not fit"), "{error}");
    }
}
